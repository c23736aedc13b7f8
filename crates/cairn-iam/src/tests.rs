use super::*;

fn master() -> Arc<MasterKey> {
    Arc::new(MasterKey::from_hex(&"5a".repeat(32)).expect("master key"))
}

fn allowed(p: &Principal, action: &str, resource: &str) -> bool {
    let ctx = p.context();
    p.decide(&cairn_policy::Request {
        action,
        resource,
        context: &ctx,
    })
    .is_allowed()
}

#[test]
fn a_new_directory_has_an_admin_whose_secrets_are_not_in_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let iam = Directory::open(dir.path(), master()).unwrap();
    let boot = iam.bootstrap(Some("111122223333"), None).unwrap();
    assert!(boot.created);
    assert_eq!(boot.account_id, "111122223333");
    let secret = boot.secret.clone().expect("a new secret is shown");
    let password = boot.password.clone().expect("a new password is shown");
    let key_id = boot.access_key_id.clone().unwrap();
    let text = std::fs::read_to_string(iam.path()).unwrap();
    assert!(!text.contains(&secret), "the secret is sealed");
    assert!(!text.contains(&password), "the password is hashed");
    assert!(text.contains("$argon2id$"));
    let mode = std::fs::metadata(iam.path()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let key = iam.key(&key_id).unwrap();
    assert_eq!(key.secret, secret);
    assert_eq!(key.principal.arn, "arn:aws:iam::111122223333:user/admin");
    assert!(key.principal.management_account);
    assert!(allowed(&key.principal, "iam:CreateUser", "*"));
    // A second start shows nothing again and keeps the same key.
    drop(iam);
    let iam = Directory::open(dir.path(), master()).unwrap();
    let again = iam.bootstrap(None, None).unwrap();
    assert!(!again.created);
    assert_eq!(again.secret, None);
    assert_eq!(again.password, None);
    assert_eq!(again.access_key_id.as_deref(), Some(key_id.as_str()));
    assert!(matches!(
        iam.sign_in("111122223333", "admin", &password),
        SignIn::Ok(_)
    ));
}

#[test]
fn another_master_key_cannot_open_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let iam = Directory::open(dir.path(), master()).unwrap();
    iam.bootstrap(None, None).unwrap();
    drop(iam);
    let other = Arc::new(MasterKey::from_hex(&"11".repeat(32)).unwrap());
    let err = Directory::open(dir.path(), other).err().expect("refused");
    assert!(err.to_string().contains("another master key"), "{err}");
}

#[test]
fn users_keys_and_policies() {
    let dir = tempfile::tempdir().unwrap();
    let iam = Directory::open(dir.path(), master()).unwrap();
    let a = "111122223333";
    iam.bootstrap(
        Some(a),
        Some((
            "AKIAGIVEN00000000001".into(),
            "given-secret-0123456789".into(),
        )),
    )
    .unwrap();
    let alice = iam.create_user(a, "alice", "/").unwrap();
    assert_eq!(alice.arn, "arn:aws:iam::111122223333:user/alice");
    assert!(alice.id.starts_with("AIDA"));
    assert_eq!(
        iam.create_user(a, "Alice", "/").unwrap_err().code,
        "EntityAlreadyExistsException"
    );
    assert_eq!(
        iam.create_user(a, "bad name", "/").unwrap_err().code,
        "InvalidInputException"
    );
    let k1 = iam.create_access_key(a, "alice").unwrap();
    let k2 = iam.create_access_key(a, "alice").unwrap();
    assert_ne!(k1.info.access_key_id, k2.info.access_key_id);
    assert_eq!(
        iam.create_access_key(a, "alice").unwrap_err().code,
        "LimitExceededException"
    );
    // No policy: nothing allowed.
    let p = iam.key(&k1.info.access_key_id).unwrap().principal.clone();
    assert!(!allowed(&p, "cloudtrail:LookupEvents", "*"));
    iam.attach_policy(a, "alice", "AWSCloudTrail_ReadOnlyAccess")
        .unwrap();
    let p = iam.key(&k1.info.access_key_id).unwrap().principal.clone();
    assert!(allowed(&p, "cloudtrail:LookupEvents", "*"));
    assert!(!allowed(&p, "cloudtrail:StopLogging", "*"));
    iam.put_user_policy(
        a,
        "alice",
        "no-lookup",
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Deny","Action":"cloudtrail:Lookup*","Resource":"*"}}"#,
    )
    .unwrap();
    let p = iam.key(&k1.info.access_key_id).unwrap().principal.clone();
    assert!(
        !allowed(&p, "cloudtrail:LookupEvents", "*"),
        "explicit deny wins"
    );
    assert!(allowed(&p, "cloudtrail:GetTrail", "*"));
    assert_eq!(
        iam.put_user_policy(a, "alice", "bad", "{")
            .unwrap_err()
            .code,
        "MalformedPolicyDocumentException"
    );
    assert_eq!(
        iam.attach_policy(a, "alice", "NoSuchPolicy")
            .unwrap_err()
            .code,
        "NoSuchEntityException"
    );
    // Deactivate, then delete.
    iam.update_access_key(a, "alice", &k1.info.access_key_id, KeyStatus::Inactive)
        .unwrap();
    assert_eq!(
        iam.key(&k1.info.access_key_id).unwrap().status,
        KeyStatus::Inactive
    );
    iam.delete_access_key(a, "alice", &k1.info.access_key_id)
        .unwrap();
    assert!(iam.key(&k1.info.access_key_id).is_none());
    // Deleting the user takes its keys with it.
    iam.delete_user(a, "alice").unwrap();
    assert!(iam.key(&k2.info.access_key_id).is_none());
    assert_eq!(
        iam.get_user(a, "alice").unwrap_err().code,
        "NoSuchEntityException"
    );
    // Everything survives a reopening.
    iam.create_user(a, "bob", "/").unwrap();
    drop(iam);
    let iam = Directory::open(dir.path(), master()).unwrap();
    assert!(iam.get_user(a, "bob").is_ok());
    assert!(iam.key("AKIAGIVEN00000000001").is_some());
}

#[test]
fn passwords_and_sign_in() {
    let dir = tempfile::tempdir().unwrap();
    let iam = Directory::open(dir.path(), master()).unwrap();
    let a = "111122223333";
    iam.bootstrap(Some(a), None).unwrap();
    iam.create_user(a, "carol", "/").unwrap();
    assert_eq!(
        iam.set_password(a, "carol", "short", true)
            .unwrap_err()
            .code,
        "PasswordPolicyViolationException"
    );
    iam.set_password(a, "carol", "correct horse battery", true)
        .unwrap();
    assert!(matches!(
        iam.sign_in(a, "carol", "correct horse battery"),
        SignIn::Ok(_)
    ));
    assert!(matches!(
        iam.sign_in(a, "carol", "wrong"),
        SignIn::Failed {
            known_user: Some(_)
        }
    ));
    assert!(matches!(
        iam.sign_in(a, "nobody", "x"),
        SignIn::Failed { known_user: None }
    ));
    assert!(matches!(
        iam.sign_in("999999999999", "carol", "x"),
        SignIn::NoAccount
    ));
    iam.delete_password(a, "carol").unwrap();
    assert!(matches!(
        iam.sign_in(a, "carol", "correct horse battery"),
        SignIn::Failed { .. }
    ));
}

#[test]
fn accounts_are_separate() {
    let dir = tempfile::tempdir().unwrap();
    let iam = Directory::open(dir.path(), master()).unwrap();
    iam.bootstrap(Some("111122223333"), None).unwrap();
    let (acct, user, key) = iam.create_account(Some("444455556666"), "second").unwrap();
    assert!(!acct.management);
    assert_eq!(user.arn, "arn:aws:iam::444455556666:user/admin");
    let p = iam.key(&key.info.access_key_id).unwrap().principal.clone();
    assert_eq!(p.account_id, "444455556666");
    assert!(!p.management_account);
    assert_eq!(
        iam.create_account(Some("444455556666"), "")
            .unwrap_err()
            .code,
        "EntityAlreadyExistsException"
    );
    // A user name is per account.
    iam.create_user("444455556666", "alice", "/").unwrap();
    iam.create_user("111122223333", "alice", "/").unwrap();
    assert_eq!(iam.list_users("444455556666").unwrap().len(), 2);
}

#[test]
fn an_old_plain_key_file_is_sealed_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let id_dir = dir.path().join("identity");
    std::fs::create_dir_all(&id_dir).unwrap();
    std::fs::write(
        id_dir.join("keys.json"),
        r#"{"accounts":["111122223333"],"keys":[{"access_key_id":"AKIAOLD0000000000001","secret_access_key":"old-secret-0123456789","account_id":"111122223333","created":"2026-01-01T00:00:00Z"}]}"#,
    )
    .unwrap();
    let iam = Directory::open(dir.path(), master()).unwrap();
    assert!(!id_dir.join("keys.json").exists());
    let key = iam.key("AKIAOLD0000000000001").unwrap();
    assert_eq!(key.secret, "old-secret-0123456789");
    assert_eq!(key.principal.user_name, "admin");
    let text = std::fs::read_to_string(iam.path()).unwrap();
    assert!(!text.contains("old-secret-0123456789"));
}
