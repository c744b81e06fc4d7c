//! The shape of the source tree, checked: the rules docs/ARCHITECTURE.md states about
//! who may import whom, where SDP is parsed and how long a function may grow.
//!
//! These read `src/` as text (comments and string literals are blanked first), so they
//! run in milliseconds and need nothing but the checkout.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Longest non-test function allowed in `src/`, in lines.
const MAX_FN_LINES: usize = 100;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .expect("read src")
        .map(|e| e.expect("dir entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

fn src_files() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    files
        .into_iter()
        .map(|p| {
            let rel = p
                .strip_prefix(&root)
                .expect("under src")
                .to_string_lossy()
                .into_owned();
            let text = fs::read_to_string(&p).expect("read source file");
            (rel, blank(&text))
        })
        .collect()
}

/// The text with comments and the insides of string and char literals replaced by
/// spaces (line breaks kept), so braces and `crate::` in them do not count.
fn blank(src: &str) -> String {
    let b: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    let keep = |c: char| if c == '\n' { '\n' } else { ' ' };
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < b.len() && b[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == '/' && b.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if b[i] == '*' && b.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(keep(b[i]));
                    i += 1;
                }
            }
        } else if c == 'r' && (next == Some('"') || next == Some('#')) && !ident_before(&b, i) {
            // Raw string r"..." or r#"..."#.
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            out.push_str(&" ".repeat(j + 1 - i));
            i = j + 1;
            while i < b.len() {
                if b[i] == '"' && (0..hashes).all(|k| b.get(i + 1 + k) == Some(&'#')) {
                    out.push_str(&" ".repeat(1 + hashes));
                    i += 1 + hashes;
                    break;
                }
                out.push(keep(b[i]));
                i += 1;
            }
        } else if c == '"' {
            out.push(' ');
            i += 1;
            while i < b.len() && b[i] != '"' {
                if b[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                if i < b.len() {
                    out.push(keep(b[i]));
                    i += 1;
                }
            }
            out.push(' ');
            i += 1;
        } else if c == '\'' && is_char_literal(&b, i) {
            out.push(' ');
            i += 1;
            while i < b.len() && b[i] != '\'' {
                if b[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                out.push(' ');
                i += 1;
            }
            out.push(' ');
            i += 1;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn ident_before(b: &[char], i: usize) -> bool {
    i > 0 && (b[i - 1].is_alphanumeric() || b[i - 1] == '_')
}

/// `'x'`, `'\n'`, `'\u{1F600}'`, as opposed to a lifetime `'a`.
fn is_char_literal(b: &[char], i: usize) -> bool {
    matches!(
        (b.get(i + 1), b.get(i + 2)),
        (Some('\\'), _) | (Some(_), Some('\''))
    )
}

/// `shard.rs` → `shard`, `webrtc/engine.rs` → `webrtc`.
fn folder(rel: &str) -> &str {
    let first = rel.split('/').next().unwrap_or(rel);
    first.strip_suffix(".rs").unwrap_or(first)
}

/// The top-level modules a file names through `crate::` (plain and grouped imports).
fn crate_imports(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().last();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // `corecast::crate` never happens; `mycrate::` is not ours
        }
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    _ => {}
                }
                if depth == 0 {
                    break;
                }
                if depth == 1 && c == ',' {
                    push_head(&item, &mut found);
                    item.clear();
                } else if depth >= 1 {
                    item.push(c);
                }
            }
            push_head(&item, &mut found);
        } else {
            push_head(rest, &mut found);
        }
    }
    found
}

fn push_head(item: &str, found: &mut BTreeSet<String>) {
    let head: String = item
        .trim_start()
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    if !head.is_empty() && head != "self" {
        found.insert(head);
    }
}

fn import_graph() -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (rel, text) in src_files() {
        let from = folder(&rel).to_string();
        for to in crate_imports(&text) {
            if to != from {
                graph.entry(from.clone()).or_default().insert(to);
            }
        }
    }
    graph
}

#[test]
fn shard_imports_no_protocol_module() {
    let graph = import_graph();
    let shard = graph.get("shard").cloned().unwrap_or_default();
    for proto in ["webrtc", "rtmp", "rtsp", "http"] {
        assert!(
            !shard.contains(proto),
            "src/shard.rs imports crate::{proto}"
        );
    }
}

#[test]
fn no_two_folders_import_each_other() {
    let graph = import_graph();
    let mut both_ways = Vec::new();
    for (a, tos) in &graph {
        for b in tos {
            if a < b && graph.get(b).is_some_and(|t| t.contains(a)) {
                both_ways.push(format!("{a} <-> {b}"));
            }
        }
    }
    assert!(
        both_ways.is_empty(),
        "folders importing each other: {both_ways:?}"
    );
}

#[test]
fn one_module_parses_rtpmap_and_fmtp() {
    // Written SDP (answers, DESCRIBE vectors in tests) is fine; reading is one module's
    // job. What reads them matches on the attribute name.
    let raw_files = {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        rust_files(&root, &mut files);
        files
    };
    let mut readers = BTreeSet::new();
    for p in raw_files {
        let rel = p.to_string_lossy().into_owned();
        if rel.ends_with("tests.rs") {
            continue; // unit tests write SDP vectors and check what was read
        }
        let text = fs::read_to_string(&p).expect("read");
        let code = non_test_part(&text);
        for needle in [
            "\"rtpmap\"",
            "\"fmtp\"",
            "\"a=rtpmap:\"",
            "\"a=fmtp:\"",
            "\"rtpmap:\"",
            "\"fmtp:\"",
        ] {
            if code.contains(needle) {
                readers.insert(rel.clone());
            }
        }
    }
    assert!(
        readers.len() <= 1,
        "more than one module reads a=rtpmap/a=fmtp: {readers:?}"
    );
}

/// The part of a file before its `#[cfg(test)] mod ...` (test modules sit at the end).
fn non_test_part(text: &str) -> &str {
    let lines: Vec<&str> = text.split('\n').collect();
    let mut offset = 0;
    for (i, l) in lines.iter().enumerate() {
        if l.starts_with("#[cfg(test)]") && lines.get(i + 1).is_some_and(|n| n.contains("mod ")) {
            return &text[..offset];
        }
        offset += l.len() + 1;
    }
    text
}

/// Non-test functions with their length in lines, longest first.
fn function_lengths() -> Vec<(usize, String)> {
    let mut res = Vec::new();
    for (rel, text) in src_files() {
        if rel.ends_with("tests.rs") || rel.ends_with("_tests.rs") {
            continue;
        }
        let code = non_test_part(&text);
        let lines: Vec<&str> = code.split('\n').collect();
        let mut i = 0;
        while i < lines.len() {
            if let Some(name) = fn_name(lines[i]) {
                let mut depth = 0i32;
                let mut started = false;
                let mut j = i;
                'scan: while j < lines.len() {
                    for c in lines[j].chars() {
                        match c {
                            '{' => {
                                depth += 1;
                                started = true;
                            }
                            '}' => depth -= 1,
                            ';' if !started => break 'scan,
                            _ => {}
                        }
                        if started && depth == 0 {
                            break 'scan;
                        }
                    }
                    j += 1;
                }
                if started {
                    res.push((j - i + 1, format!("src/{rel}:{} {name}", i + 1)));
                }
            }
            i += 1;
        }
    }
    res.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    res
}

fn fn_name(line: &str) -> Option<String> {
    let mut words = line.split_whitespace().peekable();
    while let Some(w) = words.next() {
        match w {
            "pub" | "async" | "const" | "unsafe" | "extern" | "default" => continue,
            w if w.starts_with("pub(") => continue,
            "fn" => {
                let name: String = words
                    .next()?
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                return (!name.is_empty()).then_some(name);
            }
            _ => return None,
        }
    }
    None
}

#[test]
fn no_function_is_longer_than_a_screenful() {
    let lengths = function_lengths();
    let ten: Vec<String> = lengths
        .iter()
        .take(10)
        .map(|(n, at)| format!("{n:4} {at}"))
        .collect();
    println!("longest non-test functions:\n{}", ten.join("\n"));
    let long: Vec<&(usize, String)> = lengths.iter().filter(|(n, _)| *n > MAX_FN_LINES).collect();
    assert!(
        long.is_empty(),
        "functions over {MAX_FN_LINES} lines: {long:?}"
    );
}

#[test]
fn the_checks_see_what_they_check() {
    // The readers above must not be blind: a grouped import, a brace in a string and a
    // lifetime are read right.
    let t = blank("use crate::{a::B, c}; let s = \"{ crate::d }\"; fn f<'a>(x: &'a u8) {}");
    let imports = crate_imports(&t);
    assert_eq!(imports, ["a", "c"].iter().map(|s| s.to_string()).collect());
    assert!(!t.contains("crate::d"));
    assert!(t.contains("fn f<'a>"));
    assert_eq!(
        fn_name("    pub(crate) async fn run(x: u8) {"),
        Some("run".into())
    );
    assert_eq!(fn_name("    let fn_x = 1;"), None);
    let graph = import_graph();
    assert!(graph.get("runtime").is_some_and(|t| t.contains("stream")));
    assert!(function_lengths().len() > 100);
}
