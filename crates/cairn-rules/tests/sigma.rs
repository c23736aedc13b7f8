//! Sigma rules: the SigmaHQ CloudTrail rules in shared/datasets against real-shaped records,
//! then every modifier, condition form and refusal case by case.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use cairn_rules::sigma::{SigmaError, SigmaRule, load_dir};
use common::{datasets, jsonl};
use proptest::prelude::*;
use serde_json::{Value, json};

fn shared_rules() -> BTreeMap<String, SigmaRule> {
    let (rules, refused) = load_dir(datasets().join("sigma"));
    assert!(refused.is_empty(), "refused: {refused:?}");
    assert_eq!(rules.len(), 8);
    rules
        .into_iter()
        .map(|r| (r.id.clone().expect("every shared rule has an id"), r))
        .collect()
}

const BUCKET_DELETED: &str = "39c9f26d-6e3b-4dbb-9c7a-4154b0281112";
const FAILED_LOGIN: &str = "6393e346-1977-46ef-8987-ad414a145fad";
const DISABLE_LOGGING: &str = "4db60cc0-36fb-42b7-9b58-a5b53019fb74";
const SECURITY_GROUP: &str = "6fb77778-040f-4015-9440-572aa9b6b580";
const ENUM_BUCKETS: &str = "f305fd62-beca-47da-ad95-7690a0620084";
const BACKDOOR_KEYS: &str = "0a5177f4-6ca9-44c2-aacf-d3f3d8b6e4d2";
const ROOT_USAGE: &str = "8ad1600d-e9dc-4251-b0ee-a65268f29add";
const TRUFFLEHOG: &str = "9b1b8e9b-0a5d-4af1-9d2f-4c4b6e7c2c9d";

#[test]
fn shared_rules_load_with_their_metadata() {
    let rules = shared_rules();
    let root = &rules[ROOT_USAGE];
    assert_eq!(root.title, "AWS Root Credentials");
    assert_eq!(root.author.as_deref(), Some("vitaliy0x1"));
    assert_eq!(
        root.references,
        ["https://docs.aws.amazon.com/IAM/latest/UserGuide/id_root-user.html"]
    );
    assert_eq!(root.level.as_deref(), Some("medium"));
    assert_eq!(root.status.as_deref(), Some("test"));
    assert!(root.tags.contains(&"attack.t1078.004".to_owned()));
    assert_eq!(root.falsepositives.len(), 1);
    assert_eq!(root.date.as_deref(), Some("2020-01-21"));
    assert_eq!(root.modified.as_deref(), Some("2022-10-09"));
    let login = &rules[FAILED_LOGIN];
    assert_eq!(
        login.author.as_deref(),
        Some("Ivan Saakov, Nasreddine Bencherchali")
    );
    assert_eq!(login.references.len(), 3);
    assert!(
        login
            .description
            .as_deref()
            .unwrap_or("")
            .contains("brute-force")
    );
    let enum_rule = &rules[ENUM_BUCKETS];
    assert_eq!(
        enum_rule.selection_names().collect::<Vec<_>>(),
        ["selection", "filter"]
    );
}

/// Hits of each shared rule on the Panther corpus, as line numbers (0-based), derived by
/// reading each Sigma rule (the corpus labels are for Panther's own rules).
#[test]
fn shared_rules_on_panther_corpus() {
    let rules = shared_rules();
    let rows = jsonl("panther-labelled-events.jsonl");
    assert_eq!(rows.len(), 453);
    let mut hits: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, row) in rows.iter().enumerate() {
        for (id, rule) in &rules {
            if rule.matches(&row["event"]) {
                hits.entry(id.as_str()).or_default().push(i);
            }
        }
    }
    let expected: BTreeMap<&str, Vec<usize>> = [
        // The corpus's DeleteBucket records have errorCode "" and "BucketNotEmpty": neither
        // "Success" nor missing/null.
        (BUCKET_DELETED, vec![]),
        // Only one ConsoleLogin carries errorMessage "Failed authentication".
        (FAILED_LOGIN, vec![51]),
        // cloudtrail.amazonaws.com StopLogging / UpdateTrail / DeleteTrail, failed calls too.
        (DISABLE_LOGGING, vec![47, 49, 391, 394, 444]),
        // ec2.amazonaws.com Authorize/Revoke SecurityGroup Ingress/Egress.
        (SECURITY_GROUP, vec![99, 101, 102, 103, 121, 123]),
        // No ListBuckets in the corpus.
        (ENUM_BUCKETS, vec![]),
        // The filter `userIdentity.arn|contains: responseElements.accessKey.userName` has no
        // `fieldref`, so per the Sigma spec it is the literal text, which no ARN contains: every
        // iam CreateAccessKey fires, the user's own key included.
        (BACKDOOR_KEYS, vec![183, 184, 185, 186, 187, 314, 315]),
        // userIdentity.type Root, none of them AwsServiceEvent.
        (
            ROOT_USAGE,
            vec![
                34, 70, 81, 83, 84, 314, 315, 316, 317, 319, 320, 321, 322, 323,
            ],
        ),
        (TRUFFLEHOG, vec![414, 415]),
    ]
    .into_iter()
    .filter(|(_, v)| !v.is_empty())
    .collect();
    assert_eq!(hits, expected);

    // Spot checks by the corpus's test names.
    let test_name = |i: usize| rows[i]["test"].as_str().unwrap_or_default().to_owned();
    assert_eq!(test_name(51), "Unsuccessful Login w/ MFA");
    assert_eq!(test_name(47), "CloudTrail Was Stopped");
    assert_eq!(test_name(414), "TruffleHog GetCallerIdentity");
    assert_eq!(test_name(99), "AWS Console - Ingress SG Authorization");
    assert_eq!(test_name(184), "user1 create keys for user2");
    assert_eq!(test_name(183), "user1 create keys for user1");
    assert_eq!(test_name(81), "Successful Root Login");
    // Root usage needs Root: an IAMUser's activity does not fire it.
    assert_eq!(test_name(318), "IAMUser Activity");
    assert!(!rules[ROOT_USAGE].matches(&rows[318]["event"]));
}

#[test]
fn root_usage_skips_aws_service_events() {
    let rules = shared_rules();
    let rows = jsonl("panther-labelled-events.jsonl");
    let mut event = rows[316]["event"].clone();
    assert!(rules[ROOT_USAGE].matches(&event));
    event["eventType"] = json!("AwsServiceEvent");
    assert!(!rules[ROOT_USAGE].matches(&event));
    event["eventType"] = json!("awsserviceevent");
    assert!(!rules[ROOT_USAGE].matches(&event), "case-insensitive");
    event["eventType"] = json!("AwsApiCall");
    event["userIdentity"]["type"] = json!("IAMUser");
    assert!(!rules[ROOT_USAGE].matches(&event));
}

#[test]
fn bucket_deleted_fires_on_success_or_missing_error_code() {
    let rules = shared_rules();
    let rule = &rules[BUCKET_DELETED];
    let rows = jsonl("panther-labelled-events.jsonl");
    let mut event = rows[324]["event"].clone();
    assert_eq!(event["errorCode"], json!(""));
    assert!(!rule.matches(&event), "'' is neither Success nor null");
    event["errorCode"] = Value::Null;
    assert!(rule.matches(&event));
    event["errorCode"] = json!("success");
    assert!(rule.matches(&event));
    event.as_object_mut().map(|o| o.remove("errorCode"));
    assert!(rule.matches(&event));
    event["errorCode"] = json!("AccessDenied");
    assert!(!rule.matches(&event));
}

#[test]
fn seed_failed_sign_ins_fire_failed_login() {
    let rules = shared_rules();
    let rule = &rules[FAILED_LOGIN];
    let events = jsonl("seed-scenarios.jsonl");
    let hits: Vec<&Value> = events.iter().filter(|e| rule.matches(e)).collect();
    assert_eq!(hits.len(), 2);
    for e in &hits {
        assert_eq!(e["sourceIPAddress"], json!("203.0.113.9"));
        assert_eq!(e["userIdentity"]["userName"], json!("dev-intern"));
    }
    // The successful sign-in and the other stories fire nothing but what they are.
    for e in &events {
        assert!(!rules[DISABLE_LOGGING].matches(e));
        assert!(!rules[ROOT_USAGE].matches(e));
        assert!(!rules[BUCKET_DELETED].matches(e));
    }
}

#[test]
fn otrf_recording_evaluates() {
    let rules = shared_rules();
    let events = jsonl("otrf-ec2-proxy-s3-exfiltration.jsonl");
    let hits = events
        .iter()
        .filter(|e| rules.values().any(|r| r.matches(e)))
        .count();
    // Whatever fires, it is a subset; the point is every record evaluates without failing.
    assert!(hits <= events.len());
}

#[test]
fn load_dir_reports_refused_files() {
    let dir = tempdir();
    std::fs::write(
        dir.join("good.yml"),
        rule_text("sel:\n    eventName: X\n  condition: sel"),
    )
    .unwrap();
    std::fs::write(
        dir.join("bad.yaml"),
        rule_text("sel:\n    eventName: X\n  condition: sel | count() > 5"),
    )
    .unwrap();
    std::fs::write(dir.join("notes.txt"), "not a rule").unwrap();
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(dir.join("sub/windows.yml"), "title: W\nlogsource:\n  product: windows\n  category: process_creation\ndetection:\n  sel:\n    Image: x\n  condition: sel\n").unwrap();
    let (rules, refused) = load_dir(&dir);
    assert_eq!(rules.len(), 1);
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert!(refused[0].0.ends_with("bad.yaml"));
    assert!(refused[0].1.contains("aggregations"), "{}", refused[0].1);
    assert!(refused[1].0.ends_with("sub/windows.yml"));
    assert!(refused[1].1.contains("logsource"), "{}", refused[1].1);
    let (rules, refused) = load_dir(dir.join("missing"));
    assert!(rules.is_empty());
    assert_eq!(refused.len(), 1);
    std::fs::remove_dir_all(&dir).ok();
}

fn tempdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "cairn-sigma-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

// ---------------------------------------------------------------------------------------------
// Case by case.

/// A rule around `detection` (its lines indented by two spaces after the first).
fn rule_text(detection: &str) -> String {
    format!(
        "title: Test rule\nid: t-1\nlogsource:\n  product: aws\n  service: cloudtrail\ndetection:\n  {detection}\nlevel: low\n"
    )
}

fn rule(detection: &str) -> SigmaRule {
    SigmaRule::parse(&rule_text(detection)).unwrap_or_else(|e| panic!("{e}"))
}

fn refusal(detection: &str) -> String {
    match SigmaRule::parse(&rule_text(detection)) {
        Ok(_) => panic!("accepted: {detection}"),
        Err(e) => e.to_string(),
    }
}

/// One field selection `sel: {key: value}` with condition `sel`.
fn field(key: &str, value: &str) -> SigmaRule {
    rule(&format!("sel:\n    {key}: {value}\n  condition: sel"))
}

fn sample() -> Value {
    json!({
        "eventName": "ConsoleLogin",
        "eventSource": "signin.amazonaws.com",
        "readOnly": false,
        "count": 5,
        "ratio": 2.5,
        "errorCode": null,
        "empty": "",
        "userAgent": "Mozilla/5.0 (TruffleHog) *star* a?b c\\d",
        "sourceIPAddress": "203.0.113.9",
        "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::1:user/alice", "userName": "alice"},
        "responseElements": {"accessKey": {"userName": "ALICE"}},
        "requestParameters": {
            "ipPermissions": {"items": [
                {"ipRanges": {"items": [{"cidrIp": "10.0.0.0/8"}]}},
                {"ipRanges": {"items": [{"cidrIp": "0.0.0.0/0"}, {"cidrIp": "192.168.1.0/24"}]}}
            ]},
            "dotted.key": "yes",
            "tags": []
        },
        "multiline": "first\nsecond"
    })
}

#[test]
fn plain_values_are_case_insensitive_exact() {
    let e = sample();
    assert!(field("eventName", "consolelogin").matches(&e));
    assert!(field("eventName", "CONSOLELOGIN").matches(&e));
    assert!(!field("eventName", "ConsoleLog").matches(&e));
    assert!(!field("missing", "x").matches(&e));
    assert!(field("userIdentity.type", "iamuser").matches(&e));
}

#[test]
fn lists_are_or_and_all_makes_them_and() {
    let e = sample();
    assert!(field("eventName", "[StopLogging, ConsoleLogin]").matches(&e));
    assert!(!field("eventName", "[StopLogging, DeleteTrail]").matches(&e));
    assert!(field("userAgent|contains|all", "[mozilla, trufflehog]").matches(&e));
    assert!(!field("userAgent|contains|all", "[mozilla, curl]").matches(&e));
    assert!(field("userAgent|contains", "[curl, trufflehog]").matches(&e));
}

#[test]
fn several_fields_and_list_of_maps_or() {
    let e = sample();
    let and = rule(
        "sel:\n    eventName: ConsoleLogin\n    eventSource: ec2.amazonaws.com\n  condition: sel",
    );
    assert!(!and.matches(&e));
    let or = rule(
        "sel:\n    - eventName: Nope\n    - eventSource: signin.amazonaws.com\n  condition: sel",
    );
    assert!(or.matches(&e));
    let neither = rule("sel:\n    - eventName: Nope\n    - eventSource: nope\n  condition: sel");
    assert!(!neither.matches(&e));
}

#[test]
fn contains_startswith_endswith() {
    let e = sample();
    assert!(field("userAgent|contains", "TRUFFLEHOG").matches(&e));
    assert!(!field("userAgent|contains", "curl").matches(&e));
    assert!(field("userAgent|startswith", "mozilla/").matches(&e));
    assert!(!field("userAgent|startswith", "TruffleHog").matches(&e));
    assert!(field("eventSource|endswith", ".AMAZONAWS.COM").matches(&e));
    assert!(!field("eventSource|endswith", "signin").matches(&e));
    // Wildcards still work inside modified values.
    assert!(field("userAgent|contains", "truffle*)").matches(&e));
}

#[test]
fn cased_makes_comparison_case_sensitive() {
    let e = sample();
    assert!(field("eventName|cased", "ConsoleLogin").matches(&e));
    assert!(!field("eventName|cased", "consolelogin").matches(&e));
    assert!(field("userAgent|contains|cased", "TruffleHog").matches(&e));
    assert!(!field("userAgent|contains|cased", "trufflehog").matches(&e));
}

#[test]
fn wildcards_and_escapes() {
    let e = sample();
    assert!(field("eventName", "Console*").matches(&e));
    assert!(field("eventName", "'*Login'").matches(&e));
    assert!(field("eventName", "C*e*n").matches(&e));
    assert!(field("eventName", "Consol?Login").matches(&e));
    assert!(!field("eventName", "Consol?Logi").matches(&e));
    assert!(field("eventName", "'*'").matches(&e));
    assert!(field("sourceIPAddress", "203.0.113.*").matches(&e));
    assert!(!field("sourceIPAddress", "203.0.114.*").matches(&e));
    // \* is a literal star, \? a literal question mark, \\ a backslash.
    assert!(field("userAgent|contains", r"'\*star\*'").matches(&e));
    assert!(!field("eventName", r"'Console\*'").matches(&e));
    assert!(field("userAgent|contains", r"'a\?b'").matches(&e));
    assert!(!field("userAgent|contains", r"'ax\?b'").matches(&e));
    assert!(field("userAgent|endswith", r"'c\\d'").matches(&e));
    // A backslash before anything else is itself.
    assert!(field("userAgent|endswith", r"'c\d'").matches(&e));
}

#[test]
fn null_and_empty_string() {
    let e = sample();
    assert!(field("errorCode", "null").matches(&e), "JSON null");
    assert!(field("errorMessage", "null").matches(&e), "missing field");
    assert!(
        field("requestParameters.tags", "null").matches(&e),
        "empty array"
    );
    assert!(!field("eventName", "null").matches(&e));
    assert!(!field("empty", "null").matches(&e));
    assert!(field("empty", "''").matches(&e));
    assert!(!field("eventName", "''").matches(&e));
    assert!(!field("errorCode", "''").matches(&e));
    assert!(!field("missing", "''").matches(&e));
    assert!(field("eventName", "[null, ConsoleLogin]").matches(&e));
    assert!(field("errorCode", "~").matches(&e));
}

#[test]
fn numbers_and_booleans_compare_as_text() {
    let e = sample();
    assert!(field("readOnly", "'false'").matches(&e));
    assert!(field("readOnly", "false").matches(&e));
    assert!(field("readOnly", "FALSE").matches(&e));
    assert!(!field("readOnly", "true").matches(&e));
    assert!(field("count", "5").matches(&e));
    assert!(field("count", "'5'").matches(&e));
    assert!(!field("count", "6").matches(&e));
    assert!(field("ratio", "2.5").matches(&e));
    let s = json!({"flag": "true", "n": "5"});
    assert!(field("flag", "true").matches(&s));
    assert!(field("n", "5").matches(&s));
}

#[test]
fn dotted_paths_walk_objects_and_arrays() {
    let e = sample();
    let path = "requestParameters.ipPermissions.items.ipRanges.items.cidrIp";
    assert!(field(path, "0.0.0.0/0").matches(&e));
    assert!(field(path, "10.0.0.0/8").matches(&e));
    assert!(!field(path, "1.2.3.4/32").matches(&e));
    assert!(
        field("requestParameters.dotted.key", "yes").matches(&e),
        "key with a dot"
    );
    assert!(
        !field("userIdentity", "x").matches(&e),
        "objects are not leaves"
    );
    assert!(!field("eventName.sub", "x").matches(&e));
    assert!(
        field("eventName.sub", "null").matches(&e),
        "below a scalar is missing"
    );
    let arr = json!({"tags": ["a", ["b", "c"]]});
    assert!(field("tags", "c").matches(&arr));
}

#[test]
fn re_with_sub_modifiers() {
    let e = sample();
    assert!(field("eventName|re", "'^Console(Login|Logout)$'").matches(&e));
    assert!(
        !field("eventName|re", "'^consolelogin$'").matches(&e),
        "re is case-sensitive"
    );
    assert!(field("eventName|re|i", "'^consolelogin$'").matches(&e));
    assert!(!field("multiline|re", "'^second$'").matches(&e));
    assert!(field("multiline|re|m", "'^second$'").matches(&e));
    assert!(!field("multiline|re", "'first.second'").matches(&e));
    assert!(field("multiline|re|s", "'first.second'").matches(&e));
    assert!(
        field("count|re", "'^[0-9]+$'").matches(&e),
        "numbers as text"
    );
    assert!(field("eventName|re", "['^x', 'Login$']").matches(&e));
    assert!(!field("eventName|re|all", "['^x', 'Login$']").matches(&e));
}

#[test]
fn cidr() {
    let e = sample();
    assert!(field("sourceIPAddress|cidr", "203.0.113.0/24").matches(&e));
    assert!(!field("sourceIPAddress|cidr", "198.51.100.0/24").matches(&e));
    assert!(field("sourceIPAddress|cidr", "[10.0.0.0/8, 203.0.0.0/8]").matches(&e));
    assert!(
        field("sourceIPAddress|cidr", "203.0.113.9").matches(&e),
        "bare address"
    );
    assert!(
        !field("eventName|cidr", "0.0.0.0/0").matches(&e),
        "not an address"
    );
    let v6 = json!({"ip": "2001:db8::1"});
    assert!(field("ip|cidr", "'2001:db8::/32'").matches(&v6));
}

#[test]
fn exists() {
    let e = sample();
    assert!(field("eventName|exists", "true").matches(&e));
    assert!(
        field("errorCode|exists", "true").matches(&e),
        "present as null"
    );
    assert!(!field("errorMessage|exists", "true").matches(&e));
    assert!(field("errorMessage|exists", "false").matches(&e));
    assert!(!field("eventName|exists", "false").matches(&e));
    assert!(
        field(
            "requestParameters.ipPermissions.items.ipRanges|exists",
            "true"
        )
        .matches(&e)
    );
}

#[test]
fn numeric_comparisons() {
    let e = sample();
    assert!(field("count|gt", "4").matches(&e));
    assert!(!field("count|gt", "5").matches(&e));
    assert!(field("count|gte", "5").matches(&e));
    assert!(field("count|lt", "5.5").matches(&e));
    assert!(field("count|lte", "5").matches(&e));
    assert!(!field("eventName|lt", "5").matches(&e));
}

#[test]
fn fieldref() {
    let e = sample();
    assert!(
        field(
            "userIdentity.userName|fieldref",
            "responseElements.accessKey.userName"
        )
        .matches(&e)
    );
    assert!(
        !field(
            "userIdentity.userName|fieldref|cased",
            "responseElements.accessKey.userName"
        )
        .matches(&e)
    );
    assert!(
        field(
            "userIdentity.arn|contains|fieldref",
            "responseElements.accessKey.userName"
        )
        .matches(&e)
    );
    assert!(
        field(
            "userIdentity.arn|endswith|fieldref",
            "userIdentity.userName"
        )
        .matches(&e)
    );
    assert!(
        !field(
            "userIdentity.arn|startswith|fieldref",
            "userIdentity.userName"
        )
        .matches(&e)
    );
    assert!(!field("eventName|fieldref", "missing").matches(&e));
    // Without fieldref the value is literal text.
    assert!(
        !field(
            "userIdentity.arn|contains",
            "responseElements.accessKey.userName"
        )
        .matches(&e)
    );
}

#[test]
fn conditions() {
    let e = sample();
    let det = |cond: &str| {
        rule(&format!(
            "sel_a:\n    eventName: ConsoleLogin\n  sel_b:\n    eventSource: signin.amazonaws.com\n  sel_c:\n    eventName: Nope\n  _hidden:\n    eventName: Nope\n  filter:\n    readOnly: true\n  condition: {cond}"
        ))
    };
    let yes = |cond: &str| assert!(det(cond).matches(&e), "{cond}");
    let no = |cond: &str| assert!(!det(cond).matches(&e), "{cond}");
    yes("sel_a");
    no("sel_c");
    yes("sel_a and sel_b");
    no("sel_a and sel_c");
    yes("sel_c or sel_a");
    no("sel_c or filter");
    yes("not sel_c");
    no("not sel_a");
    yes("not not sel_a");
    yes("sel_a and not filter");
    yes("sel_c or sel_a and sel_b"); // and binds tighter
    no("(sel_c or sel_a) and sel_c");
    yes("((sel_a))");
    yes("sel_a AND NOT sel_c");
    yes("1 of sel_*");
    no("all of sel_*");
    yes("1 of sel_? and not 1 of filter*");
    no("all of sel_? and not 1 of filter*");
    yes("all of sel_a");
    yes("2 of sel_*");
    no("3 of sel_*");
    yes("any of sel_*");
    yes("1 of them");
    no("all of them");
    // `them` leaves out names starting with an underscore.
    let r = rule(
        "sel:\n    eventName: ConsoleLogin\n  _opt:\n    eventName: Nope\n  condition: all of them",
    );
    assert!(r.matches(&e));
    let r = rule(
        "sel:\n    eventName: ConsoleLogin\n  _opt:\n    eventName: Nope\n  condition: all of *",
    );
    assert!(!r.matches(&e));
    // A list of conditions is an OR.
    let r = rule(
        "a:\n    eventName: Nope\n  b:\n    eventName: ConsoleLogin\n  condition:\n    - a\n    - b",
    );
    assert!(r.matches(&e));
    let r =
        rule("a:\n    eventName: Nope\n  b:\n    eventName: Nope2\n  condition:\n    - a\n    - b");
    assert!(!r.matches(&e));
}

fn assert_refused(detection: &str, part: &str, reason: &str) {
    let msg = refusal(detection);
    assert!(msg.contains("\"Test rule\""), "names the rule: {msg}");
    assert!(msg.contains(part), "names {part:?}: {msg}");
    assert!(msg.contains(reason), "says {reason:?}: {msg}");
}

#[test]
fn refusals_with_reasons() {
    assert_refused(
        "sel:\n    eventName: X\n  condition: sel | count() by sourceIPAddress > 5",
        "detection.condition",
        "aggregations",
    );
    assert_refused(
        "sel:\n    eventName: X\n  sel2:\n    eventName: Y\n  condition: sel near sel2",
        "detection.condition",
        "\"near\"",
    );
    assert_refused(
        "sel:\n    eventName|sounds_like: X\n  condition: sel",
        "detection.sel.eventName|sounds_like",
        "unknown modifier \"sounds_like\"",
    );
    assert_refused(
        "sel:\n    eventName|windash: X\n  condition: sel",
        "detection.sel.eventName|windash",
        "not supported",
    );
    assert_refused(
        "sel:\n    eventName|base64offset|contains: X\n  condition: sel",
        "detection.sel",
        "not supported",
    );
    assert_refused(
        "sel:\n    eventName|re: '(unclosed'\n  condition: sel",
        "detection.sel.eventName|re",
        "bad regular expression",
    );
    assert_refused(
        "sel:\n    eventName|i: x\n  condition: sel",
        "detection.sel.eventName|i",
        "sub-modifier of \"re\"",
    );
    assert_refused(
        "sel:\n    eventName|contains|re: x\n  condition: sel",
        "detection.sel",
        "cannot be combined",
    );
    assert_refused(
        "sel:\n    eventName|contains|startswith: x\n  condition: sel",
        "detection.sel",
        "cannot be combined",
    );
    assert_refused(
        "sel:\n    ip|cidr: 10.0.0.0/33\n  condition: sel",
        "detection.sel.ip|cidr",
        "not a CIDR block",
    );
    assert_refused(
        "sel:\n    ip|exists: maybe\n  condition: sel",
        "detection.sel.ip|exists",
        "true or false",
    );
    assert_refused(
        "sel:\n    n|gt: many\n  condition: sel",
        "detection.sel.n|gt",
        "not a number",
    );
    assert_refused(
        "sel:\n    eventName|contains: null\n  condition: sel",
        "detection.sel",
        "null cannot be used with modifiers",
    );
    assert_refused("sel:\n    eventName: X", "detection.condition", "missing");
    assert_refused(
        "sel:\n    eventName: X\n  condition: sel and other",
        "detection.condition",
        "selection \"other\" is not defined",
    );
    assert_refused(
        "sel:\n    eventName: X\n  condition: 1 of filter_*",
        "detection.condition",
        "names no selection",
    );
    assert_refused(
        "sel:\n    eventName: X\n  condition: (sel",
        "detection.condition",
        "missing \")\"",
    );
    assert_refused(
        "sel:\n    eventName: X\n  condition: sel and",
        "detection.condition",
        "unexpected end",
    );
    assert_refused(
        "sel:\n    eventName: X\n  condition: sel sel",
        "detection.condition",
        "unexpected",
    );
    assert_refused(
        "keywords:\n    - 'mimikatz'\n    - 'lsass'\n  condition: keywords",
        "detection.keywords",
        "keyword search",
    );
    assert_refused(
        "sel:\n    '|contains': X\n  condition: sel",
        "detection.sel",
        "keyword search",
    );
    assert_refused(
        "sel:\n    eventName: []\n  condition: sel",
        "detection.sel.eventName",
        "empty list",
    );
    assert_refused(
        "sel:\n    eventName:\n      nested: map\n  condition: sel",
        "detection.sel.eventName",
        "not a map",
    );
    assert_refused(
        "sel:\n    eventName: X\n  timeframe: 5m\n  condition: sel",
        "detection.timeframe",
        "not supported",
    );
}

#[test]
fn rule_level_refusals() {
    let no_detection = "title: Test rule\nlogsource:\n  product: aws\n  service: cloudtrail\n";
    let msg = SigmaRule::parse(no_detection).unwrap_err().to_string();
    assert_eq!(msg, "Sigma rule \"Test rule\": detection: missing");

    let windows = "title: Test rule\nlogsource:\n  product: windows\n  service: security\ndetection:\n  sel:\n    EventID: 4624\n  condition: sel\n";
    let msg = SigmaRule::parse(windows).unwrap_err().to_string();
    assert!(
        msg.contains("logsource.product") && msg.contains("\"windows\""),
        "{msg}"
    );

    let other_service = "title: Test rule\nlogsource:\n  product: aws\n  service: guardduty\ndetection:\n  sel:\n    a: b\n  condition: sel\n";
    let msg = SigmaRule::parse(other_service).unwrap_err().to_string();
    assert!(
        msg.contains("logsource.service") && msg.contains("guardduty"),
        "{msg}"
    );

    let no_logsource = "title: Test rule\ndetection:\n  sel:\n    a: b\n  condition: sel\n";
    let msg = SigmaRule::parse(no_logsource).unwrap_err().to_string();
    assert!(msg.contains("logsource: missing"), "{msg}");

    let no_title = "logsource:\n  product: aws\n  service: cloudtrail\ndetection:\n  sel:\n    a: b\n  condition: sel\n";
    let msg = SigmaRule::parse(no_title).unwrap_err().to_string();
    assert!(msg.contains("title: missing"), "{msg}");

    assert!(matches!(
        SigmaRule::parse("title: [unclosed"),
        Err(SigmaError::Yaml(_))
    ));
    assert!(matches!(SigmaRule::parse(""), Err(SigmaError::Yaml(_))));
    assert!(matches!(
        SigmaRule::parse("a: 1\n---\nb: 2\n"),
        Err(SigmaError::Yaml(_))
    ));
    assert!(matches!(
        SigmaRule::parse("a: &x 1\nb: *x\n"),
        Err(SigmaError::Yaml(_))
    ));
    assert!(matches!(
        SigmaRule::parse("a: 1\na: 2\n"),
        Err(SigmaError::Yaml(_))
    ));
    let err = SigmaRule::parse("- just\n- a list\n").unwrap_err();
    assert!(err.to_string().contains("must be a map"), "{err}");
    let deep = format!("title: T\nx: {}{}\n", "[".repeat(200), "]".repeat(200));
    assert!(SigmaRule::parse(&deep).is_err());
    let deep_block = format!("{}x\n", "- ".repeat(5000));
    assert!(SigmaRule::parse(&deep_block).is_err());
    let deep_maps: String = (0..2000)
        .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
        .collect();
    assert!(SigmaRule::parse(&deep_maps).is_err());
    let deep_cond = format!(
        "sel:\n    a: b\n  condition: {}sel{}",
        "(".repeat(500),
        ")".repeat(500)
    );
    assert!(refusal(&deep_cond).contains("nested deeper"));
    let nots = format!("sel:\n    a: b\n  condition: {}sel", "not ".repeat(500));
    assert!(refusal(&nots).contains("nested deeper"));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn parsing_arbitrary_text_never_panics(text in "\\PC{0,400}") {
        let _ = SigmaRule::parse(&text);
    }

    #[test]
    fn parsing_rule_shaped_text_never_panics(
        key in "[a-zA-Z.|*?\\\\]{0,30}",
        value in "[ -~]{0,30}",
        cond in "[a-z_ ()|*0-9]{0,40}",
    ) {
        let text = format!(
            "title: P\nlogsource:\n  product: aws\n  service: cloudtrail\ndetection:\n  sel_a:\n    {key}: {value}\n  condition: {cond}\n"
        );
        if let Ok(rule) = SigmaRule::parse(&text) {
            let _ = rule.matches(&sample());
        }
    }

    #[test]
    fn matching_arbitrary_json_never_panics(event in arb_json()) {
        for rule in shared_rules().values() {
            let _ = rule.matches(&event);
        }
        let r = rule("sel:\n    a.b.c|re: '^x'\n    a|cidr: 10.0.0.0/8\n    b|gt: 3\n    c|fieldref: a.b\n    d|exists: false\n    e: 'x*y?z'\n    f: null\n  condition: 1 of them or not sel");
        let _ = r.matches(&event);
    }
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or(Value::Null)),
        "[a-zA-Z0-9./:*? ]{0,12}".prop_map(Value::String),
        prop_oneof![Just("10.1.2.3"), Just("x"), Just("2001:db8::1")].prop_map(|s| json!(s)),
    ];
    leaf.prop_recursive(6, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("a".to_owned()),
                    Just("b".to_owned()),
                    Just("c".to_owned()),
                    Just("a.b".to_owned()),
                    "[a-z.]{0,4}"
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}
