//! The file source driver: loops an FLV clip as a live stream on its owner shard, paced by
//! the clip's timestamps.
#![allow(clippy::disallowed_methods)] // A driver: it reads the clock.

use crate::media::clip::Clip;
use crate::media::flv::{DemuxOutput, Demuxer};
use crate::shard::ShardRef;
use crate::stream::SourceInfo;
use bytes::Bytes;
use std::path::Path;
use std::time::{Duration, Instant};
use tracing::{error, info, warn};

/// Plays `file` as `path` until the task is dropped.
pub async fn run(shard: ShardRef, path: &str, file: &Path) {
    let url = format!("file:{}", file.display());
    let max_tag = shard
        .shared
        .settings
        .config
        .media
        .max_frame_bytes
        .as_usize();
    let clip = match std::fs::read(file)
        .map_err(|e| e.to_string())
        .and_then(|data| Clip::parse(Bytes::from(data), max_tag).map_err(|e| e.to_string()))
    {
        Ok(c) => c,
        Err(e) => {
            error!(path, file = %file.display(), "file source cannot start: {e}");
            return;
        }
    };
    let info = SourceInfo {
        kind: "file",
        url,
        state: crate::stream::SourceState::Live,
        stats: None,
        start_timeout: None,
        // The clip loops with continuous timestamps (media::clip).
        continues_timeline: true,
    };
    let path = match shard.hub.borrow_mut().publish(path, info) {
        Ok(p) => p,
        Err(e) => {
            error!("file source: {e}");
            return;
        }
    };
    info!(path = %path, file = %file.display(), loop_ms = clip.loop_ms(), tags = clip.tags().len(), "file source started");
    let mut demux = Demuxer::new();
    let start = Instant::now();
    let mut index: u64 = 0;
    loop {
        let (ts, tag) = clip.live_tag(index);
        index += 1;
        let due = start + Duration::from_millis(ts.max(0) as u64);
        let mut arrived = Instant::now();
        if due > arrived {
            glommio::timer::sleep(due - arrived).await;
            // The tag "arrives" when the source wakes to hand it over.
            arrived = Instant::now();
        }
        let out = demux.tag(tag.kind, ts, &tag.body);
        let mut hub = shard.hub.borrow_mut();
        match out {
            Ok(Some(DemuxOutput::TracksChanged)) => {
                let mut tracks = demux.tracks();
                for t in tracks.iter_mut().filter(|t| t.fps.is_none()) {
                    if t.kind() == crate::media::MediaKind::Video {
                        t.fps = clip.video_fps();
                    }
                }
                let _ = hub.set_tracks(&path, tracks);
            }
            Ok(Some(DemuxOutput::Frame(frame))) => {
                let _ = hub.push_frame_arrived(&path, frame, arrived);
            }
            Ok(None) => {}
            Err(e) => {
                if index <= clip.tags().len() as u64 {
                    warn!(path = %path, "file source: skipping bad tag {index}: {e}");
                }
            }
        }
    }
}
