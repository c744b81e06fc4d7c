#![no_main]
//! An API body (a `[[streams]]` entry as JSON, or a merge patch of one): whatever
//! becomes an entry is written into a config file that still parses, holding the entry.

use corecast::config::{Config, Edit, StreamConfig, edit_streams, entry_from_json, merge_patch};
use libfuzzer_sys::fuzz_target;

const FILE: &str = "# site\n[http]\nlisten = \"127.0.0.1:8080\" # page\n\n\
[[streams]]\npath = \"base\"\nsource = \"file:x.flv\" # loops\n# trailing\n";

fn check(entry: &StreamConfig) {
    let add = edit_streams(FILE, Edit::Add(entry));
    if let Ok(text) = add {
        let parsed = Config::parse(&text).expect("an added entry leaves a parseable file");
        assert_eq!(parsed.streams.last(), Some(entry));
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    if let Ok(entry) = entry_from_json(body.clone(), "new") {
        check(&entry);
    }
    let mut base = serde_json::json!({"path": "base", "source": "file:x.flv"});
    merge_patch(&mut base, &body);
    if let Ok(entry) = entry_from_json(base, "base") {
        if let Ok(text) = edit_streams(FILE, Edit::Replace(&entry)) {
            Config::parse(&text).expect("a replaced entry leaves a parseable file");
        }
    }
});
