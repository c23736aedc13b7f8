//! The console's sign-in form and cookie parsing of arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (Vec<u8>, String)| {
    let (form, cookie_header) = input;
    let _ = cairn_api::console::parse_form(&form);
    let mut headers = http::HeaderMap::new();
    if let Ok(v) = http::HeaderValue::from_str(&cookie_header) {
        headers.insert("cookie", v);
    }
    let _ = cairn_api::console::cookie(&headers, cairn_api::console::SESSION_COOKIE);
});
