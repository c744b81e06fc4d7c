//! RTP depacketizers for ingest (RTSP cameras): RTP packets of one track in, media
//! [`Frame`](crate::media::Frame)s out. Pure: no sockets, no clock.
//!
//! The driver parses each datagram or interleaved frame with [`RtpPacket::parse`] and
//! hands it to the track's [`Depacketizer::push`], which appends what became complete to
//! the caller's `Vec<DepackOutput>`. `push` never fails: bad input is counted in
//! [`DepackStats`]. RTCP receiver reports come from [`recv::ReceiverStats`], which the
//! driver feeds with the same packets and their arrival times.
//!
//! Stages inside a [`Depacketizer`]:
//!
//! 1. Sequence ordering (RFC 3550 A.1 limits): duplicates are dropped; a packet ahead of
//!    the next expected one is held until the gap fills or `reorder_window` later
//!    packets have arrived, then the gap counts as lost. A jump of more than 3000 or back
//!    by more than 100 is taken as a new sequence only once the next packet confirms it;
//!    a new SSRC starts a new sequence at once.
//! 2. Payload format: H.264 (RFC 6184), H.265 (RFC 7798), AAC (RFC 3640), Opus and
//!    G.711. Video access units are assembled into AVCC; a loss or a malformed packet
//!    inside an access unit drops it.
//! 3. Video gate: frames are output from the first keyframe on; after a dropped frame,
//!    every frame up to the next keyframe is dropped too (a decoder could not use them).
//! 4. Timeline: 32-bit RTP timestamps become continuous `i64` time (see
//!    [`Depacketizer::restart`] and [`DepackStats::discontinuities`]).
//!
//! Memory is bounded: an access unit (or reassembled AAC frame) is at most
//! [`DEFAULT_MAX_FRAME`] bytes unless changed with [`Depacketizer::with_max_frame`]; the
//! reorder buffer holds at most `reorder_window` packets.

mod aac;
mod audio;
mod h264;
mod h265;
mod nal;
mod packet;
pub mod recv;
mod reorder;
mod timeline;

#[cfg(test)]
mod tests;

pub use packet::RtpPacket;

use crate::media::{Frame, MediaKind, ParamSets, TrackId};
use bytes::Bytes;
use reorder::{Released, Reorder};
use timeline::Timeline;

/// How a track's RTP payloads are to be read, from the camera's SDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DepackConfig {
    /// H.264, RFC 6184 (single NAL unit, STAP-A, FU-A).
    H264,
    /// H.265, RFC 7798 (single NAL unit, AP, FU).
    H265,
    /// AAC, RFC 3640 `mpeg4-generic` (AU headers); lengths in bits from the `fmtp`.
    Aac {
        /// `sizelength` (13 for AAC-hbr).
        size_length: u8,
        /// `indexlength` (3 for AAC-hbr).
        index_length: u8,
        /// `indexdeltalength` (3 for AAC-hbr).
        index_delta_length: u8,
    },
    /// Opus, RFC 7587: one packet per RTP payload.
    Opus,
    /// G.711 A-law, RFC 3551: the payload is the samples.
    Pcma,
    /// G.711 µ-law.
    Pcmu,
}

impl DepackConfig {
    /// Video for H.264 and H.265, audio otherwise.
    pub fn kind(self) -> MediaKind {
        match self {
            DepackConfig::H264 | DepackConfig::H265 => MediaKind::Video,
            _ => MediaKind::Audio,
        }
    }
}

/// Default largest access unit: a larger one is dropped and counted in
/// [`DepackStats::oversized`].
pub const DEFAULT_MAX_FRAME: usize = 8 << 20;

/// Default number of packets held after a sequence gap while waiting for the missing
/// packet (a reordered one) before the gap counts as lost.
pub const DEFAULT_REORDER_WINDOW: usize = 0x10;

/// Largest accepted reorder window: well below RFC 3550's `MAX_DROPOUT` (3000).
pub const MAX_REORDER_WINDOW: usize = 0x400;

/// Why an RTP or RTCP packet cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DepackError {
    /// The packet ends inside its header (fixed part, CSRC list or header extension).
    #[error("RTP packet of {len} bytes, its header needs {need}")]
    Truncated {
        /// Packet length.
        len: usize,
        /// Bytes the header needs.
        need: usize,
    },
    /// The version field is not 2.
    #[error("RTP version {0}, expected 2")]
    Version(u8),
    /// The padding count is 0 or larger than what follows the header.
    #[error("RTP padding of {padding} bytes, {available} bytes follow the header")]
    Padding {
        /// The padding count (last byte of the packet).
        padding: usize,
        /// Bytes after the header, padding included.
        available: usize,
    },
    /// The second byte is an RTCP packet type (200..=204, RFC 5761 §4): RTCP on the RTP
    /// channel.
    #[error("RTCP packet type {0} where RTP was expected")]
    RtcpOnRtpChannel(u8),
    /// A compound RTCP packet violates RFC 3550 §6.
    #[error("malformed RTCP at byte {offset}: {what}")]
    Rtcp {
        /// Offset of the offending RTCP packet within the compound packet.
        offset: usize,
        /// What is wrong.
        what: &'static str,
    },
}

/// What [`Depacketizer::push`] produces.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum DepackOutput {
    /// One access unit (video) or one audio frame.
    Frame(Frame),
    /// In-band parameter sets (H.264 SPS/PPS, H.265 VPS/SPS/PPS) that differ from those
    /// seen last (or given with [`Depacketizer::with_params`]). Each list holds the
    /// distinct sets of its kind from the latest access unit that carried that kind; a
    /// kind no access unit carried yet keeps its previous value. Comes before the frame
    /// that carried them (the sets stay in that frame too).
    Params(ParamSets),
}

/// Counters of one [`Depacketizer`]; they only grow (a restart does not reset them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DepackStats {
    /// RTP packets pushed.
    pub packets: u64,
    /// Payload bytes pushed (RTP headers and padding excluded).
    pub bytes: u64,
    /// Sequence numbers never received by the time they were needed (gaps). A packet
    /// that arrives after its gap was declared lost stays counted here and in
    /// `reordered`.
    pub lost: u64,
    /// Packets that arrived after one with a higher sequence number (used if they filled
    /// a gap in time, dropped otherwise).
    pub reordered: u64,
    /// Packets received twice (the copy is dropped).
    pub duplicates: u64,
    /// Packets with a sequence number far from the expected one that no successor
    /// confirmed (dropped).
    pub stray: u64,
    /// New sequences: a new SSRC, or a large sequence jump confirmed by the next packet.
    pub resyncs: u64,
    /// Frames output.
    pub frames: u64,
    /// Frames not output: incomplete (loss, malformed or interrupted fragments),
    /// oversized, or video frames that are not keyframes while waiting for one — before
    /// the first keyframe, after a restart and after any dropped frame.
    pub frames_dropped: u64,
    /// Of `frames_dropped`: larger than the frame limit.
    pub oversized: u64,
    /// Payloads, or parts of payloads, that violate their RTP payload format.
    pub malformed: u64,
    /// Timestamp jumps treated as discontinuities (more than 10 s forward or 1 s back).
    pub discontinuities: u64,
    /// What the latest malformed payload was wrong about.
    pub last_malformed: Option<&'static str>,
}

/// What a codec stage hands to the [`Depacketizer`].
#[derive(Debug)]
enum Unit {
    /// A complete frame, `offset` ticks after the packet's RTP time.
    Frame {
        /// RTP timestamp of the packet(s) carrying it.
        rtp_time: u32,
        /// Ticks after `rtp_time` (AAC: the AU's position within its packet).
        offset: i64,
        /// Whether a decoder can start here.
        keyframe: bool,
        /// AVCC for video, the raw frame for audio.
        data: Bytes,
        /// Duration in ticks when the payload format tells it.
        duration: Option<i64>,
    },
    /// A frame that could not be completed.
    Dropped {
        /// RTP timestamp of the frame.
        rtp_time: u32,
        /// Whether it was dropped for exceeding the frame limit.
        oversized: bool,
    },
    /// Parameter sets changed.
    Params(ParamSets),
    /// A payload or part of one was malformed (and skipped).
    Malformed(&'static str),
}

/// The payload-format stage.
enum Stage {
    /// H.264 access-unit assembly.
    H264(h264::H264Depack),
    /// H.265.
    H265(h265::H265Depack),
    /// AAC AU headers.
    Aac(aac::AacDepack),
    /// One frame per payload.
    Raw(audio::RawAudio),
}

impl Stage {
    fn new(config: DepackConfig, max_frame: usize) -> Stage {
        match config {
            DepackConfig::H264 => Stage::H264(h264::H264Depack::new(max_frame)),
            DepackConfig::H265 => Stage::H265(h265::H265Depack::new(max_frame)),
            DepackConfig::Aac {
                size_length,
                index_length,
                index_delta_length,
            } => Stage::Aac(aac::AacDepack::new(
                size_length,
                index_length,
                index_delta_length,
                max_frame,
            )),
            DepackConfig::Opus => Stage::Raw(audio::RawAudio::new(audio::RawKind::Opus, max_frame)),
            DepackConfig::Pcma | DepackConfig::Pcmu => {
                Stage::Raw(audio::RawAudio::new(audio::RawKind::G711, max_frame))
            }
        }
    }

    fn push(&mut self, pkt: &RtpPacket, lost_before: bool, units: &mut Vec<Unit>) {
        match self {
            Stage::H264(d) => d.push(pkt, lost_before, units),
            Stage::H265(d) => d.push(pkt, lost_before, units),
            Stage::Aac(d) => d.push(pkt, lost_before, units),
            Stage::Raw(d) => d.push(pkt, units),
        }
    }

    /// A packet arrived too late to be used: the frame it belongs to is incomplete.
    fn late(&mut self, pkt: &RtpPacket) {
        match self {
            Stage::H264(d) => d.late(pkt),
            Stage::H265(d) => d.late(pkt),
            Stage::Aac(d) => d.late(pkt),
            Stage::Raw(_) => {}
        }
    }

    fn set_max_frame(&mut self, max: usize) {
        match self {
            Stage::H264(d) => d.set_max_frame(max),
            Stage::H265(d) => d.set_max_frame(max),
            Stage::Aac(d) => d.set_max_frame(max),
            Stage::Raw(d) => d.set_max_frame(max),
        }
    }

    /// Forgets partial frames; true if one was discarded.
    fn reset(&mut self) -> bool {
        match self {
            Stage::H264(d) => d.reset(),
            Stage::H265(d) => d.reset(),
            Stage::Aac(d) => d.reset(),
            Stage::Raw(_) => false,
        }
    }
}

/// Turns the RTP packets of one track into frames.
///
/// Groups of methods:
/// - construction: [`new`](Self::new), then optionally [`with_max_frame`](Self::with_max_frame),
///   [`with_reorder_window`](Self::with_reorder_window), [`with_params`](Self::with_params);
/// - input: [`push`](Self::push), [`flush`](Self::flush), [`restart`](Self::restart);
/// - getters: [`stats`](Self::stats), [`last_time`](Self::last_time),
///   [`next_time`](Self::next_time).
///
/// Times: `pts` and `dts` are in the track clock, continuous from 0 (or from
/// `restart`'s `resume_at`). Video frames come in transmission (decode) order with
/// `dts = pts` = the RTP time: B-frame reordering is not reconstructed (that would need
/// the slice headers' picture order count), so with B-frames `dts` is not monotonic.
pub struct Depacketizer {
    track: TrackId,
    kind: MediaKind,
    reorder: Reorder,
    stage: Stage,
    timeline: Timeline,
    /// Video: frames are dropped until a keyframe.
    wait_keyframe: bool,
    last_time: Option<i64>,
    stats: DepackStats,
    /// Scratch: packets released by the reorder stage.
    released: Vec<Released>,
    /// Scratch: what the payload stage produced.
    units: Vec<Unit>,
}

impl Depacketizer {
    /// A depacketizer for one track whose RTP clock runs at `clock_rate` Hz (90 000 for
    /// video, the `rtpmap` rate for audio). Limits: [`DEFAULT_MAX_FRAME`],
    /// [`DEFAULT_REORDER_WINDOW`].
    pub fn new(config: DepackConfig, track: TrackId, clock_rate: u32) -> Depacketizer {
        let kind = config.kind();
        Depacketizer {
            track,
            kind,
            reorder: Reorder::new(DEFAULT_REORDER_WINDOW),
            stage: Stage::new(config, DEFAULT_MAX_FRAME),
            timeline: Timeline::new(clock_rate, kind),
            wait_keyframe: kind == MediaKind::Video,
            last_time: None,
            stats: DepackStats::default(),
            released: Vec::new(),
            units: Vec::new(),
        }
    }

    /// Sets the largest access unit in bytes (at most `u32::MAX`); larger ones are
    /// dropped and counted.
    pub fn with_max_frame(mut self, bytes: usize) -> Depacketizer {
        self.stage.set_max_frame(bytes.min(u32::MAX as usize));
        self
    }

    /// Sets how many packets are held after a sequence gap, waiting for the missing one,
    /// before it counts as lost (0: a gap is a loss at once, as over RTSP/TCP). At most
    /// [`MAX_REORDER_WINDOW`]. Held packets delay output only while a gap is open.
    pub fn with_reorder_window(mut self, packets: usize) -> Depacketizer {
        self.reorder = Reorder::new(packets.min(MAX_REORDER_WINDOW));
        self
    }

    /// Parameter sets already known (from the SDP `sprop-parameter-sets` /
    /// `sprop-vps`...): in-band sets equal to these are not reported again.
    pub fn with_params(mut self, params: ParamSets) -> Depacketizer {
        match &mut self.stage {
            Stage::H264(d) => d.set_known(params),
            Stage::H265(d) => d.set_known(params),
            Stage::Aac(_) | Stage::Raw(_) => {}
        }
        self
    }

    /// Feeds one RTP packet of this track and appends what became complete to `out`.
    /// Never fails; malformed input, loss and reordering show in [`stats`](Self::stats).
    pub fn push(&mut self, pkt: &RtpPacket, out: &mut Vec<DepackOutput>) {
        self.stats.packets += 1;
        self.stats.bytes += pkt.payload.len() as u64;
        let mut released = std::mem::take(&mut self.released);
        self.reorder.push(pkt, &mut released, &mut self.stats);
        self.run(&mut released, out);
        self.released = released;
    }

    /// Releases the packets held behind a sequence gap, counting the gap as lost, and
    /// appends the frames they complete. A driver calls it when packets stop arriving
    /// for a while (there is no timer here) or before [`restart`](Self::restart).
    pub fn flush(&mut self, out: &mut Vec<DepackOutput>) {
        let mut released = std::mem::take(&mut self.released);
        self.reorder.flush(&mut released, &mut self.stats);
        self.run(&mut released, out);
        self.released = released;
    }

    /// A new RTSP session (reconnect) starts: forgets the sequence, SSRC and timestamp
    /// state, held packets (call [`flush`](Self::flush) first to keep them) and any
    /// partial frame (counted as dropped). The next frame's time is `resume_at` in the
    /// track clock (e.g. [`next_time`](Self::next_time)), so viewers see continuous time.
    /// Video waits for a keyframe again. Counters and known parameter sets are kept.
    pub fn restart(&mut self, resume_at: i64) {
        self.reorder.reset();
        if self.stage.reset() {
            self.stats.frames_dropped += 1;
        }
        self.timeline.restart(resume_at);
        self.wait_keyframe = self.kind == MediaKind::Video;
    }

    /// The counters.
    pub fn stats(&self) -> DepackStats {
        self.stats
    }

    /// The pts of the last frame output.
    pub fn last_time(&self) -> Option<i64> {
        self.last_time
    }

    /// The time just after the latest frame seen (output or dropped): its pts plus its
    /// duration (from the payload format, else the latest frame interval, else 1/30 s
    /// for video and 20 ms for audio). What [`restart`](Self::restart) should resume at.
    pub fn next_time(&self) -> Option<i64> {
        self.timeline.next_time()
    }

    /// Runs released packets through the payload stage and turns its units into output.
    fn run(&mut self, released: &mut Vec<Released>, out: &mut Vec<DepackOutput>) {
        for r in released.drain(..) {
            if r.late {
                self.stage.late(&r.packet);
            } else {
                self.stage.push(&r.packet, r.lost_before, &mut self.units);
                self.emit(out);
            }
        }
    }

    /// Applies the timeline and the keyframe gate to the payload stage's units.
    fn emit(&mut self, out: &mut Vec<DepackOutput>) {
        let video = self.kind == MediaKind::Video;
        for unit in self.units.drain(..) {
            match unit {
                Unit::Frame {
                    rtp_time,
                    offset,
                    keyframe,
                    data,
                    duration,
                } => {
                    let pts = self
                        .timeline
                        .map(rtp_time, &mut self.stats)
                        .saturating_add(offset);
                    self.timeline.frame(pts, duration);
                    if video && self.wait_keyframe {
                        if !keyframe {
                            self.stats.frames_dropped += 1;
                            continue;
                        }
                        self.wait_keyframe = false;
                    }
                    self.stats.frames += 1;
                    self.last_time = Some(pts);
                    out.push(DepackOutput::Frame(Frame {
                        track: self.track,
                        kind: self.kind,
                        keyframe,
                        dts: pts,
                        pts,
                        data,
                    }));
                }
                Unit::Dropped {
                    rtp_time,
                    oversized,
                } => {
                    let pts = self.timeline.map(rtp_time, &mut self.stats);
                    self.timeline.frame(pts, None);
                    self.stats.frames_dropped += 1;
                    self.stats.oversized += u64::from(oversized);
                    self.wait_keyframe |= video;
                }
                Unit::Params(p) => out.push(DepackOutput::Params(p)),
                Unit::Malformed(what) => {
                    self.stats.malformed += 1;
                    self.stats.last_malformed = Some(what);
                }
            }
        }
    }
}
