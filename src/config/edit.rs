//! Writing `[[streams]]` changes back to the config file, keeping everything else of it
//! as the operator wrote it (comments, order, blank lines) with `toml_edit`, and
//! replacing the file atomically.

use super::StreamConfig;
use crate::stream::StreamPath;
use std::io::Write;
use std::path::Path;
use toml_edit::{ArrayOfTables, DocumentMut, Item, Table};

/// One change to the `[[streams]]` of a config file.
#[derive(Debug, Clone, Copy)]
pub enum Edit<'a> {
    /// Append this entry.
    Add(&'a StreamConfig),
    /// Replace the entry with the same path by this one (its keys in place, their
    /// comments kept).
    Replace(&'a StreamConfig),
    /// Remove the entry with this path.
    Remove(&'a StreamPath),
}

/// `text` with `edit` applied to its `[[streams]]`.
pub fn edit_streams(text: &str, edit: Edit<'_>) -> Result<String, String> {
    let mut doc: DocumentMut = text.parse().map_err(|e| format!("cannot parse: {e}"))?;
    let trailing = doc.trailing().as_str().unwrap_or_default().to_string();
    let item = doc
        .entry("streams")
        .or_insert(Item::ArrayOfTables(ArrayOfTables::new()));
    let Some(streams) = item.as_array_of_tables_mut() else {
        return Err("`streams` is not written as [[streams]] tables; cannot edit it".into());
    };
    let find = |streams: &ArrayOfTables, path: &StreamPath| {
        streams.iter().position(|t| {
            t.get("path")
                .and_then(Item::as_str)
                .and_then(|p| StreamPath::parse(p).ok())
                .is_some_and(|p| p == *path)
        })
    };
    match edit {
        Edit::Add(entry) => {
            let mut t = table_of(entry)?;
            // At the end of the file: what trails the last table (comments, commented-out
            // examples) stays where it is, above the new entry, with a blank line.
            let trailing = trailing.trim_end().to_string();
            let prefix = if trailing.is_empty() {
                "\n".to_string()
            } else {
                format!("{trailing}\n\n")
            };
            t.decor_mut().set_prefix(prefix);
            streams.push(t);
            doc.set_trailing("");
        }
        Edit::Replace(entry) => {
            let path = StreamPath::parse(&entry.path).map_err(|e| e.to_string())?;
            let i = find(streams, &path).ok_or_else(|| format!("no entry for '{path}'"))?;
            let t = streams
                .get_mut(i)
                .ok_or_else(|| format!("no entry for '{path}'"))?;
            replace_keys(t, &table_of(entry)?);
        }
        Edit::Remove(path) => {
            let i = find(streams, path).ok_or_else(|| format!("no entry for '{path}'"))?;
            streams.remove(i);
        }
    }
    Ok(doc.to_string())
}

/// An entry as a TOML table (keys in the struct's order, unset ones left out).
fn table_of(entry: &StreamConfig) -> Result<Table, String> {
    let doc = toml_edit::ser::to_document(entry).map_err(|e| e.to_string())?;
    Ok(doc.as_table().clone())
}

/// Makes `t` hold the keys of `new`: a key whose value is the same is left as written, a
/// changed value keeps the comment beside it, a key `new` lacks is removed, a new key is
/// appended.
fn replace_keys(t: &mut Table, new: &Table) {
    let gone: Vec<String> = t
        .iter()
        .map(|(k, _)| k.to_string())
        .filter(|k| !new.contains_key(k))
        .collect();
    for k in gone {
        t.remove(&k);
    }
    for (k, v) in new.iter() {
        // The entry was found by its path: the file's spelling of it stays.
        let Some(mut value) = v.as_value().cloned().filter(|_| k != "path") else {
            continue;
        };
        match t.get_mut(k).and_then(Item::as_value_mut) {
            Some(old) if old.to_string().trim() == value.to_string().trim() => {}
            Some(old) => {
                *value.decor_mut() = old.decor().clone();
                *old = value;
            }
            None => {
                t.insert(k, Item::Value(value));
            }
        }
    }
}

/// Replaces `path` with `text` atomically: written to a temporary file beside it,
/// synced, then renamed over it (a reader sees the old file or the new one, never half).
pub fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir
        .unwrap_or(Path::new("."))
        .join(format!(".{name}.tmp-{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        // Keep the file's permissions (it may hold passwords).
        if let Ok(meta) = std::fs::metadata(path) {
            f.set_permissions(meta.permissions())?;
        }
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Some(d) = dir {
            std::fs::File::open(d)?.sync_all()?;
        }
        Ok(())
    };
    let r = write();
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "\
# corecast config
[http]
listen = \"127.0.0.1:8080\" # the web page

# The demo.
[[streams]]
path = \"demo\"
source = \"file:demo.flv\" # loops

# A camera.
[[streams]]
path = \"cams/cam1\"
source = \"rtsp://10.0.0.1/a\"
transport = \"tcp\" # the camera drops UDP
";

    fn entry(path: &str, source: &str) -> StreamConfig {
        StreamConfig {
            path: path.into(),
            source: Some(source.into()),
            shard: None,
            publish_key: None,
            transport: None,
            on_demand: None,
            on_demand_close_after: None,
            user: None,
            password: None,
            follow_redirects: None,
        }
    }

    #[test]
    fn adding_keeps_comments_and_appends_a_table() {
        let out = edit_streams(FILE, Edit::Add(&entry("cams/cam7", "rtsp://10.0.0.7/s"))).unwrap();
        assert!(out.starts_with(FILE), "the file is kept as written:\n{out}");
        assert!(
            out.ends_with("\n[[streams]]\npath = \"cams/cam7\"\nsource = \"rtsp://10.0.0.7/s\"\n"),
            "{out}"
        );
        let parsed = crate::config::Config::parse(&out).unwrap();
        assert_eq!(parsed.streams.len(), 3);
        let empty = edit_streams("", Edit::Add(&entry("a", "file:x.flv"))).unwrap();
        assert_eq!(
            crate::config::Config::parse(&empty).unwrap().streams.len(),
            1
        );
    }

    #[test]
    fn replacing_changes_only_the_values_that_differ() {
        let mut e = entry("/cams/cam1/", "rtsp://10.0.0.2/b");
        e.transport = Some(crate::config::RtspTransport::Tcp);
        e.on_demand = Some(true);
        let out = edit_streams(FILE, Edit::Replace(&e)).unwrap();
        assert!(out.contains("source = \"rtsp://10.0.0.2/b\"\n"), "{out}");
        assert!(
            out.contains("transport = \"tcp\" # the camera drops UDP"),
            "{out}"
        );
        assert!(out.contains("on_demand = true"), "{out}");
        assert!(
            out.contains("# A camera.\n[[streams]]\npath = \"cams/cam1\""),
            "{out}"
        );
        assert!(out.contains("source = \"file:demo.flv\" # loops"), "{out}");
        e.transport = None;
        let out = edit_streams(&out, Edit::Replace(&e)).unwrap();
        assert!(
            !out.contains("transport"),
            "a key set to nothing goes: {out}"
        );
    }

    #[test]
    fn removing_takes_the_entry_and_leaves_the_rest() {
        let path = StreamPath::parse("cams/cam1").unwrap();
        let out = edit_streams(FILE, Edit::Remove(&path)).unwrap();
        assert!(!out.contains("cam1"), "{out}");
        assert!(out.contains("source = \"file:demo.flv\" # loops"), "{out}");
        assert!(out.starts_with(
            "# corecast config\n[http]\nlisten = \"127.0.0.1:8080\" # the web page\n"
        ));
        let gone = StreamPath::parse("nope").unwrap();
        assert!(edit_streams(FILE, Edit::Remove(&gone)).is_err());
        assert!(edit_streams("streams = 3\n", Edit::Remove(&gone)).is_err());
        assert!(edit_streams("[http\n", Edit::Remove(&gone)).is_err());
    }

    #[test]
    fn the_shipped_config_keeps_every_line() {
        let shipped = crate::config::DEFAULT_CONFIG;
        let out =
            edit_streams(shipped, Edit::Add(&entry("cams/cam7", "rtsp://10.0.0.7/s"))).unwrap();
        for line in shipped.lines() {
            assert!(out.contains(line), "lost: {line}");
        }
        let parsed = crate::config::Config::parse(&out).unwrap();
        assert_eq!(
            parsed.streams.last().map(|s| s.path.as_str()),
            Some("cams/cam7")
        );
        let demo = StreamPath::parse("demo").unwrap();
        let out = edit_streams(&out, Edit::Remove(&demo)).unwrap();
        assert_eq!(crate::config::Config::parse(&out).unwrap().streams.len(), 1);
        assert!(out.contains("# An IP camera pulled over RTSP"), "{out}");
    }

    #[test]
    fn the_file_is_replaced_whole() {
        let dir = std::env::temp_dir().join(format!("corecast-edit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(&file, FILE).unwrap();
        write_atomic(&file, "x = 1\n").unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "x = 1\n");
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(left.len(), 1, "no temporary file left");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
