//! SigV4 parsing and verification of arbitrary Authorization headers, dates and queries.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (String, String, String, String, Vec<u8>)| {
    let (authorization, amz_date, path, query, body) = input;
    let mut headers = http::HeaderMap::new();
    if let Ok(v) = http::HeaderValue::from_str(&authorization) {
        headers.insert("authorization", v);
    }
    if let Ok(v) = http::HeaderValue::from_str(&amz_date) {
        headers.insert("x-amz-date", v);
    }
    headers.insert("host", http::HeaderValue::from_static("127.0.0.1"));
    let req = cairn_api::sigv4::SignedRequest {
        method: "POST",
        path: &path,
        query: if query.is_empty() { None } else { Some(&query) },
        headers: &headers,
        body: &body,
    };
    if let Ok(claim) = cairn_api::sigv4::parse_claim(&req) {
        let _ = cairn_api::sigv4::verify(&req, &claim, "secret", time::OffsetDateTime::now_utc());
    }
});
