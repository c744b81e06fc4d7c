//! The browsers' audio of a stream: an AAC track transcoded to an Opus track once per
//! stream, on its owner shard, while some WebRTC viewer (on any shard) may need it.
//!
//! When a stream's tracks include AAC and transcoding is on, the stream gets a second
//! audio track, Opus, marked `transcoded_from` the AAC one: the WebRTC answer picks it,
//! RTMP players skip it (FLV cannot carry Opus) and keep the AAC. Its frames are made
//! only while the stream has a browser viewer (here, or on a shard relaying it); the
//! transcoder stops [`LINGER_SECS`] of stream time after the last one left.

use crate::media::transcode::{TranscodeConfig, Transcoder};
use crate::media::{Codec, Frame, Track, TrackId};
use tracing::{info, warn};

/// Seconds of stream time the transcoder keeps running after the last browser left.
pub const LINGER_SECS: i64 = 10;

/// The Opus track of a stream with AAC audio.
pub struct AudioTranscode {
    /// The AAC track.
    pub aac: Track,
    /// The Opus track made from it (`transcoded_from` the AAC one).
    pub opus: Track,
    config: TranscodeConfig,
    /// Running while wanted (and for a while after).
    transcoder: Option<Transcoder>,
    /// The one built to check the track, until the first browser comes.
    unused: Option<Transcoder>,
    /// AAC pts when the last browser left, while the transcoder lingers.
    idle_since: Option<i64>,
    /// CPU time spent transcoding, over every run.
    pub cpu: std::time::Duration,
    /// Frames that failed to decode or encode, over every run (each one dropped or
    /// replaced by silence; the stream goes on).
    pub errors: u64,
    /// Errors of the running transcoder already counted in `errors`.
    seen_errors: u64,
}

impl std::fmt::Debug for AudioTranscode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AudioTranscode")
            .field("aac", &self.aac.id)
            .field("opus", &self.opus.id)
            .field("running", &self.transcoder.is_some())
            .finish()
    }
}

impl AudioTranscode {
    /// For `tracks`, the transcode (and its Opus track to add), if `tracks` have an AAC
    /// track the transcoder takes. An AAC track it refuses (HE-AAC, more than two
    /// channels) is named in one log line: browsers get no sound from that stream.
    pub fn plan(path: &str, tracks: &[Track], config: TranscodeConfig) -> Option<Self> {
        let aac = tracks.iter().find(|t| t.codec == Codec::Aac)?;
        let out = TrackId(tracks.iter().map(|t| t.id.0).max().unwrap_or(0) + 1);
        match Transcoder::new(aac, out, &config) {
            Ok(t) => {
                let mut opus = t.output_track();
                opus.transcoded_from = Some(aac.id);
                Some(AudioTranscode {
                    aac: aac.clone(),
                    opus,
                    config,
                    transcoder: None,
                    unused: Some(t),
                    idle_since: None,
                    cpu: std::time::Duration::ZERO,
                    errors: 0,
                    seen_errors: 0,
                })
            }
            Err(e) => {
                warn!(
                    path,
                    "AAC audio cannot be transcoded for browsers ({e}): WebRTC viewers get no sound"
                );
                None
            }
        }
    }

    /// Feeds one AAC frame; returns the Opus frames it completes. `wanted`: some browser
    /// watches the stream now. `cpu` reads the thread's CPU clock (the driver's; zero in
    /// tests), to count what transcoding costs.
    pub fn handle(
        &mut self,
        path: &str,
        frame: &Frame,
        wanted: bool,
        cpu: fn() -> std::time::Duration,
    ) -> Vec<Frame> {
        if frame.track != self.aac.id {
            return Vec::new();
        }
        if wanted {
            self.idle_since = None;
            if self.transcoder.is_none() {
                let built = match self.unused.take() {
                    Some(t) => Ok(t),
                    None => Transcoder::new(&self.aac, self.opus.id, &self.config),
                };
                match built {
                    Ok(t) => {
                        info!(path, "transcoding AAC to Opus for browser viewers");
                        self.transcoder = Some(t);
                        self.seen_errors = 0;
                    }
                    Err(e) => {
                        warn!(path, "cannot start transcoding AAC to Opus: {e}");
                        return Vec::new();
                    }
                }
            }
        } else if self.transcoder.is_some() {
            let since = *self.idle_since.get_or_insert(frame.pts);
            let linger = i64::from(self.aac.clock_rate.max(1)) * LINGER_SECS;
            if frame.pts.saturating_sub(since) >= linger {
                info!(
                    path,
                    "no browser viewer for {LINGER_SECS} s: transcoding stopped"
                );
                self.transcoder = None;
                self.idle_since = None;
            }
        }
        let Some(t) = &mut self.transcoder else {
            return Vec::new();
        };
        let start = cpu();
        t.handle_frame(frame);
        let out: Vec<Frame> = std::iter::from_fn(|| t.poll_frame()).collect();
        self.cpu += cpu().saturating_sub(start);
        let st = t.stats();
        let errors = st.decode_errors + st.encode_errors;
        if errors > self.seen_errors {
            self.errors += errors - self.seen_errors;
            self.seen_errors = errors;
        }
        out
    }

    /// Whether the transcoder runs.
    pub fn running(&self) -> bool {
        self.transcoder.is_some()
    }
}
