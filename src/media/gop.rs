//! The GOP cache: every frame since the last video keyframe, so that a new viewer can
//! start decoding at once instead of waiting for the next keyframe.

use super::{Frame, MediaKind};
use std::collections::VecDeque;

/// What a GOP cache can hold: a frame, or something that carries one (a frame with
/// cached derived forms).
pub trait GopFrame: Clone {
    /// The frame.
    fn frame(&self) -> &Frame;
}

impl GopFrame for Frame {
    fn frame(&self) -> &Frame {
        self
    }
}

/// Frames since the last video keyframe, bounded in frames and bytes.
///
/// For a stream with video the cache starts at a video keyframe and holds the audio
/// interleaved with it. For an audio-only stream it holds the most recent frames up to
/// the bounds. A GOP larger than the bounds empties the cache until the next keyframe
/// (counted in [`GopCache::overflows`]): a partial GOP would only give a broken picture.
#[derive(Debug)]
pub struct GopCache<T: GopFrame = Frame> {
    frames: VecDeque<T>,
    bytes: usize,
    max_frames: usize,
    max_bytes: usize,
    has_video: bool,
    overflows: u64,
}

impl<T: GopFrame> GopCache<T> {
    /// An empty cache with the given bounds.
    pub fn new(max_frames: usize, max_bytes: usize) -> Self {
        GopCache {
            frames: VecDeque::new(),
            bytes: 0,
            max_frames: max_frames.max(1),
            max_bytes,
            has_video: false,
            overflows: 0,
        }
    }

    /// Adds a frame (cheap: the payload is shared, not copied).
    pub fn push(&mut self, item: &T) {
        let frame = item.frame();
        let video = frame.kind == MediaKind::Video;
        if video && frame.keyframe {
            self.has_video = true;
            self.clear();
        } else if self.has_video && self.frames.is_empty() {
            // Waiting for a keyframe: nothing before it is decodable.
            return;
        }
        if self.frames.len() + 1 > self.max_frames || self.bytes + frame.data.len() > self.max_bytes
        {
            if self.has_video {
                self.overflows += 1;
                self.clear();
                return;
            }
            // Audio only: keep a sliding window.
            while let Some(old) = self.frames.pop_front() {
                self.bytes -= old.frame().data.len();
                if self.frames.len() < self.max_frames
                    && self.bytes + frame.data.len() <= self.max_bytes
                {
                    break;
                }
            }
            if frame.data.len() > self.max_bytes {
                return;
            }
        }
        self.bytes += frame.data.len();
        self.frames.push_back(item.clone());
    }

    /// Forgets every frame (the stream restarted or its codec changed).
    pub fn clear(&mut self) {
        self.frames.clear();
        self.bytes = 0;
    }

    /// The cached frames, oldest (the keyframe) first.
    pub fn frames(&self) -> impl ExactSizeIterator<Item = &T> + '_ {
        self.frames.iter()
    }

    /// Number of cached frames.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Payload bytes cached.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// How many GOPs did not fit and were dropped.
    pub fn overflows(&self) -> u64 {
        self.overflows
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::TrackId;
    use bytes::Bytes;

    fn frame(kind: MediaKind, keyframe: bool, t: i64, len: usize) -> Frame {
        Frame {
            track: TrackId(if kind == MediaKind::Video { 0 } else { 1 }),
            kind,
            keyframe,
            dts: t,
            pts: t,
            data: Bytes::from(vec![0u8; len]),
        }
    }

    #[test]
    fn starts_at_keyframe_and_restarts_at_the_next() {
        let mut g: GopCache = GopCache::new(100, 1 << 20);
        g.push(&frame(MediaKind::Video, false, 0, 10)); // before any keyframe: dropped
        g.push(&frame(MediaKind::Audio, true, 0, 10)); // audio before any video keyframe
        g.push(&frame(MediaKind::Video, true, 1, 100));
        g.push(&frame(MediaKind::Audio, true, 2, 10));
        g.push(&frame(MediaKind::Video, false, 3, 20));
        assert_eq!(g.len(), 3);
        assert!(
            g.frames()
                .next()
                .is_some_and(|f| f.keyframe && f.kind == MediaKind::Video)
        );
        assert_eq!(g.bytes(), 130);
        g.push(&frame(MediaKind::Video, true, 4, 50));
        assert_eq!(g.len(), 1);
        assert_eq!(g.bytes(), 50);
    }

    #[test]
    fn oversized_gop_is_dropped_whole_until_next_keyframe() {
        let mut g: GopCache = GopCache::new(3, 1 << 20);
        g.push(&frame(MediaKind::Video, true, 0, 1));
        g.push(&frame(MediaKind::Video, false, 1, 1));
        g.push(&frame(MediaKind::Video, false, 2, 1));
        g.push(&frame(MediaKind::Video, false, 3, 1));
        assert!(g.is_empty());
        assert_eq!(g.overflows(), 1);
        g.push(&frame(MediaKind::Video, false, 4, 1));
        assert!(g.is_empty());
        g.push(&frame(MediaKind::Video, true, 5, 1));
        assert_eq!(g.len(), 1);
    }

    #[test]
    fn byte_bound_applies() {
        let mut g: GopCache = GopCache::new(100, 150);
        g.push(&frame(MediaKind::Video, true, 0, 100));
        g.push(&frame(MediaKind::Video, false, 1, 100));
        assert!(g.is_empty());
        assert_eq!(g.overflows(), 1);
    }

    #[test]
    fn audio_only_keeps_a_window() {
        let mut g: GopCache = GopCache::new(3, 1 << 20);
        for t in 0..10 {
            g.push(&frame(MediaKind::Audio, true, t, 5));
        }
        assert_eq!(g.len(), 3);
        assert_eq!(g.frames().next().map(|f| f.dts), Some(7));
        assert_eq!(g.bytes(), 15);
    }

    #[test]
    fn cached_frames_share_the_payload() {
        let mut g: GopCache = GopCache::new(10, 1 << 20);
        let f = frame(MediaKind::Video, true, 0, 1000);
        g.push(&f);
        assert_eq!(
            g.frames().next().map(|c| c.data.as_ptr()),
            Some(f.data.as_ptr())
        );
    }
}
