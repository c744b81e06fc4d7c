//! Sources that a shard runs itself (as opposed to publishers that connect): the looping
//! file source and RTSP camera pulls; and [`describe`], a camera tried before it is added.

mod file;
mod rtsp;

pub use rtsp::{DESCRIBE_MAX_BYTES, DescribeRequest, Described, describe};

use crate::config::{SourceUrl, StreamPlan};
use crate::shard::ShardRef;

/// Runs the source of a configured stream on its owner shard until the task is dropped.
pub async fn run(shard: ShardRef, plan: StreamPlan) {
    match &plan.source {
        SourceUrl::File(path) => file::run(shard, &plan.path, path).await,
        SourceUrl::Rtsp(src) => rtsp::run(shard, &plan.path, (**src).clone()).await,
    }
}
