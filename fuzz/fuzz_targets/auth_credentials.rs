//! Fuzzes the credential parsers: `Authorization` header values (Basic, Bearer), query
//! strings (RTMP `?user=&pass=&token=&key=`, HTTP `?token=`) and the authorizer on what
//! they produce (users, globs and address rules).
#![no_main]

use corecast::auth::{
    AccessRequest, Action, Authorizer, JwtKeys, creds, default_users,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let header = creds::from_authorization(&text);
    let query = creds::from_query(&text);
    let mid = (0..=text.len() / 2)
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0);
    let (a, b) = text.split_at(mid);
    let http = creds::from_http(Some(a), Some(b));
    for c in [&header, &query, &http] {
        for v in [&c.user, &c.pass, &c.token, &c.key].into_iter().flatten() {
            assert!(v.len() <= creds::MAX_CREDENTIAL);
        }
    }
    let Ok(keys) = JwtKeys::new(Some("0123456789abcdef0123456789abcdef"), None) else {
        return;
    };
    let auth = Authorizer::new(default_users(), keys);
    for c in [&header, &query, &http] {
        let req = AccessRequest {
            action: Action::Publish,
            path: Some(text.as_ref()),
            ip: "192.0.2.1".parse().ok(),
            creds: c,
        };
        let _ = auth.check(&req, 1_800_000_000);
    }
});
