//! What an ingest keeps across sessions: the tracks, their depacketizers (so timestamps
//! continue over reconnects), reception statistics and the counters shown in the API.
//!
//! Each track locks onto the first SSRC it receives in a session. Packets of another
//! SSRC are dropped (and counted) until the locked one has been silent for
//! [`SSRC_SILENCE`]; then the track switches to the new one as a reconnect does: held
//! packets are flushed, and the depacketizer restarts after the last frame plus the
//! silence, waiting for a keyframe. A stray or injected stream cannot take over a
//! camera that is sending, and cannot keep a silent one "alive": only packets of the
//! locked SSRC count as media for the read time-out.

use super::{Event, Output};
use crate::media::{MediaKind, Track};
use crate::rtp::depack::recv::{ReceiverStats, build_receiver_report};
use crate::rtp::depack::{DepackOutput, Depacketizer, RtpPacket};
use crate::rtsp::proto::session::SetupTrack;
use crate::stream::{SourceStats, SourceTrackStats};
use bytes::Bytes;
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use tracing::{debug, info, warn};

/// How long a track's SSRC must be silent before another SSRC is taken.
pub const SSRC_SILENCE: Duration = Duration::from_secs(1);

/// One received track.
struct IngestTrack {
    track: Track,
    depack: Depacketizer,
    recv: ReceiverStats,
    /// Bytes at the last statistics, for the bitrate.
    last_bytes: u64,
    bitrate: u64,
    /// The SSRC this session's packets are taken from, once one arrived.
    ssrc: Option<u32>,
    /// When the last packet of `ssrc` arrived.
    ssrc_seen: Instant,
    /// A packet of another SSRC was logged this session (one line, not one per packet).
    stray_logged: bool,
}

/// Packets, bytes and losses not yet reported with [`Event::Counters`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Counters {
    pub packets: u64,
    pub bytes: u64,
    pub lost: u64,
    /// Datagrams dropped for their sender (address or port).
    pub foreign: u64,
    /// RTP packets dropped for their SSRC.
    pub stray_ssrc: u64,
}

/// The tracks of a source and what they received, across sessions.
pub(super) struct Media {
    tracks: Vec<IngestTrack>,
    /// Tracks as last handed out with [`Event::Tracks`].
    published: Option<Vec<Track>>,
    /// When the media clock of the stream started (the first session's start).
    epoch: Option<Instant>,
    /// When the last session ended (for continuous timestamps).
    pub last_end: Option<Instant>,
    /// When the last RTP packet arrived (or the session started playing).
    pub last_media: Instant,
    /// Frames delivered since the last connection attempt began.
    pub frames_this_session: u64,
    /// Frames a viewer can start from (video keyframes; any frame of an audio-only
    /// stream) this session: the stream is live from the first one.
    pub starts_this_session: u64,
    pub reconnects: u64,
    pub last_error: Option<String>,
    pub transport: Option<&'static str>,
    pub counters: Counters,
    out: Vec<DepackOutput>,
}

impl Media {
    pub fn new(now: Instant) -> Media {
        Media {
            tracks: Vec::new(),
            published: None,
            epoch: None,
            last_end: None,
            last_media: now,
            frames_this_session: 0,
            starts_this_session: 0,
            reconnects: 0,
            last_error: None,
            transport: None,
            counters: Counters::default(),
            out: Vec::new(),
        }
    }

    /// Takes a camera's tracks for a new session: keeps the depacketizers (and counters)
    /// when the codecs are the same as before, restarting each at its continued time.
    pub fn begin(&mut self, setup: &[SetupTrack], now: Instant, out: &mut VecDeque<Output>) {
        let same = self.tracks.len() == setup.len()
            && self.tracks.iter().zip(setup).all(|(a, b)| {
                a.track.codec == b.track.codec && a.track.clock_rate == b.track.clock_rate
            });
        if !same {
            self.tracks = setup
                .iter()
                .map(|s| IngestTrack {
                    track: s.track.clone(),
                    depack: Depacketizer::new(s.depack, s.track.id, s.track.clock_rate),
                    recv: ReceiverStats::new(s.track.clock_rate),
                    last_bytes: 0,
                    bitrate: 0,
                    ssrc: None,
                    ssrc_seen: now,
                    stray_logged: false,
                })
                .collect();
        }
        let epoch = *self.epoch.get_or_insert(now);
        let away = self
            .last_end
            .map(|e| now.saturating_duration_since(e))
            .unwrap_or_default();
        for (t, s) in self.tracks.iter_mut().zip(setup) {
            // Parameter sets from this session's SDP; in-band ones may follow.
            if !s.track.params.sps.is_empty() || s.track.params.audio_config.is_some() {
                t.track = Track {
                    id: t.track.id,
                    ..s.track.clone()
                };
            }
            let resume = resume_time(&t.depack, away, t.track.clock_rate)
                .unwrap_or_else(|| ticks(Some(epoch), now, t.track.clock_rate));
            t.depack.restart(resume);
            t.recv = ReceiverStats::new(t.track.clock_rate);
            t.ssrc = None;
            t.stray_logged = false;
        }
        self.starts_this_session = 0;
        self.last_media = now;
        self.publish_tracks(out);
    }

    fn has_video(&self) -> bool {
        self.tracks
            .iter()
            .any(|t| t.track.kind() == MediaKind::Video)
    }

    /// Whether any track received a packet (this session or before).
    pub fn got_any(&self) -> bool {
        self.tracks.iter().any(|t| t.depack.stats().packets > 0)
    }

    /// Hands out the tracks when they differ from what viewers have.
    fn publish_tracks(&mut self, out: &mut VecDeque<Output>) {
        let tracks: Vec<Track> = self.tracks.iter().map(|t| t.track.clone()).collect();
        if self.published.as_ref() == Some(&tracks) {
            return;
        }
        self.published = Some(tracks.clone());
        out.push_back(Output::Event(Event::Tracks(tracks)));
    }

    /// One RTP packet of track `idx`: frames and changed tracks go to `out`. Only a
    /// packet of the track's SSRC is media (resets the read time-out); another SSRC is
    /// dropped until the track's has been silent for [`SSRC_SILENCE`].
    pub fn on_rtp(&mut self, idx: usize, data: Bytes, now: Instant, out: &mut VecDeque<Output>) {
        let has_video = self.has_video();
        let Some(t) = self.tracks.get_mut(idx) else {
            return;
        };
        let len = data.len() as u64;
        let Ok(pkt) = RtpPacket::parse(data) else {
            self.counters.packets += 1;
            self.counters.bytes += len;
            return;
        };
        if !lock_ssrc(t, idx, pkt.ssrc, now, &mut self.out) {
            self.counters.stray_ssrc += 1;
            return;
        }
        self.counters.packets += 1;
        self.counters.bytes += len;
        self.last_media = now;
        let lost_before = t.depack.stats().lost;
        t.recv
            .on_rtp(&pkt, ticks(self.epoch, now, t.track.clock_rate));
        t.depack.push(&pkt, &mut self.out);
        let lost = t.depack.stats().lost.saturating_sub(lost_before);
        if lost > 0 {
            debug!(
                track = idx,
                seq = pkt.sequence,
                ts = pkt.timestamp,
                lost,
                "rtsp: RTP sequence gap"
            );
            self.counters.lost += lost;
        }
        let mut params_changed = false;
        for o in self.out.drain(..) {
            match o {
                DepackOutput::Frame(f) => {
                    self.frames_this_session += 1;
                    if f.is_resume_point(has_video) {
                        self.starts_this_session += 1;
                    }
                    out.push_back(Output::Event(Event::Frame(f)));
                }
                DepackOutput::Params(p) => {
                    if t.track.params.sps != p.sps
                        || t.track.params.pps != p.pps
                        || t.track.params.vps != p.vps
                    {
                        t.track.params = p;
                        t.track.apply_params();
                        params_changed = true;
                    }
                }
            }
        }
        if params_changed {
            self.publish_tracks(out);
        }
    }

    /// One RTCP packet of track `idx` (sender reports feed the receiver reports).
    pub fn on_rtcp(&mut self, idx: usize, data: &[u8], now: Instant) {
        if let Some(t) = self.tracks.get_mut(idx) {
            let arrival = ticks(self.epoch, now, t.track.clock_rate);
            let _ = t.recv.on_rtcp(data, arrival);
        }
    }

    /// The counters shown in the API; `dt` since the last call, for the bitrates.
    pub fn stats(&mut self, dt: Duration) -> SourceStats {
        let secs = dt.as_secs_f64().max(0.001);
        let mut tracks = Vec::with_capacity(self.tracks.len());
        for t in &mut self.tracks {
            let s = t.depack.stats();
            t.bitrate = ((s.bytes.saturating_sub(t.last_bytes)) as f64 * 8.0 / secs) as u64;
            t.last_bytes = s.bytes;
            tracks.push(SourceTrackStats {
                codec: t.track.codec.name(),
                packets: s.packets,
                bytes: s.bytes,
                lost: s.lost,
                frames: s.frames,
                frames_dropped: s.frames_dropped,
                bitrate: t.bitrate,
            });
        }
        SourceStats {
            transport: self.transport,
            reconnects: self.reconnects,
            last_error: self.last_error.clone(),
            tracks,
        }
    }

    /// One receiver report (RR + SDES) per track that has received packets.
    pub fn receiver_reports(&mut self, our_ssrc: u32, now: Instant) -> Vec<(usize, Vec<u8>)> {
        let epoch = self.epoch;
        self.tracks
            .iter_mut()
            .enumerate()
            .filter_map(|(i, t)| {
                let block = t.recv.report_block(ticks(epoch, now, t.track.clock_rate))?;
                let ssrc = our_ssrc.wrapping_add(i as u32);
                Some((i, build_receiver_report(ssrc, "corecast", &[block])))
            })
            .collect()
    }
}

/// Whether a packet of `ssrc` is taken for track `t`: the track's SSRC (or the first
/// one), or a new one once the track's has been silent for [`SSRC_SILENCE`] — then the
/// depacketizer is flushed into `out` and restarted with continuous time.
fn lock_ssrc(
    t: &mut IngestTrack,
    idx: usize,
    ssrc: u32,
    now: Instant,
    out: &mut Vec<DepackOutput>,
) -> bool {
    match t.ssrc {
        Some(locked) if locked != ssrc => {
            let silent = now.saturating_duration_since(t.ssrc_seen);
            if silent < SSRC_SILENCE {
                if !std::mem::replace(&mut t.stray_logged, true) {
                    warn!(
                        track = idx,
                        ssrc = format_args!("{ssrc:08x}"),
                        locked = format_args!("{locked:08x}"),
                        "rtsp: dropping RTP of another SSRC while the track's is sending \
                         (counted in rtsp_ssrc_dropped_packets; logged once per session)"
                    );
                }
                return false;
            }
            info!(
                track = idx,
                from = format_args!("{locked:08x}"),
                to = format_args!("{ssrc:08x}"),
                ?silent,
                "rtsp: the track's SSRC changed after its silence; resuming at the next keyframe"
            );
            t.depack.flush(out);
            if let Some(resume) = resume_time(&t.depack, silent, t.track.clock_rate) {
                t.depack.restart(resume);
            }
        }
        _ => {}
    }
    t.ssrc = Some(ssrc);
    t.ssrc_seen = now;
    true
}

/// Where a depacketizer continues after `away` without packets: after its last frame by
/// that wall time (at least one tick later). `None` before its first frame.
fn resume_time(depack: &Depacketizer, away: Duration, clock_rate: u32) -> Option<i64> {
    let clock = i64::from(clock_rate.max(1));
    let last = depack.last_time()?;
    Some((last + (away.as_secs_f64() * clock as f64) as i64 + clock / 30).max(last + 1))
}

/// Track-clock ticks of `now` since `epoch`, for RTCP arrival times.
fn ticks(epoch: Option<Instant>, now: Instant, clock_rate: u32) -> i64 {
    let since = epoch
        .map(|e| now.saturating_duration_since(e))
        .unwrap_or_default();
    (since.as_secs_f64() * f64::from(clock_rate)) as i64
}
