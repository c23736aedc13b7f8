//! Evaluation: statement matching, conditions, and the managed policies.

use std::net::IpAddr;

use cairn_policy::{
    Context, Decision, Policy, Request, evaluate, explain, managed, managed_by_arn_or_name,
};

fn policy(text: &str) -> Policy {
    Policy::parse(text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// A 2012-10-17 policy with one statement built from `body` (its Effect, Action, ...).
fn one(body: &str) -> Policy {
    policy(&format!(
        r#"{{"Version":"2012-10-17","Statement":{{{body}}}}}"#
    ))
}

/// A policy that allows everything when `condition` holds.
fn allow_if(condition: &str) -> Policy {
    one(&format!(
        r#""Effect":"Allow","Action":"*","Resource":"*","Condition":{condition}"#
    ))
}

fn ctx() -> Context {
    Context {
        username: "alice".into(),
        userid: "AIDAEXAMPLE".into(),
        principal_arn: "arn:aws:iam::123456789012:user/ops/alice".into(),
        principal_account: "123456789012".into(),
        principal_type: "User".into(),
        source_ip: Some("203.0.113.9".parse().expect("ip")),
        secure_transport: true,
        now_epoch_seconds: 1_706_702_400, // 2024-01-31T12:00:00Z
        requested_region: "eu-west-1".into(),
        user_agent: "aws-cli/2.15".into(),
        via_console: false,
    }
}

fn decide(policies: &[&Policy], action: &str, resource: &str, context: &Context) -> Decision {
    evaluate(
        policies.iter().copied(),
        &Request {
            action,
            resource,
            context,
        },
    )
}

fn allowed(p: &Policy, action: &str, resource: &str, context: &Context) -> bool {
    decide(&[p], action, resource, context).is_allowed()
}

/// Whether `condition` holds for `context`.
fn holds(condition: &str, context: &Context) -> bool {
    allowed(&allow_if(condition), "s3:GetObject", "*", context)
}

#[test]
fn deny_beats_allow_and_default_is_deny() {
    let c = ctx();
    let allow_all = one(r#""Effect":"Allow","Action":"*","Resource":"*""#);
    let deny_stop =
        one(r#""Sid":"NoStop","Effect":"Deny","Action":"cloudtrail:StopLogging","Resource":"*""#);
    assert_eq!(
        decide(&[], "cloudtrail:GetTrail", "*", &c),
        Decision::ImplicitDeny
    );
    assert_eq!(
        decide(&[&allow_all], "cloudtrail:StopLogging", "*", &c),
        Decision::Allow
    );
    assert_eq!(
        decide(&[&allow_all, &deny_stop], "cloudtrail:StopLogging", "*", &c),
        Decision::ExplicitDeny
    );
    assert_eq!(
        decide(&[&deny_stop, &allow_all], "cloudtrail:StopLogging", "*", &c),
        Decision::ExplicitDeny
    );
    assert_eq!(
        decide(&[&deny_stop], "cloudtrail:GetTrail", "*", &c),
        Decision::ImplicitDeny
    );
    assert_eq!(
        decide(&[&allow_all, &deny_stop], "cloudtrail:GetTrail", "*", &c),
        Decision::Allow
    );
    assert!(!Decision::ExplicitDeny.is_allowed());
    assert!(!Decision::ImplicitDeny.is_allowed());
    // Deny within the same policy, after the Allow.
    let both = policy(
        r#"{"Statement":[{"Effect":"Allow","Action":"cloudtrail:*","Resource":"*"},
                         {"Effect":"Deny","Action":"cloudtrail:Delete*","Resource":"*"}]}"#,
    );
    assert!(allowed(&both, "cloudtrail:CreateTrail", "*", &c));
    assert!(!allowed(&both, "cloudtrail:DeleteTrail", "*", &c));
}

#[test]
fn explanations() {
    let c = ctx();
    let allow_all = one(r#""Effect":"Allow","Action":"*","Resource":"*""#);
    let deny = policy(
        r#"{"Id":"Guard","Statement":[{"Effect":"Deny","Action":"iam:*","Resource":"*"},
            {"Sid":"NoStop","Effect":"Deny","Action":"cloudtrail:StopLogging","Resource":"*"}]}"#,
    );
    let req = |action| Request {
        action,
        resource: "arn:aws:cloudtrail:us-east-1:123456789012:trail/main",
        context: &c,
    };
    assert_eq!(
        explain([&allow_all, &deny], &req("cloudtrail:GetTrail")),
        None
    );
    let why = explain([&allow_all, &deny], &req("cloudtrail:StopLogging")).expect("denied");
    assert_eq!(
        why,
        "cloudtrail:StopLogging on arn:aws:cloudtrail:us-east-1:123456789012:trail/main: \
         explicitly denied by Statement[1] (Sid \"NoStop\") of policy 1 (Id \"Guard\")"
    );
    let why = explain([&allow_all, &deny], &req("iam:CreateUser")).expect("denied");
    assert!(
        why.ends_with("explicitly denied by Statement[0] of policy 1 (Id \"Guard\")"),
        "{why}"
    );
    let why = explain([&deny], &req("cloudtrail:GetTrail")).expect("denied");
    assert!(
        why.contains("implicitly denied: no statement of the policy allows it"),
        "{why}"
    );
    let why = explain([&deny, &deny], &req("cloudtrail:GetTrail")).expect("denied");
    assert!(why.contains("no statement of the 2 policies"), "{why}");
    let why = explain([], &req("cloudtrail:GetTrail")).expect("denied");
    assert!(why.contains("no policy applies"), "{why}");
}

#[test]
fn action_matching_ignores_case_and_supports_wildcards() {
    let c = ctx();
    let p = one(r#""Effect":"Allow","Action":["CloudTrail:Get*","s3:List?ucket"],"Resource":"*""#);
    assert!(allowed(&p, "cloudtrail:GetTrail", "*", &c));
    assert!(allowed(&p, "CLOUDTRAIL:GETTRAILSTATUS", "*", &c));
    assert!(allowed(&p, "s3:listbucket", "*", &c));
    assert!(!allowed(&p, "s3:ListBuckets", "*", &c));
    assert!(!allowed(&p, "cloudtrail-data:GetX", "*", &c));
    assert!(!allowed(&p, "cloudtrail:StopLogging", "*", &c));
    assert!(!allowed(&p, "xcloudtrail:GetTrail", "*", &c));
}

#[test]
fn resource_matching_is_case_sensitive() {
    let c = ctx();
    let p =
        one(r#""Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::Logs/*/202?/*""#);
    assert!(allowed(
        &p,
        "s3:GetObject",
        "arn:aws:s3:::Logs/AWSLogs/2024/01/x.json.gz",
        &c
    ));
    assert!(!allowed(
        &p,
        "s3:GetObject",
        "arn:aws:s3:::logs/AWSLogs/2024/01/x.json.gz",
        &c
    ));
    assert!(!allowed(
        &p,
        "s3:GetObject",
        "arn:aws:s3:::Logs/AWSLogs/1999/01/x.json.gz",
        &c
    ));
    assert!(!allowed(&p, "s3:GetObject", "*", &c));
}

#[test]
fn not_action_and_not_resource() {
    let c = ctx();
    let p = one(r#""Effect":"Allow","NotAction":["iam:*","organizations:*"],"Resource":"*""#);
    assert!(allowed(&p, "cloudtrail:LookupEvents", "*", &c));
    assert!(!allowed(&p, "iam:CreateUser", "*", &c));
    assert!(!allowed(&p, "Organizations:ListAccounts", "*", &c));
    let p = one(r#""Effect":"Allow","Action":"s3:*","NotResource":"arn:aws:s3:::secret/*""#);
    assert!(allowed(&p, "s3:GetObject", "arn:aws:s3:::public/a", &c));
    assert!(!allowed(&p, "s3:GetObject", "arn:aws:s3:::secret/a", &c));
    // A Deny with NotAction denies everything else.
    let allow_all = one(r#""Effect":"Allow","Action":"*","Resource":"*""#);
    let only_reads = one(
        r#""Effect":"Deny","NotAction":["cloudtrail:Get*","cloudtrail:LookupEvents"],"Resource":"*""#,
    );
    assert_eq!(
        decide(
            &[&allow_all, &only_reads],
            "cloudtrail:LookupEvents",
            "*",
            &c
        ),
        Decision::Allow
    );
    assert_eq!(
        decide(
            &[&allow_all, &only_reads],
            "cloudtrail:DeleteTrail",
            "*",
            &c
        ),
        Decision::ExplicitDeny
    );
}

#[test]
fn policy_variables() {
    let p = one(r#""Effect":"Allow","Action":"s3:*","Resource":[
            "arn:aws:s3:::home/${aws:username}/*",
            "arn:aws:iam::${aws:PrincipalAccount}:user/${aws:userid}",
            "arn:aws:s3:::lit/${*}${?}${$}"]"#);
    let mut c = ctx();
    assert!(allowed(
        &p,
        "s3:GetObject",
        "arn:aws:s3:::home/alice/notes.txt",
        &c
    ));
    assert!(!allowed(
        &p,
        "s3:GetObject",
        "arn:aws:s3:::home/bob/notes.txt",
        &c
    ));
    assert!(!allowed(
        &p,
        "s3:GetObject",
        "arn:aws:s3:::home/Alice/notes.txt",
        &c
    ));
    assert!(allowed(
        &p,
        "s3:GetObject",
        "arn:aws:iam::123456789012:user/AIDAEXAMPLE",
        &c
    ));
    assert!(!allowed(
        &p,
        "s3:GetObject",
        "arn:aws:iam::999999999999:user/AIDAEXAMPLE",
        &c
    ));
    assert!(allowed(&p, "s3:GetObject", "arn:aws:s3:::lit/*?$", &c));
    assert!(!allowed(&p, "s3:GetObject", "arn:aws:s3:::lit/ab$", &c));
    // No username in the request: the pattern using it matches nothing.
    c.username.clear();
    assert!(!allowed(
        &p,
        "s3:GetObject",
        "arn:aws:s3:::home//notes.txt",
        &c
    ));
    // 2008-10-17: no substitution.
    let old = policy(
        r#"{"Version":"2008-10-17","Statement":{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::home/${aws:username}/*"}}"#,
    );
    let c = ctx();
    assert!(!allowed(
        &old,
        "s3:GetObject",
        "arn:aws:s3:::home/alice/x",
        &c
    ));
    assert!(allowed(
        &old,
        "s3:GetObject",
        "arn:aws:s3:::home/${aws:username}/x",
        &c
    ));
    // Variables in condition values.
    assert!(holds(
        r#"{"StringEquals":{"aws:PrincipalArn":"arn:aws:iam::${aws:PrincipalAccount}:user/ops/${aws:username}"}}"#,
        &c
    ));
    assert!(holds(
        r#"{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::${aws:PrincipalAccount}:user/*"}}"#,
        &c
    ));
    assert!(!holds(
        r#"{"StringLike":{"aws:userid":"${aws:username}*"}}"#,
        &c
    ));
}

#[test]
fn string_operators() {
    let c = ctx();
    assert!(holds(r#"{"StringEquals":{"aws:username":"alice"}}"#, &c));
    assert!(!holds(r#"{"StringEquals":{"aws:username":"Alice"}}"#, &c));
    assert!(
        holds(r#"{"StringEquals":{"aws:username":["bob","alice"]}}"#, &c),
        "values are OR'd"
    );
    assert!(
        !holds(r#"{"StringEquals":{"aws:username":"ali*"}}"#, &c),
        "no wildcards in Equals"
    );
    assert!(holds(
        r#"{"StringNotEquals":{"aws:username":["bob","carol"]}}"#,
        &c
    ));
    assert!(
        !holds(
            r#"{"StringNotEquals":{"aws:username":["bob","alice"]}}"#,
            &c
        ),
        "negated values are NOR'd"
    );
    assert!(holds(
        r#"{"StringEqualsIgnoreCase":{"aws:username":"ALICE"}}"#,
        &c
    ));
    assert!(!holds(
        r#"{"StringEqualsIgnoreCase":{"aws:username":"ALIC"}}"#,
        &c
    ));
    assert!(!holds(
        r#"{"StringNotEqualsIgnoreCase":{"aws:username":"ALICE"}}"#,
        &c
    ));
    assert!(holds(
        r#"{"StringNotEqualsIgnoreCase":{"aws:username":"bob"}}"#,
        &c
    ));
    assert!(holds(r#"{"StringLike":{"aws:UserAgent":"aws-cli/*"}}"#, &c));
    assert!(holds(
        r#"{"StringLike":{"aws:RequestedRegion":"eu-?est-*"}}"#,
        &c
    ));
    assert!(!holds(
        r#"{"StringLike":{"aws:UserAgent":"AWS-CLI/*"}}"#,
        &c
    ));
    assert!(holds(
        r#"{"StringNotLike":{"aws:RequestedRegion":["us-*","ap-*"]}}"#,
        &c
    ));
    assert!(!holds(
        r#"{"StringNotLike":{"aws:RequestedRegion":["us-*","eu-*"]}}"#,
        &c
    ));
    assert!(holds(
        r#"{"StringEquals":{"aws:PrincipalType":"User","aws:PrincipalAccount":123456789012}}"#,
        &c
    ));
    assert!(
        !holds(
            r#"{"StringEquals":{"aws:PrincipalType":"User","aws:PrincipalAccount":"1"}}"#,
            &c
        ),
        "keys are AND'd"
    );
    assert!(
        holds(r#"{"StringEquals":{"AWS:USERID":"AIDAEXAMPLE"}}"#, &c),
        "key names ignore case"
    );
    assert!(holds(
        r#"{"StringLike":{"aws:PrincipalArn":"arn:aws:iam::*:user/*"}}"#,
        &c
    ));
}

#[test]
fn arn_operators() {
    let c = ctx();
    assert!(holds(
        r#"{"ArnEquals":{"aws:PrincipalArn":"arn:aws:iam::123456789012:user/ops/alice"}}"#,
        &c
    ));
    assert!(holds(
        r#"{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::*:user/*"}}"#,
        &c
    ));
    assert!(holds(
        r#"{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::123456789012:user/ops/*"}}"#,
        &c
    ));
    assert!(!holds(
        r#"{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::123456789012:role/*"}}"#,
        &c
    ));
    let mut colons = ctx();
    colons.principal_arn = "arn:aws:iam::123:x:y".into();
    assert!(
        !holds(
            r#"{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam:*:*:y"}}"#,
            &colons
        ),
        "a wildcard never spans a colon"
    );
    assert!(holds(
        r#"{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam:*:*:x:y"}}"#,
        &colons
    ));
    assert!(holds(
        r#"{"StringLike":{"aws:PrincipalArn":"arn:aws:iam:*:*:y"}}"#,
        &colons
    ));
    assert!(holds(r#"{"ArnLike":{"aws:PrincipalArn":"*"}}"#, &c));
    assert!(
        !holds(
            r#"{"ArnLike":{"aws:PrincipalArn":"arn:AWS:iam::123456789012:user/ops/alice"}}"#,
            &c
        ),
        "case-sensitive"
    );
    assert!(holds(
        r#"{"ArnNotEquals":{"aws:PrincipalArn":"arn:aws:iam::123456789012:user/bob"}}"#,
        &c
    ));
    assert!(!holds(
        r#"{"ArnNotLike":{"aws:PrincipalArn":["arn:aws:iam::*:role/*","arn:aws:iam::*:user/*"]}}"#,
        &c
    ));
    let mut odd = ctx();
    odd.principal_arn = "not-an-arn".into();
    assert!(!holds(
        r#"{"ArnLike":{"aws:PrincipalArn":"arn:*:*:*:*:*"}}"#,
        &odd
    ));
}

#[test]
fn ip_operators() {
    let mut c = ctx();
    assert!(holds(
        r#"{"IpAddress":{"aws:SourceIp":"203.0.113.0/24"}}"#,
        &c
    ));
    assert!(holds(
        r#"{"IpAddress":{"aws:SourceIp":["10.0.0.0/8","203.0.113.9"]}}"#,
        &c
    ));
    assert!(!holds(
        r#"{"IpAddress":{"aws:SourceIp":"203.0.114.0/24"}}"#,
        &c
    ));
    assert!(!holds(
        r#"{"NotIpAddress":{"aws:SourceIp":"203.0.113.0/24"}}"#,
        &c
    ));
    assert!(holds(
        r#"{"NotIpAddress":{"aws:SourceIp":["10.0.0.0/8","192.168.0.0/16"]}}"#,
        &c
    ));
    c.source_ip = Some("2001:db8:abcd::1".parse().expect("ip"));
    assert!(holds(
        r#"{"IpAddress":{"aws:SourceIp":"2001:db8::/32"}}"#,
        &c
    ));
    assert!(!holds(
        r#"{"IpAddress":{"aws:SourceIp":"2001:db9::/32"}}"#,
        &c
    ));
    assert!(!holds(r#"{"IpAddress":{"aws:SourceIp":"0.0.0.0/0"}}"#, &c));
    assert!(holds(
        r#"{"IpAddress":{"aws:SourceIp":"2001:db8:abcd::1"}}"#,
        &c
    ));
    // An IPv4 client seen through an IPv6 socket.
    c.source_ip = Some("::ffff:203.0.113.9".parse::<IpAddr>().expect("ip"));
    assert!(holds(
        r#"{"IpAddress":{"aws:SourceIp":"203.0.113.0/24"}}"#,
        &c
    ));
}

#[test]
fn bool_operator() {
    let mut c = ctx();
    assert!(holds(r#"{"Bool":{"aws:SecureTransport":"true"}}"#, &c));
    assert!(holds(r#"{"Bool":{"aws:SecureTransport":true}}"#, &c));
    assert!(!holds(r#"{"Bool":{"aws:SecureTransport":false}}"#, &c));
    assert!(holds(r#"{"Bool":{"aws:ViaConsole":"false"}}"#, &c));
    c.via_console = true;
    assert!(holds(r#"{"Bool":{"aws:ViaConsole":"TRUE"}}"#, &c));
    c.secure_transport = false;
    let deny_plain = one(
        r#""Effect":"Deny","Action":"*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"false"}}"#,
    );
    let allow_all = one(r#""Effect":"Allow","Action":"*","Resource":"*""#);
    assert_eq!(
        decide(&[&allow_all, &deny_plain], "s3:GetObject", "*", &c),
        Decision::ExplicitDeny
    );
    c.secure_transport = true;
    assert_eq!(
        decide(&[&allow_all, &deny_plain], "s3:GetObject", "*", &c),
        Decision::Allow
    );
}

#[test]
fn date_operators() {
    let c = ctx(); // 2024-01-31T12:00:00Z
    for (cond, expected) in [
        (
            r#"{"DateEquals":{"aws:CurrentTime":"2024-01-31T12:00:00Z"}}"#,
            true,
        ),
        (
            r#"{"DateEquals":{"aws:CurrentTime":"2024-01-31T12:00:01Z"}}"#,
            false,
        ),
        (
            r#"{"DateNotEquals":{"aws:CurrentTime":"2024-01-31T12:00:01Z"}}"#,
            true,
        ),
        (
            r#"{"DateNotEquals":{"aws:CurrentTime":["2020-01-01","2024-01-31T12:00:00Z"]}}"#,
            false,
        ),
        (r#"{"DateLessThan":{"aws:CurrentTime":"2024-02-01"}}"#, true),
        (
            r#"{"DateLessThan":{"aws:CurrentTime":"2024-01-31T12:00:00Z"}}"#,
            false,
        ),
        (
            r#"{"DateLessThanEquals":{"aws:CurrentTime":"2024-01-31T12:00:00Z"}}"#,
            true,
        ),
        (
            r#"{"DateLessThan":{"aws:CurrentTime":"2024-01-31T12:00:00.5Z"}}"#,
            true,
        ),
        (
            r#"{"DateGreaterThan":{"aws:CurrentTime":"2024-01-31"}}"#,
            true,
        ),
        (
            r#"{"DateGreaterThan":{"aws:CurrentTime":"2024-01-31T13:00:00+01:00"}}"#,
            false,
        ),
        (
            r#"{"DateGreaterThanEquals":{"aws:CurrentTime":"2024-01-31T13:00:00+01:00"}}"#,
            true,
        ),
        (r#"{"DateGreaterThan":{"aws:EpochTime":1706702399}}"#, true),
        (
            r#"{"DateGreaterThan":{"aws:EpochTime":"1706702400"}}"#,
            false,
        ),
        (
            r#"{"DateLessThan":{"aws:CurrentTime":["2020-01-01","2030-01-01"]}}"#,
            true,
        ),
    ] {
        assert_eq!(holds(cond, &c), expected, "{cond}");
    }
}

#[test]
fn numeric_operators() {
    let c = ctx(); // aws:EpochTime 1706702400
    for (cond, expected) in [
        (r#"{"NumericEquals":{"aws:EpochTime":1706702400}}"#, true),
        (r#"{"NumericEquals":{"aws:EpochTime":"1706702401"}}"#, false),
        (
            r#"{"NumericNotEquals":{"aws:EpochTime":"1706702401"}}"#,
            true,
        ),
        (
            r#"{"NumericNotEquals":{"aws:EpochTime":[1, 1706702400]}}"#,
            false,
        ),
        (r#"{"NumericLessThan":{"aws:EpochTime":1706702401}}"#, true),
        (r#"{"NumericLessThan":{"aws:EpochTime":1706702400}}"#, false),
        (
            r#"{"NumericLessThanEquals":{"aws:EpochTime":1706702400}}"#,
            true,
        ),
        (
            r#"{"NumericGreaterThan":{"aws:EpochTime":1706702399.5}}"#,
            true,
        ),
        (
            r#"{"NumericGreaterThan":{"aws:EpochTime":1706702400}}"#,
            false,
        ),
        (
            r#"{"NumericGreaterThanEquals":{"aws:EpochTime":"1.7067024e9"}}"#,
            true,
        ),
    ] {
        assert_eq!(holds(cond, &c), expected, "{cond}");
    }
}

#[test]
fn missing_keys_if_exists_and_null() {
    let mut c = ctx();
    c.username.clear();
    c.source_ip = None;
    // Missing: a positive operator is false.
    assert!(!holds(r#"{"StringEquals":{"aws:username":"alice"}}"#, &c));
    assert!(!holds(r#"{"StringLike":{"aws:username":"*"}}"#, &c));
    assert!(!holds(r#"{"IpAddress":{"aws:SourceIp":"0.0.0.0/0"}}"#, &c));
    // Missing: a negated operator holds (AWS: the key matches none of the values).
    assert!(holds(r#"{"StringNotEquals":{"aws:username":"alice"}}"#, &c));
    assert!(holds(
        r#"{"NotIpAddress":{"aws:SourceIp":"10.0.0.0/8"}}"#,
        &c
    ));
    // IfExists: true when missing, the plain test when present.
    assert!(holds(
        r#"{"StringEqualsIfExists":{"aws:username":"bob"}}"#,
        &c
    ));
    assert!(holds(
        r#"{"IpAddressIfExists":{"aws:SourceIp":"10.0.0.0/8"}}"#,
        &c
    ));
    let present = ctx();
    assert!(!holds(
        r#"{"StringEqualsIfExists":{"aws:username":"bob"}}"#,
        &present
    ));
    assert!(holds(
        r#"{"StringEqualsIfExists":{"aws:username":"alice"}}"#,
        &present
    ));
    assert!(!holds(
        r#"{"IpAddressIfExists":{"aws:SourceIp":"10.0.0.0/8"}}"#,
        &present
    ));
    assert!(!holds(
        r#"{"StringNotEqualsIfExists":{"aws:username":"alice"}}"#,
        &present
    ));
    assert!(holds(
        r#"{"BoolIfExists":{"aws:SecureTransport":"true"}}"#,
        &present
    ));
    assert!(holds(
        r#"{"DateLessThanIfExists":{"aws:CurrentTime":"2030-01-01"}}"#,
        &present
    ));
    assert!(holds(
        r#"{"NumericGreaterThanIfExists":{"aws:EpochTime":0}}"#,
        &present
    ));
    assert!(holds(
        r#"{"ArnLikeIfExists":{"aws:PrincipalArn":"arn:aws:iam::*:user/*"}}"#,
        &present
    ));
    // Null: "true" holds when the key is missing, "false" when it is present.
    assert!(holds(r#"{"Null":{"aws:username":"true"}}"#, &c));
    assert!(!holds(r#"{"Null":{"aws:username":"false"}}"#, &c));
    assert!(!holds(r#"{"Null":{"aws:username":true}}"#, &present));
    assert!(holds(r#"{"Null":{"aws:username":false}}"#, &present));
    assert!(holds(r#"{"Null":{"aws:SourceIp":"true"}}"#, &c));
    assert!(holds(r#"{"Null":{"aws:SourceIp":"false"}}"#, &present));
    assert!(!holds(
        r#"{"Null":{"aws:SecureTransport":"true"}}"#,
        &present
    ));
    // Operators are AND'd.
    assert!(!holds(
        r#"{"Null":{"aws:username":"true"},"IpAddress":{"aws:SourceIp":"0.0.0.0/0"}}"#,
        &c
    ));
}

#[test]
fn managed_policies() {
    let c = ctx();
    let names: Vec<&str> = managed().iter().map(|m| m.name).collect();
    assert_eq!(
        names,
        [
            "AdministratorAccess",
            "AWSCloudTrail_FullAccess",
            "AWSCloudTrail_ReadOnlyAccess",
            "CairnAuditWriter"
        ]
    );
    for m in managed() {
        assert_eq!(m.arn, format!("arn:aws:iam::aws:policy/{}", m.name));
        assert!(!m.description.is_empty() && !m.description.contains('\n'));
        assert_eq!(
            Policy::parse(m.policy.text()).map(|p| p.statement_count()),
            Ok(m.policy.statement_count())
        );
        assert_eq!(managed_by_arn_or_name(m.name).map(|x| x.arn), Some(m.arn));
        assert_eq!(managed_by_arn_or_name(m.arn).map(|x| x.name), Some(m.name));
    }
    assert!(managed_by_arn_or_name("ReadOnlyAccess").is_none());
    assert!(managed_by_arn_or_name("arn:aws:iam::aws:policy/administratoraccess").is_none());
    assert!(managed_by_arn_or_name("").is_none());

    let get = |name: &str| &managed_by_arn_or_name(name).expect("managed policy").policy;
    let trail = "arn:aws:cloudtrail:us-east-1:123456789012:trail/main";

    let admin = get("AdministratorAccess");
    for action in [
        "iam:CreateUser",
        "organizations:ListAccounts",
        "cloudtrail:StopLogging",
        "cairn:Anything",
    ] {
        assert!(allowed(admin, action, trail, &c), "{action}");
    }

    let full = get("AWSCloudTrail_FullAccess");
    for action in [
        "cloudtrail:CreateTrail",
        "cloudtrail:StopLogging",
        "cloudtrail-data:PutAuditEvents",
        "cairn:PutEvents",
        "s3:PutObject",
    ] {
        assert!(allowed(full, action, trail, &c), "{action}");
    }
    for action in [
        "iam:CreateUser",
        "iam:AttachUserPolicy",
        "organizations:ListAccounts",
        "sts:AssumeRole",
    ] {
        assert!(!allowed(full, action, "*", &c), "{action}");
    }

    let read = get("arn:aws:iam::aws:policy/AWSCloudTrail_ReadOnlyAccess");
    for action in [
        "cloudtrail:LookupEvents",
        "cloudtrail:GetTrail",
        "cloudtrail:GetTrailStatus",
        "cloudtrail:DescribeTrails",
        "cloudtrail:ListTags",
        "s3:GetObject",
        "s3:ListBucket",
        "s3:GetBucketLocation",
        "s3:ListAllMyBuckets",
    ] {
        assert!(allowed(read, action, trail, &c), "{action}");
    }
    for action in [
        "cloudtrail:StopLogging",
        "cloudtrail:StartLogging",
        "cloudtrail:CreateTrail",
        "cloudtrail:DeleteTrail",
        "cloudtrail:PutEventSelectors",
        "cloudtrail-data:PutAuditEvents",
        "cairn:PutEvents",
        "s3:PutObject",
        "s3:DeleteObject",
        "iam:ListUsers",
    ] {
        assert!(!allowed(read, action, trail, &c), "{action}");
    }

    let writer = get("CairnAuditWriter");
    assert!(allowed(
        writer,
        "cloudtrail-data:PutAuditEvents",
        "arn:aws:cloudtrail:us-east-1:123456789012:channel/x",
        &c
    ));
    assert!(allowed(writer, "cairn:PutEvents", "*", &c));
    for action in [
        "cloudtrail:LookupEvents",
        "cloudtrail:GetTrail",
        "cloudtrail-data:GetAuditEvents",
        "cairn:GetEvents",
        "s3:GetObject",
        "iam:GetUser",
    ] {
        assert!(!allowed(writer, action, "*", &c), "{action}");
    }
}

#[test]
fn evaluation_of_many_statements_is_fast() {
    // A policy near the size limit with many wildcard patterns, decided repeatedly.
    let actions: Vec<String> = (0..300)
        .map(|i| format!("\"cloudtrail:A{i}*x*y\""))
        .collect();
    let p = one(&format!(
        r#""Effect":"Allow","Action":[{}],"Resource":"*""#,
        actions.join(",")
    ));
    let c = ctx();
    let long = format!("cloudtrail:{}", "a".repeat(1000));
    let started = std::time::Instant::now();
    for _ in 0..200 {
        assert!(!allowed(&p, &long, "*", &c));
    }
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}
