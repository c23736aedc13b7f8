//! Who may use Cairn: accounts, IAM-style users, access keys, console passwords and the
//! policies attached to users, kept in `<data-dir>/identity/iam.json` (mode 0600). Secret
//! access keys are sealed with the master key (`cairn-vault`), which lives outside the data
//! directory; console passwords are Argon2id hashes. Nothing in the file lets anyone sign in
//! without the master key. The directory answers the two questions every request asks: whose
//! key is this (with its secret, to check the signature), and may that principal do this.

mod names;

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};

use cairn_policy::{Decision, Policy};
use cairn_vault::MasterKey;

pub use names::{
    new_access_key_id, new_account_id, new_password, new_secret, new_session_key_id, new_user_id,
    valid_account_id, valid_user_name,
};

/// The user `serve` creates in a new data directory, with administrator access.
pub const ADMIN_USER: &str = "admin";
/// Access keys a user may have at once (as in IAM).
pub const MAX_KEYS_PER_USER: usize = 2;
/// Inline policies a user may have.
pub const MAX_INLINE_POLICIES: usize = 10;
/// Managed policies attached to one user (as in IAM).
pub const MAX_ATTACHED_POLICIES: usize = 10;
/// Users in one account.
pub const MAX_USERS: usize = 5_000;
/// The shortest console password accepted.
pub const MIN_PASSWORD_LEN: usize = 8;

/// An error with the AWS error code (`__type`) and HTTP status it is answered with.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code}: {message}")]
pub struct IamError {
    pub code: &'static str,
    pub status: u16,
    pub message: String,
}

impl IamError {
    fn new(code: &'static str, status: u16, message: impl Into<String>) -> IamError {
        IamError {
            code,
            status,
            message: message.into(),
        }
    }
    pub fn no_such_entity(message: impl Into<String>) -> IamError {
        IamError::new("NoSuchEntityException", 404, message)
    }
    pub fn exists(message: impl Into<String>) -> IamError {
        IamError::new("EntityAlreadyExistsException", 409, message)
    }
    pub fn limit(message: impl Into<String>) -> IamError {
        IamError::new("LimitExceededException", 409, message)
    }
    pub fn invalid(message: impl Into<String>) -> IamError {
        IamError::new("InvalidInputException", 400, message)
    }
    pub fn malformed_policy(message: impl Into<String>) -> IamError {
        IamError::new("MalformedPolicyDocumentException", 400, message)
    }
    pub fn password_policy(message: impl Into<String>) -> IamError {
        IamError::new("PasswordPolicyViolationException", 400, message)
    }
    pub fn internal(message: impl Into<String>) -> IamError {
        IamError::new("ServiceFailureException", 500, message)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyStatus {
    Active,
    Inactive,
}

impl KeyStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyStatus::Active => "Active",
            KeyStatus::Inactive => "Inactive",
        }
    }
    pub fn parse(s: &str) -> Option<KeyStatus> {
        match s {
            "Active" => Some(KeyStatus::Active),
            "Inactive" => Some(KeyStatus::Inactive),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredKey {
    id: String,
    /// The secret access key, sealed with the master key for `access-key:<id>`.
    secret: String,
    status: KeyStatus,
    created: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredPassword {
    /// Argon2id PHC string.
    hash: String,
    created: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredUser {
    name: String,
    id: String,
    path: String,
    created: String,
    #[serde(default)]
    keys: Vec<StoredKey>,
    #[serde(default)]
    password: Option<StoredPassword>,
    /// Inline policies by name.
    #[serde(default)]
    inline: BTreeMap<String, String>,
    /// ARNs of attached managed policies.
    #[serde(default)]
    attached: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredAccount {
    id: String,
    #[serde(default)]
    name: String,
    created: String,
    /// The account that may create other accounts (the first one).
    #[serde(default)]
    management: bool,
    #[serde(default)]
    users: Vec<StoredUser>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct IamFile {
    /// Identifies the master key the secrets are sealed with.
    master_key_check: String,
    accounts: Vec<StoredAccount>,
}

/// A user as a request sees it: who, and what its policies allow.
#[derive(Debug)]
pub struct Principal {
    pub account_id: String,
    pub user_name: String,
    pub user_id: String,
    pub arn: String,
    /// Whether this user's account may manage other accounts.
    pub management_account: bool,
    policies: Vec<Arc<Policy>>,
}

impl Principal {
    /// The policy decision for one action on one resource.
    pub fn decide(&self, req: &cairn_policy::Request<'_>) -> Decision {
        cairn_policy::evaluate(self.policies.iter().map(|p| p.as_ref()), req)
    }

    /// The request context of this principal, for the caller to complete.
    pub fn context(&self) -> cairn_policy::Context {
        cairn_policy::Context {
            username: self.user_name.clone(),
            userid: self.user_id.clone(),
            principal_arn: self.arn.clone(),
            principal_account: self.account_id.clone(),
            principal_type: "User".into(),
            ..cairn_policy::Context::default()
        }
    }
}

/// An access key as authentication needs it.
#[derive(Debug)]
pub struct KeyEntry {
    pub access_key_id: String,
    pub secret: String,
    pub status: KeyStatus,
    pub principal: Arc<Principal>,
}

/// Facts about a user, for listing.
#[derive(Debug, Clone, Serialize)]
pub struct UserInfo {
    pub account_id: String,
    pub name: String,
    pub id: String,
    pub arn: String,
    pub path: String,
    pub created: String,
    pub has_password: bool,
    pub password_created: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct KeyInfo {
    pub user_name: String,
    pub access_key_id: String,
    pub status: KeyStatus,
    pub created: String,
}

/// A new access key: the only time its secret is seen.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub info: KeyInfo,
    pub secret: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct AccountInfo {
    pub id: String,
    pub name: String,
    pub created: String,
    pub management: bool,
}

/// What a new data directory (or a given key) set up, for `serve` to print once.
#[derive(Debug)]
pub struct Bootstrap {
    pub account_id: String,
    pub user_name: String,
    pub access_key_id: Option<String>,
    /// Shown only when generated now.
    pub secret: Option<String>,
    /// The admin's console password, shown only when generated now.
    pub password: Option<String>,
    /// The data directory had no identities before.
    pub created: bool,
}

/// The outcome of a console sign-in attempt.
pub enum SignIn {
    Ok(Arc<Principal>),
    /// The account is unknown: nobody to record the attempt for.
    NoAccount,
    /// Wrong user name or password. `known_user` is the principal when the name was right
    /// (for the event's userIdentity); None when the name is unknown.
    Failed {
        known_user: Option<Arc<Principal>>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot read or write {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a valid identity file: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Vault(#[from] cairn_vault::VaultError),
    #[error(transparent)]
    Iam(#[from] IamError),
}

struct State {
    file: IamFile,
    keys: HashMap<String, Arc<KeyEntry>>,
    users: HashMap<(String, String), Arc<Principal>>,
}

pub struct Directory {
    path: PathBuf,
    master: Arc<MasterKey>,
    state: RwLock<State>,
    /// Serialises writers so that each mutation is applied and saved in turn.
    write: Mutex<()>,
    /// A hash to verify against when the user is unknown, so that an unknown name takes as
    /// long as a wrong password.
    dummy_hash: std::sync::OnceLock<String>,
}

fn now() -> String {
    cairn_event::format_event_time(cairn_event::now_ms())
}

fn argon2() -> Argon2<'static> {
    Argon2::default()
}

fn hash_password(password: &str) -> Result<String, IamError> {
    let mut salt = [0u8; 16];
    rand::Rng::fill(&mut rand::rng(), &mut salt);
    let salt = SaltString::encode_b64(&salt)
        .map_err(|e| IamError::internal(format!("cannot make a salt: {e}")))?;
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| IamError::internal(format!("cannot hash the password: {e}")))
}

fn verify_password(password: &str, hash: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => argon2()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

fn check_password_policy(password: &str) -> Result<(), IamError> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(IamError::password_policy(format!(
            "the password must have at least {MIN_PASSWORD_LEN} characters"
        )));
    }
    if password.len() > 128 {
        return Err(IamError::password_policy(
            "the password must have at most 128 characters",
        ));
    }
    Ok(())
}

pub fn user_arn(account: &str, path: &str, name: &str) -> String {
    format!("arn:aws:iam::{account}:user{path}{name}")
}

/// Writes a file readable only by its owner, atomically (write, fsync, rename, fsync the folder).
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

fn key_purpose(id: &str) -> String {
    format!("access-key:{id}")
}

/// A policy attached by ARN or name: one of the ready-made ones.
fn managed(arn: &str) -> Result<&'static cairn_policy::Managed, IamError> {
    cairn_policy::managed_by_arn_or_name(arn).ok_or_else(|| {
        let known: Vec<&str> = cairn_policy::managed().iter().map(|m| m.name).collect();
        IamError::no_such_entity(format!(
            "Policy {arn} does not exist or is not attachable; the ready-made policies are {}",
            known.join(", ")
        ))
    })
}

impl Directory {
    /// Opens (or creates) the identity file. An older plain key file
    /// (`identity/keys.json`) is moved in, its secrets sealed, and removed.
    pub fn open(data_dir: &Path, master: Arc<MasterKey>) -> Result<Directory, OpenError> {
        let dir = data_dir.join("identity");
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| OpenError::Io { path, source }
        };
        fs::create_dir_all(&dir).map_err(io(&dir))?;
        let _ = fs::set_permissions(&dir, fs::Permissions::from_mode(0o700));
        let path = dir.join("iam.json");
        let mut file: IamFile = match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| OpenError::Parse {
                path: path.clone(),
                source,
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => IamFile {
                master_key_check: master.check_value().to_owned(),
                accounts: Vec::new(),
            },
            Err(e) => return Err(io(&path)(e)),
        };
        if file.master_key_check != master.check_value() {
            return Err(OpenError::Invalid(format!(
                "the secrets in {} were sealed with another master key (check value {}, this key's is {}): start Cairn with the master key it used before (--master-key-file or CAIRN_MASTER_KEY), or, if it is lost, run `cairn admin reset-admin --new-master-key` with the server stopped",
                path.display(),
                file.master_key_check,
                master.check_value()
            )));
        }
        let legacy = dir.join("keys.json");
        let migrate = file.accounts.is_empty() && legacy.exists();
        if migrate {
            migrate_legacy(&legacy, &mut file, &master)?;
        }
        let state = build_state(file, &master).map_err(OpenError::Iam)?;
        let directory = Directory {
            path,
            master,
            state: RwLock::new(state),
            write: Mutex::new(()),
            dummy_hash: std::sync::OnceLock::new(),
        };
        if migrate {
            directory.save()?;
            fs::remove_file(&legacy).map_err(io(&legacy))?;
            tracing::info!(
                "moved the access keys of identity/keys.json into identity/iam.json, sealed"
            );
        }
        Ok(directory)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A hash of a random password, made on the first sign-in rather than at start-up.
    fn dummy_hash(&self) -> &str {
        self.dummy_hash.get_or_init(|| {
            // Hashing a fresh password only fails if the system cannot make a salt; an empty
            // hash then fails to verify, which is the answer wanted, only faster.
            hash_password(&new_password()).unwrap_or_default()
        })
    }

    /// For a lost master key: moves the identity file to `master`, deleting every access key
    /// (their secrets cannot be opened any more) and keeping accounts, users, passwords and
    /// policies. Returns how many keys were deleted.
    pub fn rekey(data_dir: &Path, master: &MasterKey) -> Result<usize, OpenError> {
        let path = data_dir.join("identity").join("iam.json");
        let bytes = fs::read(&path).map_err(|source| OpenError::Io {
            path: path.clone(),
            source,
        })?;
        let mut file: IamFile =
            serde_json::from_slice(&bytes).map_err(|source| OpenError::Parse {
                path: path.clone(),
                source,
            })?;
        let mut removed = 0;
        for u in file.accounts.iter_mut().flat_map(|a| a.users.iter_mut()) {
            removed += u.keys.len();
            u.keys.clear();
        }
        file.master_key_check = master.check_value().to_owned();
        let bytes = serde_json::to_vec_pretty(&file)
            .map_err(|e| OpenError::Invalid(format!("cannot encode the identity file: {e}")))?;
        write_private(&path, &bytes).map_err(|source| OpenError::Io { path, source })?;
        Ok(removed)
    }

    fn save(&self) -> Result<(), IamError> {
        let bytes = serde_json::to_vec_pretty(&self.state.read().file)
            .map_err(|e| IamError::internal(format!("cannot encode the identity file: {e}")))?;
        write_private(&self.path, &bytes)
            .map_err(|e| IamError::internal(format!("cannot write {}: {e}", self.path.display())))
    }

    /// Applies a change to the stored identities, rebuilds the indexes and saves, all or
    /// nothing: when the change or the save fails, nothing changes.
    fn mutate<T>(
        &self,
        change: impl FnOnce(&mut IamFile) -> Result<T, IamError>,
    ) -> Result<T, IamError> {
        let _writer = self.write.lock();
        let mut copy = self.state.read().file.clone();
        let out = change(&mut copy)?;
        let bytes = serde_json::to_vec_pretty(&copy)
            .map_err(|e| IamError::internal(format!("cannot encode the identity file: {e}")))?;
        let state = build_state(copy, &self.master)?;
        write_private(&self.path, &bytes).map_err(|e| {
            IamError::internal(format!("cannot write {}: {e}", self.path.display()))
        })?;
        *self.state.write() = state;
        Ok(out)
    }

    /// Makes sure there is a first account with an administrator. `account_id` picks (or
    /// adds) the account; `given_key` (id, secret) becomes a key of that account's admin.
    pub fn bootstrap(
        &self,
        account_id: Option<&str>,
        given_key: Option<(String, String)>,
    ) -> Result<Bootstrap, IamError> {
        if let Some(a) = account_id
            && !valid_account_id(a)
        {
            return Err(IamError::invalid(format!(
                "--account-id {a:?} is not a 12-digit AWS account id"
            )));
        }
        if let Some((id, secret)) = &given_key {
            if id.len() < 16 || id.len() > 128 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(IamError::invalid(format!(
                    "CAIRN_ACCESS_KEY_ID {id:?} must be 16 to 128 letters and digits"
                )));
            }
            if secret.len() < 16 {
                return Err(IamError::invalid(
                    "CAIRN_SECRET_ACCESS_KEY must be at least 16 characters",
                ));
            }
        }
        let master = self.master.clone();
        self.mutate(|file| {
            let created = file.accounts.is_empty();
            let account = match account_id {
                Some(a) => a.to_owned(),
                None => match file.accounts.iter().find(|a| a.management) {
                    Some(a) => a.id.clone(),
                    None => new_account_id(),
                },
            };
            let mut secret_shown = None;
            let mut password_shown = None;
            if !file.accounts.iter().any(|a| a.id == account) {
                let management = file.accounts.is_empty();
                file.accounts
                    .push(new_account(&account, "", management));
            }
            let acct = file
                .accounts
                .iter_mut()
                .find(|a| a.id == account)
                .ok_or_else(|| IamError::internal("account vanished"))?;
            if !acct.users.iter().any(|u| u.name == ADMIN_USER) {
                let mut admin = new_user(ADMIN_USER, "/");
                admin
                    .attached
                    .push(managed("AdministratorAccess")?.arn.to_string());
                if given_key.is_none() {
                    let id = new_access_key_id();
                    let secret = new_secret();
                    admin.keys.push(StoredKey {
                        secret: master
                            .seal(secret.as_bytes(), &key_purpose(&id))
                            .map_err(|e| IamError::internal(e.to_string()))?,
                        id,
                        status: KeyStatus::Active,
                        created: now(),
                    });
                    secret_shown = Some(secret);
                }
                let password = new_password();
                admin.password = Some(StoredPassword {
                    hash: hash_password(&password)?,
                    created: now(),
                });
                password_shown = Some(password);
                acct.users.push(admin);
            }
            let mut key_id = None;
            if let Some((id, secret)) = &given_key {
                let owner = file.accounts.iter().find_map(|a| {
                    a.users
                        .iter()
                        .find(|u| u.keys.iter().any(|k| &k.id == id))
                        .map(|u| (a.id.clone(), u.name.clone()))
                });
                if let Some((a, u)) = &owner
                    && (a != &account || u != ADMIN_USER)
                {
                    return Err(IamError::invalid(format!(
                        "CAIRN_ACCESS_KEY_ID {id} belongs to user {u} of account {a}, not to {ADMIN_USER} of {account}"
                    )));
                }
                let acct = file
                    .accounts
                    .iter_mut()
                    .find(|a| a.id == account)
                    .ok_or_else(|| IamError::internal("account vanished"))?;
                let admin = acct
                    .users
                    .iter_mut()
                    .find(|u| u.name == ADMIN_USER)
                    .ok_or_else(|| IamError::internal("admin vanished"))?;
                let sealed = master
                    .seal(secret.as_bytes(), &key_purpose(id))
                    .map_err(|e| IamError::internal(e.to_string()))?;
                match admin.keys.iter_mut().find(|k| &k.id == id) {
                    Some(k) => {
                        k.secret = sealed;
                        k.status = KeyStatus::Active;
                    }
                    None => admin.keys.push(StoredKey {
                        id: id.clone(),
                        secret: sealed,
                        status: KeyStatus::Active,
                        created: now(),
                    }),
                }
                key_id = Some(id.clone());
            }
            let admin = file
                .accounts
                .iter()
                .find(|a| a.id == account)
                .and_then(|a| a.users.iter().find(|u| u.name == ADMIN_USER));
            if key_id.is_none() {
                key_id = admin.and_then(|u| u.keys.first()).map(|k| k.id.clone());
            }
            Ok(Bootstrap {
                account_id: account,
                user_name: ADMIN_USER.into(),
                access_key_id: key_id,
                secret: secret_shown,
                password: password_shown,
                created,
            })
        })
    }

    /// The key with this id, whatever its status.
    pub fn key(&self, access_key_id: &str) -> Option<Arc<KeyEntry>> {
        self.state.read().keys.get(access_key_id).cloned()
    }

    /// A user as a principal.
    pub fn principal(&self, account: &str, user: &str) -> Option<Arc<Principal>> {
        self.state
            .read()
            .users
            .get(&(account.to_owned(), user.to_owned()))
            .cloned()
    }

    pub fn accounts(&self) -> Vec<AccountInfo> {
        self.state
            .read()
            .file
            .accounts
            .iter()
            .map(account_info)
            .collect()
    }

    pub fn account_exists(&self, account: &str) -> bool {
        self.state
            .read()
            .file
            .accounts
            .iter()
            .any(|a| a.id == account)
    }

    /// The management account (the first one).
    pub fn management_account(&self) -> Option<String> {
        self.state
            .read()
            .file
            .accounts
            .iter()
            .find(|a| a.management)
            .map(|a| a.id.clone())
    }

    /// Creates an account with an `admin` user (administrator access) and one access key.
    pub fn create_account(
        &self,
        account_id: Option<&str>,
        name: &str,
    ) -> Result<(AccountInfo, UserInfo, NewKey), IamError> {
        if let Some(a) = account_id
            && !valid_account_id(a)
        {
            return Err(IamError::invalid(format!(
                "AccountId {a:?} is not a 12-digit account id"
            )));
        }
        if name.len() > 50 || name.chars().any(char::is_control) {
            return Err(IamError::invalid(
                "AccountName must be at most 50 characters without control characters",
            ));
        }
        let master = self.master.clone();
        self.mutate(|file| {
            let id = match account_id {
                Some(a) => a.to_owned(),
                None => loop {
                    let a = new_account_id();
                    if !file.accounts.iter().any(|x| x.id == a) {
                        break a;
                    }
                },
            };
            if file.accounts.iter().any(|a| a.id == id) {
                return Err(IamError::exists(format!("Account {id} already exists")));
            }
            let mut account = new_account(&id, name, false);
            let mut admin = new_user(ADMIN_USER, "/");
            admin
                .attached
                .push(managed("AdministratorAccess")?.arn.to_string());
            let key_id = new_access_key_id();
            let secret = new_secret();
            admin.keys.push(StoredKey {
                secret: master
                    .seal(secret.as_bytes(), &key_purpose(&key_id))
                    .map_err(|e| IamError::internal(e.to_string()))?,
                id: key_id.clone(),
                status: KeyStatus::Active,
                created: now(),
            });
            let user = user_info(&id, &admin);
            let key = NewKey {
                info: KeyInfo {
                    user_name: ADMIN_USER.into(),
                    access_key_id: key_id,
                    status: KeyStatus::Active,
                    created: admin.created.clone(),
                },
                secret,
            };
            account.users.push(admin);
            let info = account_info(&account);
            file.accounts.push(account);
            Ok((info, user, key))
        })
    }

    pub fn create_user(&self, account: &str, name: &str, path: &str) -> Result<UserInfo, IamError> {
        check_user_name(name)?;
        let path = if path.is_empty() { "/" } else { path };
        if !(path.starts_with('/') && path.ends_with('/') && path.len() <= 512)
            || path.chars().any(|c| !(c.is_ascii_graphic()))
        {
            return Err(IamError::invalid(
                "Path must begin and end with / and have at most 512 printable ASCII characters",
            ));
        }
        self.mutate(|file| {
            let acct = account_mut(file, account)?;
            if acct.users.iter().any(|u| u.name.eq_ignore_ascii_case(name)) {
                return Err(IamError::exists(format!(
                    "User with name {name} already exists."
                )));
            }
            if acct.users.len() >= MAX_USERS {
                return Err(IamError::limit(format!(
                    "Cannot exceed quota for UsersPerAccount: {MAX_USERS}"
                )));
            }
            let user = new_user(name, path);
            let info = user_info(account, &user);
            acct.users.push(user);
            Ok(info)
        })
    }

    pub fn get_user(&self, account: &str, name: &str) -> Result<UserInfo, IamError> {
        let state = self.state.read();
        let acct = account_ref(&state.file, account)?;
        let user = user_ref(acct, name)?;
        Ok(user_info(account, user))
    }

    pub fn list_users(&self, account: &str) -> Result<Vec<UserInfo>, IamError> {
        let state = self.state.read();
        let acct = account_ref(&state.file, account)?;
        let mut users: Vec<UserInfo> = acct.users.iter().map(|u| user_info(account, u)).collect();
        users.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(users)
    }

    /// Deletes a user with its keys, password and policies.
    pub fn delete_user(&self, account: &str, name: &str) -> Result<(), IamError> {
        self.mutate(|file| {
            let acct = account_mut(file, account)?;
            let before = acct.users.len();
            acct.users.retain(|u| u.name != name);
            if acct.users.len() == before {
                return Err(no_such_user(name));
            }
            Ok(())
        })
    }

    pub fn create_access_key(&self, account: &str, user: &str) -> Result<NewKey, IamError> {
        let master = self.master.clone();
        self.mutate(|file| {
            let taken: std::collections::HashSet<String> = file
                .accounts
                .iter()
                .flat_map(|a| {
                    a.users
                        .iter()
                        .flat_map(|u| u.keys.iter().map(|k| k.id.clone()))
                })
                .collect();
            let u = user_mut(account_mut(file, account)?, user)?;
            if u.keys.len() >= MAX_KEYS_PER_USER {
                return Err(IamError::limit(format!(
                    "Cannot exceed quota for AccessKeysPerUser: {MAX_KEYS_PER_USER}"
                )));
            }
            let id = loop {
                let id = new_access_key_id();
                if !taken.contains(&id) {
                    break id;
                }
            };
            let secret = new_secret();
            let created = now();
            u.keys.push(StoredKey {
                secret: master
                    .seal(secret.as_bytes(), &key_purpose(&id))
                    .map_err(|e| IamError::internal(e.to_string()))?,
                id: id.clone(),
                status: KeyStatus::Active,
                created: created.clone(),
            });
            Ok(NewKey {
                info: KeyInfo {
                    user_name: user.to_owned(),
                    access_key_id: id,
                    status: KeyStatus::Active,
                    created,
                },
                secret,
            })
        })
    }

    pub fn list_access_keys(&self, account: &str, user: &str) -> Result<Vec<KeyInfo>, IamError> {
        let state = self.state.read();
        let u = user_ref(account_ref(&state.file, account)?, user)?;
        Ok(u.keys
            .iter()
            .map(|k| KeyInfo {
                user_name: u.name.clone(),
                access_key_id: k.id.clone(),
                status: k.status,
                created: k.created.clone(),
            })
            .collect())
    }

    pub fn update_access_key(
        &self,
        account: &str,
        user: &str,
        key_id: &str,
        status: KeyStatus,
    ) -> Result<(), IamError> {
        self.mutate(|file| {
            let u = user_mut(account_mut(file, account)?, user)?;
            let k = u
                .keys
                .iter_mut()
                .find(|k| k.id == key_id)
                .ok_or_else(|| no_such_key(key_id, user))?;
            k.status = status;
            Ok(())
        })
    }

    pub fn delete_access_key(
        &self,
        account: &str,
        user: &str,
        key_id: &str,
    ) -> Result<(), IamError> {
        self.mutate(|file| {
            let u = user_mut(account_mut(file, account)?, user)?;
            let before = u.keys.len();
            u.keys.retain(|k| k.id != key_id);
            if u.keys.len() == before {
                return Err(no_such_key(key_id, user));
            }
            Ok(())
        })
    }

    /// Sets (`create` false: replaces) a user's console password.
    pub fn set_password(
        &self,
        account: &str,
        user: &str,
        password: &str,
        create: bool,
    ) -> Result<String, IamError> {
        check_password_policy(password)?;
        // Hash outside the writer lock: it takes a while on purpose.
        let hash = hash_password(password)?;
        self.mutate(|file| {
            let u = user_mut(account_mut(file, account)?, user)?;
            match (&u.password, create) {
                (Some(_), true) => {
                    return Err(IamError::exists(format!(
                        "Login Profile for user {user} already exists."
                    )));
                }
                (None, false) => {
                    return Err(IamError::no_such_entity(format!(
                        "Login Profile for User {user} cannot be found."
                    )));
                }
                _ => {}
            }
            let created = now();
            u.password = Some(StoredPassword {
                hash,
                created: created.clone(),
            });
            Ok(created)
        })
    }

    pub fn delete_password(&self, account: &str, user: &str) -> Result<(), IamError> {
        self.mutate(|file| {
            let u = user_mut(account_mut(file, account)?, user)?;
            if u.password.take().is_none() {
                return Err(IamError::no_such_entity(format!(
                    "Login Profile for User {user} cannot be found."
                )));
            }
            Ok(())
        })
    }

    /// Checks a console sign-in. Slow on purpose (Argon2id); call it off the async threads.
    pub fn sign_in(&self, account: &str, user: &str, password: &str) -> SignIn {
        let (hash, principal) = {
            let state = self.state.read();
            let Some(acct) = state.file.accounts.iter().find(|a| a.id == account) else {
                // Same work as a real check, so that timing does not tell accounts apart.
                verify_password(password, self.dummy_hash());
                return SignIn::NoAccount;
            };
            let stored = acct.users.iter().find(|u| u.name == user);
            let hash = stored
                .and_then(|u| u.password.as_ref())
                .map(|p| p.hash.clone());
            let principal = stored.and_then(|u| {
                state
                    .users
                    .get(&(account.to_owned(), u.name.clone()))
                    .cloned()
            });
            (hash, principal)
        };
        match hash {
            Some(hash) if verify_password(password, &hash) => match principal {
                Some(p) => SignIn::Ok(p),
                None => SignIn::Failed { known_user: None },
            },
            Some(_) => SignIn::Failed {
                known_user: principal,
            },
            None => {
                verify_password(password, self.dummy_hash());
                SignIn::Failed {
                    known_user: principal,
                }
            }
        }
    }

    pub fn put_user_policy(
        &self,
        account: &str,
        user: &str,
        name: &str,
        document: &str,
    ) -> Result<(), IamError> {
        check_policy_name(name)?;
        Policy::parse(document).map_err(|e| IamError::malformed_policy(e.to_string()))?;
        self.mutate(|file| {
            let u = user_mut(account_mut(file, account)?, user)?;
            if !u.inline.contains_key(name) && u.inline.len() >= MAX_INLINE_POLICIES {
                return Err(IamError::limit(format!(
                    "Cannot exceed quota for InlinePoliciesPerUser: {MAX_INLINE_POLICIES}"
                )));
            }
            u.inline.insert(name.to_owned(), document.to_owned());
            Ok(())
        })
    }

    pub fn get_user_policy(
        &self,
        account: &str,
        user: &str,
        name: &str,
    ) -> Result<String, IamError> {
        let state = self.state.read();
        let u = user_ref(account_ref(&state.file, account)?, user)?;
        u.inline.get(name).cloned().ok_or_else(|| {
            IamError::no_such_entity(format!("The user policy with name {name} cannot be found."))
        })
    }

    pub fn list_user_policies(&self, account: &str, user: &str) -> Result<Vec<String>, IamError> {
        let state = self.state.read();
        let u = user_ref(account_ref(&state.file, account)?, user)?;
        Ok(u.inline.keys().cloned().collect())
    }

    pub fn delete_user_policy(
        &self,
        account: &str,
        user: &str,
        name: &str,
    ) -> Result<(), IamError> {
        self.mutate(|file| {
            let u = user_mut(account_mut(file, account)?, user)?;
            u.inline.remove(name).map(|_| ()).ok_or_else(|| {
                IamError::no_such_entity(format!(
                    "The user policy with name {name} cannot be found."
                ))
            })
        })
    }

    /// Attaches a ready-made policy (by ARN or name); returns its ARN.
    pub fn attach_policy(
        &self,
        account: &str,
        user: &str,
        policy: &str,
    ) -> Result<String, IamError> {
        let arn = managed(policy)?.arn.to_string();
        self.mutate(|file| {
            let u = user_mut(account_mut(file, account)?, user)?;
            if !u.attached.contains(&arn) {
                if u.attached.len() >= MAX_ATTACHED_POLICIES {
                    return Err(IamError::limit(format!(
                        "Cannot exceed quota for PoliciesPerUser: {MAX_ATTACHED_POLICIES}"
                    )));
                }
                u.attached.push(arn.clone());
            }
            Ok(arn)
        })
    }

    pub fn detach_policy(&self, account: &str, user: &str, policy: &str) -> Result<(), IamError> {
        let arn = managed(policy)?.arn.to_string();
        self.mutate(|file| {
            let u = user_mut(account_mut(file, account)?, user)?;
            let before = u.attached.len();
            u.attached.retain(|a| a != &arn);
            if u.attached.len() == before {
                return Err(IamError::no_such_entity(format!(
                    "Policy {arn} was not found attached to user {user}."
                )));
            }
            Ok(())
        })
    }

    pub fn list_attached_policies(
        &self,
        account: &str,
        user: &str,
    ) -> Result<Vec<(String, String)>, IamError> {
        let state = self.state.read();
        let u = user_ref(account_ref(&state.file, account)?, user)?;
        Ok(u.attached
            .iter()
            .map(|arn| {
                let name = arn.rsplit('/').next().unwrap_or(arn).to_owned();
                (name, arn.clone())
            })
            .collect())
    }
}

fn account_info(a: &StoredAccount) -> AccountInfo {
    AccountInfo {
        id: a.id.clone(),
        name: a.name.clone(),
        created: a.created.clone(),
        management: a.management,
    }
}

fn user_info(account: &str, u: &StoredUser) -> UserInfo {
    UserInfo {
        account_id: account.to_owned(),
        name: u.name.clone(),
        id: u.id.clone(),
        arn: user_arn(account, &u.path, &u.name),
        path: u.path.clone(),
        created: u.created.clone(),
        has_password: u.password.is_some(),
        password_created: u.password.as_ref().map(|p| p.created.clone()),
    }
}

fn new_account(id: &str, name: &str, management: bool) -> StoredAccount {
    StoredAccount {
        id: id.to_owned(),
        name: name.to_owned(),
        created: now(),
        management,
        users: Vec::new(),
    }
}

fn new_user(name: &str, path: &str) -> StoredUser {
    StoredUser {
        name: name.to_owned(),
        id: new_user_id(),
        path: path.to_owned(),
        created: now(),
        keys: Vec::new(),
        password: None,
        inline: BTreeMap::new(),
        attached: Vec::new(),
    }
}

fn no_such_user(name: &str) -> IamError {
    IamError::no_such_entity(format!("The user with name {name} cannot be found."))
}

fn no_such_key(id: &str, user: &str) -> IamError {
    IamError::no_such_entity(format!(
        "The Access Key with id {id} cannot be found for user {user}."
    ))
}

fn check_user_name(name: &str) -> Result<(), IamError> {
    if valid_user_name(name) {
        Ok(())
    } else {
        Err(IamError::invalid(format!(
            "UserName {name:?} must be 1 to 64 letters, digits and +=,.@_-"
        )))
    }
}

fn check_policy_name(name: &str) -> Result<(), IamError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(IamError::invalid(format!(
            "PolicyName {name:?} must be 1 to 128 letters, digits and +=,.@_-"
        )))
    }
}

fn account_ref<'f>(file: &'f IamFile, account: &str) -> Result<&'f StoredAccount, IamError> {
    file.accounts
        .iter()
        .find(|a| a.id == account)
        .ok_or_else(|| IamError::no_such_entity(format!("Account {account} cannot be found.")))
}

fn account_mut<'f>(
    file: &'f mut IamFile,
    account: &str,
) -> Result<&'f mut StoredAccount, IamError> {
    file.accounts
        .iter_mut()
        .find(|a| a.id == account)
        .ok_or_else(|| IamError::no_such_entity(format!("Account {account} cannot be found.")))
}

fn user_ref<'a>(acct: &'a StoredAccount, name: &str) -> Result<&'a StoredUser, IamError> {
    acct.users
        .iter()
        .find(|u| u.name == name)
        .ok_or_else(|| no_such_user(name))
}

fn user_mut<'a>(acct: &'a mut StoredAccount, name: &str) -> Result<&'a mut StoredUser, IamError> {
    acct.users
        .iter_mut()
        .find(|u| u.name == name)
        .ok_or_else(|| no_such_user(name))
}

/// The indexes requests use: keys with their opened secrets, users with parsed policies.
fn build_state(file: IamFile, master: &MasterKey) -> Result<State, IamError> {
    let mut keys = HashMap::new();
    let mut users = HashMap::new();
    for account in &file.accounts {
        for u in &account.users {
            let mut policies = Vec::new();
            for arn in &u.attached {
                // A policy this version no longer ships grants nothing.
                if let Some(m) = cairn_policy::managed_by_arn_or_name(arn) {
                    policies.push(Arc::new(m.policy.clone()));
                }
            }
            for (name, text) in &u.inline {
                let p = Policy::parse(text).map_err(|e| {
                    IamError::internal(format!(
                        "inline policy {name} of user {} in account {} no longer parses: {e}",
                        u.name, account.id
                    ))
                })?;
                policies.push(Arc::new(p));
            }
            let principal = Arc::new(Principal {
                account_id: account.id.clone(),
                user_name: u.name.clone(),
                user_id: u.id.clone(),
                arn: user_arn(&account.id, &u.path, &u.name),
                management_account: account.management,
                policies,
            });
            for k in &u.keys {
                let secret = master
                    .open(&k.secret, &key_purpose(&k.id))
                    .map_err(|e| IamError::internal(e.to_string()))?;
                let secret = String::from_utf8(secret).map_err(|_| {
                    IamError::internal(format!("the sealed secret of {} is not text", k.id))
                })?;
                keys.insert(
                    k.id.clone(),
                    Arc::new(KeyEntry {
                        access_key_id: k.id.clone(),
                        secret,
                        status: k.status,
                        principal: principal.clone(),
                    }),
                );
            }
            users.insert((account.id.clone(), u.name.clone()), principal);
        }
    }
    Ok(State { file, keys, users })
}

/// Moves keys from the plain key file of earlier versions into `file`: each account gets an
/// `admin` user with administrator access holding that account's keys.
fn migrate_legacy(legacy: &Path, file: &mut IamFile, master: &MasterKey) -> Result<(), OpenError> {
    #[derive(Deserialize)]
    struct LegacyKey {
        access_key_id: String,
        secret_access_key: String,
        account_id: String,
        created: String,
    }
    #[derive(Deserialize)]
    struct Legacy {
        accounts: Vec<String>,
        keys: Vec<LegacyKey>,
    }
    let bytes = fs::read(legacy).map_err(|source| OpenError::Io {
        path: legacy.to_owned(),
        source,
    })?;
    let old: Legacy = serde_json::from_slice(&bytes).map_err(|source| OpenError::Parse {
        path: legacy.to_owned(),
        source,
    })?;
    let admin_arn = managed("AdministratorAccess")?.arn.to_string();
    for (i, id) in old.accounts.iter().enumerate() {
        let mut account = new_account(id, "", i == 0);
        let mut admin = new_user(ADMIN_USER, "/");
        admin.attached.push(admin_arn.clone());
        for k in old.keys.iter().filter(|k| &k.account_id == id) {
            admin.keys.push(StoredKey {
                secret: master.seal(
                    k.secret_access_key.as_bytes(),
                    &key_purpose(&k.access_key_id),
                )?,
                id: k.access_key_id.clone(),
                status: KeyStatus::Active,
                created: k.created.clone(),
            });
        }
        account.users.push(admin);
        file.accounts.push(account);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
