//! EventBridge event patterns: parsing arbitrary text never panics, and a pattern that parses
//! can be matched against envelopes of real-shaped records without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(pattern) = text.parse::<cairn_rules::Pattern>() else {
        return;
    };
    for record in [
        r#"{"eventID":"e1","eventTime":"2026-01-01T00:00:00Z","eventSource":"s3.amazonaws.com","eventName":"PutBucketPolicy","eventType":"AwsApiCall","awsRegion":"us-east-1","sourceIPAddress":"203.0.113.9","userIdentity":{"type":"Root","arn":"arn:aws:iam::111122223333:root"},"requestParameters":{"bucketPolicy":{"Statement":[{"Effect":"Allow","Principal":"*"}]},"x-amz-acl":["public-read"]},"responseElements":null}"#,
        r#"{"eventID":"e2","eventName":"ConsoleLogin","eventType":"AwsConsoleSignIn","eventSource":"signin.amazonaws.com","responseElements":{"ConsoleLogin":"Failure"},"additionalEventData":{"MFAUsed":"No"},"n":[1,2.5,-3e9,null,true]}"#,
    ] {
        let Ok(value) = serde_json::from_str::<serde_json::Value>(record) else {
            return;
        };
        let env = cairn_rules::envelope::envelope("111122223333", &value);
        let _ = pattern.matches(&env);
    }
});
