#![no_main]
//! `session::Id` from arbitrary text (the `{id}` of `DELETE /api/v1/sessions/{id}`):
//! never panics, accepts only what is a decimal u64, and what it accepts prints back to
//! an id that parses to itself.

use corecast::session::Id;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(id) = text.parse::<Id>() {
        assert!(text.bytes().all(|b| b.is_ascii_digit()));
        assert_eq!(text.parse::<u64>().ok(), Some(id.0));
        assert_eq!(id.to_string().parse::<Id>(), Ok(id));
    }
});
