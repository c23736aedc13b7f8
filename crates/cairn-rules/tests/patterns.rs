//! Event patterns against EventBridge's documented examples, CloudTrail events, invalid
//! patterns, and properties over arbitrary JSON.

use cairn_rules::pattern::{MAX_DEPTH, MAX_PATTERN_LEN, Pattern, PatternError};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

fn pattern(p: Value) -> Pattern {
    Pattern::parse(&p).unwrap_or_else(|e| panic!("pattern {p} refused: {e}"))
}

fn matches(p: Value, event: &Value) -> bool {
    pattern(p).matches(event)
}

fn error(p: Value) -> String {
    match Pattern::parse(&p) {
        Ok(_) => panic!("pattern {p} was accepted"),
        Err(e) => e.to_string(),
    }
}

/// The example event of EventBridge's content-filtering guide.
fn ec2_event() -> Value {
    json!({
        "version": "0",
        "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
        "detail-type": "EC2 Instance State-change Notification",
        "source": "aws.ec2",
        "account": "111122223333",
        "time": "2017-12-22T18:43:48Z",
        "region": "ca-central-1",
        "resources": [
            "arn:aws:ec2:us-east-1:123456789012:instance/i-b188560f",
            "arn:aws:ec2:us-east-1:111122223333:instance/i-b188560f",
            "arn:aws:ec2:us-east-1:444455556666:instance/i-b188560f"
        ],
        "detail": {
            "instance-id": "i-1234567890abcdef0",
            "state": "running",
            "c-count": 5,
            "d-count": 3,
            "x-limit": 301.8,
            "source-ip": "10.0.0.123",
            "FileName": "dir/image.png",
            "responseElements": null,
            "eventVersion": ""
        }
    })
}

fn envelope(detail: Value) -> Value {
    json!({
        "version": "0",
        "id": "c0c2ac5c-0d84-4c57-9a4c-8d1e5d2b9b8e",
        "detail-type": "AWS API Call via CloudTrail",
        "source": detail["eventSource"].as_str().map(|s| format!("aws.{}", s.split('.').next().unwrap())),
        "account": "123456789012",
        "time": "2024-05-01T12:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": detail
    })
}

fn stop_logging() -> Value {
    envelope(json!({
        "eventVersion": "1.09",
        "userIdentity": {
            "type": "Root",
            "principalId": "123456789012",
            "arn": "arn:aws:iam::123456789012:root",
            "accountId": "123456789012"
        },
        "eventTime": "2024-05-01T12:00:00Z",
        "eventSource": "cloudtrail.amazonaws.com",
        "eventName": "StopLogging",
        "awsRegion": "us-east-1",
        "sourceIPAddress": "198.51.100.7",
        "userAgent": "aws-cli/2.15.0",
        "requestParameters": {"name": "arn:aws:cloudtrail:us-east-1:123456789012:trail/main"},
        "responseElements": null,
        "readOnly": false,
        "eventType": "AwsApiCall",
        "managementEvent": true
    }))
}

fn authorize_ingress() -> Value {
    envelope(json!({
        "eventVersion": "1.09",
        "userIdentity": {"type": "IAMUser", "userName": "alice", "accountId": "123456789012"},
        "eventSource": "ec2.amazonaws.com",
        "eventName": "AuthorizeSecurityGroupIngress",
        "sourceIPAddress": "2001:db8::15",
        "requestParameters": {
            "groupId": "sg-0123456789abcdef0",
            "ipPermissions": {"items": [
                {
                    "ipProtocol": "tcp", "fromPort": 443, "toPort": 443,
                    "ipRanges": {"items": [{"cidrIp": "10.0.0.0/8"}]}
                },
                {
                    "ipProtocol": "tcp", "fromPort": 22, "toPort": 22,
                    "ipRanges": {"items": [{"cidrIp": "192.0.2.0/24"}, {"cidrIp": "0.0.0.0/0"}]}
                }
            ]}
        },
        "responseElements": {"_return": true},
        "readOnly": false
    }))
}

// ---------------------------------------------------------------------------------------------
// Documented examples

#[test]
fn exact_values_and_and_semantics() {
    let e = ec2_event();
    assert!(matches(
        json!({"source": ["aws.ec2"], "detail": {"state": ["running"]}}),
        &e
    ));
    assert!(matches(
        json!({"source": ["aws.ec2"], "detail-type": ["EC2 Instance State-change Notification"],
               "detail": {"state": ["terminated", "running"]}}),
        &e
    ));
    assert!(!matches(
        json!({"source": ["aws.ec2"], "detail": {"state": ["terminated"]}}),
        &e
    ));
    assert!(!matches(
        json!({"source": ["aws.s3"], "detail": {"state": ["running"]}}),
        &e
    ));
    // A field missing from the event never matches an exact value.
    assert!(!matches(json!({"detail": {"missing": ["running"]}}), &e));
    // Case matters for exact values.
    assert!(!matches(json!({"detail": {"state": ["RUNNING"]}}), &e));
}

#[test]
fn arrays_in_the_event_match_on_any_element() {
    let e = ec2_event();
    assert!(matches(
        json!({"resources": [
            "arn:aws:ec2:us-east-1:123456789012:instance/i-b188560f",
            "arn:aws:ec2:us-east-1:000000000000:instance/i-b188560f"
        ]}),
        &e
    ));
    assert!(!matches(
        json!({"resources": ["arn:aws:ec2:us-east-1:000000000000:instance/i-b188560f"]}),
        &e
    ));
    // Arrays of arrays are flattened.
    assert!(matches(json!({"a": [3]}), &json!({"a": [[1, 2], [[3]]]})));
}

#[test]
fn null_and_empty_string_are_distinct_values() {
    let e = ec2_event();
    assert!(matches(json!({"detail": {"eventVersion": [""]}}), &e));
    assert!(matches(json!({"detail": {"responseElements": [null]}}), &e));
    assert!(!matches(json!({"detail": {"eventVersion": [null]}}), &e));
    assert!(!matches(json!({"detail": {"responseElements": [""]}}), &e));
    // null does not match a missing field.
    assert!(!matches(json!({"detail": {"missing": [null]}}), &e));
}

#[test]
fn numbers_booleans_compare_by_value() {
    let e = json!({"n": 5, "f": 301.8, "b": false, "s": "5", "big": 9007199254740993u64});
    assert!(matches(json!({"n": [5.0]}), &e));
    assert!(matches(json!({"n": [5]}), &e));
    assert!(matches(json!({"f": [3.018e2]}), &e));
    assert!(!matches(json!({"n": ["5"]}), &e));
    assert!(!matches(json!({"s": [5]}), &e));
    assert!(matches(json!({"b": [false]}), &e));
    assert!(!matches(json!({"b": [true]}), &e));
    assert!(!matches(json!({"b": ["false"]}), &e));
    assert!(matches(json!({"big": [9007199254740993u64]}), &e));
    assert!(!matches(json!({"big": [9007199254740992u64]}), &e));
}

#[test]
fn prefix_matching() {
    let e = ec2_event();
    assert!(matches(json!({"region": [{"prefix": "ca-"}]}), &e));
    assert!(matches(json!({"time": [{"prefix": "2017-12-22"}]}), &e));
    assert!(!matches(json!({"region": [{"prefix": "us-"}]}), &e));
    assert!(!matches(json!({"region": [{"prefix": "CA-"}]}), &e));
    assert!(matches(
        json!({"region": [{"prefix": {"equals-ignore-case": "CA-Central"}}]}),
        &e
    ));
    let svc = json!({"service": "EventBridge"});
    assert!(matches(
        json!({"service": [{"prefix": {"equals-ignore-case": "eventb"}}]}),
        &svc
    ));
    assert!(!matches(
        json!({"service": [{"prefix": {"equals-ignore-case": "bridge"}}]}),
        &svc
    ));
    // Prefix matches strings only.
    assert!(!matches(json!({"n": [{"prefix": "1"}]}), &json!({"n": 12})));
}

#[test]
fn suffix_matching() {
    let e = ec2_event();
    assert!(matches(
        json!({"detail": {"FileName": [{"suffix": ".png"}]}}),
        &e
    ));
    assert!(!matches(
        json!({"detail": {"FileName": [{"suffix": ".PNG"}]}}),
        &e
    ));
    assert!(matches(
        json!({"detail": {"FileName": [{"suffix": {"equals-ignore-case": ".PNG"}}]}}),
        &e
    ));
    let svc = json!({"service": "EventBridge"});
    assert!(matches(
        json!({"service": [{"suffix": {"equals-ignore-case": "tBRIDGE"}}]}),
        &svc
    ));
    assert!(!matches(
        json!({"service": [{"suffix": {"equals-ignore-case": "event"}}]}),
        &svc
    ));
}

#[test]
fn equals_ignore_case() {
    let e = json!({"detail-type": "EC2 Instance State-change Notification", "name": "Alice"});
    assert!(matches(
        json!({"detail-type": [{"equals-ignore-case": "ec2 instance state-change notification"}]}),
        &e
    ));
    assert!(matches(
        json!({"name": [{"equals-ignore-case": "ALICE"}]}),
        &e
    ));
    assert!(!matches(
        json!({"name": [{"equals-ignore-case": "alic"}]}),
        &e
    ));
    assert!(matches(
        json!({"name": [{"equals-ignore-case": "ÉLODIE"}]}),
        &json!({"name": "élodie"})
    ));
}

#[test]
fn anything_but() {
    let e = ec2_event();
    assert!(matches(
        json!({"detail": {"state": [{"anything-but": "initializing"}]}}),
        &e
    ));
    assert!(!matches(
        json!({"detail": {"state": [{"anything-but": "running"}]}}),
        &e
    ));
    assert!(matches(
        json!({"detail": {"state": [{"anything-but": ["stopped", "overloaded"]}]}}),
        &e
    ));
    assert!(!matches(
        json!({"detail": {"state": [{"anything-but": ["stopped", "running"]}]}}),
        &e
    ));
    assert!(matches(
        json!({"detail": {"x-limit": [{"anything-but": 123}]}}),
        &e
    ));
    assert!(!matches(
        json!({"detail": {"c-count": [{"anything-but": [5.0, 7]}]}}),
        &e
    ));
    assert!(matches(
        json!({"detail": {"c-count": [{"anything-but": [4, 7]}]}}),
        &e
    ));
    assert!(matches(
        json!({"detail": {"state": [{"anything-but": {"prefix": "init"}}]}}),
        &e
    ));
    assert!(!matches(
        json!({"detail": {"state": [{"anything-but": {"prefix": "run"}}]}}),
        &e
    ));
    assert!(!matches(
        json!({"detail": {"FileName": [{"anything-but": {"suffix": ".png"}}]}}),
        &e
    ));
    assert!(matches(
        json!({"detail": {"FileName": [{"anything-but": {"suffix": [".txt", ".jpg"]}}]}}),
        &e
    ));
    assert!(!matches(
        json!({"detail": {"state": [{"anything-but": {"equals-ignore-case": ["Stopped", "RUNNING"]}}]}}),
        &e
    ));
    assert!(matches(
        json!({"detail": {"state": [{"anything-but": {"equals-ignore-case": "Initializing"}}]}}),
        &e
    ));
    let lib = json!({"FilePath": "/usr/lib/libc.so"});
    assert!(!matches(
        json!({"FilePath": [{"anything-but": {"wildcard": "*/lib/*"}}]}),
        &lib
    ));
    assert!(matches(
        json!({"FilePath": [{"anything-but": {"wildcard": ["*/bin/*", "*.txt"]}}]}),
        &lib
    ));
    // anything-but does not match a missing field.
    assert!(!matches(
        json!({"detail": {"missing": [{"anything-but": "x"}]}}),
        &e
    ));
    // With an array, any element that is not excluded is enough.
    let arr = json!({"states": ["stopped", "running"]});
    assert!(matches(
        json!({"states": [{"anything-but": "stopped"}]}),
        &arr
    ));
    assert!(!matches(
        json!({"states": [{"anything-but": ["stopped", "running"]}]}),
        &arr
    ));
    assert!(!matches(
        json!({"states": [{"anything-but": "x"}]}),
        &json!({"states": []})
    ));
}

#[test]
fn numeric_matching() {
    let e = ec2_event();
    let p = json!({"detail": {
        "c-count": [{"numeric": [">", 0, "<=", 5]}],
        "d-count": [{"numeric": ["<", 10]}],
        "x-limit": [{"numeric": ["=", 3.018e2]}]
    }});
    assert!(matches(p, &e));
    assert!(!matches(
        json!({"detail": {"c-count": [{"numeric": [">", 0, "<", 5]}]}}),
        &e
    ));
    assert!(matches(
        json!({"detail": {"c-count": [{"numeric": [">=", 5]}]}}),
        &e
    ));
    assert!(!matches(
        json!({"detail": {"c-count": [{"numeric": [">", 5]}]}}),
        &e
    ));
    assert!(matches(
        json!({"detail": {"c-count": [{"numeric": ["<=", 10, ">", 4.5]}]}}),
        &e
    ));
    assert!(matches(
        json!({"detail": {"x-limit": [{"numeric": [">", 301, "<", 302]}]}}),
        &e
    ));
    // Numbers only: strings, booleans and null never match numeric.
    assert!(!matches(
        json!({"v": [{"numeric": [">", 0]}]}),
        &json!({"v": "5"})
    ));
    assert!(!matches(
        json!({"v": [{"numeric": [">", 0]}]}),
        &json!({"v": true})
    ));
    assert!(!matches(
        json!({"v": [{"numeric": [">", 0]}]}),
        &json!({"v": null})
    ));
    assert!(matches(
        json!({"v": [{"numeric": ["<", 0]}]}),
        &json!({"v": [3, -1e-3]})
    ));
}

#[test]
fn cidr_matching() {
    let e = ec2_event();
    assert!(matches(
        json!({"detail": {"source-ip": [{"cidr": "10.0.0.0/24"}]}}),
        &e
    ));
    assert!(!matches(
        json!({"detail": {"source-ip": [{"cidr": "10.0.1.0/24"}]}}),
        &e
    ));
    assert!(matches(
        json!({"detail": {"source-ip": [{"cidr": "10.0.0.0/8"}]}}),
        &e
    ));
    let v6 = json!({"sourceIPAddress": "2001:db8:0:0:1::15"});
    assert!(matches(
        json!({"sourceIPAddress": [{"cidr": "2001:db8::/32"}]}),
        &v6
    ));
    assert!(!matches(
        json!({"sourceIPAddress": [{"cidr": "2001:db9::/32"}]}),
        &v6
    ));
    assert!(!matches(
        json!({"sourceIPAddress": [{"cidr": "10.0.0.0/8"}]}),
        &v6
    ));
    // Non-addresses never match.
    let host = json!({"sourceIPAddress": "cloudtrail.amazonaws.com"});
    assert!(!matches(
        json!({"sourceIPAddress": [{"cidr": "0.0.0.0/0"}]}),
        &host
    ));
    assert!(!matches(
        json!({"ip": [{"cidr": "0.0.0.0/0"}]}),
        &json!({"ip": 167772160})
    ));
}

#[test]
fn wildcard_matching() {
    let e = ec2_event();
    assert!(matches(
        json!({"detail": {"FileName": [{"wildcard": "dir/*.png"}]}}),
        &e
    ));
    assert!(!matches(
        json!({"detail": {"FileName": [{"wildcard": "dir/*.jpg"}]}}),
        &e
    ));
    let bus = json!({"EventBusArn": "arn:aws:events:us-east-1:123456789012:event-bus/default"});
    assert!(matches(
        json!({"EventBusArn": [{"wildcard": "arn:aws:events:us-east-1:*:event-bus/*"}]}),
        &bus
    ));
    assert!(!matches(
        json!({"EventBusArn": [{"wildcard": "arn:aws:events:us-west-2:*:event-bus/*"}]}),
        &bus
    ));
    let cases = [
        ("*", "", true),
        ("*", "anything", true),
        ("a*", "a", true),
        ("*a", "ba", true),
        ("a*a", "a", false),
        ("a*a", "aa", true),
        ("a*b*c", "abc", true),
        ("a*b*c", "axxbyybzc", true),
        ("a*b*c", "acb", false),
        ("literal", "literal", true),
        ("literal", "literally", false),
        (r"star\*", "star*", true),
        (r"star\*", "stars", false),
        (r"back\\slash*", r"back\slash!", true),
        (r"\**\*", "*middle*", true),
        (r"\**\*", "*middle", false),
    ];
    for (w, s, expected) in cases {
        assert_eq!(
            matches(json!({"f": [{"wildcard": w}]}), &json!({"f": s})),
            expected,
            "wildcard {w:?} against {s:?}"
        );
    }
}

#[test]
fn exists_matching() {
    let e = ec2_event();
    assert!(matches(
        json!({"detail": {"state": [{"exists": true}]}}),
        &e
    ));
    assert!(!matches(
        json!({"detail": {"state": [{"exists": false}]}}),
        &e
    ));
    assert!(matches(
        json!({"detail": {"c-count": [{"exists": true}]}}),
        &e
    ));
    assert!(matches(
        json!({"detail": {"missing": [{"exists": false}]}}),
        &e
    ));
    assert!(!matches(
        json!({"detail": {"missing": [{"exists": true}]}}),
        &e
    ));
    // null is a value, so it exists.
    assert!(matches(
        json!({"detail": {"responseElements": [{"exists": true}]}}),
        &e
    ));
    // Missing parents: every nested field is missing too.
    assert!(matches(
        json!({"nope": {"deeper": [{"exists": false}]}}),
        &e
    ));
    assert!(!matches(
        json!({"nope": {"deeper": [{"exists": true}]}}),
        &e
    ));
    // exists applies to leaves: objects and empty arrays count as missing.
    assert!(!matches(json!({"detail": [{"exists": true}]}), &e));
    assert!(matches(json!({"detail": [{"exists": false}]}), &e));
    assert!(matches(
        json!({"a": [{"exists": false}]}),
        &json!({"a": []})
    ));
    assert!(!matches(
        json!({"a": [{"exists": true}]}),
        &json!({"a": []})
    ));
    assert!(matches(
        json!({"a": [{"exists": true}]}),
        &json!({"a": [[], [0]]})
    ));
    // Combined with a value: either alternative.
    assert!(matches(json!({"a": ["x", {"exists": false}]}), &json!({})));
    assert!(matches(
        json!({"a": ["x", {"exists": false}]}),
        &json!({"a": "x"})
    ));
    assert!(!matches(
        json!({"a": ["x", {"exists": false}]}),
        &json!({"a": "y"})
    ));
}

#[test]
fn or_matching() {
    let e = ec2_event();
    let p = json!({"detail": {"$or": [
        {"c-count": [{"numeric": [">", 0, "<=", 5]}]},
        {"d-count": [{"numeric": ["<", 10]}]},
        {"x-limit": [{"numeric": [">", 0, "<", 100]}]}
    ]}});
    assert!(matches(p, &e));
    let none = json!({"detail": {"$or": [
        {"c-count": [{"numeric": [">", 5]}]},
        {"x-limit": [{"numeric": ["<", 100]}]}
    ]}});
    assert!(!matches(none, &e));
    // $or at the top level, alongside ordinary fields (which must all match too).
    let top = json!({
        "source": ["aws.ec2"],
        "$or": [
            {"detail-type": ["EC2 Instance Launch Successful"]},
            {"detail": {"state": ["running"]}}
        ]
    });
    assert!(matches(top.clone(), &e));
    let mut other = e.clone();
    other["source"] = json!("aws.s3");
    assert!(!matches(top, &other));
    // Nested $or inside an alternative.
    let nested = json!({"$or": [
        {"region": ["us-east-1"]},
        {"$or": [{"detail": {"state": ["stopped"]}}, {"account": ["111122223333"]}]}
    ]});
    assert!(matches(nested, &e));
}

#[test]
fn nested_patterns_match_within_one_array_element() {
    let e = json!({"items": [{"a": 1, "b": 1}, {"a": 2, "b": 2}]});
    assert!(matches(json!({"items": {"a": [2], "b": [2]}}), &e));
    assert!(!matches(json!({"items": {"a": [1], "b": [2]}}), &e));
    assert!(matches(json!({"items": {"c": [{"exists": false}]}}), &e));
    // A nested pattern never matches a scalar in its place.
    assert!(!matches(
        json!({"items": {"a": [1]}}),
        &json!({"items": "a"})
    ));
    // A leaf list never matches an object in its place.
    assert!(!matches(
        json!({"detail": ["x"]}),
        &json!({"detail": {"x": 1}})
    ));
}

// ---------------------------------------------------------------------------------------------
// CloudTrail

#[test]
fn cloudtrail_tampering() {
    let p = json!({
        "detail-type": ["AWS API Call via CloudTrail"],
        "detail": {
            "eventSource": ["cloudtrail.amazonaws.com"],
            "eventName": ["StopLogging", "DeleteTrail"]
        }
    });
    assert!(matches(p.clone(), &stop_logging()));
    let mut update = stop_logging();
    update["detail"]["eventName"] = json!("UpdateTrail");
    assert!(!matches(p.clone(), &update));
    assert!(!matches(p, &authorize_ingress()));
}

#[test]
fn cloudtrail_open_ingress_through_nested_arrays() {
    let p = json!({"detail": {
        "eventName": ["AuthorizeSecurityGroupIngress"],
        "requestParameters": {"ipPermissions": {"items": {"ipRanges": {"items": {"cidrIp": ["0.0.0.0/0"]}}}}}
    }});
    assert!(matches(p.clone(), &authorize_ingress()));
    let mut closed = authorize_ingress();
    closed["detail"]["requestParameters"]["ipPermissions"]["items"][1]["ipRanges"]["items"][1]["cidrIp"] =
        json!("203.0.113.0/24");
    assert!(!matches(p, &closed));
    // Port 22 open to the world, in the same permission.
    let ssh = json!({"detail": {"requestParameters": {"ipPermissions": {"items": {
        "fromPort": [{"numeric": ["<=", 22]}],
        "toPort": [{"numeric": [">=", 22]}],
        "ipRanges": {"items": {"cidrIp": ["0.0.0.0/0"]}}
    }}}}});
    assert!(matches(ssh, &authorize_ingress()));
    let https_open = json!({"detail": {"requestParameters": {"ipPermissions": {"items": {
        "fromPort": [443],
        "ipRanges": {"items": {"cidrIp": ["0.0.0.0/0"]}}
    }}}}});
    assert!(!matches(https_open, &authorize_ingress()));
}

#[test]
fn cloudtrail_success_root_and_addresses() {
    let succeeded = json!({"detail": {"errorCode": [{"exists": false}]}});
    assert!(matches(succeeded.clone(), &stop_logging()));
    let mut denied = stop_logging();
    denied["detail"]["errorCode"] = json!("AccessDenied");
    assert!(!matches(succeeded, &denied));
    assert!(matches(
        json!({"detail": {"errorCode": [{"prefix": "Access"}]}}),
        &denied
    ));

    let root = json!({"detail": {"userIdentity": {"type": ["Root"]}}});
    assert!(matches(root.clone(), &stop_logging()));
    assert!(!matches(root, &authorize_ingress()));

    let v6 = json!({"detail": {"sourceIPAddress": [{"cidr": "2001:db8::/32"}]}});
    assert!(matches(v6.clone(), &authorize_ingress()));
    assert!(!matches(v6, &stop_logging()));
    let writes = json!({"detail": {"readOnly": [false], "eventName": [{"anything-but": {"prefix": "Describe"}}]}});
    assert!(matches(writes, &stop_logging()));
}

#[test]
fn from_str_parses_text() {
    let p: Pattern = r#"{"detail": {"eventName": [{"wildcard": "Delete*"}]}}"#
        .parse()
        .unwrap();
    let mut e = stop_logging();
    assert!(!p.matches(&e));
    e["detail"]["eventName"] = json!("DeleteTrail");
    assert!(p.matches(&e));
    assert!(matches!(
        "{not json".parse::<Pattern>(),
        Err(PatternError::Json(_))
    ));
}

// ---------------------------------------------------------------------------------------------
// Invalid patterns

#[test]
fn invalid_patterns_name_the_path() {
    let cases: Vec<(Value, &str)> = vec![
        (json!({}), "event pattern: empty objects are not allowed"),
        (json!([]), "event pattern: must be a JSON object"),
        (json!("aws.ec2"), "event pattern: must be a JSON object"),
        (
            json!({"detail": {"eventName": "StopLogging"}}),
            "detail.eventName: values must be a list",
        ),
        (json!({"source": 5}), "source: values must be a list"),
        (
            json!({"detail": {}}),
            "detail: empty objects are not allowed",
        ),
        (json!({"source": []}), "source: empty lists are not allowed"),
        (
            json!({"source": [["aws.ec2"]]}),
            "source: nested lists are not allowed",
        ),
        (
            json!({"source": [{}]}),
            "source: an operator object must have exactly one key, found 0",
        ),
        (
            json!({"source": [{"prefix": "a", "suffix": "b"}]}),
            "source: an operator object must have exactly one key, found 2",
        ),
        (
            json!({"source": [{"regex": "a.*"}]}),
            "source: unknown operator \"regex\"",
        ),
        (
            json!({"source": [{"prefix": 5}]}),
            "source: prefix: expects a string or {\"equals-ignore-case\": \"string\"}",
        ),
        (
            json!({"source": [{"suffix": {"equals-ignore-case": 1}}]}),
            "source: suffix: expects a string or {\"equals-ignore-case\": \"string\"}",
        ),
        (
            json!({"source": [{"equals-ignore-case": ["a"]}]}),
            "source: equals-ignore-case: expects a string",
        ),
        (
            json!({"a": [{"exists": "yes"}]}),
            "a: exists: expects true or false",
        ),
        (
            json!({"detail": {"c-count": [{"numeric": [">", "0"]}]}}),
            "detail.c-count: numeric: \">\" must be followed by a number, not \"0\"",
        ),
        (
            json!({"n": [{"numeric": ["!=", 0]}]}),
            "n: numeric: unknown comparison \"!=\" (expected one of =, <, <=, >, >=)",
        ),
        (
            json!({"n": [{"numeric": [">"]}]}),
            "n: numeric: expects a list such as [\">\", 0, \"<=\", 5]",
        ),
        (
            json!({"n": [{"numeric": []}]}),
            "n: numeric: expects a list such as [\">\", 0, \"<=\", 5]",
        ),
        (
            json!({"n": [{"numeric": 5}]}),
            "n: numeric: expects a list such as [\">\", 0, \"<=\", 5]",
        ),
        (
            json!({"n": [{"numeric": [0, ">"]}]}),
            "n: numeric: 0 is not a comparison (expected one of =, <, <=, >, >=)",
        ),
        (
            json!({"n": [{"numeric": [">", 0, ">", 5]}]}),
            "n: numeric: a range needs one lower bound (> or >=) and one upper bound (< or <=)",
        ),
        (
            json!({"n": [{"numeric": ["=", 0, "<", 5]}]}),
            "n: numeric: \"=\" cannot be combined with another comparison",
        ),
        (
            json!({"n": [{"numeric": [">", 5, "<", 5]}]}),
            "n: numeric: the lower bound 5 must be less than the upper bound 5",
        ),
        (
            json!({"n": [{"numeric": [">", 6e9]}]}),
            "n: numeric: 6000000000 is outside the supported range -5.0e9 to 5.0e9",
        ),
        (
            json!({"ip": [{"cidr": "10.0.0.0/33"}]}),
            "ip: cidr: \"10.0.0.0/33\" is not a valid IPv4 or IPv6 CIDR block",
        ),
        (
            json!({"ip": [{"cidr": "not-an-ip/8"}]}),
            "ip: cidr: \"not-an-ip/8\" is not a valid IPv4 or IPv6 CIDR block",
        ),
        (
            json!({"ip": [{"cidr": "10.0.0.1"}]}),
            "ip: cidr: \"10.0.0.1\" is not a CIDR block (expected an address/prefix-length such as 10.0.0.0/24)",
        ),
        (
            json!({"ip": [{"cidr": 10}]}),
            "ip: cidr: expects a string such as \"10.0.0.0/24\"",
        ),
        (
            json!({"f": [{"wildcard": "a**b"}]}),
            "f: wildcard: \"a**b\" has consecutive wildcard characters",
        ),
        (
            json!({"f": [{"wildcard": "a\\b"}]}),
            "f: wildcard: \"a\\b\" has an invalid escape (only \\* and \\\\ are allowed)",
        ),
        (
            json!({"f": [{"wildcard": "trailing\\"}]}),
            "f: wildcard: \"trailing\\\" has an invalid escape (only \\* and \\\\ are allowed)",
        ),
        (
            json!({"s": [{"anything-but": ["a", 1]}]}),
            "s: anything-but: the list must hold only strings or only numbers",
        ),
        (
            json!({"s": [{"anything-but": [null]}]}),
            "s: anything-but: the list must hold only strings or only numbers",
        ),
        (
            json!({"s": [{"anything-but": []}]}),
            "s: anything-but: the list of values must not be empty",
        ),
        (
            json!({"s": [{"anything-but": {"numeric": [">", 1]}}]}),
            "s: anything-but: unknown operator \"numeric\" (expected prefix, suffix, equals-ignore-case or wildcard)",
        ),
        (
            json!({"s": [{"anything-but": {"prefix": 1}}]}),
            "s: anything-but: prefix expects a string or a non-empty list of strings",
        ),
        (
            json!({"s": [{"anything-but": {"wildcard": "x**"}}]}),
            "s: anything-but: \"x**\" has consecutive wildcard characters",
        ),
        (
            json!({"s": [{"anything-but": true}]}),
            "s: anything-but: expects a string, a number, a list of them, or an operator object",
        ),
        (
            json!({"detail": {"$or": {"a": ["b"]}}}),
            "detail.$or: $or must be a list of at least two objects",
        ),
        (
            json!({"$or": [{"a": ["b"]}]}),
            "$or: $or must be a list of at least two objects",
        ),
        (
            json!({"$or": [{"a": ["b"]}, ["c"]]}),
            "$or[1]: $or must be a list of at least two objects",
        ),
        (
            json!({"$or": [{"a": ["b"]}, {}]}),
            "$or[1]: empty objects are not allowed",
        ),
        (
            json!({"$or": [{"a": ["b"]}, {"c": "d"}]}),
            "$or[1].c: values must be a list",
        ),
    ];
    for (p, expected) in cases {
        assert_eq!(error(p.clone()), expected, "pattern {p}");
    }
}

#[test]
fn limits() {
    let mut deep = json!({"leaf": ["x"]});
    for _ in 0..MAX_DEPTH {
        deep = json!({ "n": deep });
    }
    let message = error(deep);
    assert!(
        message.ends_with(&format!(
            "pattern is nested more than {MAX_DEPTH} levels deep"
        )),
        "{message}"
    );

    let mut ok = json!({"leaf": ["x"]});
    for _ in 0..MAX_DEPTH - 1 {
        ok = json!({ "n": ok });
    }
    assert!(Pattern::parse(&ok).is_ok());

    let names: Vec<String> = (0..1000).map(|i| format!("Event{i}")).collect();
    let big = json!({"detail": {"eventName": names}});
    assert_eq!(
        error(big),
        format!("event pattern: pattern is longer than {MAX_PATTERN_LEN} bytes")
    );

    // Very deep values are refused, and matched, without exhausting the stack.
    let mut very_deep = json!(["x"]);
    for _ in 0..1000 {
        very_deep = json!([very_deep]);
    }
    assert!(Pattern::parse(&json!({"a": very_deep.clone()})).is_err());
    let p = pattern(json!({"a": ["x"]}));
    assert!(p.matches(&json!({"a": very_deep})));
}

// ---------------------------------------------------------------------------------------------
// Properties

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (-1e10f64..1e10).prop_map(Value::from),
        prop_oneof![
            "[a-z]{0,6}",
            Just("10.0.0.5".to_owned()),
            Just("2001:db8::1".to_owned()),
            Just("dir/a.png".to_owned()),
            "[*\\\\a-c]{0,5}",
        ]
        .prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(arb_key(), inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn arb_key() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-c]{1,2}",
        Just("$or".to_owned()),
        Just("prefix".to_owned()),
        Just("suffix".to_owned()),
        Just("anything-but".to_owned()),
        Just("numeric".to_owned()),
        Just("exists".to_owned()),
        Just("cidr".to_owned()),
        Just("wildcard".to_owned()),
        Just("equals-ignore-case".to_owned()),
    ]
}

/// Mostly-valid patterns: operators with plausible and implausible arguments.
fn arb_pattern() -> impl Strategy<Value = Value> {
    let value = prop_oneof![
        arb_json().prop_filter("scalar", |v| !v.is_array() && !v.is_object()),
        "[a-c]{0,3}".prop_map(|s| json!({"prefix": s})),
        "[a-c]{0,3}".prop_map(|s| json!({"suffix": {"equals-ignore-case": s}})),
        "[a-cA-C]{0,3}".prop_map(|s| json!({"equals-ignore-case": s})),
        "[a-c*]{0,4}".prop_map(|s| json!({"wildcard": s})),
        "[a-c]{0,3}".prop_map(|s| json!({"anything-but": s})),
        prop::collection::vec(-5i64..5, 1..3).prop_map(|v| json!({"anything-but": v})),
        "[a-c]{0,3}".prop_map(|s| json!({"anything-but": {"prefix": s}})),
        (-10i64..10, -10i64..10).prop_map(|(a, b)| json!({"numeric": [">", a, "<=", b]})),
        (-10.0f64..10.0).prop_map(|a| json!({"numeric": ["=", a]})),
        Just(json!({"cidr": "10.0.0.0/24"})),
        Just(json!({"cidr": "2001:db8::/32"})),
        any::<bool>().prop_map(|b| json!({"exists": b})),
        arb_json().prop_map(|v| json!({"anything-but": v})),
        arb_json().prop_map(|v| json!({"numeric": v})),
    ];
    let leaf = prop::collection::vec(value, 1..3).prop_map(Value::Array);
    leaf.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            prop::collection::btree_map("[a-c]{1,2}", inner.clone(), 1..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            prop::collection::vec(
                prop::collection::btree_map("[a-c]{1,2}", inner, 1..3)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
                2..4
            )
            .prop_map(|alts| json!({ "$or": alts })),
        ]
    })
    .prop_map(|v| if v.is_object() { v } else { json!({ "a": v }) })
}

/// A pattern matching `event` exactly on every leaf it holds.
fn exact_pattern(event: &Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    for (key, value) in event {
        match value {
            Value::Object(inner) => {
                let nested = exact_pattern(inner);
                if !nested.is_empty() {
                    out.insert(key.clone(), Value::Object(nested));
                }
            }
            Value::Array(_) => {
                let mut leaves = Vec::new();
                let mut first_object = None;
                flatten(value, &mut leaves, &mut first_object);
                if !leaves.is_empty() {
                    out.insert(key.clone(), Value::Array(leaves));
                } else if let Some(object) = first_object {
                    let nested = exact_pattern(object);
                    if !nested.is_empty() {
                        out.insert(key.clone(), Value::Object(nested));
                    }
                }
            }
            scalar => {
                out.insert(key.clone(), Value::Array(vec![scalar.clone()]));
            }
        }
    }
    out
}

fn flatten<'a>(
    value: &'a Value,
    leaves: &mut Vec<Value>,
    first_object: &mut Option<&'a Map<String, Value>>,
) {
    match value {
        Value::Array(items) => items.iter().for_each(|v| flatten(v, leaves, first_object)),
        Value::Object(o) => {
            first_object.get_or_insert(o);
        }
        scalar => leaves.push(scalar.clone()),
    }
}

fn arb_event() -> impl Strategy<Value = Map<String, Value>> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (-1e10f64..1e10).prop_map(Value::from),
        ".{0,8}".prop_map(Value::String),
    ];
    let value = leaf.prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z]{1,4}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    });
    prop::collection::btree_map("[a-z]{1,4}", value, 1..6).prop_map(|m| m.into_iter().collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_json_never_panics(p in arb_json(), e in arb_json()) {
        if let Ok(pattern) = Pattern::parse(&p) {
            let _ = pattern.matches(&e);
        }
        let _ = p.to_string().parse::<Pattern>();
    }

    #[test]
    fn generated_patterns_never_panic(p in arb_pattern(), e in arb_json()) {
        if let Ok(pattern) = Pattern::parse(&p) {
            let _ = pattern.matches(&e);
            let _ = pattern.matches(&json!({"a": e.clone(), "b": [e.clone(), {"c": e}]}));
        }
    }

    #[test]
    fn arbitrary_text_never_panics(text in ".{0,64}") {
        let _ = text.parse::<Pattern>();
    }

    #[test]
    fn exact_pattern_of_an_event_matches_it(event in arb_event()) {
        let p = exact_pattern(&event);
        prop_assume!(!p.is_empty());
        let p = Value::Object(p);
        let pattern = Pattern::parse(&p).map_err(|e| TestCaseError::fail(format!("{p}: {e}")))?;
        prop_assert!(pattern.matches(&Value::Object(event)), "pattern {} should match", p);
    }
}
