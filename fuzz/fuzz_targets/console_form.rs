//! The console's outside input: the sign-in form, cookies, and the view parameters of the
//! event pages, downloads and live streams (`start`, `end`, `f`, `since`), from arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (Vec<u8>, String, String)| {
    let (form, cookie_header, view_query) = input;
    let _ = cairn_api::console::parse_form(&form);
    let mut headers = http::HeaderMap::new();
    if let Ok(v) = http::HeaderValue::from_str(&cookie_header) {
        headers.insert("cookie", v);
    }
    let _ = cairn_api::console::cookie(&headers, cairn_api::console::SESSION_COOKIE);
    let _ = cairn_api::console::safe_next(&view_query);
    let now = 1_795_000_000_000;
    let view = cairn_api::ui::ViewParams::parse(&view_query);
    let _ = view.resolve(now);
    let _ = view.since_ms(now);
    let _ = cairn_api::ui::parse_time(&view_query, now);
});
