//! Fuzzes JWT handling before and through verification: header decoding, the algorithm
//! pinned by the configured keys (HS256 secret and an ES256 public key), claims parsing
//! and the permission globs a token carries. Nothing may panic, and nothing unsigned may
//! pass.
#![no_main]

use corecast::auth::JwtKeys;
use libfuzzer_sys::fuzz_target;

const EC_PUBLIC: &[u8] = include_bytes!("../../tests/data/auth/ec_public.pem");

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(keys) = JwtKeys::new(Some("0123456789abcdef0123456789abcdef"), Some(EC_PUBLIC)) else {
        return;
    };
    // Fuzzed bytes cannot carry a valid HMAC or ECDSA signature.
    assert!(keys.verify(token, 1_800_000_000).is_err());
    // A string glued from fuzzed header and payload with an empty signature (alg: none).
    if let Some((h, p)) = token.split_once('|') {
        use std::fmt::Write;
        let mut forged = String::new();
        let _ = write!(forged, "{h}.{p}.");
        assert!(keys.verify(&forged, 1_800_000_000).is_err());
    }
});
