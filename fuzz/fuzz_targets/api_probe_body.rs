#![no_main]
//! The body of `POST /api/v1/probe` from arbitrary bytes: never panics, and a camera URL
//! it accepts comes back redacted without whitespace or control characters (it goes
//! into an RTSP request line and the answer).

use corecast::http::admin::probe::parse_body;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((url, _)) = parse_body(data) {
        assert!(url.starts_with("rtsp://"), "{url}");
        assert!(!url.contains(|c: char| c.is_whitespace() || c.is_control()), "{url:?}");
        let rest = &url["rtsp://".len()..];
        let authority = rest.split(['/', '?']).next().unwrap_or(rest);
        assert!(!authority.contains('@'), "credentials in {url:?}");
    }
});
