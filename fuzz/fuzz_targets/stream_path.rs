#![no_main]
//! `StreamPath::parse` on arbitrary text (every protocol's path comes from a peer), then
//! the alias rule on what it accepts: normalising is idempotent, the claim rule is
//! symmetric (`AliasOf` one way is `AliasedBy` the other), and `resolve` only ever
//! gives the path or its alias.

use corecast::stream::{Clash, Holder, StreamPath};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (a, b) = text.split_once('|').unwrap_or((text, "live/demo"));
    let (Ok(a), Ok(b)) = (StreamPath::parse(a), StreamPath::parse(b)) else {
        return;
    };
    assert_eq!(StreamPath::parse(a.as_str()).ok(), Some(a.clone()));
    let there = a.clash(&b);
    let back = b.clash(&a);
    let mirrored = match there {
        Some(Clash::AliasOf) => Some(Clash::AliasedBy),
        Some(Clash::AliasedBy) => Some(Clash::AliasOf),
        other => other,
    };
    assert_eq!(back, mirrored);
    let claimed = a.check_claim([(b.as_str(), Holder::Published)]);
    assert_eq!(claimed.is_err(), there.is_some());
    let r = a.resolve(|p| p == &b);
    assert!(r == a || Some(r) == a.alias());
});
