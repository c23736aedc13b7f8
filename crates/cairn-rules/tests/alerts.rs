//! Rules and alerts end to end with real components: the default pack on real-shaped
//! CloudTrail records (hits and near misses), the EventBridge envelope, threshold windows, the
//! rules worker restarted in the middle of a window on a real store, webhook / Slack / file
//! targets against a real HTTP server that fails and recovers, the alert log and the registry.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use cairn_rules::engine::alert_id;
use cairn_rules::envelope::{self, API_CALL, CONSOLE_SIGN_IN, SERVICE_EVENT};
use cairn_rules::pack::default_pack;
use cairn_rules::registry::load_folder;
use cairn_rules::{
    Alert, Dispatcher, Engine, Kind, Options, Origin, Outbox, Registry, Rule, RuleSet, RuleSpec,
    Rules, SendOptions, Severity, Target, Threshold,
};
use cairn_store::{Store, StoreOptions};
use common::{datasets, jsonl};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

const ACCOUNT: &str = "111122223333";
/// 2026-01-05T00:00:00Z.
const T0: i64 = 1_767_571_200_000;
const SEC: i64 = 1000;
const MIN: i64 = 60 * SEC;

const ROOT_USE: &str = "cairn-root-account-use";
const FAILURES_PER_USER: &str = "cairn-console-sign-in-failures-per-user";
const FAILURES_PER_IP: &str = "cairn-console-sign-in-failures-per-ip";
const NO_MFA: &str = "cairn-console-sign-in-without-mfa";
const TRAIL_CHANGED: &str = "cairn-trail-logging-changed";
const BUCKET_PUBLIC: &str = "cairn-bucket-made-public";
const KEY_FOR_OTHER: &str = "cairn-access-key-for-another-user";
const SG_OPEN: &str = "cairn-security-group-open-to-world";
const DB_DELETED: &str = "cairn-database-deleted";
const BUCKET_DELETED: &str = "cairn-bucket-deleted";

// ---------------------------------------------------------------------------------------------
// Datasets and records.

fn seed(event_name: &str) -> Vec<Value> {
    jsonl("seed-scenarios.jsonl")
        .into_iter()
        .filter(|r| r["eventName"] == event_name)
        .collect()
}

/// A fresh event ID for each record built here.
fn next_id() -> String {
    static N: AtomicU64 = AtomicU64::new(1);
    format!(
        "0e1d2c3b-4a59-4687-9a5b-{:012x}",
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn time(ms: i64) -> String {
    cairn_event::format_event_time(ms)
}

fn iam_user(name: &str) -> Value {
    json!({
        "type": "IAMUser",
        "principalId": "AIDA6ON6E4XEGITEXAMPLE",
        "arn": format!("arn:aws:iam::{ACCOUNT}:user/{name}"),
        "accountId": ACCOUNT,
        "accessKeyId": "AKIAIOSFODNN7EXAMPLE",
        "userName": name,
    })
}

fn root() -> Value {
    json!({
        "type": "Root",
        "principalId": ACCOUNT,
        "arn": format!("arn:aws:iam::{ACCOUNT}:root"),
        "accountId": ACCOUNT,
        "accessKeyId": "ASIAROOTEXAMPLE00001",
    })
}

fn sso_role(who: &str) -> Value {
    json!({
        "type": "AssumedRole",
        "principalId": format!("AROAEXAMPLEROLEID:{who}"),
        "arn": format!("arn:aws:sts::{ACCOUNT}:assumed-role/AWSReservedSSO_Admin_0123456789abcdef/{who}"),
        "accountId": ACCOUNT,
        "sessionContext": {
            "sessionIssuer": {
                "type": "Role",
                "principalId": "AROAEXAMPLEROLEID",
                "arn": format!("arn:aws:iam::{ACCOUNT}:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_Admin_0123456789abcdef"),
                "accountId": ACCOUNT,
                "userName": "AWSReservedSSO_Admin_0123456789abcdef"
            },
            "attributes": {"creationDate": "2026-01-05T00:00:00Z", "mfaAuthenticated": "false"}
        }
    })
}

/// An API call as CloudTrail records it.
fn api_call(
    source: &str,
    name: &str,
    identity: Value,
    at_ms: i64,
    request: Value,
    response: Value,
) -> Value {
    json!({
        "eventVersion": "1.09",
        "userIdentity": identity,
        "eventTime": time(at_ms),
        "eventSource": source,
        "eventName": name,
        "awsRegion": "us-east-1",
        "sourceIPAddress": "198.51.100.23",
        "userAgent": "aws-cli/2.15.0 Python/3.11.6 Linux/6.5.0 exe/x86_64.ubuntu.22",
        "requestParameters": request,
        "responseElements": response,
        "requestID": "5a7b9c2e-1d3f-4e5a-8b6c-7d8e9f0a1b2c",
        "eventID": next_id(),
        "readOnly": false,
        "eventType": "AwsApiCall",
        "managementEvent": true,
        "recipientAccountId": ACCOUNT,
        "eventCategory": "Management",
    })
}

/// A console sign-in: `outcome` is "Success" or "Failure".
fn sign_in(identity: Value, outcome: &str, mfa: &str, ip: &str, at_ms: i64) -> Value {
    let mut r = json!({
        "eventVersion": "1.09",
        "userIdentity": identity,
        "eventTime": time(at_ms),
        "eventSource": "signin.amazonaws.com",
        "eventName": "ConsoleLogin",
        "awsRegion": "us-east-1",
        "sourceIPAddress": ip,
        "userAgent": "Mozilla/5.0 (X11; Linux x86_64; rv:123.0) Gecko/20100101 Firefox/123.0",
        "requestParameters": null,
        "responseElements": {"ConsoleLogin": outcome},
        "additionalEventData": {
            "LoginTo": "https://console.aws.amazon.com/console/home",
            "MobileVersion": "No",
            "MFAUsed": mfa
        },
        "eventID": next_id(),
        "readOnly": false,
        "eventType": "AwsConsoleSignIn",
        "managementEvent": true,
        "recipientAccountId": ACCOUNT,
        "eventCategory": "Management",
    });
    if outcome == "Failure" {
        r["errorMessage"] = json!("Failed authentication");
    }
    r
}

/// A failed sign-in as CloudTrail records it for an IAM user (no ARN, empty access key).
fn failed_sign_in(user: &str, ip: &str, at_ms: i64) -> Value {
    let identity = json!({
        "type": "IAMUser",
        "principalId": "AIDACKCEVSQ6C2EXAMPLE",
        "accountId": ACCOUNT,
        "accessKeyId": "",
        "userName": user,
    });
    sign_in(identity, "Failure", "No", ip, at_ms)
}

// ---------------------------------------------------------------------------------------------
// The default pack through the engine.

fn compile(specs: Vec<RuleSpec>) -> RuleSet {
    Arc::new(
        specs
            .into_iter()
            .map(|s| {
                let name = s.name.clone();
                Arc::new(Rule::compile(s).unwrap_or_else(|e| panic!("{name}: {e}")))
            })
            .collect(),
    )
}

fn pack() -> RuleSet {
    compile(default_pack())
}

/// The alerts `records` raise, in order, in a fresh engine.
fn alerts_of(rules: &RuleSet, records: &[Value]) -> Vec<Alert> {
    let mut engine = Engine::default();
    let mut out = Vec::new();
    for r in records {
        engine.observe(ACCOUNT, r, rules, &mut out);
    }
    out
}

/// The rules that fire on one record on its own.
fn fired(record: &Value) -> BTreeSet<String> {
    alerts_of(&pack(), std::slice::from_ref(record))
        .into_iter()
        .map(|a| a.rule)
        .collect()
}

fn of_rule<'a>(alerts: &'a [Alert], rule: &str) -> Vec<&'a Alert> {
    alerts.iter().filter(|a| a.rule == rule).collect()
}

#[track_caller]
fn assert_fires(record: &Value, rule: &str) {
    let got = fired(record);
    assert!(
        got.contains(rule),
        "{rule} should fire on {}: fired {got:?}",
        record
    );
}

#[track_caller]
fn assert_quiet(record: &Value, rule: &str) {
    let got = fired(record);
    assert!(
        !got.contains(rule),
        "{rule} should not fire on {}: fired {got:?}",
        record
    );
}

#[test]
fn the_default_pack_compiles_with_unique_reserved_names() {
    let specs = default_pack();
    assert_eq!(specs.len(), 10);
    let names: BTreeSet<_> = specs.iter().map(|s| s.name.clone()).collect();
    assert_eq!(names.len(), specs.len());
    for s in &specs {
        assert!(s.name.starts_with("cairn-"), "{}", s.name);
        assert!(s.enabled);
        assert_eq!(s.origin, Origin::Default);
        assert!(!s.description.is_empty());
        assert!(
            cairn_rules::rule::validate_name(&s.name).is_err(),
            "reserved"
        );
    }
    assert_eq!(pack().len(), 10);
}

#[test]
fn root_account_use() {
    let login = sign_in(root(), "Success", "Yes", "198.51.100.23", T0);
    assert_eq!(fired(&login), BTreeSet::from([ROOT_USE.to_owned()]));
    let call = api_call(
        "iam.amazonaws.com",
        "ListUsers",
        root(),
        T0,
        json!(null),
        json!(null),
    );
    assert_fires(&call, ROOT_USE);
    // A service acting for the root user (invokedBy) is not the root user at the keyboard.
    let mut by_service = root();
    by_service["invokedBy"] = json!("cloudformation.amazonaws.com");
    let call = api_call(
        "s3.amazonaws.com",
        "CreateBucket",
        by_service,
        T0,
        json!({"bucketName": "stack-bucket"}),
        json!(null),
    );
    assert!(fired(&call).is_empty(), "{:?}", fired(&call));
    // A service event in the root user's name.
    let mut service_event = api_call(
        "health.amazonaws.com",
        "AWSHealthEvent",
        root(),
        T0,
        json!(null),
        json!(null),
    );
    service_event["eventType"] = json!("AwsServiceEvent");
    assert_quiet(&service_event, ROOT_USE);
    // Other principals.
    for who in [iam_user("alana"), sso_role("jo@example.com")] {
        let call = api_call(
            "iam.amazonaws.com",
            "ListUsers",
            who,
            T0,
            json!(null),
            json!(null),
        );
        assert_quiet(&call, ROOT_USE);
    }
    // A root sign-in without MFA is both.
    let login = sign_in(root(), "Success", "No", "198.51.100.23", T0);
    assert_eq!(
        fired(&login),
        BTreeSet::from([ROOT_USE.to_owned(), NO_MFA.to_owned()])
    );
}

#[test]
fn failed_sign_ins_per_user() {
    let rules = pack();
    // Three within five minutes: one alert, on the third.
    let three: Vec<Value> = [0, 40, 299]
        .iter()
        .map(|s| failed_sign_in("alice", "203.0.113.9", T0 + s * SEC))
        .collect();
    let alerts = alerts_of(&rules, &three);
    let per_user = of_rule(&alerts, FAILURES_PER_USER);
    assert_eq!(per_user.len(), 1, "{alerts:#?}");
    let a = per_user[0];
    assert_eq!(a.event_id, three[2]["eventID"].as_str().unwrap());
    assert_eq!(a.severity, "medium");
    let g = a.group.as_ref().unwrap();
    assert_eq!(g.count, 3);
    assert_eq!(g.window_seconds, 300);
    assert_eq!(g.key["detail.userIdentity.userName"], "alice");
    assert_eq!(g.key["detail.userIdentity.type"], "IAMUser");
    let ids: Vec<&str> = three
        .iter()
        .map(|r| r["eventID"].as_str().unwrap())
        .collect();
    assert_eq!(g.event_ids, ids);
    assert!(of_rule(&alerts, FAILURES_PER_IP).is_empty());
    // Two are not enough.
    assert!(alerts_of(&rules, &three[..2]).is_empty());
    // Three spread over six minutes do not fit in one window.
    let spread: Vec<Value> = [0, 180, 360]
        .iter()
        .map(|s| failed_sign_in("alice", "203.0.113.9", T0 + s * SEC))
        .collect();
    assert!(alerts_of(&rules, &spread).is_empty());
    // Three failures of three different users are no user's three failures.
    let users: Vec<Value> = ["alice", "bob", "carol"]
        .iter()
        .map(|u| failed_sign_in(u, "203.0.113.9", T0))
        .collect();
    assert!(alerts_of(&rules, &users).is_empty());
    // Successes do not count.
    let mut mixed = three[..2].to_vec();
    mixed.push(sign_in(
        iam_user("alice"),
        "Success",
        "Yes",
        "203.0.113.9",
        T0 + 60 * SEC,
    ));
    assert!(alerts_of(&rules, &mixed).is_empty());
    // The seed scenario: two failures for dev-intern, then a success without MFA.
    let seed_logins = seed("ConsoleLogin");
    assert_eq!(seed_logins.len(), 3);
    let alerts = alerts_of(&rules, &seed_logins);
    let names: Vec<&str> = alerts.iter().map(|a| a.rule.as_str()).collect();
    assert_eq!(names, [NO_MFA], "{alerts:#?}");
}

#[test]
fn failed_sign_ins_per_ip_across_users() {
    let rules = pack();
    let users = ["alice", "bob", "carol", "dave", "erin"];
    let spray: Vec<Value> = users
        .iter()
        .enumerate()
        .map(|(i, u)| failed_sign_in(u, "203.0.113.66", T0 + i as i64 * 50 * SEC))
        .collect();
    let alerts = alerts_of(&rules, &spray);
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    assert_eq!(alerts[0].rule, FAILURES_PER_IP);
    assert_eq!(alerts[0].event_id, spray[4]["eventID"].as_str().unwrap());
    let g = alerts[0].group.as_ref().unwrap();
    assert_eq!(g.key["detail.sourceIPAddress"], "203.0.113.66");
    assert_eq!(g.count, 5);
    assert_eq!(g.event_ids.len(), 5);
    // Four are not enough; five from five addresses are not one address's five.
    assert!(alerts_of(&rules, &spray[..4]).is_empty());
    let scattered: Vec<Value> = users
        .iter()
        .enumerate()
        .map(|(i, u)| failed_sign_in(u, &format!("203.0.113.{}", 10 + i), T0))
        .collect();
    assert!(alerts_of(&rules, &scattered).is_empty());
}

#[test]
fn sign_in_without_mfa() {
    let ip = "192.0.2.77";
    assert_eq!(
        fired(&sign_in(iam_user("alana"), "Success", "No", ip, T0)),
        BTreeSet::from([NO_MFA.to_owned()])
    );
    assert!(fired(&sign_in(iam_user("alana"), "Success", "Yes", ip, T0)).is_empty());
    // Single sign-on: an assumed role, MFA handled by the identity provider.
    assert!(
        fired(&sign_in(
            sso_role("jo@example.com"),
            "Success",
            "No",
            ip,
            T0
        ))
        .is_empty()
    );
    // A failure is not a sign-in.
    assert_quiet(&failed_sign_in("alana", ip, T0), NO_MFA);
}

#[test]
fn trail_logging_changed() {
    let trail = json!({"name": format!("arn:aws:cloudtrail:us-east-1:{ACCOUNT}:trail/management")});
    for name in [
        "StopLogging",
        "DeleteTrail",
        "UpdateTrail",
        "PutEventSelectors",
    ] {
        let r = api_call(
            "cloudtrail.amazonaws.com",
            name,
            sso_role("jo@example.com"),
            T0,
            trail.clone(),
            json!(null),
        );
        assert_eq!(
            fired(&r),
            BTreeSet::from([TRAIL_CHANGED.to_owned()]),
            "{name}"
        );
    }
    // A failed attempt counts too.
    let mut denied = api_call(
        "cloudtrail.amazonaws.com",
        "StopLogging",
        iam_user("mallory"),
        T0,
        trail.clone(),
        json!(null),
    );
    denied["errorCode"] = json!("AccessDenied");
    assert_fires(&denied, TRAIL_CHANGED);
    for name in [
        "StartLogging",
        "CreateTrail",
        "GetTrailStatus",
        "LookupEvents",
    ] {
        let r = api_call(
            "cloudtrail.amazonaws.com",
            name,
            iam_user("alana"),
            T0,
            trail.clone(),
            json!(null),
        );
        assert!(fired(&r).is_empty(), "{name}");
    }
    // The same name from another service is not a trail.
    let r = api_call(
        "logs.amazonaws.com",
        "DeleteTrail",
        iam_user("alana"),
        T0,
        json!(null),
        json!(null),
    );
    assert_quiet(&r, TRAIL_CHANGED);
}

fn s3(name: &str, request: Value) -> Value {
    api_call(
        "s3.amazonaws.com",
        name,
        iam_user("alana"),
        T0,
        request,
        json!(null),
    )
}

fn bucket_policy(statement: Value) -> Value {
    json!({
        "bucketName": "cat-photos",
        "Host": "cat-photos.s3.us-east-1.amazonaws.com",
        "policy": [""],
        "bucketPolicy": {"Version": "2012-10-17", "Statement": statement}
    })
}

fn acl_grant(uri: &str) -> Value {
    json!({
        "bucketName": "cat-photos",
        "Host": "cat-photos.s3.us-east-1.amazonaws.com",
        "acl": [""],
        "AccessControlPolicy": {
            "AccessControlList": {
                "Grant": [
                    {
                        "Grantee": {
                            "xsi:type": "CanonicalUser",
                            "xmlns:xsi": "http://www.w3.org/2001/XMLSchema-instance",
                            "ID": "79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be"
                        },
                        "Permission": "FULL_CONTROL"
                    },
                    {
                        "Grantee": {
                            "xsi:type": "Group",
                            "xmlns:xsi": "http://www.w3.org/2001/XMLSchema-instance",
                            "URI": uri
                        },
                        "Permission": "READ"
                    }
                ]
            },
            "xmlns": "http://s3.amazonaws.com/doc/2006-03-01/",
            "Owner": {"ID": "79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be"}
        }
    })
}

fn access_block(flags: [bool; 4]) -> Value {
    json!({
        "bucketName": "cat-photos",
        "Host": "cat-photos.s3.us-east-1.amazonaws.com",
        "publicAccessBlock": "",
        "PublicAccessBlockConfiguration": {
            "xmlns": "http://s3.amazonaws.com/doc/2006-03-01/",
            "BlockPublicAcls": flags[0],
            "IgnorePublicAcls": flags[1],
            "BlockPublicPolicy": flags[2],
            "RestrictPublicBuckets": flags[3]
        }
    })
}

#[test]
fn bucket_made_public() {
    let public = |r: &Value| assert_eq!(fired(r), BTreeSet::from([BUCKET_PUBLIC.to_owned()]));
    let acl = |v: &str| {
        json!({"bucketName": "cat-photos", "acl": [""], "x-amz-acl": [v],
               "Host": "cat-photos.s3.us-east-1.amazonaws.com"})
    };
    // A canned ACL.
    public(&s3("PutBucketAcl", acl("public-read")));
    public(&s3("PutBucketAcl", acl("public-read-write")));
    public(&s3("CreateBucket", acl("public-read")));
    assert!(fired(&s3("PutBucketAcl", acl("private"))).is_empty());
    assert!(fired(&s3("CreateBucket", acl("private"))).is_empty());
    assert!(fired(&s3("PutBucketAcl", acl("bucket-owner-full-control"))).is_empty());
    // A grant to everyone.
    public(&s3(
        "PutBucketAcl",
        acl_grant("http://acs.amazonaws.com/groups/global/AllUsers"),
    ));
    public(&s3(
        "PutBucketAcl",
        acl_grant("http://acs.amazonaws.com/groups/global/AuthenticatedUsers"),
    ));
    assert!(
        fired(&s3(
            "PutBucketAcl",
            acl_grant("http://acs.amazonaws.com/groups/s3/LogDelivery")
        ))
        .is_empty()
    );
    // A policy allowing everyone.
    let stmt = |principal: Value| {
        json!([{
            "Sid": "PublicRead", "Effect": "Allow", "Principal": principal,
            "Action": "s3:GetObject", "Resource": "arn:aws:s3:::cat-photos/*"
        }])
    };
    public(&s3("PutBucketPolicy", bucket_policy(stmt(json!("*")))));
    public(&s3(
        "PutBucketPolicy",
        bucket_policy(stmt(json!({"AWS": "*"}))),
    ));
    public(&s3(
        "PutBucketPolicy",
        bucket_policy(stmt(json!({"AWS": ["*"]}))),
    ));
    // A single statement written as an object rather than a list.
    public(&s3(
        "PutBucketPolicy",
        bucket_policy(stmt(json!("*"))[0].clone()),
    ));
    let cloudtrail = bucket_policy(stmt(json!({"Service": "cloudtrail.amazonaws.com"})));
    assert!(fired(&s3("PutBucketPolicy", cloudtrail)).is_empty());
    let account = bucket_policy(stmt(json!({"AWS": format!("arn:aws:iam::{ACCOUNT}:root")})));
    assert!(fired(&s3("PutBucketPolicy", account)).is_empty());
    let deny_everyone = bucket_policy(json!([{
        "Sid": "DenyHttp", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
        "Resource": "arn:aws:s3:::cat-photos/*",
        "Condition": {"Bool": {"aws:SecureTransport": "false"}}
    }]));
    assert!(fired(&s3("PutBucketPolicy", deny_everyone)).is_empty());
    // A failed attempt changed nothing.
    let mut denied = s3("PutBucketPolicy", bucket_policy(stmt(json!("*"))));
    denied["errorCode"] = json!("AccessDenied");
    denied["errorMessage"] = json!("Access Denied");
    assert!(fired(&denied).is_empty());
    // The public access block removed or weakened, as CloudTrail names the calls.
    let bucket = json!({"bucketName": "cat-photos", "publicAccessBlock": "",
                        "Host": "cat-photos.s3.us-east-1.amazonaws.com"});
    public(&s3("DeleteBucketPublicAccessBlock", bucket.clone()));
    public(&s3(
        "DeleteAccountPublicAccessBlock",
        json!({"accountId": ACCOUNT}),
    ));
    public(&s3(
        "PutBucketPublicAccessBlock",
        access_block([true, true, false, true]),
    ));
    public(&s3(
        "PutBucketPublicAccessBlock",
        access_block([false, false, false, false]),
    ));
    assert!(
        fired(&s3(
            "PutBucketPublicAccessBlock",
            access_block([true, true, true, true])
        ))
        .is_empty()
    );
    let mut failed_delete = s3("DeleteBucketPublicAccessBlock", bucket);
    failed_delete["errorCode"] = json!("AccessDenied");
    assert!(fired(&failed_delete).is_empty());
    // The same calls on another service.
    let mut not_s3 = s3("PutBucketPolicy", bucket_policy(stmt(json!("*"))));
    not_s3["eventSource"] = json!("s3-outposts.amazonaws.com");
    assert!(fired(&not_s3).is_empty());
}

fn create_access_key(caller: Value, for_user: Option<&str>) -> Value {
    let request = match for_user {
        Some(u) => json!({"userName": u}),
        None => json!(null),
    };
    api_call(
        "iam.amazonaws.com",
        "CreateAccessKey",
        caller,
        T0,
        request,
        json!({"accessKey": {"accessKeyId": "AKIAI44QH8DHBEXAMPLE", "status": "Active",
                             "userName": for_user.unwrap_or("alana"),
                             "createDate": "Jan 5, 2026 12:00:00 AM"}}),
    )
}

#[test]
fn access_key_for_another_user() {
    let fires = |r: &Value| assert_eq!(fired(r), BTreeSet::from([KEY_FOR_OTHER.to_owned()]));
    fires(&create_access_key(iam_user("alana"), Some("bob")));
    fires(&create_access_key(sso_role("jo@example.com"), Some("bob")));
    // A user whose name ends with the other's is still someone else.
    fires(&create_access_key(iam_user("admin-bob"), Some("bob")));
    fires(&create_access_key(iam_user("bob"), Some("admin-bob")));
    // Root creating a key for a user: two alerts.
    let both = fired(&create_access_key(root(), Some("bob")));
    assert!(
        both.contains(KEY_FOR_OTHER) && both.contains(ROOT_USE),
        "{both:?}"
    );
    // For oneself: the same name (case does not matter for IAM names), no name, or an IAM
    // user's ARN ending in the name when the record has no userName.
    assert!(fired(&create_access_key(iam_user("alana"), Some("alana"))).is_empty());
    assert!(fired(&create_access_key(iam_user("Alana"), Some("alana"))).is_empty());
    assert!(fired(&create_access_key(iam_user("alana"), None)).is_empty());
    let mut no_name = iam_user("alana");
    no_name.as_object_mut().unwrap().remove("userName");
    assert!(fired(&create_access_key(no_name, Some("alana"))).is_empty());
    // A failed call created nothing.
    let mut failed = create_access_key(iam_user("alana"), Some("bob"));
    failed["errorCode"] = json!("LimitExceededException");
    failed["responseElements"] = json!(null);
    assert!(fired(&failed).is_empty());
}

fn ingress(request: Value) -> Value {
    api_call(
        "ec2.amazonaws.com",
        "AuthorizeSecurityGroupIngress",
        iam_user("alana"),
        T0,
        request,
        json!({"requestId": "2be70b99-4937-4a76-b7d9-390b6d0eda73", "_return": true}),
    )
}

fn ip_permissions(v4: &[&str], v6: &[&str]) -> Value {
    let v4: Vec<Value> = v4.iter().map(|c| json!({"cidrIp": c})).collect();
    let v6: Vec<Value> = v6.iter().map(|c| json!({"cidrIpv6": c})).collect();
    json!({
        "groupId": "sg-0d921df5d84f7270a",
        "ipPermissions": {"items": [{
            "ipProtocol": "tcp", "fromPort": 22, "toPort": 22, "groups": {},
            "ipRanges": if v4.is_empty() { json!({}) } else { json!({"items": v4}) },
            "ipv6Ranges": if v6.is_empty() { json!({}) } else { json!({"items": v6}) },
            "prefixListIds": {}
        }]}
    })
}

#[test]
fn security_group_open_to_the_world() {
    let fires = |r: &Value| assert_eq!(fired(r), BTreeSet::from([SG_OPEN.to_owned()]));
    fires(&ingress(ip_permissions(&["0.0.0.0/0"], &[])));
    fires(&ingress(ip_permissions(&["10.0.0.0/8", "0.0.0.0/0"], &[])));
    fires(&ingress(ip_permissions(&[], &["::/0"])));
    // The older form with the range at the top.
    fires(&ingress(
        json!({"groupName": "web", "ipProtocol": "tcp", "fromPort": 443,
                          "toPort": 443, "cidrIp": "0.0.0.0/0"}),
    ));
    for quiet in [
        ip_permissions(&["10.0.0.0/8"], &[]),
        ip_permissions(&["0.0.0.0/16"], &[]),
        ip_permissions(&["203.0.113.7/32"], &["2001:db8::/32"]),
    ] {
        assert!(fired(&ingress(quiet.clone())).is_empty(), "{quiet}");
    }
    let mut failed = ingress(ip_permissions(&["0.0.0.0/0"], &[]));
    failed["errorCode"] = json!("UnauthorizedOperation");
    assert!(fired(&failed).is_empty());
    // Egress to anywhere is the default, not an opening.
    let mut egress = ingress(ip_permissions(&["0.0.0.0/0"], &[]));
    egress["eventName"] = json!("AuthorizeSecurityGroupEgress");
    assert!(fired(&egress).is_empty());
    // ModifySecurityGroupRules, as CloudTrail records it.
    let modify = |cidr: Value| {
        api_call(
            "ec2.amazonaws.com",
            "ModifySecurityGroupRules",
            iam_user("alana"),
            T0,
            json!({"ModifySecurityGroupRulesRequest": {
                "GroupId": "sg-0d921df5d84f7270a",
                "SecurityGroupRule": {
                    "tag": 1,
                    "SecurityGroupRuleId": "sgr-0b1c2d3e4f5a6b7c8",
                    "SecurityGroupRule": {
                        "IpProtocol": "tcp", "FromPort": 3389, "ToPort": 3389,
                        "CidrIpv4": cidr, "Description": "rdp"
                    }
                }
            }}),
            json!({"ModifySecurityGroupRulesResponse": {"_return": true}}),
        )
    };
    fires(&modify(json!("0.0.0.0/0")));
    assert!(fired(&modify(json!("192.168.0.0/16"))).is_empty());
}

#[test]
fn databases_and_buckets_deleted() {
    // The seed scenario: alana deletes cat-photos-db.
    let seeded = seed("DeleteDBInstance");
    assert_eq!(seeded.len(), 1);
    let alerts = alerts_of(&pack(), &seeded);
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    let a = &alerts[0];
    assert_eq!(a.rule, DB_DELETED);
    assert_eq!(a.severity, "high");
    assert_eq!(a.event_id, "0f3c8c5e-6a1d-4d3b-9e2f-1a2b3c4d5e6f");
    assert_eq!(a.event, seeded[0]);
    assert_eq!(a.event_time_ms, 1_591_709_854_000);
    assert_eq!(
        a.alert_id,
        alert_id(
            ACCOUNT,
            DB_DELETED,
            None,
            "0f3c8c5e-6a1d-4d3b-9e2f-1a2b3c4d5e6f"
        )
    );
    let ddb = api_call(
        "dynamodb.amazonaws.com",
        "DeleteTable",
        iam_user("alana"),
        T0,
        json!({"tableName": "orders"}),
        json!({"tableDescription": {"tableName": "orders", "tableStatus": "DELETING"}}),
    );
    assert_eq!(fired(&ddb), BTreeSet::from([DB_DELETED.to_owned()]));
    let cluster = api_call(
        "rds.amazonaws.com",
        "DeleteDBCluster",
        iam_user("alana"),
        T0,
        json!({"dBClusterIdentifier": "aurora-prod", "skipFinalSnapshot": true}),
        json!(null),
    );
    assert_fires(&cluster, DB_DELETED);
    let bucket = s3("DeleteBucket", json!({"bucketName": "cat-photos"}));
    assert_eq!(fired(&bucket), BTreeSet::from([BUCKET_DELETED.to_owned()]));
    // Exports write "no error" as null or an empty string.
    for none in [json!(null), json!("")] {
        let mut exported = bucket.clone();
        exported["errorCode"] = none.clone();
        assert_fires(&exported, BUCKET_DELETED);
        let mut exported = create_access_key(iam_user("alana"), Some("bob"));
        exported["errorCode"] = none;
        assert_fires(&exported, KEY_FOR_OTHER);
    }
    // Failed deletions, other deletions and other services' DeleteTable.
    let mut failed = bucket.clone();
    failed["errorCode"] = json!("BucketNotEmpty");
    assert!(fired(&failed).is_empty());
    let mut denied = ddb.clone();
    denied["errorCode"] = json!("AccessDeniedException");
    assert!(fired(&denied).is_empty());
    assert!(fired(&seed("DeleteObject")[0]).is_empty());
    let glue = api_call(
        "glue.amazonaws.com",
        "DeleteTable",
        iam_user("alana"),
        T0,
        json!({"databaseName": "lake", "name": "orders"}),
        json!(null),
    );
    assert!(fired(&glue).is_empty());
    let snapshot = api_call(
        "rds.amazonaws.com",
        "DeleteDBSnapshot",
        iam_user("alana"),
        T0,
        json!({"dBSnapshotIdentifier": "nightly"}),
        json!(null),
    );
    assert!(fired(&snapshot).is_empty());
}

/// The labelled corpus: (rule, test) to the event.
fn panther() -> Vec<(String, String, bool, Value)> {
    jsonl("panther-labelled-events.jsonl")
        .into_iter()
        .map(|l| {
            (
                l["rule"].as_str().unwrap().to_owned(),
                l["test"].as_str().unwrap().to_owned(),
                l["expected"].as_bool().unwrap(),
                l["event"].clone(),
            )
        })
        .collect()
}

#[test]
fn the_default_pack_over_the_datasets() {
    let rules = pack();
    let corpus = panther();
    assert_eq!(corpus.len(), 453);
    // Every record, one engine, in file order: no panic, and every alert well formed.
    let mut engine = Engine::default();
    let mut all = Vec::new();
    for (_, _, _, event) in &corpus {
        engine.observe(ACCOUNT, event, &rules, &mut all);
    }
    for r in jsonl("seed-scenarios.jsonl") {
        engine.observe(ACCOUNT, &r, &rules, &mut all);
    }
    for r in jsonl("otrf-ec2-proxy-s3-exfiltration.jsonl") {
        engine.observe(ACCOUNT, &r, &rules, &mut all);
    }
    assert!(!all.is_empty());
    for a in &all {
        assert!(a.rule.starts_with("cairn-"));
        assert_eq!(a.account, ACCOUNT);
        assert!(!a.alert_id.is_empty());
    }
    let hits = engine.hits(ACCOUNT);
    assert!(hits.iter().all(|(_, h)| h.alerts <= h.matched));

    // Each record on its own, by its label.
    let one = |rule: &str, test: &str| -> BTreeSet<String> {
        let (_, _, _, event) = corpus
            .iter()
            .find(|(r, t, _, _)| r == rule && t == test)
            .unwrap_or_else(|| panic!("no {rule} / {test} in the corpus"));
        fired(event)
    };
    let expect = |rule: &str, test: &str, cairn: &str, fires: bool| {
        let got = one(rule, test);
        assert_eq!(
            got.contains(cairn),
            fires,
            "{rule} / {test}: {cairn} should {}fire; fired {got:?}",
            if fires { "" } else { "not " }
        );
    };
    let made_public = "AWS.CloudTrail.ResourceMadePublic";
    expect(
        made_public,
        "S3 Made Publicly Accessible",
        BUCKET_PUBLIC,
        true,
    );
    expect(
        made_public,
        "S3 Not Made Publicly Accessible",
        BUCKET_PUBLIC,
        false,
    );
    expect(
        made_public,
        "S3 Failed to make Publicly Accessible",
        BUCKET_PUBLIC,
        false,
    );
    expect(made_public, "Null Request Parameters", BUCKET_PUBLIC, false);
    expect(
        made_public,
        "Invalid JSON Policy (Should Not Alert)",
        BUCKET_PUBLIC,
        false,
    );
    let pab = "AWS.S3.DeletePublicAccessBlock";
    expect(
        pab,
        "Public Access Block Deleted Successfully",
        BUCKET_PUBLIC,
        true,
    );
    expect(
        pab,
        "Public Access Block Deletion Failed",
        BUCKET_PUBLIC,
        false,
    );
    expect(pab, "Different S3 Event", BUCKET_PUBLIC, false);
    expect(pab, "Non-S3 Event", BUCKET_PUBLIC, false);
    let stopped = "AWS.CloudTrail.Stopped";
    expect(stopped, "CloudTrail Was Stopped", TRAIL_CHANGED, true);
    expect(stopped, "CloudTrail Was Started", TRAIL_CHANGED, false);
    let selectors = "AWS.CloudTrail.EventSelectorsDisabled";
    expect(selectors, "Event Selector Disabled", TRAIL_CHANGED, true);
    let config = "AWS.CloudTrail.SecurityConfigurationChange";
    expect(
        config,
        "Security Configuration Changed",
        TRAIL_CHANGED,
        true,
    );
    let no_mfa = "AWS.Console.LoginWithoutMFA";
    expect(no_mfa, "No MFA Login - IAM User", NO_MFA, true);
    expect(no_mfa, "No MFA Login - Root User", NO_MFA, true);
    expect(no_mfa, "MFA Login", NO_MFA, false);
    expect(no_mfa, "AWS SSOv2 Login", NO_MFA, false);
    expect(no_mfa, "No MFA - Login Failed", NO_MFA, false);
    expect(no_mfa, "No MFA - IAM Role and External IDP", NO_MFA, false);
    expect(
        "AWS.Console.RootLogin",
        "Successful Root Login",
        ROOT_USE,
        true,
    );
    expect("AWS.Root.Activity", "Root Activity", ROOT_USE, true);
    expect("AWS.Root.Activity", "IAMUser Activity", ROOT_USE, false);
    let keys = "AWS.IAM.Backdoor.User.Keys";
    expect(keys, "user1 create keys for user2", KEY_FOR_OTHER, true);
    expect(keys, "jackson create keys for jack", KEY_FOR_OTHER, true);
    expect(keys, "jack create keys for jackson", KEY_FOR_OTHER, true);
    expect(keys, "user1 create keys for user1", KEY_FOR_OTHER, false);
    expect(keys, "CreateKey returns error code", KEY_FOR_OTHER, false);
    let sg = "AWS.EC2.ManualSecurityGroupChange";
    expect(sg, "Go Script Authorize Ingress", SG_OPEN, true);
    expect(sg, "AWS Console - Ingress SG Authorization", SG_OPEN, false); // 0.0.0.0/16
    expect(
        "AWS.EC2.SecurityGroupModified",
        "Security Group Modified",
        SG_OPEN,
        false,
    );
    let rds = "AWS.RDS.InstanceDeletion";
    expect(
        rds,
        "RDS Instance Deleted With Final Snapshot",
        DB_DELETED,
        true,
    );
    expect(
        rds,
        "RDS Instance Deleted Without Final Snapshot - Critical",
        DB_DELETED,
        true,
    );
    expect(rds, "RDS Cluster Deleted", DB_DELETED, true);
    expect(
        rds,
        "RDS Deletion Failed - Access Denied",
        DB_DELETED,
        false,
    );
    expect(rds, "Different RDS Event", DB_DELETED, false);
    // Exported with an empty errorCode: no error.
    expect(
        "AWS.S3.BucketDeleted",
        "An S3 Bucket was deleted",
        BUCKET_DELETED,
        true,
    );
    expect(
        "AWS.S3.BucketDeleted",
        "S3 Bucket Deletion Failed",
        BUCKET_DELETED,
        false,
    );
}

// ---------------------------------------------------------------------------------------------
// The envelope.

fn custom(name: &str, kind: Kind, source: &str, threshold: Option<Threshold>) -> RuleSpec {
    RuleSpec {
        name: name.into(),
        description: format!("{name} (test)"),
        severity: Severity::Low,
        kind,
        source: source.into(),
        threshold,
        enabled: true,
        origin: Origin::Custom,
        file: None,
        updated_ms: 0,
    }
}

#[test]
fn the_envelope_is_shaped_as_eventbridge_delivers_cloudtrail_events() {
    let delete = seed("DeleteDBInstance").remove(0);
    let env = envelope::envelope("999988887777", &delete);
    assert_eq!(env["version"], "0");
    assert_eq!(env["detail-type"], API_CALL);
    assert_eq!(env["detail-type"], "AWS API Call via CloudTrail");
    assert_eq!(env["source"], "aws.rds");
    assert_eq!(env["account"], ACCOUNT, "the record's recipient account");
    assert_eq!(env["region"], "us-west-2");
    assert_eq!(env["time"], "2020-06-09T13:37:34Z");
    assert_eq!(env["resources"], json!([]));
    assert_eq!(env["detail"], delete);
    let id = env["id"].as_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
    assert_eq!(envelope::envelope(ACCOUNT, &delete)["id"], id, "stable");
    let keys: BTreeSet<&str> = env
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        BTreeSet::from([
            "version",
            "id",
            "detail-type",
            "source",
            "account",
            "time",
            "region",
            "resources",
            "detail"
        ])
    );

    let login = seed("ConsoleLogin").remove(0);
    let env = envelope::envelope(ACCOUNT, &login);
    assert_eq!(env["detail-type"], CONSOLE_SIGN_IN);
    assert_eq!(env["detail-type"], "AWS Console Sign In via CloudTrail");
    assert_eq!(env["source"], "aws.signin");
    assert_eq!(env["region"], "us-east-1");

    let mut service = api_call(
        "kms.amazonaws.com",
        "RotateKey",
        json!({"accountId": ACCOUNT, "invokedBy": "kms.amazonaws.com"}),
        T0,
        json!(null),
        json!(null),
    );
    service["eventType"] = json!("AwsServiceEvent");
    let env = envelope::envelope(ACCOUNT, &service);
    assert_eq!(env["detail-type"], SERVICE_EVENT);
    assert_eq!(env["detail-type"], "AWS Service Event via CloudTrail");
    assert_eq!(env["source"], "aws.kms");
    assert_eq!(env["time"], time(T0));

    // A record without a recipient account is in the account that stored it.
    let mut bare = seed("CreateUser").remove(0);
    bare.as_object_mut().unwrap().remove("recipientAccountId");
    assert_eq!(
        envelope::envelope("444455556666", &bare)["account"],
        "444455556666"
    );
}

#[test]
fn patterns_match_the_envelope_detail_type_source_and_detail() {
    // The pattern EventBridge's documentation gives for CloudTrail API calls.
    let run_instances = custom(
        "run-instances",
        Kind::Pattern,
        r#"{"source": ["aws.ec2"], "detail-type": ["AWS API Call via CloudTrail"],
            "detail": {"eventSource": ["ec2.amazonaws.com"], "eventName": ["RunInstances"],
                       "requestParameters": {"instancesSet": {"items": {"keyName": ["Ohio-Key"]}}}}}"#,
        None,
    );
    let sign_ins = custom(
        "sign-ins-from-outside",
        Kind::Pattern,
        r#"{"detail-type": ["AWS Console Sign In via CloudTrail"], "region": ["us-east-1"],
            "detail": {"sourceIPAddress": [{"anything-but": {"prefix": "10."}}],
                       "userIdentity": {"userName": [{"prefix": "dev-"}]}}}"#,
        None,
    );
    let service_events = custom(
        "service-events",
        Kind::Pattern,
        r#"{"detail-type": ["AWS Service Event via CloudTrail"]}"#,
        None,
    );
    let in_account = custom(
        "in-account",
        Kind::Pattern,
        r#"{"account": ["111122223333"], "source": ["aws.iam"]}"#,
        None,
    );
    let rules = compile(vec![run_instances, sign_ins, service_events, in_account]);
    let seeded = jsonl("seed-scenarios.jsonl");
    let mut service = api_call(
        "kms.amazonaws.com",
        "RotateKey",
        json!({"accountId": ACCOUNT, "invokedBy": "kms.amazonaws.com"}),
        T0,
        json!(null),
        json!(null),
    );
    service["eventType"] = json!("AwsServiceEvent");
    let mut records = seeded.clone();
    records.push(service.clone());
    let alerts = alerts_of(&rules, &records);
    let got: Vec<(&str, &str)> = alerts
        .iter()
        .map(|a| (a.rule.as_str(), a.event["eventName"].as_str().unwrap()))
        .collect();
    assert_eq!(
        got,
        [
            ("in-account", "CreateUser"),
            ("run-instances", "RunInstances"),
            ("sign-ins-from-outside", "ConsoleLogin"),
            ("sign-ins-from-outside", "ConsoleLogin"),
            ("sign-ins-from-outside", "ConsoleLogin"),
            ("service-events", "RotateKey"),
        ]
    );
    // Custom rules say where they come from.
    let a = &alerts[0];
    assert_eq!((a.kind.as_str(), a.origin.as_str()), ("pattern", "custom"));
    assert_eq!(a.severity, "low");
    assert_eq!(a.description, "in-account (test)");
    // The detail-type decides: the same record as an API call is not a service event.
    service["eventType"] = json!("AwsApiCall");
    assert!(alerts_of(&rules, &[service]).is_empty());
}

// ---------------------------------------------------------------------------------------------
// Thresholds.

fn per_user_rule() -> RuleSet {
    compile(
        default_pack()
            .into_iter()
            .filter(|s| s.name == FAILURES_PER_USER)
            .collect(),
    )
}

fn ids(records: &[&Value]) -> Vec<String> {
    records
        .iter()
        .map(|r| r["eventID"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn thresholds_count_per_group_within_the_window() {
    let rules = per_user_rule();
    let ip = "203.0.113.9";
    let a1 = failed_sign_in("alice", ip, T0);
    let b1 = failed_sign_in("bob", ip, T0 + 10 * SEC);
    let a2 = failed_sign_in("alice", ip, T0 + 20 * SEC);
    let b2 = failed_sign_in("bob", ip, T0 + 30 * SEC);
    // Root's failures are a group of their own even with the same userName.
    let mut r1 = failed_sign_in("alice", ip, T0 + 40 * SEC);
    r1["userIdentity"]["type"] = json!("Root");
    let a3 = failed_sign_in("alice", ip, T0 + 50 * SEC);
    let mut engine = Engine::default();
    let mut out = Vec::new();
    for r in [&a1, &b1, &a2, &b2, &r1] {
        engine.observe(ACCOUNT, r, &rules, &mut out);
    }
    assert!(out.is_empty());
    assert_eq!(engine.open_windows(), 5);
    engine.observe(ACCOUNT, &a3, &rules, &mut out);
    assert_eq!(out.len(), 1);
    let g = out[0].group.as_ref().unwrap();
    assert_eq!(g.event_ids, ids(&[&a1, &a2, &a3]));
    assert_eq!(g.key["detail.userIdentity.userName"], "alice");
    assert_eq!(engine.open_windows(), 3, "bob's two and root's one remain");
    let hits = engine.hits(ACCOUNT);
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].0, FAILURES_PER_USER);
    assert_eq!(hits[0].1.matched, 6);
    assert_eq!(hits[0].1.alerts, 1);
    assert_eq!(hits[0].1.last_match_ms, T0 + 50 * SEC);
    // Windows are per account too.
    engine.observe("444455556666", &b1, &rules, &mut out);
    engine.observe(
        ACCOUNT,
        &failed_sign_in("bob", ip, T0 + 60 * SEC),
        &rules,
        &mut out,
    );
    assert_eq!(out.len(), 2);
    assert_eq!(out[1].account, ACCOUNT);
    assert_eq!(
        out[1].group.as_ref().unwrap().event_ids[..2],
        ids(&[&b1, &b2])
    );
    assert!(engine.hits("444455556666")[0].1.alerts == 0);
}

#[test]
fn a_group_counts_from_zero_after_an_alert() {
    let rules = per_user_rule();
    let six: Vec<Value> = (0..6)
        .map(|i| failed_sign_in("alice", "203.0.113.9", T0 + i * 20 * SEC))
        .collect();
    let alerts = alerts_of(&rules, &six);
    assert_eq!(alerts.len(), 2, "{alerts:#?}");
    let refs: Vec<&Value> = six.iter().collect();
    assert_eq!(alerts[0].group.as_ref().unwrap().event_ids, ids(&refs[..3]));
    assert_eq!(alerts[1].group.as_ref().unwrap().event_ids, ids(&refs[3..]));
    assert_eq!(alerts[0].event_id, ids(&refs[2..3])[0]);
    assert_eq!(alerts[1].event_id, ids(&refs[5..6])[0]);
    assert_ne!(alerts[0].alert_id, alerts[1].alert_id);
    // Five: one alert and two counted towards the next.
    let mut engine = Engine::default();
    let mut out = Vec::new();
    for r in &six[..5] {
        engine.observe(ACCOUNT, r, &rules, &mut out);
    }
    assert_eq!(out.len(), 1);
    assert_eq!(engine.open_windows(), 2);
    // The same event seen again (a replay) is not counted twice.
    engine.observe(ACCOUNT, &six[4], &rules, &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(engine.open_windows(), 2);
}

#[test]
fn alert_ids_are_stable_and_differ_per_rule_account_and_event() {
    let records: Vec<Value> = (0..5)
        .map(|i| {
            failed_sign_in(
                ["alice", "bob"][i as usize % 2],
                "203.0.113.9",
                T0 + i * SEC,
            )
        })
        .chain([seed("DeleteDBInstance").remove(0)])
        .collect();
    let first = alerts_of(&pack(), &records);
    let again = alerts_of(&pack(), &records);
    assert_eq!(first, again, "same records, same alerts, same IDs");
    let rules: Vec<&str> = first.iter().map(|a| a.rule.as_str()).collect();
    assert_eq!(rules, [FAILURES_PER_USER, FAILURES_PER_IP, DB_DELETED]);
    // alice's third failure completes both her count and the address's count.
    let (user, ip) = (&first[0], &first[1]);
    assert_eq!(user.event_id, records[4]["eventID"].as_str().unwrap());
    assert_eq!(user.event_id, ip.event_id);
    assert_ne!(user.alert_id, ip.alert_id);
    assert_eq!(
        user.alert_id,
        alert_id(
            ACCOUNT,
            FAILURES_PER_USER,
            Some("IAMUser|alice"),
            &user.event_id
        )
    );
    assert_eq!(
        ip.alert_id,
        alert_id(ACCOUNT, FAILURES_PER_IP, Some("203.0.113.9"), &ip.event_id)
    );
    // Two rules matching the same event without thresholds.
    let twins = compile(vec![
        custom(
            "deleted-a",
            Kind::Pattern,
            r#"{"source": ["aws.rds"]}"#,
            None,
        ),
        custom(
            "deleted-b",
            Kind::Pattern,
            r#"{"source": ["aws.rds"]}"#,
            None,
        ),
    ]);
    let two = alerts_of(&twins, &records[5..]);
    assert_eq!(two.len(), 2);
    assert_ne!(two[0].alert_id, two[1].alert_id);
    // Another account storing the same record.
    let mut engine = Engine::default();
    let mut out = Vec::new();
    engine.observe("444455556666", &records[5], &pack(), &mut out);
    assert_eq!(out[0].account, "444455556666");
    assert_ne!(out[0].alert_id, first[2].alert_id);
}

#[test]
fn events_out_of_order_count_within_the_window() {
    let rules = per_user_rule();
    let at = |s: i64| failed_sign_in("alice", "203.0.113.9", T0 + s * SEC);
    // Delivered out of order, all within five minutes: the third to arrive completes it.
    let late = [at(200), at(0), at(100)];
    let alerts = alerts_of(&rules, &late);
    assert_eq!(alerts.len(), 1);
    let g = alerts[0].group.as_ref().unwrap();
    assert_eq!(
        g.event_ids,
        ids(&[&late[1], &late[2], &late[0]]),
        "in time order"
    );
    assert_eq!(alerts[0].event_id, ids(&[&late[2]])[0]);
    // Out of order but more than five minutes from first to last.
    assert!(alerts_of(&rules, &[at(300), at(0), at(150)]).is_empty());
    // A late event does not push out newer ones that may still complete a count: 0 and
    // 250 s, a straggler from -100 s (too far from 250 s for the three to fit), then 260 s.
    let seq = [at(0), at(250), at(-100), at(260)];
    let alerts = alerts_of(&rules, &seq);
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    assert_eq!(
        alerts[0].group.as_ref().unwrap().event_ids,
        ids(&[&seq[0], &seq[1], &seq[3]])
    );
    // Late events may complete a count among themselves, behind a newer one.
    let seq = [at(0), at(290), at(-20), at(-10)];
    let alerts = alerts_of(&rules, &seq);
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    assert_eq!(
        alerts[0].group.as_ref().unwrap().event_ids,
        ids(&[&seq[2], &seq[3], &seq[0]])
    );
    // Stragglers from long before count with nothing.
    assert!(alerts_of(&rules, &[at(0), at(10), at(-400), at(-700)]).is_empty());
}

#[test]
fn an_engine_saved_in_the_middle_of_a_window_carries_on() {
    let rules = per_user_rule();
    let three: Vec<Value> = (0..3)
        .map(|i| failed_sign_in("alice", "203.0.113.9", T0 + i * 30 * SEC))
        .collect();
    let mut engine = Engine::default();
    let mut out = Vec::new();
    for r in &three[..2] {
        engine.observe(ACCOUNT, r, &rules, &mut out);
    }
    let saved = serde_json::to_string(&engine).unwrap();
    let mut engine: Engine = serde_json::from_str(&saved).unwrap();
    engine.observe(ACCOUNT, &three[2], &rules, &mut out);
    assert_eq!(out, alerts_of(&rules, &three));
    // Pruning lets go only of windows a day older than the latest event.
    let mut engine = Engine::default();
    engine.observe(ACCOUNT, &three[0], &rules, &mut out);
    engine.observe(
        ACCOUNT,
        &failed_sign_in("bob", "203.0.113.9", T0 + 86_400 * SEC + MIN),
        &rules,
        &mut out,
    );
    assert_eq!(engine.open_windows(), 2);
    engine.prune();
    assert_eq!(engine.open_windows(), 1);
    // Forgetting a rule drops its windows and hits.
    engine.forget(ACCOUNT, FAILURES_PER_USER);
    assert_eq!(engine.open_windows(), 0);
    assert!(engine.hits(ACCOUNT).is_empty());
}

// ---------------------------------------------------------------------------------------------
// The rules worker on a real store, restarted in the middle of a counting window.

struct Worker {
    store: Arc<Store>,
    rules: Rules,
}

/// Opens the store, the registry (default pack), the alert log and the worker in `dir`, as
/// a server does.
fn open_worker(dir: &Path) -> Worker {
    let store = Arc::new(
        Store::open(
            dir,
            StoreOptions {
                retention_ms: None,
                held_by: vec![cairn_rules::CONSUMER],
                ..StoreOptions::default()
            },
        )
        .expect("store opens"),
    );
    let registry = Arc::new(Registry::open(Some(dir), default_pack(), vec![]).unwrap());
    let outbox = Arc::new(Outbox::open(Some(&dir.join("rules"))).unwrap());
    let rules = Rules::open(dir, store.clone(), registry, outbox, Options::default()).unwrap();
    Worker { store, rules }
}

fn append(store: &Store, records: &[&Value]) {
    let batch = records
        .iter()
        .map(|r| {
            let bytes = serde_json::to_vec(r).unwrap();
            cairn_event::normalise(&bytes, ACCOUNT, cairn_event::now_ms()).unwrap()
        })
        .collect();
    let outcomes = store.append_blocking(ACCOUNT, batch).unwrap();
    assert!(
        outcomes.iter().all(|o| *o == cairn_store::Outcome::Stored),
        "{outcomes:?}"
    );
}

/// The alerts in the log, oldest first.
fn logged(outbox: &Outbox) -> Vec<Alert> {
    (0..outbox.len())
        .map(|seq| outbox.get(seq).unwrap().expect("in the log").alert)
        .collect()
}

#[test]
fn a_restart_in_the_middle_of_a_window_raises_the_alert_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let three: Vec<Value> = (0..3)
        .map(|i| failed_sign_in("alice", "203.0.113.9", T0 + i * 40 * SEC))
        .collect();
    // Something stored before the worker first started is history, not alerted on.
    {
        let store = Arc::new(
            Store::open(
                dir,
                StoreOptions {
                    retention_ms: None,
                    ..StoreOptions::default()
                },
            )
            .unwrap(),
        );
        append(&store, &[&seed("DeleteDBInstance")[0]]);
    }
    let w = open_worker(dir);
    w.rules.catch_up().unwrap();
    assert!(w.rules.outbox.is_empty());
    append(&w.store, &[&three[0], &three[1]]);
    w.rules.catch_up().unwrap();
    assert!(w.rules.outbox.is_empty());
    // Two events in alice's window and two in the address's.
    assert_eq!(w.rules.open_windows(), 4);
    assert_eq!(w.rules.cursor(), w.store.durable_end());
    drop(w);

    let w = open_worker(dir);
    assert_eq!(w.rules.open_windows(), 4, "the windows were saved");
    assert_eq!(w.rules.cursor(), w.store.durable_end());
    append(&w.store, &[&three[2]]);
    w.rules.catch_up().unwrap();
    let alerts = logged(&w.rules.outbox);
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    let a = &alerts[0];
    assert_eq!(a.rule, FAILURES_PER_USER);
    assert_eq!(a.account, ACCOUNT);
    let expected: Vec<&Value> = three.iter().collect();
    assert_eq!(a.group.as_ref().unwrap().event_ids, ids(&expected));
    assert_eq!(a.event["eventID"], three[2]["eventID"]);
    // The stored record is the record (the store may add members, never change these).
    assert_eq!(a.event["userIdentity"], three[2]["userIdentity"]);
    assert_eq!(a.event_time_ms, T0 + 80 * SEC);
    let hits = w.rules.hits(ACCOUNT);
    let per_user = hits.iter().find(|(n, _)| n == FAILURES_PER_USER).unwrap();
    assert_eq!(
        (per_user.1.matched, per_user.1.alerts),
        (3, 1),
        "hits are saved too"
    );
    drop(w);
    // Nothing new after another restart.
    let w = open_worker(dir);
    w.rules.catch_up().unwrap();
    assert_eq!(w.rules.outbox.len(), 1);
}

#[test]
fn a_crash_replays_events_and_the_log_keeps_one_alert() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let state = dir.join("rules").join("state.json");
    let three: Vec<Value> = (0..3)
        .map(|i| failed_sign_in("alice", "203.0.113.9", T0 + i * 40 * SEC))
        .collect();
    let w = open_worker(dir);
    let empty_state = std::fs::read(&state).unwrap();
    let start = w.rules.cursor();
    append(&w.store, &[&three[0], &three[1]]);
    w.rules.catch_up().unwrap();
    let mid_state = std::fs::read(&state).unwrap();
    let mid = w.rules.cursor();
    assert!(mid > start);
    append(&w.store, &[&three[2]]);
    w.rules.catch_up().unwrap();
    let alerts = logged(&w.rules.outbox);
    assert_eq!(alerts.len(), 1);
    let end = w.rules.cursor();
    drop(w);

    // A crash after the alert was logged but before the state was saved: the worker reads
    // the third event again from the saved cursor and raises the same alert.
    std::fs::write(&state, &mid_state).unwrap();
    let w = open_worker(dir);
    assert_eq!(w.rules.cursor(), mid);
    assert_eq!(w.rules.open_windows(), 4);
    w.rules.catch_up().unwrap();
    assert_eq!(w.rules.cursor(), end);
    assert_eq!(logged(&w.rules.outbox), alerts, "no duplicate");
    drop(w);

    // A crash before anything was saved: all three are read again.
    std::fs::write(&state, &empty_state).unwrap();
    let w = open_worker(dir);
    assert_eq!(w.rules.cursor(), start);
    assert_eq!(w.rules.open_windows(), 0);
    w.rules.catch_up().unwrap();
    assert_eq!(logged(&w.rules.outbox), alerts, "no duplicate");
    assert_eq!(w.rules.open_windows(), 3, "the address's three");
    // And the next failures count from zero.
    let more: Vec<Value> = (3..6)
        .map(|i| failed_sign_in("alice", "203.0.113.9", T0 + i * 40 * SEC))
        .collect();
    append(&w.store, &[&more[0], &more[1], &more[2]]);
    w.rules.catch_up().unwrap();
    let now = logged(&w.rules.outbox);
    let names: Vec<&str> = now.iter().map(|a| a.rule.as_str()).collect();
    assert_eq!(
        names,
        [FAILURES_PER_USER, FAILURES_PER_IP, FAILURES_PER_USER]
    );
    assert_eq!(now[0], alerts[0]);
}

#[test]
fn a_disabled_rule_raises_nothing_in_that_account_only() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let w = open_worker(dir);
    w.rules
        .registry
        .set_enabled(ACCOUNT, DB_DELETED, false, T0)
        .unwrap();
    let delete = seed("DeleteDBInstance").remove(0);
    append(&w.store, &[&delete]);
    let batch = vec![
        cairn_event::normalise(&serde_json::to_vec(&delete).unwrap(), "444455556666", T0).unwrap(),
    ];
    w.store.append_blocking("444455556666", batch).unwrap();
    w.rules.catch_up().unwrap();
    let alerts = logged(&w.rules.outbox);
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    assert_eq!(alerts[0].rule, DB_DELETED);
    assert_eq!(alerts[0].account, "444455556666");
}

// ---------------------------------------------------------------------------------------------
// Targets against a real HTTP server.

/// A webhook receiver that answers 500 to its first `fail_first` requests and 200 after,
/// keeping every request.
#[derive(Default)]
struct Hook {
    fail_first: usize,
    seen: Mutex<Vec<(StatusCode, HeaderMap, Bytes)>>,
}

impl Hook {
    fn requests(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    fn statuses(&self) -> Vec<u16> {
        let seen = self.seen.lock().unwrap();
        seen.iter().map(|(s, _, _)| s.as_u16()).collect()
    }

    /// The bodies it accepted, in order.
    fn delivered(&self) -> Vec<Value> {
        let seen = self.seen.lock().unwrap();
        seen.iter()
            .filter(|(s, _, _)| s.is_success())
            .map(|(_, _, b)| serde_json::from_slice(b).expect("JSON body"))
            .collect()
    }
}

async fn receive(State(hook): State<Arc<Hook>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let mut seen = hook.seen.lock().unwrap();
    let status = if seen.len() < hook.fail_first {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    seen.push((status, headers, body));
    status
}

/// Serves a [`Hook`] on 127.0.0.1; returns its URL.
async fn serve(fail_first: usize) -> (String, Arc<Hook>) {
    let hook = Arc::new(Hook {
        fail_first,
        ..Hook::default()
    });
    let app = axum::Router::new()
        .route("/services/T000/B000/XXXX", axum::routing::post(receive))
        .with_state(hook.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/services/T000/B000/XXXX"), hook)
}

/// Waits until `done` holds, for at most ten seconds.
async fn until(what: &str, done: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn lines(path: &Path) -> Vec<Value> {
    match std::fs::read_to_string(path) {
        Ok(text) => text
            .lines()
            .map(|l| serde_json::from_str(l).expect("an NDJSON line"))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Checks the signature as a receiver would: HMAC-SHA256 of "<timestamp>.<body>".
#[track_caller]
fn verify_signature(secret: &[u8], headers: &HeaderMap, body: &[u8]) {
    let ts = headers["x-cairn-timestamp"].to_str().unwrap();
    let t: i64 = ts.parse().expect("unix seconds");
    let now = cairn_event::now_ms() / 1000;
    assert!((now - t).abs() <= 60, "timestamp {t} is not now ({now})");
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
    mac.update(format!("{ts}.").as_bytes());
    mac.update(body);
    let want = format!("t={ts},v1={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(headers["x-cairn-signature"].to_str().unwrap(), want);
    let mut wrong = Hmac::<Sha256>::new_from_slice(b"not the secret").unwrap();
    wrong.update(format!("{ts}.").as_bytes());
    wrong.update(body);
    let forged = format!("t={ts},v1={}", hex::encode(wrong.finalize().into_bytes()));
    assert_ne!(headers["x-cairn-signature"].to_str().unwrap(), forged);
}

/// Alerts of different kinds: the seed database deletion, a bucket deletion, a threshold and
/// a bucket made public.
fn sample_alerts() -> Vec<Alert> {
    let mut records = seed("DeleteDBInstance");
    records.push(s3("DeleteBucket", json!({"bucketName": "cat-photos"})));
    records.extend((0..3).map(|i| failed_sign_in("alice", "203.0.113.9", T0 + i * SEC)));
    records.push(s3(
        "DeleteBucketPublicAccessBlock",
        json!({"bucketName": "cat-photos"}),
    ));
    records.push(s3("DeleteBucket", json!({"bucketName": "dog-photos"})));
    let alerts = alerts_of(&pack(), &records);
    let names: Vec<&str> = alerts.iter().map(|a| a.rule.as_str()).collect();
    assert_eq!(
        names,
        [
            DB_DELETED,
            BUCKET_DELETED,
            FAILURES_PER_USER,
            BUCKET_PUBLIC,
            BUCKET_DELETED
        ]
    );
    alerts
}

const SECRET: &[u8] = b"whsec_5a1e7d2c";
const CONSOLE: &str = "https://cairn.example.com:8443";

fn send_options(attempts: u32) -> SendOptions {
    SendOptions {
        attempts,
        backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(200),
        timeout: Duration::from_secs(5),
        secret: SECRET.to_vec(),
    }
}

fn console_base() -> Arc<parking_lot::RwLock<String>> {
    Arc::new(parking_lot::RwLock::new(format!("{CONSOLE}/")))
}

struct Running {
    dispatcher: Arc<Dispatcher>,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

fn start(dispatcher: Dispatcher) -> Running {
    let dispatcher = Arc::new(dispatcher);
    let (stop, rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(dispatcher.clone().run(rx));
    Running {
        dispatcher,
        stop,
        task,
    }
}

impl Running {
    async fn shut_down(self) {
        self.stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the dispatcher stops")
            .unwrap();
    }
}

fn status_of(d: &Dispatcher, display_prefix: &str) -> cairn_rules::TargetStatus {
    d.status()
        .into_iter()
        .find(|s| s.target.starts_with(display_prefix))
        .unwrap_or_else(|| panic!("no target {display_prefix}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_that_fails_then_recovers_gets_every_alert_in_order_and_signed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("rules");
    let outbox = Arc::new(Outbox::open(Some(&dir)).unwrap());
    let alerts = sample_alerts();
    // Raised before the targets were configured: not sent to them.
    outbox.append(&alerts[..1], cairn_event::now_ms()).unwrap();
    let (hook_url, hook) = serve(2).await;
    let (slack_url, slack) = serve(0).await;
    let file = tmp.path().join("out").join("alerts.ndjson");
    let targets = vec![
        Target::parse(&format!("webhook={hook_url}")).unwrap(),
        Target::parse(&format!("slack={slack_url}")).unwrap(),
        Target::parse(&format!("file={}", file.display())).unwrap(),
    ];
    let run = start(Dispatcher::new(
        Some(&dir),
        outbox.clone(),
        targets.clone(),
        send_options(5),
        console_base(),
    ));
    let detected = cairn_event::now_ms();
    outbox.append(&alerts[1..3], detected).unwrap();
    until("two webhook deliveries", || hook.delivered().len() == 2).await;
    until("two Slack messages", || slack.delivered().len() == 2).await;
    until("two file lines", || lines(&file).len() == 2).await;

    // The webhook: two failures, then the first alert, then the second.
    assert_eq!(hook.statuses(), [500, 500, 200, 200]);
    let seen = hook.seen.lock().unwrap().clone();
    let want = [&alerts[1], &alerts[1], &alerts[1], &alerts[2]];
    for ((_, headers, body), alert) in seen.iter().zip(want) {
        assert_eq!(headers["x-cairn-alert-id"], alert.alert_id.as_str());
        assert_eq!(headers["content-type"], "application/json");
        assert!(
            headers["user-agent"]
                .to_str()
                .unwrap()
                .starts_with("Cairn/")
        );
        verify_signature(SECRET, headers, body);
        let v: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(v["alertId"], alert.alert_id.as_str());
    }
    let bodies = hook.delivered();
    let ids: Vec<&str> = bodies
        .iter()
        .map(|b| b["alertId"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [alerts[1].alert_id.as_str(), alerts[2].alert_id.as_str()]
    );
    let bucket = &bodies[0];
    assert_eq!(bucket["account"], ACCOUNT);
    assert_eq!(bucket["rule"]["name"], BUCKET_DELETED);
    assert_eq!(bucket["rule"]["severity"], "high");
    assert_eq!(bucket["rule"]["kind"], "pattern");
    assert_eq!(bucket["rule"]["origin"], "default");
    assert_eq!(bucket["rule"]["description"], "An S3 bucket was deleted.");
    assert_eq!(bucket["event"], alerts[1].event);
    assert_eq!(bucket["eventId"], alerts[1].event_id.as_str());
    assert_eq!(bucket["eventName"], "DeleteBucket");
    assert_eq!(bucket["eventSource"], "s3.amazonaws.com");
    assert_eq!(bucket["eventTime"], time(T0));
    assert_eq!(
        bucket["principal"],
        format!("arn:aws:iam::{ACCOUNT}:user/alana")
    );
    assert_eq!(bucket["detectedAt"], cairn_rules::iso(detected));
    assert_eq!(
        bucket["summary"],
        format!(
            "DeleteBucket by arn:aws:iam::{ACCOUNT}:user/alana from 198.51.100.23 in us-east-1"
        )
    );
    let url = bucket["consoleUrl"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("{CONSOLE}/console/events?")),
        "{url}"
    );
    let query = percent_encoding::percent_decode_str(url)
        .decode_utf8()
        .unwrap();
    assert!(
        query.contains(&format!("f=EventId:{}", alerts[1].event_id)),
        "{query}"
    );
    // The hour either side of the event.
    assert!(
        query.contains("start=2026-01-04T23:00:00Z&end=2026-01-05T01:00:00Z"),
        "{query}"
    );
    assert!(bucket.get("group").is_none());
    let threshold = &bodies[1];
    assert_eq!(threshold["rule"]["name"], FAILURES_PER_USER);
    assert_eq!(threshold["group"]["count"], 3);
    assert_eq!(threshold["group"]["windowSeconds"], 300);
    assert_eq!(
        threshold["group"]["key"]["detail.userIdentity.userName"],
        "alice"
    );
    assert_eq!(
        threshold["group"]["eventIds"],
        json!(alerts[2].group.as_ref().unwrap().event_ids)
    );
    assert!(
        threshold["summary"].as_str().unwrap().starts_with(
            "3 matching events within 300 s; the last: ConsoleLogin by alice from 203.0.113.9"
        ),
        "{}",
        threshold["summary"]
    );

    // Slack: a text message with the rule, the summary, the link and the alert ID.
    for (body, alert) in slack.delivered().iter().zip(&alerts[1..3]) {
        assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
        let text = body["text"].as_str().unwrap();
        assert!(text.contains(&alert.rule), "{text}");
        assert!(text.contains(&alert.alert_id), "{text}");
        assert!(
            text.contains(&format!("<{CONSOLE}/console/events?")),
            "{text}"
        );
        assert!(
            text.starts_with(&format!("*[{}]", alert.severity.to_uppercase())),
            "{text}"
        );
    }
    // The file: one JSON object a line, as the webhook's bodies.
    assert_eq!(lines(&file), bodies);

    let d = &run.dispatcher;
    until("the targets' counts", || {
        d.status()
            .iter()
            .all(|s| s.delivered == 2 && s.pending == 0)
    })
    .await;
    let webhook = status_of(d, "webhook http://127.0.0.1");
    assert_eq!(
        (
            webhook.delivered,
            webhook.failed_attempts,
            webhook.dead_lettered,
            webhook.pending
        ),
        (2, 2, 0, 0)
    );
    assert!(
        webhook.last_error.as_deref().unwrap().contains("HTTP 500"),
        "{webhook:?}"
    );
    assert!(webhook.last_delivery_ms.is_some());
    // Listings do not show incoming-webhook paths.
    assert!(!webhook.target.contains("/services/"), "{}", webhook.target);
    assert_eq!(status_of(d, "slack").delivered, 2);
    assert_eq!(status_of(d, "file").delivered, 2);
    assert!(!dir.join("dead-letter.ndjson").exists());
    run.shut_down().await;

    // A restart resumes each target from its saved cursor; a new target starts at the end.
    outbox.append(&alerts[3..4], cairn_event::now_ms()).unwrap();
    let second = tmp.path().join("out").join("second.ndjson");
    let run = start(Dispatcher::new(
        Some(&dir),
        outbox.clone(),
        vec![
            targets[0].clone(),
            targets[2].clone(),
            Target::File(second.clone()),
        ],
        send_options(5),
        console_base(),
    ));
    until("the alert raised while stopped", || {
        hook.delivered().len() == 3
    })
    .await;
    outbox.append(&alerts[4..5], cairn_event::now_ms()).unwrap();
    until("the next alert", || hook.delivered().len() == 4).await;
    until("the new file target", || lines(&second).len() == 1).await;
    until("the old file target", || lines(&file).len() == 4).await;
    let ids = |v: &[Value]| -> Vec<String> {
        v.iter()
            .map(|b| b["alertId"].as_str().unwrap().to_owned())
            .collect()
    };
    let want: Vec<String> = alerts[1..5].iter().map(|a| a.alert_id.clone()).collect();
    assert_eq!(ids(&hook.delivered()), want, "nothing sent twice");
    assert_eq!(ids(&lines(&file)), want);
    assert_eq!(ids(&lines(&second)), [alerts[4].alert_id.clone()]);
    assert_eq!(hook.requests(), 6);
    assert_eq!(slack.requests(), 2);
    run.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_that_cannot_be_delivered_goes_to_the_dead_letter_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("rules");
    let outbox = Arc::new(Outbox::open(Some(&dir)).unwrap());
    let alerts = sample_alerts();
    // Fails the first alert's two tries, then recovers.
    let (url, hook) = serve(2).await;
    // Nobody listens here.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/hook", l.local_addr().unwrap())
    };
    let run = start(Dispatcher::new(
        Some(&dir),
        outbox.clone(),
        vec![
            Target::Webhook(url.clone()),
            Target::Webhook(closed.clone()),
        ],
        send_options(2),
        console_base(),
    ));
    outbox.append(&alerts[..2], cairn_event::now_ms()).unwrap();
    let dead = dir.join("dead-letter.ndjson");
    assert_eq!(run.dispatcher.dead_letter_path(), Some(dead.as_path()));
    until("the second alert", || hook.delivered().len() == 1).await;
    until("three dead letters", || lines(&dead).len() == 3).await;
    assert_eq!(hook.statuses(), [500, 500, 200]);
    assert_eq!(hook.delivered()[0]["alertId"], alerts[1].alert_id.as_str());
    let letters = lines(&dead);
    let hook_name = Target::Webhook(url.clone()).display();
    let closed_name = Target::Webhook(closed.clone()).display();
    let from_hook: Vec<&Value> = letters
        .iter()
        .filter(|l| l["target"] == hook_name.as_str())
        .collect();
    assert_eq!(from_hook.len(), 1, "{letters:#?}");
    let l = from_hook[0];
    assert_eq!(l["alertId"], alerts[0].alert_id.as_str());
    assert_eq!(l["attempts"], 2);
    assert!(l["lastError"].as_str().unwrap().contains("HTTP 500"), "{l}");
    assert_eq!(l["alert"]["alertId"], alerts[0].alert_id.as_str());
    assert_eq!(l["alert"]["rule"]["name"], DB_DELETED);
    assert_eq!(l["alert"]["event"], alerts[0].event);
    assert!(l["failedAt"].as_str().unwrap().ends_with('Z'));
    // The unreachable target gave up on both and moved on.
    let refused: Vec<&str> = letters
        .iter()
        .filter(|l| l["target"] == closed_name.as_str())
        .inspect(|l| {
            assert!(
                l["lastError"]
                    .as_str()
                    .unwrap()
                    .starts_with("request failed"),
                "{l}"
            )
        })
        .map(|l| l["alertId"].as_str().unwrap())
        .collect();
    assert_eq!(
        refused,
        [alerts[0].alert_id.as_str(), alerts[1].alert_id.as_str()]
    );
    let d = &run.dispatcher;
    until("the targets' counts", || {
        d.status().iter().all(|s| s.pending == 0)
    })
    .await;
    let st = d.status();
    let recovering = st
        .iter()
        .find(|s| s.delivered == 1)
        .expect("the recovering target");
    assert_eq!(
        (
            recovering.failed_attempts,
            recovering.dead_lettered,
            recovering.pending
        ),
        (2, 1, 0)
    );
    let gone = st
        .iter()
        .find(|s| s.delivered == 0)
        .expect("the unreachable target");
    assert_eq!(
        (gone.failed_attempts, gone.dead_lettered, gone.pending),
        (4, 2, 0)
    );
    run.shut_down().await;
}

// ---------------------------------------------------------------------------------------------
// The alert log.

#[test]
fn a_torn_last_line_is_cut_and_the_alerts_before_it_are_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("rules");
    let path = dir.join("alerts.ndjson");
    let alerts = sample_alerts();
    {
        let outbox = Outbox::open(Some(&dir)).unwrap();
        assert_eq!(outbox.path(), Some(path.as_path()));
        assert_eq!(outbox.append(&alerts[..3], T0).unwrap(), 3);
        // Already in the log: not written again.
        assert_eq!(outbox.append(&alerts[1..4], T0 + 1).unwrap(), 1);
        assert_eq!(outbox.len(), 4);
    }
    let whole = std::fs::read(&path).unwrap();
    // A crash in the middle of a write: half a line, cut inside a character ("é" is two
    // bytes), and plain garbage.
    let next = serde_json::to_vec(&cairn_rules::Stored {
        seq: 4,
        detected_ms: T0 + 2,
        alert: Alert {
            description: "Un accès refusé".into(),
            ..alerts[4].clone()
        },
    })
    .unwrap();
    let cut = next.iter().position(|&b| b == 0xc3).unwrap() + 1;
    for torn in [
        &next[..cut],
        &next[..next.len() - 1],
        b"{\"seq\":4,\"detec".as_slice(),
        b"\x00\xff garbage",
    ] {
        let mut bytes = whole.clone();
        bytes.extend_from_slice(torn);
        std::fs::write(&path, &bytes).unwrap();
        let outbox = Outbox::open(Some(&dir)).unwrap_or_else(|e| {
            panic!(
                "the log does not open after {:?}: {e}",
                String::from_utf8_lossy(torn)
            )
        });
        assert_eq!(outbox.len(), 4);
        assert_eq!(
            std::fs::read(&path).unwrap(),
            whole,
            "cut back to the last whole line"
        );
        let kept: Vec<Alert> = logged(&outbox);
        assert_eq!(kept, alerts[..4]);
        assert_eq!(outbox.get(1).unwrap().unwrap().detected_ms, T0);
        assert_eq!(outbox.get(3).unwrap().unwrap().detected_ms, T0 + 1);
        assert!(outbox.get(4).unwrap().is_none());
    }
    // Appends carry on after the cut, and a later reopen reads everything.
    {
        let outbox = Outbox::open(Some(&dir)).unwrap();
        assert_eq!(outbox.append(&alerts[4..], T0 + 3).unwrap(), 1);
        assert_eq!(outbox.get(4).unwrap().unwrap().seq, 4);
    }
    let outbox = Outbox::open(Some(&dir)).unwrap();
    assert_eq!(logged(&outbox), alerts);
    assert_eq!(
        outbox.append(&alerts, T0 + 4).unwrap(),
        0,
        "every ID is known"
    );
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 5);
    assert!(text.ends_with('\n'));
}

#[test]
fn recent_alerts_filter_by_account_and_rule_and_page_backwards() {
    let alerts = sample_alerts();
    let other = "444455556666";
    let mut log = Vec::new();
    for (i, a) in alerts.iter().enumerate() {
        log.push(a.clone());
        // The same alert in another account (an ID of its own).
        let mut b = a.clone();
        b.account = other.into();
        b.alert_id = alert_id(other, &b.rule, None, &format!("{}-{i}", b.event_id));
        log.push(b);
    }
    for dir in [None, Some(tempfile::tempdir().unwrap())] {
        let outbox = Outbox::open(dir.as_ref().map(|d| d.path())).unwrap();
        let mut watch = outbox.watch();
        assert!(outbox.is_empty());
        for chunk in log.chunks(3) {
            outbox.append(chunk, T0).unwrap();
        }
        assert_eq!(outbox.len(), 10);
        assert!(watch.has_changed().unwrap());
        assert_eq!(*watch.borrow_and_update(), 10);
        let seqs = |v: Vec<cairn_rules::Stored>| -> Vec<u64> { v.iter().map(|s| s.seq).collect() };
        // Newest first, one account only.
        let mine = outbox.recent(ACCOUNT, None, None, 100).unwrap();
        assert_eq!(seqs(mine.clone()), [8, 6, 4, 2, 0]);
        assert!(mine.iter().all(|s| s.alert.account == ACCOUNT));
        assert_eq!(mine[4].alert, alerts[0]);
        assert_eq!(
            seqs(outbox.recent(other, None, None, 100).unwrap()),
            [9, 7, 5, 3, 1]
        );
        assert!(
            outbox
                .recent("999999999999", None, None, 100)
                .unwrap()
                .is_empty()
        );
        // One rule.
        let deleted = outbox
            .recent(ACCOUNT, Some(BUCKET_DELETED), None, 100)
            .unwrap();
        assert_eq!(seqs(deleted.clone()), [8, 2]);
        assert!(deleted.iter().all(|s| s.alert.rule == BUCKET_DELETED));
        assert!(
            outbox
                .recent(ACCOUNT, Some("nope"), None, 100)
                .unwrap()
                .is_empty()
        );
        // Pages of two, each from before the last seq of the previous.
        let mut pages = Vec::new();
        let mut before = None;
        loop {
            let page = seqs(outbox.recent(ACCOUNT, None, before, 2).unwrap());
            if page.is_empty() {
                break;
            }
            before = page.last().copied();
            pages.push(page);
        }
        assert_eq!(pages, [vec![8, 6], vec![4, 2], vec![0]]);
        assert_eq!(
            seqs(
                outbox
                    .recent(ACCOUNT, Some(BUCKET_DELETED), Some(8), 10)
                    .unwrap()
            ),
            [2]
        );
        assert!(
            outbox
                .recent(ACCOUNT, None, Some(0), 10)
                .unwrap()
                .is_empty()
        );
    }
    // Reopened from the file, the listing is the same.
    let tmp = tempfile::tempdir().unwrap();
    {
        let outbox = Outbox::open(Some(tmp.path())).unwrap();
        outbox.append(&log, T0).unwrap();
    }
    let outbox = Outbox::open(Some(tmp.path())).unwrap();
    let page: Vec<u64> = outbox
        .recent(other, Some(BUCKET_DELETED), None, 10)
        .unwrap()
        .iter()
        .map(|s| s.seq)
        .collect();
    assert_eq!(page, [9, 3]);
}

// ---------------------------------------------------------------------------------------------
// The registry.

fn sigma_dir() -> PathBuf {
    datasets().join("sigma")
}

const MY_RULE: &str = r#"{"source": ["aws.iam"], "detail": {"eventName": ["CreateUser"]}}"#;

#[test]
fn custom_rules_are_kept_per_account_across_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let other = "444455556666";
    {
        let reg = Registry::open(Some(dir), default_pack(), vec![]).unwrap();
        assert_eq!(reg.shared().len(), 10);
        assert_eq!(reg.list(ACCOUNT).len(), 10);
        let spec = custom("new-users", Kind::Pattern, MY_RULE, None);
        assert!(!reg.put(ACCOUNT, spec.clone(), T0).unwrap(), "added");
        let mut changed = spec.clone();
        changed.severity = Severity::Critical;
        changed.origin = Origin::Default; // the registry decides where a rule comes from
        changed.file = Some("/etc/passwd".into());
        assert!(reg.put(ACCOUNT, changed, T0 + 1).unwrap(), "replaced");
        let got = reg.get(ACCOUNT, "new-users").unwrap();
        assert_eq!(got.severity, Severity::Critical);
        assert_eq!(got.origin, Origin::Custom);
        assert_eq!(got.file, None);
        assert_eq!(got.updated_ms, T0 + 1);
        let sigma = custom(
            "keys-by-root",
            Kind::Sigma,
            "title: Root made a key\nlogsource:\n    product: aws\n    service: cloudtrail\ndetection:\n    sel:\n        eventName: CreateAccessKey\n        userIdentity.type: Root\n    condition: sel\n",
            None,
        );
        reg.put(ACCOUNT, sigma, T0).unwrap();
        let threshold = custom(
            "many-users",
            Kind::Pattern,
            MY_RULE,
            Some(Threshold {
                count: 10,
                window_seconds: 60,
                group_by: vec!["detail.userIdentity.arn".into()],
            }),
        );
        reg.put(ACCOUNT, threshold, T0).unwrap();
        // Not in the other account.
        assert!(reg.get(other, "new-users").is_err());
        assert_eq!(reg.rules_for(other).len(), 10);
        // Disabled: listed, not run.
        reg.set_enabled(ACCOUNT, "many-users", false, T0 + 2)
            .unwrap();
        let names =
            |set: RuleSet| -> Vec<String> { set.iter().map(|r| r.spec.name.clone()).collect() };
        let running = names(reg.rules_for(ACCOUNT));
        assert_eq!(running.len(), 12);
        assert_eq!(running[10..], ["new-users", "keys-by-root"]);
        assert!(!reg.get(ACCOUNT, "many-users").unwrap().enabled);
        // Shared rules: disabled per account, not deleted.
        reg.set_enabled(ACCOUNT, BUCKET_DELETED, false, T0).unwrap();
        assert!(!names(reg.rules_for(ACCOUNT)).contains(&BUCKET_DELETED.to_owned()));
        assert!(names(reg.rules_for(other)).contains(&BUCKET_DELETED.to_owned()));
        assert!(!reg.get(ACCOUNT, BUCKET_DELETED).unwrap().enabled);
        assert!(reg.get(other, BUCKET_DELETED).unwrap().enabled);
        let e = reg.delete(ACCOUNT, BUCKET_DELETED).unwrap_err();
        assert_eq!(e.code, "InvalidParameterException");
        assert!(e.message.contains("disable"), "{}", e.message);
        // Custom rules are deleted.
        reg.put(
            ACCOUNT,
            custom("short-lived", Kind::Pattern, MY_RULE, None),
            T0,
        )
        .unwrap();
        reg.delete(ACCOUNT, "short-lived").unwrap();
        assert_eq!(
            reg.delete(ACCOUNT, "short-lived").unwrap_err().code,
            "RuleNotFoundException"
        );
        assert_eq!(
            reg.get(ACCOUNT, "short-lived").unwrap_err().code,
            "RuleNotFoundException"
        );
        assert_eq!(
            reg.set_enabled(ACCOUNT, "nope", true, T0).unwrap_err().code,
            "RuleNotFoundException"
        );
    }
    // Everything above survives a restart.
    let reg = Registry::open(Some(dir), default_pack(), vec![]).unwrap();
    let listed = reg.list(ACCOUNT);
    let names: Vec<&str> = listed.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names.len(), 13);
    assert_eq!(names[10..], ["new-users", "keys-by-root", "many-users"]);
    assert_eq!(
        reg.get(ACCOUNT, "new-users").unwrap().severity,
        Severity::Critical
    );
    assert!(!reg.get(ACCOUNT, "many-users").unwrap().enabled);
    assert_eq!(
        reg.get(ACCOUNT, "many-users")
            .unwrap()
            .threshold
            .unwrap()
            .group_by,
        ["detail.userIdentity.arn"]
    );
    assert!(!reg.get(ACCOUNT, BUCKET_DELETED).unwrap().enabled);
    assert_eq!(reg.rules_for(ACCOUNT).len(), 11);
    reg.set_enabled(ACCOUNT, BUCKET_DELETED, true, T0).unwrap();
    assert_eq!(reg.rules_for(ACCOUNT).len(), 12);
    // The registry's rules run: a custom sigma rule through the engine.
    let key = create_access_key(root(), None);
    let alerts = alerts_of(&reg.rules_for(ACCOUNT), &[key]);
    let fired: Vec<&str> = alerts.iter().map(|a| a.rule.as_str()).collect();
    assert_eq!(fired, [ROOT_USE, "keys-by-root"]);
    assert_eq!(alerts[1].kind, "sigma");
    assert_eq!(alerts[1].origin, "custom");
}

#[test]
fn the_registry_refuses_reserved_names_and_invalid_rules() {
    let reg = Registry::open(None, default_pack(), vec![]).unwrap();
    for name in [
        "cairn-root-account-use",
        "cairn-mine",
        "sigma-aws_enum_buckets",
        "has space",
        "",
    ] {
        let e = reg
            .put(ACCOUNT, custom(name, Kind::Pattern, MY_RULE, None), T0)
            .unwrap_err();
        assert_eq!(e.code, "InvalidParameterException", "{name}");
    }
    let e = reg
        .put(
            ACCOUNT,
            custom(
                "bad",
                Kind::Pattern,
                r#"{"detail": {"eventName": "x"}}"#,
                None,
            ),
            T0,
        )
        .unwrap_err();
    assert_eq!(e.code, "InvalidEventPatternException");
    let e = reg
        .put(
            ACCOUNT,
            custom("bad", Kind::Sigma, "title: x\ndetection: {}\n", None),
            T0,
        )
        .unwrap_err();
    assert_eq!(e.code, "InvalidSigmaRuleException");
    let one = Threshold {
        count: 1,
        window_seconds: 60,
        group_by: vec![],
    };
    let e = reg
        .put(
            ACCOUNT,
            custom("bad", Kind::Pattern, MY_RULE, Some(one)),
            T0,
        )
        .unwrap_err();
    assert_eq!(e.code, "InvalidParameterException");
    assert!(reg.list(ACCOUNT).iter().all(|s| s.name != "bad"));
}

#[test]
fn the_rules_folder_loads_the_shared_sigma_rules() {
    let (specs, refused) = load_folder(&sigma_dir());
    assert!(refused.is_empty(), "{refused:?}");
    assert_eq!(specs.len(), 8);
    let mut stems: Vec<String> = std::fs::read_dir(sigma_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| format!("sigma-{}", p.file_stem().unwrap().to_string_lossy()))
        .collect();
    stems.sort();
    let names: Vec<String> = specs.iter().map(|s| s.name.clone()).collect();
    assert_eq!(names, stems);
    for s in &specs {
        assert_eq!(s.kind, Kind::Sigma);
        assert_eq!(s.origin, Origin::Folder);
        assert!(s.enabled);
        assert!(s.file.as_deref().unwrap().ends_with(".yml"));
        assert!(!s.description.is_empty());
    }
    let root = specs
        .iter()
        .find(|s| s.name == "sigma-aws_root_account_usage")
        .unwrap();
    assert_eq!(root.description, "AWS Root Credentials");
    assert_eq!(root.severity, Severity::Medium);
    // In the registry, after the default pack; shared by every account, disabled per account.
    let reg = Registry::open(None, [default_pack(), specs].concat(), vec![]).unwrap();
    assert_eq!(reg.shared().len(), 18);
    assert!(reg.refused().is_empty());
    reg.set_enabled(ACCOUNT, "sigma-aws_enum_buckets", false, T0)
        .unwrap();
    assert_eq!(reg.rules_for(ACCOUNT).len(), 17);
    assert_eq!(reg.rules_for("444455556666").len(), 18);
    assert!(reg.delete(ACCOUNT, "sigma-aws_enum_buckets").is_err());
    // The folder's bucket-deleted rule fires beside the pack's on a real deletion.
    let alerts = alerts_of(
        &reg.rules_for(ACCOUNT),
        &[s3("DeleteBucket", json!({"bucketName": "cat-photos"}))],
    );
    let fired: Vec<&str> = alerts.iter().map(|a| a.rule.as_str()).collect();
    assert_eq!(
        fired,
        [BUCKET_DELETED, "sigma-aws_cloudtrail_bucket_deleted"]
    );
    assert_eq!(alerts[1].origin, "folder");
}

#[test]
fn a_rules_folder_reports_the_rules_it_cannot_run() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let header = "logsource:\n    product: aws\n    service: cloudtrail\n";
    std::fs::write(
        dir.join("good.yml"),
        format!("title: Good\nlevel: high\n{header}detection:\n    sel:\n        eventName: DeleteTrail\n    condition: sel\n"),
    )
    .unwrap();
    std::fs::write(
        dir.join("aggregate.yml"),
        format!("title: Many\n{header}detection:\n    sel:\n        eventName: ConsoleLogin\n    condition: sel | count() > 5\n"),
    )
    .unwrap();
    std::fs::create_dir(dir.join("nested")).unwrap();
    std::fs::write(
        dir.join("nested").join("modifier.yaml"),
        format!("title: Odd\n{header}detection:\n    sel:\n        eventName|sounds_like: DeleteTrail\n    condition: sel\n"),
    )
    .unwrap();
    std::fs::write(dir.join("windows.yml"), "title: Win\nlogsource:\n    product: windows\ndetection:\n    sel:\n        EventID: 4625\n    condition: sel\n").unwrap();
    std::fs::write(dir.join("README.md"), "not a rule").unwrap();
    let (specs, refused) = load_folder(dir);
    let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["sigma-good"]);
    assert_eq!(specs[0].severity, Severity::High);
    let mut why: Vec<(String, String)> = refused
        .iter()
        .map(|r| {
            (
                r.file.file_name().unwrap().to_string_lossy().into_owned(),
                r.reason.clone(),
            )
        })
        .collect();
    why.sort();
    assert_eq!(why.len(), 3, "{why:#?}");
    assert_eq!(why[0].0, "aggregate.yml");
    assert!(why[0].1.contains("aggregations"), "{}", why[0].1);
    assert_eq!(why[1].0, "modifier.yaml");
    assert!(
        why[1].1.contains("unknown modifier \"sounds_like\""),
        "{}",
        why[1].1
    );
    assert_eq!(why[2].0, "windows.yml");
    assert!(why[2].1.contains("windows"), "{}", why[2].1);
    // The registry keeps the folder's refusals to report them.
    let reg = Registry::open(None, specs, refused.clone()).unwrap();
    assert_eq!(reg.refused(), refused.as_slice());
    assert_eq!(reg.shared().len(), 1);
    // A folder that is not there.
    let (specs, refused) = load_folder(&dir.join("missing"));
    assert!(specs.is_empty());
    assert_eq!(refused.len(), 1);
    assert!(refused[0].reason.contains("cannot read the folder"));
}

// ---------------------------------------------------------------------------------------
// Prefilters: the worker passes over events no rule can match without parsing them; the
// prefilter must never be narrower than the rule.

fn head_of(record: &Value) -> (Option<String>, Option<String>) {
    (
        record
            .get("eventName")
            .and_then(Value::as_str)
            .map(str::to_owned),
        record
            .pointer("/userIdentity/type")
            .and_then(Value::as_str)
            .map(str::to_owned),
    )
}

#[test]
fn prefilters_are_never_narrower_than_their_rules() {
    let mut specs = default_pack();
    let (folder, refused) = load_folder(&datasets().join("sigma"));
    assert!(refused.is_empty(), "{refused:?}");
    specs.extend(folder);
    let rules: Vec<Rule> = specs
        .into_iter()
        .map(|s| Rule::compile(s).expect("compiles"))
        .collect();
    // Every default rule names what it needs, so most events are never parsed.
    for r in rules
        .iter()
        .filter(|r| r.spec.origin == cairn_rules::Origin::Default)
    {
        assert!(
            !r.prefilter.is_open(),
            "{} has an open prefilter",
            r.spec.name
        );
    }
    let mut records: Vec<Value> = jsonl("panther-labelled-events.jsonl")
        .into_iter()
        .filter_map(|l| l.get("event").cloned())
        .collect();
    records.extend(jsonl("seed-scenarios.jsonl"));
    records.extend(jsonl("otrf-ec2-proxy-s3-exfiltration.jsonl"));
    let mut matched = 0;
    for record in &records {
        let env = envelope::envelope(ACCOUNT, record);
        let (name, kind) = head_of(record);
        for r in &rules {
            if r.matches(record, &env) {
                matched += 1;
                assert!(
                    r.prefilter.admits(name.as_deref(), kind.as_deref()),
                    "{} matches a record its prefilter refuses: {record}",
                    r.spec.name
                );
            }
        }
    }
    assert!(matched > 50, "only {matched} matches checked");
    // And the prefilter does refuse what plainly cannot match.
    let trail = rules
        .iter()
        .find(|r| r.spec.name == TRAIL_CHANGED)
        .expect("trail rule");
    assert!(trail.prefilter.admits(Some("StopLogging"), Some("IAMUser")));
    assert!(!trail.prefilter.admits(Some("GetObject"), Some("IAMUser")));
    let root = rules
        .iter()
        .find(|r| r.spec.name == ROOT_USE)
        .expect("root rule");
    assert!(root.prefilter.admits(Some("GetObject"), Some("Root")));
    assert!(!root.prefilter.admits(Some("GetObject"), Some("IAMUser")));
    assert!(!root.prefilter.admits(Some("GetObject"), None));
}

#[test]
fn prefilters_follow_or_branches_and_stay_open_when_unsure() {
    let compile = |pattern: &str| {
        Rule::compile(cairn_rules::RuleSpec {
            name: "p".into(),
            description: String::new(),
            severity: cairn_rules::Severity::Low,
            kind: cairn_rules::Kind::Pattern,
            source: pattern.into(),
            threshold: None,
            enabled: true,
            origin: cairn_rules::Origin::Custom,
            file: None,
            updated_ms: 0,
        })
        .expect("compiles")
        .prefilter
    };
    let p = compile(
        r#"{"detail": {"$or": [{"eventName": ["A"]}, {"eventName": [{"equals-ignore-case": "b"}]}]}}"#,
    );
    assert!(p.admits(Some("a"), None) && p.admits(Some("B"), None));
    assert!(!p.admits(Some("C"), None));
    assert!(
        compile(r#"{"detail": {"$or": [{"eventName": ["A"]}, {"eventSource": ["x"]}]}}"#).is_open()
    );
    assert!(compile(r#"{"detail": {"eventName": [{"prefix": "Delete"}]}}"#).is_open());
    assert!(compile(r#"{"detail": {"eventName": [{"anything-but": "A"}]}}"#).is_open());
    assert!(compile(r#"{"source": ["aws.s3"]}"#).is_open());
}
