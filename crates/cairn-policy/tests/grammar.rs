//! The policy grammar: what parses, and where each refusal points.

use cairn_policy::{MAX_POLICY_CHARS, Policy, PolicyError};

fn err(text: &str) -> PolicyError {
    match Policy::parse(text) {
        Ok(_) => panic!("accepted: {text}"),
        Err(e) => e,
    }
}

/// The error's location and its whole message.
fn located(text: &str) -> (String, String) {
    let e = err(text);
    (e.location().unwrap_or_default(), e.to_string())
}

fn statement(body: &str) -> String {
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}},{body}]}}"#
    )
}

#[track_caller]
fn assert_error_at(text: &str, location: &str, needle: &str) {
    let (loc, msg) = located(text);
    assert_eq!(loc, location, "{msg}");
    assert!(
        msg.starts_with(&format!("{location}: ")) || location.is_empty(),
        "{msg}"
    );
    assert!(msg.contains(needle), "{msg:?} lacks {needle:?}");
}

#[test]
fn minimal_and_full_documents_parse() {
    let p = Policy::parse(r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}"#)
        .expect("minimal");
    assert_eq!(p.version(), "2008-10-17");
    assert_eq!(p.id(), None);
    assert_eq!(p.statement_count(), 1);
    let text = r#"{
        "Version": "2012-10-17",
        "Id": "Ops",
        "Statement": [
            {"Sid": "Read1", "Effect": "Allow", "Action": ["cloudtrail:Get*", "cloudtrail-data:PutAuditEvents", "CloudTrail:Lookup?vents"], "Resource": ["arn:aws:cloudtrail:us-east-1:123456789012:trail/*", "*"]},
            {"Sid": "", "Effect": "Deny", "NotAction": "iam:*", "NotResource": "arn:aws:s3:::bucket/${aws:username}/*",
             "Condition": {"Bool": {"aws:SecureTransport": false}, "NumericLessThan": {"aws:EpochTime": 5}}}
        ]
    }"#;
    let p = Policy::parse(text).expect("full");
    assert_eq!(p.text(), text);
    assert_eq!(p.version(), "2012-10-17");
    assert_eq!(p.id(), Some("Ops"));
    assert_eq!(p.statement_count(), 2);
    let q: Policy = text.parse().expect("FromStr");
    assert_eq!(q.text(), text);
}

#[test]
fn document_level_errors() {
    assert_error_at(
        "[1]",
        "",
        "a policy document is a JSON object, not an array",
    );
    assert_error_at(r#"{"Version":"2012-10-17"}"#, "Statement", "missing");
    assert_error_at(r#"{"Statement":[]}"#, "Statement", "at least one statement");
    assert_error_at(r#"{"Statement":"x"}"#, "Statement", "not a string");
    assert_error_at(
        r#"{"Version":"2012-10-18","Statement":[]}"#,
        "Version",
        "\"2012-10-18\" is not a policy language version",
    );
    assert_error_at(
        r#"{"Version":2012,"Statement":[]}"#,
        "Version",
        "a number is not",
    );
    assert_error_at(r#"{"Id":5,"Statement":[]}"#, "Id", "must be a string");
    assert_error_at(
        r#"{"statement":[]}"#,
        "statement",
        "did you mean \"Statement\"?",
    );
    assert_error_at(r#"{"Foo":1}"#, "Foo", "unknown element \"Foo\"");
    assert_error_at(
        r#"{"Id":"a","Id":"b","Statement":[]}"#,
        "Id",
        "appears twice",
    );
}

#[test]
fn json_syntax_errors_have_line_and_column() {
    let e = err("{\n  \"Statement\": [\n    {\"Effect\": \"Allow\",}\n  ]\n}");
    let PolicyError::Syntax { line, column, .. } = &e else {
        panic!("{e:?}")
    };
    assert_eq!(*line, 3);
    assert!(*column > 0);
    assert!(e.to_string().contains("line 3"), "{e}");
    assert_eq!(e.location(), Some(format!("3:{column}")));
    assert!(!e.is_limit_exceeded());
    assert!(matches!(err(""), PolicyError::Syntax { .. }));
    assert!(matches!(err("{} x"), PolicyError::Syntax { .. }));
}

#[test]
fn size_limit() {
    let padding = " ".repeat(MAX_POLICY_CHARS);
    let text =
        format!(r#"{{"Statement":{{"Effect":"Allow","Action":"*","Resource":"*"}}}}{padding}"#);
    let e = err(&text);
    assert!(e.is_limit_exceeded());
    assert_eq!(e.location(), None);
    assert!(
        e.to_string()
            .contains("Cannot exceed quota for PolicySize: 10240"),
        "{e}"
    );
    // Characters count, not bytes: 5,000 two-byte characters fit.
    let id = "é".repeat(5_000);
    Policy::parse(&format!(
        r#"{{"Id":"{id}","Statement":{{"Effect":"Allow","Action":"*","Resource":"*"}}}}"#
    ))
    .expect("under the limit in characters");
}

#[test]
fn statement_errors() {
    assert_error_at(
        &statement("1"),
        "Statement[1]",
        "a statement is a JSON object, not a number",
    );
    assert_error_at(
        &statement(r#"{"Action":"s3:GetObject","Resource":"*"}"#),
        "Statement[1]",
        "missing Effect",
    );
    assert_error_at(
        &statement(r#"{"Effect":"allow","Action":"s3:GetObject","Resource":"*"}"#),
        "Statement[1].Effect",
        "\"allow\" is not an effect",
    );
    assert_error_at(
        &statement(r#"{"Effect":true,"Action":"s3:GetObject","Resource":"*"}"#),
        "Statement[1].Effect",
        "a boolean is not an effect",
    );
    assert_error_at(
        &statement(r#"{"Effect":"Allow","Resource":"*"}"#),
        "Statement[1]",
        "missing Action or NotAction",
    );
    assert_error_at(
        &statement(r#"{"Effect":"Allow","Action":"s3:*","NotAction":"s3:Get*","Resource":"*"}"#),
        "Statement[1]",
        "has both Action and NotAction",
    );
    assert_error_at(
        &statement(r#"{"Effect":"Allow","Action":"s3:*"}"#),
        "Statement[1]",
        "missing Resource or NotResource",
    );
    assert_error_at(
        &statement(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","NotResource":"*"}"#),
        "Statement[1]",
        "has both Resource and NotResource",
    );
    assert_error_at(
        &statement(r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","Principal":"*"}"#),
        "Statement[1].Principal",
        "Policy document should not specify a principal.",
    );
    assert_error_at(
        &statement(
            r#"{"Effect":"Allow","Action":"s3:*","Resource":"*","NotPrincipal":{"AWS":"*"}}"#,
        ),
        "Statement[1].NotPrincipal",
        "Policy document should not specify a principal.",
    );
    assert_error_at(
        &statement(r#"{"Effect":"Allow","Actions":"s3:*","Resource":"*"}"#),
        "Statement[1].Actions",
        "unknown element \"Actions\"",
    );
    assert_error_at(
        &statement(r#"{"Effect":"Allow","action":"s3:*","Resource":"*"}"#),
        "Statement[1].action",
        "did you mean \"Action\"?",
    );
    assert_error_at(
        &statement(r#"{"Effect":"Allow","Effect":"Deny","Action":"s3:*","Resource":"*"}"#),
        "Statement[1].Effect",
        "appears twice",
    );
    assert_error_at(
        &statement(r#"{"Sid":"a-b","Effect":"Allow","Action":"s3:*","Resource":"*"}"#),
        "Statement[1].Sid",
        "\"a-b\" is not a valid Sid",
    );
    assert_error_at(
        &statement(r#"{"Sid":7,"Effect":"Allow","Action":"s3:*","Resource":"*"}"#),
        "Statement[1].Sid",
        "must be a string",
    );
    // A single statement object is located as `Statement`.
    assert_error_at(
        r#"{"Statement":{"Effect":"Allow","Action":"cloudtrail","Resource":"*"}}"#,
        "Statement.Action",
        "\"cloudtrail\" is not <service>:<action>",
    );
}

#[test]
fn sids_are_unique() {
    assert_error_at(
        r#"{"Statement":[
            {"Sid":"A","Effect":"Allow","Action":"s3:*","Resource":"*"},
            {"Sid":"B","Effect":"Allow","Action":"s3:*","Resource":"*"},
            {"Sid":"A","Effect":"Deny","Action":"s3:*","Resource":"*"}]}"#,
        "Statement[2].Sid",
        "also the Sid of Statement[0]",
    );
    Policy::parse(
        r#"{"Statement":[
            {"Sid":"","Effect":"Allow","Action":"s3:*","Resource":"*"},
            {"Sid":"","Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#,
    )
    .expect("empty Sids may repeat");
}

#[test]
fn action_errors() {
    let action = |a: &str| {
        statement(&format!(
            r#"{{"Effect":"Allow","Action":{a},"Resource":"*"}}"#
        ))
    };
    assert_error_at(
        &action(r#"["s3:GetObject","cloudtrail"]"#),
        "Statement[1].Action[1]",
        "\"cloudtrail\" is not <service>:<action>",
    );
    assert_error_at(
        &action(r#""cloudtrail:""#),
        "Statement[1].Action",
        "is not <service>:<action>",
    );
    assert_error_at(
        &action(r#"":GetTrail""#),
        "Statement[1].Action",
        "service prefix \"\"",
    );
    assert_error_at(
        &action(r#""cloud_trail:GetTrail""#),
        "Statement[1].Action",
        "service prefix \"cloud_trail\"",
    );
    assert_error_at(
        &action(r#""s3*:GetObject""#),
        "Statement[1].Action",
        "service prefix \"s3*\"",
    );
    assert_error_at(
        &action(r#""s3:Get Object""#),
        "Statement[1].Action",
        "the action \"Get Object\"",
    );
    assert_error_at(
        &action(r#""s3:Get:Object""#),
        "Statement[1].Action",
        "the action \"Get:Object\"",
    );
    assert_error_at(&action("[]"), "Statement[1].Action", "the list is empty");
    assert_error_at(
        &action("[\"s3:*\", 5]"),
        "Statement[1].Action[1]",
        "must be a string, not a number",
    );
    assert_error_at(&action("{}"), "Statement[1].Action", "not an object");
    assert_error_at(
        &statement(r#"{"Effect":"Allow","NotAction":["s3:*","x"],"Resource":"*"}"#),
        "Statement[1].NotAction[1]",
        "\"x\" is not <service>:<action>",
    );
    for ok in [
        "*",
        "iam:*",
        "cloudtrail-data:Put*",
        "S3:Get?bject",
        "organizations:List*",
        "cairn:PutEvents",
    ] {
        Policy::parse(&action(&format!("{ok:?}"))).unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
}

#[test]
fn resource_errors() {
    let resource = |r: &str| {
        statement(&format!(
            r#"{{"Effect":"Allow","Action":"s3:*","Resource":{r}}}"#
        ))
    };
    assert_error_at(
        &resource(r#""bucket""#),
        "Statement[1].Resource",
        "\"bucket\" is not \"*\" nor an ARN",
    );
    assert_error_at(
        &resource(r#"["*","arn:aws:s3::bucket"]"#),
        "Statement[1].Resource[1]",
        "is not \"*\" nor an ARN",
    );
    assert_error_at(
        &resource(r#""ARN:aws:s3:::b""#),
        "Statement[1].Resource",
        "nor an ARN",
    );
    assert_error_at(
        &resource("[]"),
        "Statement[1].Resource",
        "the list is empty",
    );
    assert_error_at(&resource("null"), "Statement[1].Resource", "not null");
    assert_error_at(
        &resource(r#""arn:aws:s3:::b/${aws:foo}""#),
        "Statement[1].Resource",
        "unknown policy variable \"${aws:foo}\"",
    );
    assert_error_at(
        &resource(r#""arn:aws:s3:::b/${aws:username""#),
        "Statement[1].Resource",
        "without its closing",
    );
    assert_error_at(
        &statement(r#"{"Effect":"Allow","Action":"s3:*","NotResource":["arn:aws:s3:::b","b"]}"#),
        "Statement[1].NotResource[1]",
        "\"b\" is not \"*\" nor an ARN",
    );
    // Variables count only under 2012-10-17; under 2008 `${...}` is literal text.
    Policy::parse(r#"{"Version":"2008-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"arn:aws:s3:::b/${aws:foo}"}}"#)
        .expect("literal under 2008-10-17");
    for ok in [
        "arn:aws:s3:::bucket/*",
        "arn:aws:cloudtrail:*:*:trail/*",
        "arn:aws:s3:::b/k:with:colons",
        "arn:aws:iam::${aws:PrincipalAccount}:user/${aws:username}",
        "arn:aws:s3:::b/${*}${?}${$}${aws:userid}",
        "arn:*:*:*:*:*",
    ] {
        Policy::parse(&resource(&format!("{ok:?}"))).unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
}

#[test]
fn condition_errors() {
    let cond = |c: &str| {
        statement(&format!(
            r#"{{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{c}}}"#
        ))
    };
    assert_error_at(
        &cond("[]"),
        "Statement[1].Condition",
        "must be an object of condition operators",
    );
    assert_error_at(
        &cond(r#"{"StringEqual":{"aws:username":"a"}}"#),
        "Statement[1].Condition.StringEqual",
        "unknown condition operator \"StringEqual\"",
    );
    let (_, msg) = located(&cond(r#"{"StringEqual":{"aws:username":"a"}}"#));
    for listed in [
        "StringEquals",
        "ArnNotLike",
        "NotIpAddress",
        "DateGreaterThanEquals",
        "NumericNotEquals",
        "Null",
        "IfExists",
    ] {
        assert!(msg.contains(listed), "{msg} lacks {listed}");
    }
    assert_error_at(
        &cond(r#"{"stringequals":{"aws:username":"a"}}"#),
        "Statement[1].Condition.stringequals",
        "did you mean \"StringEquals\"?",
    );
    assert_error_at(
        &cond(r#"{"NullIfExists":{"aws:username":"true"}}"#),
        "Statement[1].Condition.NullIfExists",
        "Null cannot take IfExists",
    );
    assert_error_at(
        &cond(r#"{"ForAnyValue:StringEquals":{"aws:username":"a"}}"#),
        "Statement[1].Condition.ForAnyValue:StringEquals",
        "set operator \"ForAnyValue\" is not supported",
    );
    assert_error_at(
        &cond(r#"{"StringEquals":"a"}"#),
        "Statement[1].Condition.StringEquals",
        "must be an object of condition keys",
    );
    assert_error_at(
        &cond(r#"{"StringEquals":{"aws:username":"a"},"StringEquals":{"aws:userid":"b"}}"#),
        "Statement[1].Condition.StringEquals",
        "appears twice",
    );
    assert_error_at(
        &cond(r#"{"StringEquals":{"aws:username":"a","AWS:UserName":"b"}}"#),
        "Statement[1].Condition.StringEquals.AWS:UserName",
        "appears twice",
    );
    assert_error_at(
        &cond(r#"{"StringEquals":{"aws:PrincipalTag/team":"a"}}"#),
        "Statement[1].Condition.StringEquals.aws:PrincipalTag/team",
        "unknown condition key \"aws:PrincipalTag/team\"",
    );
    let (_, msg) = located(&cond(r#"{"StringEquals":{"s3:prefix":"a"}}"#));
    for listed in [
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
    ] {
        assert!(msg.contains(listed), "{msg} lacks {listed}");
    }
    assert_error_at(
        &cond(r#"{"Bool":{"aws:SourceIp":"true"}}"#),
        "Statement[1].Condition.Bool.aws:SourceIp",
        "Bool does not apply to aws:SourceIp; it takes IpAddress, NotIpAddress, Null",
    );
    assert_error_at(
        &cond(r#"{"StringEqualsIfExists":{"aws:CurrentTime":"x"}}"#),
        "Statement[1].Condition.StringEqualsIfExists.aws:CurrentTime",
        "does not apply to aws:CurrentTime",
    );
    assert_error_at(
        &cond(r#"{"ArnLike":{"aws:username":"arn:aws:iam::1:user/a"}}"#),
        "Statement[1].Condition.ArnLike.aws:username",
        "does not apply",
    );
    assert_error_at(
        &cond(r#"{"IpAddress":{"aws:SourceIp":["10.0.0.0/8","10.0.0.300/8"]}}"#),
        "Statement[1].Condition.IpAddress.aws:SourceIp[1]",
        "\"10.0.0.300/8\" is not an IP address or CIDR block",
    );
    assert_error_at(
        &cond(r#"{"IpAddress":{"aws:SourceIp":"2001:db8::/129"}}"#),
        "Statement[1].Condition.IpAddress.aws:SourceIp",
        "is not an IP address",
    );
    assert_error_at(
        &cond(r#"{"DateLessThan":{"aws:CurrentTime":"next week"}}"#),
        "Statement[1].Condition.DateLessThan.aws:CurrentTime",
        "\"next week\" is not a date",
    );
    assert_error_at(
        &cond(r#"{"NumericLessThan":{"aws:EpochTime":"ten"}}"#),
        "Statement[1].Condition.NumericLessThan.aws:EpochTime",
        "\"ten\" is not a number",
    );
    assert_error_at(
        &cond(r#"{"Bool":{"aws:SecureTransport":"yes"}}"#),
        "Statement[1].Condition.Bool.aws:SecureTransport",
        "\"yes\" is not a boolean",
    );
    assert_error_at(
        &cond(r#"{"Null":{"aws:username":1}}"#),
        "Statement[1].Condition.Null.aws:username",
        "\"1\" is not a boolean",
    );
    assert_error_at(
        &cond(r#"{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::user"}}"#),
        "Statement[1].Condition.ArnLike.aws:PrincipalArn",
        "is not an ARN",
    );
    assert_error_at(
        &cond(r#"{"StringEquals":{"aws:username":[]}}"#),
        "Statement[1].Condition.StringEquals.aws:username",
        "the list of values is empty",
    );
    assert_error_at(
        &cond(r#"{"StringEquals":{"aws:username":["a",null]}}"#),
        "Statement[1].Condition.StringEquals.aws:username[1]",
        "not null",
    );
    assert_error_at(
        &cond(r#"{"StringEquals":{"aws:username":{"a":1}}}"#),
        "Statement[1].Condition.StringEquals.aws:username",
        "not an object",
    );
    assert_error_at(
        &cond(r#"{"StringLike":{"aws:username":"${aws:nope}"}}"#),
        "Statement[1].Condition.StringLike.aws:username",
        "unknown policy variable",
    );
    // Accepted forms: booleans, numbers and strings; key names in any case; empty blocks.
    for ok in [
        r#"{"Bool":{"aws:SecureTransport":true,"AWS:VIACONSOLE":"False"}}"#,
        r#"{"NumericGreaterThanEquals":{"aws:EpochTime":[1, "2", 3.5]}}"#,
        r#"{"DateGreaterThan":{"aws:EpochTime":1700000000,"aws:CurrentTime":"2024-01-01T00:00:00Z"}}"#,
        r#"{"StringEquals":{"aws:PrincipalArn":"arn:aws:iam::1:user/a"},"ArnEquals":{"aws:PrincipalArn":"*"}}"#,
        r#"{"IpAddress":{"aws:SourceIp":["203.0.113.7","2001:db8::/32","::1"]}}"#,
        r#"{"StringEquals":{"aws:username":1}}"#,
        r#"{}"#,
        r#"{"StringEquals":{}}"#,
    ] {
        Policy::parse(&cond(ok)).unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
}
