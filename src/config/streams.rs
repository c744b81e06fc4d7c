//! The running `[[streams]]` table and what changes between two of them: the API and a
//! reload make a new table, [`StreamTable::settle_shards`] keeps owners where they are,
//! and [`StreamTable::changes`] says which sources start, restart and stop.

use super::{ConfigError, StreamConfig, StreamPlan};
use crate::stream::{Holder, StreamPath};
use serde_json::{Value, json};
use std::collections::HashMap;

/// The configured streams, validated.
#[derive(Debug, Clone, Default)]
pub struct StreamTable {
    /// The `[[streams]]` entries as written (defaults not filled in).
    pub entries: Vec<StreamConfig>,
    /// Streams with a source, resolved (path normalised, owner shard chosen).
    pub plans: Vec<StreamPlan>,
    /// Publish keys of paths that publishers push to (path → key).
    pub publish_keys: HashMap<StreamPath, String>,
}

/// What applying a new table means, path by path.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamChanges {
    /// Entries that are new (normalised paths).
    pub added: Vec<String>,
    /// Entries that differ.
    pub changed: Vec<String>,
    /// Entries that are gone.
    pub removed: Vec<String>,
    /// Entries that are the same.
    pub unchanged: usize,
    /// Sources to start.
    pub start: Vec<StreamPlan>,
    /// Sources to stop and start again as the new plan (which may name another shard).
    pub restart: Vec<(StreamPlan, StreamPlan)>,
    /// Sources to stop; `true`: the path is gone (its viewers are ended), `false`: it
    /// stays as a path publishers push to (its viewers wait for one).
    pub stop: Vec<(StreamPlan, bool)>,
}

impl StreamChanges {
    /// Whether nothing changes.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.changed.is_empty() && self.removed.is_empty()
    }
}

impl StreamTable {
    /// The key a publisher of `path` must give, if any (the path's own, else `global`).
    pub fn publish_key<'a>(&'a self, path: &str, global: Option<&'a str>) -> Option<&'a str> {
        self.publish_keys.get(path).map(String::as_str).or(global)
    }

    /// Whether `path` is fed by a configured source (and so cannot be published to).
    pub fn has_source(&self, path: &str) -> bool {
        self.plan(path).is_some()
    }

    /// The plan of the source of `path`.
    pub fn plan(&self, path: &str) -> Option<&StreamPlan> {
        self.plans.iter().find(|s| s.path.as_str() == path)
    }

    /// The entry of `path` (normalised), with its index.
    pub fn entry(&self, path: &StreamPath) -> Option<(usize, &StreamConfig)> {
        self.entries
            .iter()
            .enumerate()
            .find(|(_, e)| StreamPath::parse(&e.path).is_ok_and(|p| p == *path))
    }

    /// Every configured path with who holds it: sources, then paths publishers push to
    /// (for [`StreamPath::check_claim`]).
    pub fn configured_paths(&self) -> Vec<(&str, Holder)> {
        let sources = self.plans.iter().map(|s| (s.path.as_str(), Holder::Source));
        let targets = self
            .publish_keys
            .keys()
            .map(|p| (p.as_str(), Holder::PublishTarget));
        sources.chain(targets).collect()
    }

    /// Keeps owners where `old` has them: a stream whose entry names no `shard` stays on
    /// the shard that runs it now; a new one goes to the shard with the fewest sources
    /// (the lowest on a tie), instead of the round-robin by position a fresh start uses.
    pub fn settle_shards(&mut self, old: &StreamTable, shards: usize) {
        let explicit = |path: &StreamPath| self.entry(path).is_some_and(|(_, e)| e.shard.is_some());
        let mut placed = vec![false; self.plans.len()];
        let mut load = vec![0usize; shards.max(1)];
        for (i, plan) in self.plans.iter().enumerate() {
            if !explicit(&plan.path)
                && let Some(before) = old.plan(plan.path.as_str())
                && before.shard < load.len()
            {
                placed[i] = true;
                load[before.shard] += 1;
            } else if explicit(&plan.path) {
                placed[i] = true;
                let last = load.len() - 1;
                load[plan.shard.min(last)] += 1;
            }
        }
        let mut moved = Vec::new();
        for (i, plan) in self.plans.iter().enumerate() {
            if placed[i] {
                if !explicit(&plan.path)
                    && let Some(before) = old.plan(plan.path.as_str())
                {
                    moved.push((i, before.shard));
                }
                continue;
            }
            let (least, _) = load
                .iter()
                .enumerate()
                .min_by_key(|(s, n)| (**n, *s))
                .unwrap_or((0, &0));
            load[least] += 1;
            moved.push((i, least));
        }
        for (i, shard) in moved {
            self.plans[i].shard = shard;
        }
    }

    /// What changes from `old` to `self`.
    pub fn changes(&self, old: &StreamTable) -> StreamChanges {
        let mut c = StreamChanges::default();
        let key = |e: &StreamConfig| StreamPath::parse(&e.path).ok();
        for e in &self.entries {
            let Some(path) = key(e) else { continue };
            let new_plan = self.plan(path.as_str());
            match old.entry(&path) {
                None => {
                    c.added.push(path.as_str().to_string());
                    c.start.extend(new_plan.cloned());
                }
                Some((_, before)) => {
                    let old_plan = old.plan(path.as_str());
                    if before == e && old_plan == new_plan {
                        c.unchanged += 1;
                        continue;
                    }
                    c.changed.push(path.as_str().to_string());
                    match (old_plan, new_plan) {
                        (Some(a), Some(b)) if a != b => c.restart.push((a.clone(), b.clone())),
                        (Some(a), None) => c.stop.push((a.clone(), false)),
                        (None, Some(b)) => c.start.push(b.clone()),
                        _ => {}
                    }
                }
            }
        }
        for e in &old.entries {
            let Some(path) = key(e) else { continue };
            if self.entry(&path).is_none() {
                c.removed.push(path.as_str().to_string());
                c.stop
                    .extend(old.plan(path.as_str()).map(|p| (p.clone(), true)));
            }
        }
        c
    }
}

/// A `[[streams]]` entry from its JSON form (the API's bodies), or the error the config
/// file would get for it, naming the entry `streams[label]`.
pub fn entry_from_json(v: Value, label: &str) -> Result<StreamConfig, ConfigError> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let at = e.path().to_string();
        let key = if at == "." {
            format!("streams[{label}]")
        } else {
            format!("streams[{label}].{at}")
        };
        ConfigError::new(key, e.into_inner().to_string())
    })
}

/// RFC 7396 JSON merge patch: `patch`'s members replace `target`'s, recursively for
/// objects; `null` removes. Bounded by `patch`'s own depth.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    if let Value::Object(t) = target {
        for (k, v) in p {
            if v.is_null() {
                t.remove(k);
            } else {
                merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use std::path::Path;

    const DEMO: &str = "file:configs/media/demo.flv";

    fn table(entries: &[(&str, Option<&str>, Option<usize>)], shards: usize) -> StreamTable {
        let mut text = String::new();
        for (path, source, shard) in entries {
            text.push_str(&format!("[[streams]]\npath = \"{path}\"\n"));
            match source {
                Some(s) => text.push_str(&format!("source = \"{s}\"\n")),
                None => text.push_str("publish_key = \"k\"\n"),
            }
            if let Some(n) = shard {
                text.push_str(&format!("shard = {n}\n"));
            }
        }
        let base = Path::new(env!("CARGO_MANIFEST_DIR"));
        Config::parse(&text)
            .expect("parses")
            .stream_table(shards, base)
            .expect("valid")
    }

    #[test]
    fn merge_patch_follows_rfc_7396() {
        let mut t = json!({"path": "a", "source": "rtsp://x", "transport": "tcp"});
        merge_patch(
            &mut t,
            &json!({"source": "rtsp://y", "transport": null, "on_demand": true}),
        );
        assert_eq!(
            t,
            json!({"path": "a", "source": "rtsp://y", "on_demand": true})
        );
        merge_patch(&mut t, &json!(3));
        assert_eq!(t, json!(3));
    }

    fn shard_of(t: &StreamTable, path: &str) -> usize {
        t.plan(path).expect("plan").shard
    }

    #[test]
    fn unchanged_streams_keep_their_shard_and_new_ones_go_where_there_is_room() {
        let old = table(&[("a", Some(DEMO), None), ("b", Some(DEMO), None)], 2);
        assert_eq!((shard_of(&old, "a"), shard_of(&old, "b")), (0, 1));
        // "a" removed: by position "b" would move to shard 0; it stays on 1.
        let mut new = table(&[("b", Some(DEMO), None), ("c", Some(DEMO), None)], 2);
        new.settle_shards(&old, 2);
        assert_eq!(shard_of(&new, "b"), 1);
        assert_eq!(shard_of(&new, "c"), 0, "the emptier shard");
        let c = new.changes(&old);
        assert_eq!(c.added, ["c"]);
        assert_eq!(c.removed, ["a"]);
        assert_eq!(c.unchanged, 1);
        assert!(c.changed.is_empty() && c.restart.is_empty(), "{c:?}");
        assert_eq!(c.start.len(), 1);
        assert_eq!(c.stop.len(), 1);
        assert!(c.stop[0].1, "a removed path ends its viewers");
    }

    #[test]
    fn a_changed_source_restarts_and_an_explicit_shard_moves_it() {
        let old = table(&[("a", Some(DEMO), None)], 2);
        let mut new = table(&[("a", Some("rtsp://127.0.0.1:1/x"), None)], 2);
        new.settle_shards(&old, 2);
        let c = new.changes(&old);
        assert_eq!(c.changed, ["a"]);
        assert_eq!(c.restart.len(), 1);
        assert_eq!(c.restart[0].1.shard, 0);
        let mut moved = table(&[("a", Some(DEMO), Some(1))], 2);
        moved.settle_shards(&old, 2);
        let c = moved.changes(&old);
        assert_eq!(c.restart.len(), 1, "{c:?}");
        assert_eq!((c.restart[0].0.shard, c.restart[0].1.shard), (0, 1));
    }

    #[test]
    fn a_source_that_becomes_a_publish_target_stops_without_ending_viewers() {
        let old = table(&[("a", Some(DEMO), None), ("p", None, None)], 1);
        let mut new = table(&[("a", None, None)], 1);
        new.settle_shards(&old, 1);
        let c = new.changes(&old);
        assert_eq!(c.changed, ["a"]);
        assert_eq!(c.removed, ["p"]);
        assert_eq!(c.stop.len(), 1);
        assert!(!c.stop[0].1);
        assert!(c.start.is_empty());
        assert!(new.publish_key("a", None).is_some());
        assert_eq!(new.publish_key("x", Some("g")), Some("g"));
        assert!(!new.has_source("a"));
    }
}
