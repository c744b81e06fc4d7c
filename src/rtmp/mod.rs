//! RTMP: the sans-IO protocol core (`proto`) and the glommio connection driver.

pub mod proto;

use crate::shard::ShardRef;
use glommio::net::TcpListener;
use std::time::Duration;
use tracing::warn;

/// Accepts RTMP connections until the task is dropped.
pub async fn serve(shard: ShardRef, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok(stream) => {
                warn!(shard = shard.id, peer = ?stream.peer_addr().ok(), "RTMP connection closed: RTMP is not available yet");
                drop(stream);
            }
            Err(e) => {
                warn!(shard = shard.id, "rtmp accept: {e}");
                glommio::timer::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}
