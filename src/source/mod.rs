//! Sources that a shard runs itself (as opposed to publishers that connect): the looping
//! file source and RTSP camera pulls. Each runs as a task of its owner shard, started
//! and stopped by [`SourceCmd`]s: at start for the configured streams, and whenever the
//! API or a reload changes them. [`describe`] tries a camera before it is added.

mod file;
pub mod manage;
mod rtsp;

pub use rtsp::{DESCRIBE_MAX_BYTES, DescribeRequest, Described, describe};

use crate::config::{SourceUrl, StreamPlan};
use crate::shard::{ShardRef, SourceCmd};
use tracing::{info, warn};

/// Runs the source of a configured stream on its owner shard until the task is dropped.
pub async fn run(shard: ShardRef, plan: StreamPlan) {
    match &plan.source {
        SourceUrl::File(path) => file::run(shard, &plan.path, path).await,
        SourceUrl::Rtsp(src) => rtsp::run(shard, &plan.path, (**src).clone()).await,
    }
}

/// Sends `cmd` to shard `to`, or carries it out here if `to` is this shard.
pub fn command(shard: &ShardRef, to: usize, cmd: SourceCmd) {
    if to == shard.id {
        handle(shard, cmd);
    } else {
        shard.cmd_tx.send_cmd(to, cmd);
    }
}

/// Carries out `cmd` on this shard.
pub fn handle(shard: &ShardRef, cmd: SourceCmd) {
    match cmd {
        SourceCmd::Start(plan) if plan.shard != shard.id => {
            // Sent to the wrong shard: pass it on.
            let to = plan.shard;
            command(shard, to, SourceCmd::Start(plan));
        }
        SourceCmd::Start(plan) => start(shard, plan),
        SourceCmd::Stop {
            path,
            removed,
            then,
        } => {
            let task = shard.sources.borrow_mut().remove(&path);
            // Dropping the task stops the source (its sockets close with it).
            let had_source = task.is_some();
            drop(task);
            let mut hub = shard.hub.borrow_mut();
            let withdrawn = if removed {
                hub.remove(&path)
            } else {
                hub.unpublish(&path)
            };
            drop(hub);
            if had_source || withdrawn.is_ok() {
                let what = if then.is_some() {
                    "restarting"
                } else if removed {
                    "removed: its viewers are ended"
                } else {
                    "stopped: viewers wait for a publisher"
                };
                info!(shard = shard.id, path = %path, "source {what}");
            }
            if let Some(plan) = then {
                command(shard, plan.shard, SourceCmd::Start(plan));
            }
        }
    }
    shard.dirty.set(true);
    shard.shared.wake(shard.id);
}

fn start(shard: &ShardRef, plan: StreamPlan) {
    let path = plan.path.clone();
    let mut sources = shard.sources.borrow_mut();
    if sources.contains_key(&path) {
        warn!(shard = shard.id, path = %path, "source already running here; start ignored");
        return;
    }
    let task = glommio::spawn_local(run(shard.clone(), plan));
    sources.insert(path, task);
}
