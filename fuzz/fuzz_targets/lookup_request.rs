//! LookupEvents request bodies: parsing and validation never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(input) = cairn_api::input::Input::parse(data) {
        let _ = cairn_api::lookup::Lookup::parse("123456789012", &input);
    }
});
