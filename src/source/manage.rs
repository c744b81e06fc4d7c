//! Changing the configured streams while the server runs: one change from the API (add,
//! replace, remove an entry) or a reload of the whole file. Either makes a new
//! [`StreamTable`] from the running configuration, checks it as the file is checked,
//! keeps owners where they are, writes an API change back to the `--config` file, swaps
//! the table in, and sends each owner shard the [`SourceCmd`]s of what changed: only the
//! sources whose entry changed start, restart or stop.

use super::command;
use crate::config::{
    Config, ConfigError, Edit, StreamChanges, StreamConfig, StreamPlan, edit_streams, write_atomic,
};
use crate::shard::{ShardRef, SourceCmd};
use crate::stream::StreamPath;
use std::path::{Path, PathBuf};
use tracing::{error, info, warn};

/// One change to the configured streams.
#[derive(Debug, Clone)]
pub enum Change {
    /// A new entry.
    Add(StreamConfig),
    /// The entry with the same path, replaced.
    Replace(StreamConfig),
    /// The entry of this path, removed.
    Remove(StreamPath),
}

/// Why a change was refused; nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    /// The new table is not valid (the message the config file would get).
    #[error(transparent)]
    Invalid(#[from] ConfigError),
    /// The path is configured already.
    #[error("streams[{0}]: a stream with this path is configured already (PATCH it instead)")]
    Exists(String),
    /// No configured stream has this path.
    #[error("no configured stream has the path '{0}'")]
    NotFound(String),
    /// A publisher holds the path (or one the alias rule ties to it).
    #[error("streams[{0}]: {1}")]
    Busy(String, String),
    /// The config file could not be written; the running streams are unchanged.
    #[error("the change was not made: cannot write {file}: {why}")]
    Write {
        /// The file.
        file: String,
        /// What went wrong.
        why: String,
    },
}

/// What a change did.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Whether it was written to the config file.
    pub persisted: bool,
    /// Where it lives, for the operator (written to FILE, or lasts until restart and why).
    pub message: String,
    /// What changed.
    pub changes: StreamChanges,
}

/// Makes `change` to the running streams (see the module docs).
pub fn change(shard: &ShardRef, change: Change) -> Result<Outcome, ChangeError> {
    let shared = &shard.shared;
    let settings = &shared.settings;
    let mut table = shared.streams();
    let mut entries = table.entries.clone();
    let (label, edit_path) = match &change {
        Change::Add(e) | Change::Replace(e) => (label_of(e), StreamPath::parse(&e.path).ok()),
        Change::Remove(p) => (p.as_str().to_string(), Some(p.clone())),
    };
    let existing = edit_path
        .as_ref()
        .and_then(|p| table.entry(p))
        .map(|(i, _)| i);
    match (&change, existing) {
        (Change::Add(_), Some(_)) => return Err(ChangeError::Exists(label)),
        (Change::Add(e), None) => entries.push(e.clone()),
        (Change::Replace(_) | Change::Remove(_), None) => return Err(ChangeError::NotFound(label)),
        (Change::Replace(e), Some(i)) => entries[i] = e.clone(),
        (Change::Remove(_), Some(i)) => {
            entries.remove(i);
        }
    }
    let config = Config {
        streams: entries,
        ..settings.config.clone()
    };
    let mut new = config.stream_table(settings.shards, &base_dir(settings.file.as_deref()))?;
    new.settle_shards(&table, settings.shards);
    let changes = new.changes(&table);
    for plan in &changes.start {
        check_free(shard, plan, &label)?;
    }
    let (persisted, message) = match (&settings.file, settings.config.api.persist) {
        (Some(file), true) => {
            let edit = match (&change, &edit_path) {
                (Change::Add(e), _) => Edit::Add(e),
                (Change::Replace(e), _) => Edit::Replace(e),
                (Change::Remove(_), Some(p)) => Edit::Remove(p),
                (Change::Remove(p), None) => Edit::Remove(p),
            };
            persist(file, edit)?;
            (true, format!("written to {}", file.display()))
        }
        (Some(_), false) => (
            false,
            "not written to the config file (api.persist = false): the change lasts until restart"
                .to_string(),
        ),
        (None, _) => (
            false,
            "running configuration only (the server was started without --config): the change \
             lasts until restart"
                .to_string(),
        ),
    };
    *table = new;
    drop(table);
    info!(
        added = ?changes.added, changed = ?changes.changed, removed = ?changes.removed,
        persisted, "streams changed through the API"
    );
    apply(shard, &changes);
    Ok(Outcome {
        persisted,
        message,
        changes,
    })
}

/// A new source's path must not be held by a publisher (nor clash with one by the alias
/// rule); the publisher would be cut off.
fn check_free(shard: &ShardRef, plan: &StreamPlan, label: &str) -> Result<(), ChangeError> {
    let hub = shard.hub.borrow();
    if let Some(owner) = hub.owner(plan.path.as_str()) {
        let why = format!(
            "a publisher is publishing '{}' right now (shard {owner}); end its session first",
            plan.path
        );
        return Err(ChangeError::Busy(label.to_string(), why));
    }
    hub.check_claim(&plan.path)
        .map_err(|e| ChangeError::Busy(label.to_string(), e.to_string()))
}

fn persist(file: &Path, edit: Edit<'_>) -> Result<(), ChangeError> {
    let fail = |why: String| ChangeError::Write {
        file: file.display().to_string(),
        why,
    };
    let text = std::fs::read_to_string(file).map_err(|e| fail(e.to_string()))?;
    let text = edit_streams(&text, edit).map_err(fail)?;
    write_atomic(file, &text).map_err(|e| fail(e.to_string()))
}

/// How errors name an entry: its path if it is one, else `new`.
fn label_of(e: &StreamConfig) -> String {
    StreamPath::parse(&e.path).map_or_else(|_| "new".to_string(), |p| p.as_str().to_string())
}

/// Where relative `file:` sources start: the config file's folder, else the working
/// folder (as at start).
fn base_dir(file: Option<&Path>) -> PathBuf {
    file.and_then(Path::parent)
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// Sends each owner shard its orders for `changes`.
pub fn apply(shard: &ShardRef, changes: &StreamChanges) {
    for plan in &changes.start {
        command(shard, plan.shard, SourceCmd::Start(plan.clone()));
    }
    for (old, new) in &changes.restart {
        let stop = SourceCmd::Stop {
            path: old.path.clone(),
            removed: false,
            then: Some(new.clone()),
        };
        command(shard, old.shard, stop);
    }
    for (old, removed) in &changes.stop {
        let stop = SourceCmd::Stop {
            path: old.path.clone(),
            removed: *removed,
            then: None,
        };
        command(shard, old.shard, stop);
    }
}

/// What a reload did.
#[derive(Debug, Clone)]
pub struct Reloaded {
    /// The streams that changed.
    pub changes: StreamChanges,
    /// Keys that differ from the running configuration but need a restart; left as
    /// they are.
    pub restart_needed: Vec<String>,
}

/// Why a reload was refused; nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// Running on the built-in configuration.
    #[error("the server runs on the built-in configuration (no --config file): nothing to reload")]
    NoFile,
    /// The file cannot be read.
    #[error("cannot read {0}: {1}")]
    Read(String, String),
    /// The file has an error.
    #[error("{0}: {1}")]
    Invalid(String, ConfigError),
}

/// Re-reads the `--config` file and applies its `[[streams]]`: added, changed and
/// removed streams start, restart and stop; unchanged ones are not touched. Other keys
/// that changed are named (they need a restart) and left as they are. A file with an
/// error changes nothing.
pub fn reload(shard: &ShardRef) -> Result<Reloaded, ReloadError> {
    let shared = &shard.shared;
    let settings = &shared.settings;
    let file = settings.file.as_deref().ok_or(ReloadError::NoFile)?;
    let shown = file.display().to_string();
    let text = std::fs::read_to_string(file)
        .map_err(|e| ReloadError::Read(shown.clone(), e.to_string()))?;
    let base = base_dir(Some(file));
    let cpus: Vec<usize> = core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.id)
        .collect();
    let invalid = |e| ReloadError::Invalid(shown.clone(), e);
    let config = Config::parse(&text).map_err(invalid)?;
    let restart_needed = restart_keys(&settings.config, &config);
    config.clone().validate(&cpus, &base).map_err(invalid)?;
    let mut new = config
        .stream_table(settings.shards, &base)
        .map_err(invalid)?;
    let mut table = shared.streams();
    new.settle_shards(&table, settings.shards);
    let changes = new.changes(&table);
    *table = new;
    drop(table);
    apply(shard, &changes);
    Ok(Reloaded {
        changes,
        restart_needed,
    })
}

/// [`reload`], logged: what changed, what needs a restart, or why nothing did.
pub fn reload_logged(shard: &ShardRef, why: &str) -> Result<Reloaded, ReloadError> {
    let r = reload(shard);
    match &r {
        Ok(done) => {
            let c = &done.changes;
            info!(
                added = ?c.added, changed = ?c.changed, removed = ?c.removed, unchanged = c.unchanged,
                "{why}: config reloaded"
            );
            if !done.restart_needed.is_empty() {
                warn!(
                    "{why}: these keys changed but need a restart and were left as they are: {}",
                    done.restart_needed.join(", ")
                );
            }
        }
        Err(e) => error!("{why}: config reload rejected, the running configuration stays: {e}"),
    }
    r
}

/// The dotted keys, outside `[[streams]]`, whose values differ between `old` and `new`.
fn restart_keys(old: &Config, new: &Config) -> Vec<String> {
    let as_value = |c: &Config| {
        let mut c = c.clone();
        c.streams.clear();
        toml::Value::try_from(c).unwrap_or(toml::Value::Table(Default::default()))
    };
    let mut keys = Vec::new();
    diff_values("", &as_value(old), &as_value(new), &mut keys);
    keys
}

fn diff_values(at: &str, a: &toml::Value, b: &toml::Value, out: &mut Vec<String>) {
    match (a, b) {
        (toml::Value::Table(x), toml::Value::Table(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let key = if at.is_empty() {
                    k.clone()
                } else {
                    format!("{at}.{k}")
                };
                match (x.get(k), y.get(k)) {
                    (Some(v), Some(w)) => diff_values(&key, v, w, out),
                    _ => out.push(key),
                }
            }
        }
        _ if a != b => out.push(at.to_string()),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_that_need_a_restart_are_named() {
        let old = Config::parse("[http]\nlisten = \"127.0.0.1:8080\"\n").unwrap();
        let new = Config::parse(
            "[http]\nlisten = \"127.0.0.1:9090\"\n[runtime]\nshards = 3\n\
             [[streams]]\npath = \"a\"\npublish_key = \"k\"\n",
        )
        .unwrap();
        assert_eq!(restart_keys(&old, &new), ["http.listen", "runtime.shards"]);
        assert!(restart_keys(&old, &old).is_empty());
    }
}
