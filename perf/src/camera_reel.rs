//! The camera's media, prepared once: every H.264 frame of an FLV clip demuxed with
//! corecast's FLV demuxer and cut into RTP payloads with `corecast::rtp::packetize`
//! before the first session starts. Sessions then only write headers in front of
//! shared payloads. Pure: the driver paces it by the clock.
//!
//! The clip loops like corecast's file source (`corecast::media::clip::Clip`): pass `n`
//! is shifted by `n * loop_ms`, so timestamps keep increasing. Audio is left out (the
//! simulated cameras are video-only).

use corecast::media::clip::Clip;
use corecast::media::flv::{DemuxOutput, Demuxer, TagType};
use corecast::media::{Codec, Track};
use corecast::rtp::{self, RtpPayload};

/// One video frame, packetized.
#[derive(Debug, Clone)]
pub struct ReelFrame {
    /// When it is due, ms from the start of the pass (its decode time).
    pub due_ms: i64,
    /// Its presentation time in 90 kHz ticks from the start of the pass.
    pub pts_ticks: i64,
    /// An IDR (a decoder can start here).
    pub keyframe: bool,
    /// The RTP payloads, marker on the last.
    pub payloads: Vec<RtpPayload>,
    /// Sum of the payload sizes.
    pub payload_bytes: usize,
    /// The frame as corecast holds it (AVCC), for senders that packetize themselves.
    pub data: bytes::Bytes,
}

/// A frame of the endless replay.
#[derive(Debug, Clone, Copy)]
pub struct LiveFrame<'a> {
    /// When it is due, ms since the replay started.
    pub due_ms: i64,
    /// Its RTP timestamp before the session's offset (90 kHz, wrapping).
    pub rtp_ts: u32,
    /// The frame.
    pub frame: &'a ReelFrame,
}

/// The packetized video frames of a clip.
#[derive(Debug, Clone)]
pub struct Reel {
    frames: Vec<ReelFrame>,
    loop_ms: i64,
    track: Track,
}

/// Largest RTP payload the camera sends.
pub const MAX_PAYLOAD: usize = rtp::MAX_PAYLOAD;

impl Reel {
    /// Demuxes and packetizes the video of `clip`. Fails if there is no H.264 track with
    /// SPS and PPS, no frame, no keyframe, or a frame cannot be packetized.
    pub fn from_clip(clip: &Clip) -> Result<Reel, String> {
        let mut demux = Demuxer::new();
        let mut track: Option<Track> = None;
        let mut frames = Vec::new();
        for (i, tag) in clip.tags().iter().enumerate() {
            if tag.kind != TagType::Video {
                continue;
            }
            match demux.video(tag.offset_ms, &tag.body) {
                Ok(Some(DemuxOutput::TracksChanged)) => {
                    track = demux.tracks().into_iter().find(|t| t.codec == Codec::H264);
                }
                Ok(Some(DemuxOutput::Frame(f))) => {
                    let Some(t) = &track else { continue };
                    let p = rtp::packetize(t, &f, MAX_PAYLOAD)
                        .map_err(|e| format!("tag {i}: cannot packetize: {e}"))?;
                    frames.push(ReelFrame {
                        due_ms: tag.offset_ms,
                        pts_ticks: f.pts,
                        keyframe: p.keyframe,
                        payload_bytes: p.payloads.iter().map(|x| x.data.len()).sum(),
                        payloads: p.payloads,
                        data: f.data.clone(),
                    });
                }
                Ok(_) => {}
                Err(e) => return Err(format!("tag {i}: {e}")),
            }
        }
        let track = track.ok_or("the clip has no H.264 video track")?;
        if track.params.sps.is_empty() || track.params.pps.is_empty() {
            return Err("the H.264 track has no SPS/PPS".into());
        }
        if !frames.iter().any(|f| f.keyframe) {
            return Err("the clip has no keyframe".into());
        }
        Ok(Reel {
            frames,
            loop_ms: clip.loop_ms().max(1),
            track,
        })
    }

    /// The H.264 track (parameter sets, size).
    pub fn track(&self) -> &Track {
        &self.track
    }

    /// Frames per second of the replay (frames of one pass over its length).
    pub fn fps(&self) -> f64 {
        self.frames.len() as f64 * 1000.0 / self.loop_ms as f64
    }

    /// Frames in one pass.
    pub fn frame_count(&self) -> usize {
        self.frames.len()
    }

    /// Length of one pass in ms.
    pub fn loop_ms(&self) -> i64 {
        self.loop_ms
    }

    /// RTP payload bits per second of one session.
    pub fn payload_bps(&self) -> f64 {
        let bytes: usize = self.frames.iter().map(|f| f.payload_bytes).sum();
        bytes as f64 * 8.0 * 1000.0 / self.loop_ms as f64
    }

    /// RTP packets per second of one session.
    pub fn packets_per_s(&self) -> f64 {
        let n: usize = self.frames.iter().map(|f| f.payloads.len()).sum();
        n as f64 * 1000.0 / self.loop_ms as f64
    }

    /// The `index`-th frame's presentation time in 90 kHz ticks since the replay
    /// started, not wrapping.
    pub fn pts(&self, index: u64) -> i64 {
        let n = self.frames.len().max(1) as u64;
        let pass = (index / n) as i64;
        pass * self.loop_ms * 90 + self.frames[(index % n) as usize].pts_ticks
    }

    /// The `index`-th frame of the endless replay.
    pub fn live(&self, index: u64) -> LiveFrame<'_> {
        let n = self.frames.len().max(1) as u64;
        let pass = (index / n) as i64;
        let frame = &self.frames[(index % n) as usize];
        let shift = pass * self.loop_ms;
        LiveFrame {
            due_ms: shift + frame.due_ms,
            rtp_ts: (shift * 90 + frame.pts_ticks) as u32,
            frame,
        }
    }

    /// The first keyframe at or after `index` in the replay.
    pub fn next_keyframe(&self, index: u64) -> u64 {
        let n = self.frames.len() as u64;
        (index..index + n)
            .find(|i| self.live(*i).frame.keyframe)
            .unwrap_or(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use corecast::media::flv;

    /// A 2-frame GOP clip: sequence header, IDR at 0, P at 40, IDR at 80, P at 120.
    fn clip() -> Clip {
        // SPS and PPS of a 64x64 Baseline stream (ffmpeg -f lavfi -i testsrc2=size=64x64
        // -c:v libx264 -profile:v baseline).
        let sps = [
            0x67, 0x42, 0xC0, 0x0A, 0xD9, 0x04, 0x26, 0xC0, 0x44, 0x00, 0x00, 0x03, 0x00, 0x04,
            0x00, 0x00, 0x03, 0x00, 0xC8, 0x3C, 0x48, 0x99, 0x20,
        ];
        let pps = [0x68, 0xCB, 0x83, 0xCB, 0x20];
        let mut rec = vec![1, sps[1], sps[2], sps[3], 0xFF, 0xE1];
        rec.extend_from_slice(&(sps.len() as u16).to_be_bytes());
        rec.extend_from_slice(&sps);
        rec.push(1);
        rec.extend_from_slice(&(pps.len() as u16).to_be_bytes());
        rec.extend_from_slice(&pps);
        let mut out = Vec::new();
        flv::write_header(&mut out, false, true);
        let mut seq = vec![0x17, 0, 0, 0, 0];
        seq.extend_from_slice(&rec);
        flv::write_tag(&mut out, 9, 0, &seq).unwrap();
        for (ts, key, size) in [
            (0u32, true, 3000usize),
            (40, false, 500),
            (80, true, 3000),
            (120, false, 500),
        ] {
            let nal_type = if key { 0x65 } else { 0x41 };
            let mut body = vec![if key { 0x17 } else { 0x27 }, 1, 0, 0, 0];
            body.extend_from_slice(&(size as u32).to_be_bytes());
            body.push(nal_type);
            body.extend(std::iter::repeat_n(0xAB, size - 1));
            flv::write_tag(&mut out, 9, ts, &body).unwrap();
        }
        Clip::parse(Bytes::from(out), 1 << 20).unwrap()
    }

    #[test]
    fn packetizes_once_and_loops_with_increasing_timestamps() {
        let reel = Reel::from_clip(&clip()).unwrap();
        assert_eq!(reel.frame_count(), 4);
        // Clip counts the sequence header among the video tags: 120 ms + a 30 ms step.
        assert_eq!(reel.loop_ms(), 150);
        assert_eq!(reel.track().width, Some(64));
        // SPS and PPS in a STAP-A, then the 3000-byte IDR in 3 FU-A fragments.
        let idr = reel.live(0).frame;
        let sizes: Vec<usize> = idr.payloads.iter().map(|p| p.data.len()).collect();
        assert!(idr.keyframe && sizes.len() == 4, "{sizes:?}");
        assert!(idr.payloads.iter().all(|p| p.data.len() <= MAX_PAYLOAD));
        assert!(idr.payloads.last().unwrap().marker);
        let dues: Vec<i64> = (0..8).map(|i| reel.live(i).due_ms).collect();
        assert_eq!(dues, [0, 40, 80, 120, 150, 190, 230, 270]);
        let ts: Vec<u32> = (0..6).map(|i| reel.live(i).rtp_ts).collect();
        assert_eq!(ts, [0, 3600, 7200, 10800, 13500, 17100]);
        assert_eq!(reel.next_keyframe(1), 2);
        assert_eq!(reel.next_keyframe(3), 4);
        assert_eq!(reel.next_keyframe(4), 4);
        assert!((reel.packets_per_s() - (4 + 1 + 4 + 1) as f64 / 0.15).abs() < 1e-9);
        assert!((reel.fps() - 4.0 / 0.15).abs() < 1e-9);
    }

    #[test]
    fn demo_clip_builds() {
        let data = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../configs/media/demo.flv"
        ))
        .unwrap();
        let clip = Clip::parse(Bytes::from(data), 16 << 20).unwrap();
        let reel = Reel::from_clip(&clip).unwrap();
        assert_eq!(
            (reel.track().width, reel.track().height),
            (Some(1280), Some(720))
        );
        assert!(reel.live(0).frame.keyframe);
    }
}
