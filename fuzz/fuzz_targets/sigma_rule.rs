//! Sigma rules: parsing arbitrary YAML text never panics, hangs or recurses without bound, and
//! a rule that parses can be matched against real-shaped records without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(rule) = cairn_rules::SigmaRule::parse(text) else {
        return;
    };
    for record in [
        r#"{"eventID":"e1","eventSource":"iam.amazonaws.com","eventName":"CreateAccessKey","userIdentity":{"type":"IAMUser","userName":"alice","arn":"arn:aws:iam::111122223333:user/alice"},"requestParameters":{"userName":"bob"},"sourceIPAddress":"203.0.113.9"}"#,
        r#"{"eventID":"e2","eventName":"ConsoleLogin","errorMessage":"Failed authentication","resources":[{"ARN":"a"},{"ARN":"b"}],"n":[1,2.5,null,true]}"#,
    ] {
        let Ok(value) = serde_json::from_str::<serde_json::Value>(record) else {
            return;
        };
        let _ = rule.matches(&value);
    }
});
