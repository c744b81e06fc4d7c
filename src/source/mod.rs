//! Sources that a shard runs itself (as opposed to publishers that connect): the looping
//! file source now, RTSP pull later.

pub mod clip;
mod file;

use crate::config::{SourceUrl, StreamPlan};
use crate::shard::ShardRef;

/// Runs the source of a configured stream on its owner shard until the task is dropped.
pub async fn run(shard: ShardRef, plan: StreamPlan) {
    match &plan.source {
        SourceUrl::File(path) => file::run(shard, &plan.path, path).await,
    }
}
