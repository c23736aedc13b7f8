//! `Policy::parse` never panics, whatever the text; what parses can be evaluated.

use proptest::prelude::*;
use serde_json::{Map, Value};

use cairn_policy::{Context, Policy, Request, evaluate, explain};

const WORDS: &[&str] = &[
    "Version",
    "2012-10-17",
    "2008-10-17",
    "Id",
    "Statement",
    "Sid",
    "Effect",
    "Allow",
    "Deny",
    "Action",
    "NotAction",
    "Resource",
    "NotResource",
    "Condition",
    "Principal",
    "*",
    "?",
    "cloudtrail:*",
    "cloudtrail:Get*",
    "s3:GetObject",
    "iam:",
    "arn:aws:s3:::b/*",
    "arn:aws:s3:::home/${aws:username}/*",
    "arn:*:*:*:*:*",
    "${aws:userid}",
    "${",
    "${*}",
    "StringEquals",
    "StringNotLikeIfExists",
    "ArnLike",
    "IpAddress",
    "NotIpAddress",
    "Bool",
    "DateLessThan",
    "NumericGreaterThan",
    "Null",
    "NullIfExists",
    "ForAnyValue:StringLike",
    "aws:SourceIp",
    "aws:SecureTransport",
    "aws:CurrentTime",
    "aws:EpochTime",
    "aws:username",
    "aws:PrincipalArn",
    "aws:ViaConsole",
    "10.0.0.0/8",
    "::1/128",
    "2024-01-31",
    "true",
    "é",
    "",
];

fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(WORDS).prop_map(str::to_owned),
        1 => ".{0,12}",
    ]
}

fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        word().prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((word(), inner), 0..6)
                .prop_map(|members| Value::Object(members.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

const ACTIONS: &[&str] = &[
    "*",
    "cloudtrail:*",
    "cloudtrail:Get*",
    "s3:GetObject",
    "CloudTrail:Lookup?vents",
    "cairn:Put*",
    "iam:",
    "cloudtrail",
    "s3*:Get",
];
const RESOURCES: &[&str] = &[
    "*",
    "arn:aws:s3:::b/*",
    "arn:aws:s3:::home/${aws:username}/*",
    "arn:*:*:*:*:*",
    "arn:aws:iam::${aws:PrincipalAccount}:user/${aws:userid}",
    "arn:aws:s3:::${aws:nope}",
    "arn:aws",
    "bucket",
    "arn:aws:s3:::${",
];
const OPERATORS: &[&str] = &[
    "StringEquals",
    "StringNotEquals",
    "StringEqualsIgnoreCase",
    "StringLike",
    "StringNotLikeIfExists",
    "ArnEquals",
    "ArnLike",
    "ArnNotLike",
    "IpAddress",
    "NotIpAddress",
    "IpAddressIfExists",
    "Bool",
    "BoolIfExists",
    "DateEquals",
    "DateLessThan",
    "DateGreaterThanEquals",
    "NumericEquals",
    "NumericLessThan",
    "NumericNotEquals",
    "Null",
    "NullIfExists",
    "ForAnyValue:StringLike",
    "stringequals",
];
const KEYS: &[&str] = &[
    "aws:SourceIp",
    "aws:SecureTransport",
    "aws:CurrentTime",
    "aws:EpochTime",
    "aws:username",
    "aws:userid",
    "aws:PrincipalArn",
    "aws:PrincipalAccount",
    "aws:PrincipalType",
    "aws:RequestedRegion",
    "aws:UserAgent",
    "aws:ViaConsole",
    "AWS:USERNAME",
    "aws:Nope",
];
const VALUES: &[&str] = &[
    "alice",
    "al*",
    "a?ice",
    "${aws:username}",
    "arn:aws:iam::*:user/*",
    "*",
    "10.0.0.0/8",
    "10.1.2.3",
    "2001:db8::/32",
    "::ffff:10.0.0.0/104",
    "true",
    "false",
    "2024-01-31",
    "2024-01-31T12:00:00Z",
    "1700000000",
    "-5",
    "1e3",
    "NaN",
    "",
    "é",
];

fn pick(list: &'static [&'static str]) -> impl Strategy<Value = Value> + Clone {
    prop::sample::select(list).prop_map(|s| Value::String(s.to_owned()))
}

/// Mostly one of the first five (valid) entries of `list`, sometimes any of them.
fn mostly_valid(list: &'static [&'static str]) -> impl Strategy<Value = Value> + Clone {
    prop_oneof![12 => pick(&list[..5]), 1 => pick(list)]
}

/// A string, sometimes an array of them, sometimes anything at all.
fn one_or_many(list: &'static [&'static str]) -> impl Strategy<Value = Value> {
    prop_oneof![
        6 => mostly_valid(list),
        6 => prop::collection::vec(mostly_valid(list), 0..4).prop_map(Value::Array),
        1 => json(),
    ]
}

fn condition_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => one_or_many(VALUES),
        1 => any::<bool>().prop_map(Value::Bool),
        1 => any::<i64>().prop_map(Value::from),
        1 => any::<f64>().prop_map(Value::from),
    ]
}

fn condition() -> impl Strategy<Value = Value> {
    let block = prop::collection::vec((prop::sample::select(KEYS), condition_value()), 0..3)
        .prop_map(|keys| Value::Object(keys.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()));
    prop_oneof![
        8 => prop::collection::vec((prop::sample::select(OPERATORS), block), 0..3).prop_map(
            |ops| Value::Object(ops.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
        ),
        1 => json(),
    ]
}

/// A document shaped like a policy, with arbitrary parts.
fn policyish() -> impl Strategy<Value = Value> {
    let statement = (
        prop_oneof![4 => pick(&["Allow", "Deny"]), 1 => word().prop_map(Value::String)],
        any::<bool>(),
        one_or_many(ACTIONS),
        any::<bool>(),
        one_or_many(RESOURCES),
        prop::option::of(condition()),
        prop::option::weighted(0.1, (word(), json())),
    )
        .prop_map(
            |(effect, not_action, action, not_resource, resource, condition, extra)| {
                let mut m = Map::new();
                m.insert("Effect".into(), effect);
                m.insert(
                    if not_action { "NotAction" } else { "Action" }.into(),
                    action,
                );
                m.insert(
                    if not_resource {
                        "NotResource"
                    } else {
                        "Resource"
                    }
                    .into(),
                    resource,
                );
                if let Some(c) = condition {
                    m.insert("Condition".into(), c);
                }
                if let Some((k, v)) = extra {
                    m.insert(k, v);
                }
                Value::Object(m)
            },
        )
        .boxed();
    (
        prop_oneof![12 => pick(&["2012-10-17", "2008-10-17"]), 1 => json()],
        prop_oneof![4 => prop::collection::vec(statement.clone(), 1..4).prop_map(Value::Array), 1 => statement],
    )
        .prop_map(|(version, statements)| {
            let mut m = Map::new();
            m.insert("Version".into(), version);
            m.insert("Statement".into(), statements);
            Value::Object(m)
        })
}

fn exercise(text: &str) {
    let Ok(policy) = Policy::parse(text) else {
        return;
    };
    assert_eq!(policy.text(), text);
    let context = Context {
        username: "alice".into(),
        source_ip: Some("10.1.2.3".parse().expect("ip")),
        now_epoch_seconds: 1_700_000_000,
        ..Context::default()
    };
    for (action, resource) in [
        ("cloudtrail:GetTrail", "*"),
        ("s3:GetObject", "arn:aws:s3:::home/alice/x"),
        ("", ""),
    ] {
        let req = Request {
            action,
            resource,
            context: &context,
        };
        let decision = evaluate([&policy], &req);
        assert_eq!(explain([&policy], &req).is_none(), decision.is_allowed());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_strings(text in ".{0,200}") {
        exercise(&text);
    }

    #[test]
    fn arbitrary_json(value in json()) {
        exercise(&value.to_string());
    }

    #[test]
    fn policy_shaped_json(value in policyish()) {
        exercise(&value.to_string());
        exercise(&serde_json::to_string_pretty(&value).expect("serialises"));
    }
}

#[test]
fn some_policy_shaped_documents_parse() {
    // Guards the generator above: it must reach evaluation, not only errors.
    let text = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"cloudtrail:*","Resource":"*"}]}"#;
    assert!(Policy::parse(text).is_ok());
}
