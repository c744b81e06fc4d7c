//! A media clip played as a live stream: the FLV tags of a file, replayed in a loop with
//! timestamps that keep increasing across loops. Pure: the driver paces it by the clock.

use super::flv::{self, DemuxOutput, Demuxer, FlvError, FlvHeader, TagType};
use super::{Frame, Track};
use bytes::Bytes;

/// One audio or video tag of the clip, its timestamp relative to the clip's first tag.
#[derive(Debug, Clone)]
pub struct ClipTag {
    /// Audio or video.
    pub kind: TagType,
    /// Milliseconds from the start of the clip.
    pub offset_ms: i64,
    /// The tag body (shared with the file buffer).
    pub body: Bytes,
}

/// The audio and video tags of an FLV file, in file order.
#[derive(Debug, Clone)]
pub struct Clip {
    tags: Vec<ClipTag>,
    /// Length of one pass: the video's span plus one frame interval (or the last
    /// timestamp plus 20 ms without video).
    loop_ms: i64,
    /// Average interval between video tags, if the clip has at least two.
    video_interval_ms: Option<f64>,
}

/// Why a file cannot be played.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClipError {
    /// The FLV is malformed.
    #[error("{0}")]
    Flv(#[from] FlvError),
    /// Not an FLV file (or truncated before the header ends).
    #[error("not an FLV file")]
    NotFlv,
    /// No audio or video tags.
    #[error("the file has no audio or video")]
    Empty,
}

impl Clip {
    /// Parses a whole FLV file. A truncated last tag is ignored.
    pub fn parse(file: Bytes, max_tag: usize) -> Result<Clip, ClipError> {
        let header = FlvHeader::parse(&file)?.ok_or(ClipError::NotFlv)?;
        let mut pos = header.first_tag_offset();
        let mut tags = Vec::new();
        let mut first: Option<i64> = None;
        while let Some((tag, next)) = flv::read_tag(&file, pos, max_tag)? {
            pos = next;
            if !matches!(tag.tag_type, TagType::Audio | TagType::Video) || tag.data.is_empty() {
                continue;
            }
            let ts = i64::from(tag.timestamp);
            let base = *first.get_or_insert(ts);
            tags.push(ClipTag {
                kind: tag.tag_type,
                offset_ms: (ts - base).max(0),
                body: tag.data,
            });
        }
        if tags.is_empty() {
            return Err(ClipError::Empty);
        }
        let video: Vec<i64> = tags
            .iter()
            .filter(|t| t.kind == TagType::Video)
            .map(|t| t.offset_ms)
            .collect();
        let video_interval_ms = match (video.first(), video.last()) {
            (Some(a), Some(b)) if video.len() >= 2 && b > a => {
                Some((b - a) as f64 / (video.len() - 1) as f64)
            }
            _ => None,
        };
        let step = video_interval_ms.map_or(20, |v| v.round().max(1.0) as i64);
        let loop_ms = match (video.first(), video.last()) {
            // The next pass's first video frame follows the last one by one frame
            // interval; audio running past that point is cut so that it cannot overlap
            // the next pass's audio.
            (Some(first), Some(last)) => {
                let loop_ms = last + step - first;
                tags.retain(|t| t.kind == TagType::Video || t.offset_ms < loop_ms);
                loop_ms
            }
            _ => tags.iter().map(|t| t.offset_ms).max().unwrap_or(0) + step,
        };
        Ok(Clip {
            tags,
            loop_ms,
            video_interval_ms,
        })
    }

    /// The tags of one pass.
    pub fn tags(&self) -> &[ClipTag] {
        &self.tags
    }

    /// Length of one pass in milliseconds.
    pub fn loop_ms(&self) -> i64 {
        self.loop_ms
    }

    /// Frames per second of the video, measured from the tag timestamps.
    pub fn video_fps(&self) -> Option<f64> {
        self.video_interval_ms
            .filter(|v| *v > 0.0)
            .map(|v| 1000.0 / v)
    }

    /// One pass demuxed: the tracks at its end and every frame, in file order (tests,
    /// benchmarks and tools that need the clip's frames rather than its tags).
    pub fn frames(&self) -> Result<(Vec<Track>, Vec<Frame>), FlvError> {
        let mut demux = Demuxer::new();
        let mut frames = Vec::new();
        for tag in &self.tags {
            if let Some(DemuxOutput::Frame(f)) = demux.tag(tag.kind, tag.offset_ms, &tag.body)? {
                frames.push(f);
            }
        }
        Ok((demux.tracks(), frames))
    }

    /// The `index`-th tag of the endless replay, with its timestamp in ms on the live
    /// timeline (pass `n` is shifted by `n * loop_ms`).
    pub fn live_tag(&self, index: u64) -> (i64, &ClipTag) {
        let n = self.tags.len() as u64;
        let pass = (index / n) as i64;
        let tag = &self.tags[(index % n) as usize];
        (pass * self.loop_ms + tag.offset_ms, tag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flv_file(tags: &[(u8, u32)]) -> Bytes {
        let mut out = Vec::new();
        flv::write_header(&mut out, true, true);
        for (kind, ts) in tags {
            flv::write_tag(&mut out, *kind, *ts, &[0x17, 1, 0, 0, 0, 0xAA]).expect("small tag");
        }
        Bytes::from(out)
    }

    #[test]
    fn timestamps_continue_across_loops() {
        let clip = Clip::parse(
            flv_file(&[(9, 1000), (8, 1010), (9, 1040), (9, 1080)]),
            1 << 20,
        )
        .unwrap();
        assert_eq!(clip.tags().len(), 4);
        assert_eq!(clip.loop_ms(), 80 + 40);
        let times: Vec<i64> = (0..8).map(|i| clip.live_tag(i).0).collect();
        assert_eq!(times, [0, 10, 40, 80, 120, 130, 160, 200]);
        assert!(times.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(clip.video_fps(), Some(25.0));
    }

    #[test]
    fn video_keeps_its_frame_interval_across_loops() {
        // Video starts 20 ms in; audio runs 30 ms past the last video frame.
        let clip = Clip::parse(
            flv_file(&[(8, 0), (9, 20), (9, 60), (8, 90), (9, 100), (8, 130)]),
            1 << 20,
        )
        .unwrap();
        assert_eq!(clip.loop_ms(), 100 + 40 - 20);
        // The audio tag at 130 would land after the next pass's first audio: cut.
        assert_eq!(clip.tags().len(), 5);
        let video: Vec<i64> = (0..10)
            .map(|i| clip.live_tag(i))
            .filter(|(_, t)| t.kind == TagType::Video)
            .map(|(ts, _)| ts)
            .collect();
        assert_eq!(video, [20, 60, 100, 140, 180, 220]);
        let all: Vec<i64> = (0..10).map(|i| clip.live_tag(i).0).collect();
        assert!(all.windows(2).all(|w| w[0] <= w[1]), "{all:?}");
    }

    #[test]
    fn script_tags_are_skipped_and_garbage_rejected() {
        let clip = Clip::parse(flv_file(&[(18, 0), (9, 0)]), 1 << 20).unwrap();
        assert_eq!(clip.tags().len(), 1);
        assert!(matches!(
            Clip::parse(Bytes::from_static(b"GIF89a...."), 1 << 20),
            Err(ClipError::Flv(_))
        ));
        assert!(matches!(
            Clip::parse(flv_file(&[(18, 0)]), 1 << 20),
            Err(ClipError::Empty)
        ));
    }

    #[test]
    fn demo_clip_parses() {
        let data = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/configs/media/demo.flv"
        ))
        .unwrap();
        let clip = Clip::parse(Bytes::from(data), 8 << 20).unwrap();
        let fps = clip.video_fps().unwrap();
        assert!((fps - 30.0).abs() < 0.5, "{fps}");
        assert!(
            (3900..=4100).contains(&clip.loop_ms()),
            "{}",
            clip.loop_ms()
        );
    }
}
