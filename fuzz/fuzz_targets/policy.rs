//! Identity policy documents: parsing arbitrary text never panics, and a policy that parses
//! can be evaluated (and its decision explained) against a fixed request.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(policy) = cairn_policy::Policy::parse(text) else {
        return;
    };
    assert_eq!(policy.text(), text);
    let context = cairn_policy::Context {
        username: "alice".into(),
        userid: "AIDAEXAMPLE".into(),
        principal_arn: "arn:aws:iam::123456789012:user/alice".into(),
        principal_account: "123456789012".into(),
        principal_type: "User".into(),
        source_ip: Some(std::net::IpAddr::from([203, 0, 113, 9])),
        secure_transport: true,
        now_epoch_seconds: 1_700_000_000,
        requested_region: "us-east-1".into(),
        user_agent: "aws-cli/2".into(),
        via_console: false,
    };
    for (action, resource) in [
        ("cloudtrail:LookupEvents", "*"),
        ("s3:GetObject", "arn:aws:s3:::home/alice/AWSLogs/x.json.gz"),
    ] {
        let req = cairn_policy::Request {
            action,
            resource,
            context: &context,
        };
        let decision = cairn_policy::evaluate([&policy], &req);
        assert_eq!(
            cairn_policy::explain([&policy], &req).is_none(),
            decision.is_allowed()
        );
    }
});
