//! [`WhepPeer`]: the sans-IO WHEP viewer, a str0m [`Rtc`] that offers to receive one
//! video and one audio track and counts what arrives.
//!
//! The caller owns the socket and the clock: build the peer with the local socket
//! address, send [`WhepPeer::offer`] to the server, give the answer to
//! [`WhepPeer::accept_answer`], then loop: feed every received datagram to
//! [`WhepPeer::handle_datagram`], call [`WhepPeer::poll`] to run due timers and collect
//! the datagrams to send, and wait until the deadline it returns or the next datagram.
//! One thread can drive any number of peers this way (the load tool does).
//!
//! The client is the ICE controlling full agent; the server is ICE-lite and lists its
//! host candidates in the answer.
//!
//! Two receive modes ([`ReceiveMode`]):
//! - `Full`: str0m's frame mode. str0m decrypts and reassembles frames with its own
//!   depacketizer (H.264: Annex B output, 4-byte start codes), and every frame is
//!   recorded ([`FrameRecord`], with the NAL unit types for H.264). This is the oracle
//!   for the server's packetizer: a different implementation reassembles what it sent.
//! - `Light`: for many viewers per process. Only STUN, DTLS and RTCP go into str0m (ICE
//!   consent and DTLS stay alive); SRTP media is counted from its clear-text RTP headers
//!   ([`RtpCounter`]) and never decrypted. A video packet with the marker bit is a frame.
//!
//! Both modes count packets, bytes and loss per SSRC from the RTP headers.

use super::ClientError;
use super::rtp::{self, DatagramKind, FrameCoverage, PayloadClass, RtpCounter, SsrcStats};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, MediaData, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};

/// Frames recorded by default ([`WhepPeer::set_max_frames`]).
pub const DEFAULT_MAX_FRAMES: usize = 2000;

/// Installs str0m's crypto provider for the process (once; later calls do nothing).
pub fn init_crypto() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| str0m::crypto::from_feature_flags().install_process_default());
}

/// How much of the media a peer processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiveMode {
    /// Decrypt and reassemble frames with str0m (frame mode) and record each one.
    Full,
    /// Count RTP headers only; feed str0m just STUN, DTLS and RTCP.
    Light,
}

/// Video or audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackKind {
    /// Video.
    Video,
    /// Audio.
    Audio,
}

/// One received frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameRecord {
    /// Video or audio.
    pub kind: TrackKind,
    /// The media section (`a=mid`).
    pub mid: String,
    /// Codec (`Full` mode; `None` in `Light` mode).
    pub codec: Option<Codec>,
    /// Extended RTP timestamp (90 kHz for video).
    pub rtp_time: i64,
    /// When the packet completing the frame was fed in.
    pub arrival: Instant,
    /// Frame size: depacketized bytes (`Full`) or the datagrams' bytes (`Light`).
    pub size: usize,
    /// H.264 NAL unit types in order (`Full` mode; empty otherwise).
    pub nal_types: Vec<u8>,
    /// The data started with an Annex B start code (`Full` mode H.264).
    pub annex_b: bool,
    /// str0m saw no gap in the sequence numbers before this frame (`Light`: always true).
    pub contiguous: bool,
    /// The frame's bytes, for audio in `Full` mode (empty otherwise).
    pub payload: Vec<u8>,
    /// The frame's time on the sender's wall clock (µs since the Unix epoch), by the
    /// latest RTCP sender report of its stream (`Full` mode, once one came).
    pub sender_micros: Option<i64>,
}

impl FrameRecord {
    /// The frame holds an IDR slice (NAL type 5).
    pub fn is_idr(&self) -> bool {
        self.nal_types.contains(&5)
    }

    /// The frame holds an IDR slice with an SPS (7) and a PPS (8) ahead of it.
    pub fn is_idr_with_parameter_sets(&self) -> bool {
        let pos = |t| self.nal_types.iter().position(|&n| n == t);
        match (pos(7), pos(8), pos(5)) {
            (Some(s), Some(p), Some(i)) => s < i && p < i,
            _ => false,
        }
    }
}

/// NAL unit types of an Annex B access unit (start codes of 3 or 4 bytes). Bytes before
/// the first start code are skipped.
pub fn annexb_nal_types(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            if let Some(h) = data.get(i + 3) {
                out.push(h & 0x1f);
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    out
}

/// Why a peer stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerClosed {
    /// [`WhepPeer::close`] was called.
    Local,
    /// The server closed DTLS (close_notify).
    Remote,
    /// str0m failed (the message says how).
    Error(String),
}

/// Counters of a peer. `Light` mode leaves the `Full`-only fields at zero/`None`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ViewerStats {
    /// Datagrams received.
    pub datagrams_in: u64,
    /// Datagrams to send that the peer produced.
    pub datagrams_out: u64,
    /// Unique RTP packets (every SSRC, retransmissions included).
    pub packets: u64,
    /// Bytes of those packets (whole datagrams).
    pub bytes: u64,
    /// Packets missing from the video and audio sequence ranges.
    pub lost: u64,
    /// Video frames (`Full`: reassembled by str0m; `Light`: video marker bits).
    pub frames: u64,
    /// Video frames holding an IDR slice (`Full`).
    pub keyframes: u64,
    /// Audio RTP packets.
    pub audio_packets: u64,
    /// Audio frames (`Full`).
    pub audio_frames: u64,
    /// Retransmitted (RTX) packets.
    pub rtx_packets: u64,
    /// RTCP datagrams received.
    pub rtcp_packets: u64,
    /// Video frames str0m flagged as not contiguous with the previous one (`Full`).
    pub discontinuities: u64,
    /// Time from the answer to ICE and DTLS being up.
    pub connected_after: Option<Duration>,
    /// Time from the answer to the first video frame.
    pub first_frame_after: Option<Duration>,
    /// Whether the first video frame was an IDR with SPS and PPS ahead of it (`Full`).
    pub first_frame_idr_with_sps_pps: Option<bool>,
    /// Last ICE connection state str0m reported.
    pub ice_state: Option<IceConnectionState>,
    /// ICE reported the connection lost at some point.
    pub ice_disconnected: bool,
    /// Datagrams str0m could not parse.
    pub malformed: u64,
}

/// The sans-IO WHEP viewer. See the [module docs](self).
pub struct WhepPeer {
    rtc: Rtc,
    mode: ReceiveMode,
    local: SocketAddr,
    offer: String,
    pending: Option<SdpPendingOffer>,
    video_mid: Mid,
    audio_mid: Mid,
    counter: RtpCounter,
    stats: ViewerStats,
    frames: Vec<FrameRecord>,
    max_frames: usize,
    answered: Option<Instant>,
    outbox: VecDeque<Datagram>,
    timeout: Option<Instant>,
    closed: Option<PeerClosed>,
}

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    /// Local address to send from (the peer's socket).
    pub source: SocketAddr,
    /// Where to send it.
    pub destination: SocketAddr,
    /// The bytes.
    pub contents: Vec<u8>,
}

impl WhepPeer {
    /// A peer on the UDP socket bound at `local` (a concrete address, not a wildcard: it
    /// is announced as the host candidate) that receives in `mode`. Creates the offer:
    /// a receive-only video section (str0m's H.264 payload types: profiles 42001f,
    /// 42e01f, 4d001f, 64001f, packetization modes 0 and 1, with RTX; then H.265) and a receive-only
    /// audio section (Opus, PCMU, PCMA).
    pub fn new(now: Instant, local: SocketAddr, mode: ReceiveMode) -> Result<Self, ClientError> {
        init_crypto();
        if local.ip().is_unspecified() || local.port() == 0 {
            return Err(ClientError::Misuse(
                "the local address must be a bound, concrete address",
            ));
        }
        let mut rtc = Rtc::builder()
            .clear_codecs()
            .enable_h264(true)
            .enable_h265(true)
            .enable_opus(true, false)
            .enable_pcmu(true, false)
            .enable_pcma(true, false)
            .set_rtp_mode(mode == ReceiveMode::Light)
            .set_stats_interval(None)
            .build(now);
        let cand = Candidate::host(local, "udp").map_err(|e| ClientError::Rtc(e.to_string()))?;
        rtc.add_local_candidate(cand);
        let mut api = rtc.sdp_api();
        let video_mid = api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
        let audio_mid = api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
        let (offer, pending) = api
            .apply()
            .ok_or(ClientError::Misuse("str0m produced no offer"))?;
        let mut peer = WhepPeer {
            rtc,
            mode,
            local,
            offer: offer.to_sdp_string(),
            pending: Some(pending),
            video_mid,
            audio_mid,
            counter: RtpCounter::default(),
            stats: ViewerStats::default(),
            frames: Vec::new(),
            max_frames: DEFAULT_MAX_FRAMES,
            answered: None,
            outbox: VecDeque::new(),
            timeout: None,
            closed: None,
        };
        peer.drain(now);
        Ok(peer)
    }

    // ---- getters ----

    /// The SDP offer to POST.
    pub fn offer(&self) -> String {
        self.offer.clone()
    }

    /// The receive mode.
    pub fn mode(&self) -> ReceiveMode {
        self.mode
    }

    /// The local (socket) address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Counters so far.
    pub fn stats(&self) -> &ViewerStats {
        &self.stats
    }

    /// Frames recorded so far (the first [`WhepPeer::set_max_frames`] of them): every
    /// frame in `Full` mode, video frames in `Light` mode.
    pub fn frames(&self) -> &[FrameRecord] {
        &self.frames
    }

    /// Per-SSRC counters from the RTP headers.
    pub fn ssrcs(&self) -> &[SsrcStats] {
        self.counter.ssrcs()
    }

    /// Video frames received against those their RTP timestamps span at `fps`, over the
    /// recorded frames.
    pub fn video_coverage(&self, fps: f64) -> FrameCoverage {
        let ticks = (90_000.0 / fps.max(0.001)).round() as u64;
        rtp::frame_coverage(
            self.frames
                .iter()
                .filter(|f| f.kind == TrackKind::Video)
                .map(|f| f.rtp_time),
            ticks,
        )
    }

    /// Sends a keyframe request (RTCP PLI) for the video track, as a browser does when
    /// it cannot decode. Full mode only (Light mode does not feed RTP to str0m, so it
    /// has no receive stream to ask for); false if it could not be sent.
    pub fn request_keyframe(&mut self) -> bool {
        let Some(mut w) = self.rtc.writer(self.video_mid) else {
            return false;
        };
        w.request_keyframe(None, str0m::media::KeyframeRequestKind::Pli)
            .is_ok()
    }

    /// ICE and DTLS are up.
    pub fn is_connected(&self) -> bool {
        self.closed.is_none() && self.rtc.is_connected()
    }

    /// Why the peer stopped, once it has.
    pub fn closed(&self) -> Option<&PeerClosed> {
        self.closed.as_ref()
    }

    /// When the next timer is due (`None` once closed).
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closed.is_some() {
            None
        } else {
            self.timeout
        }
    }

    // ---- mutators ----

    /// Records at most `n` frames (default [`DEFAULT_MAX_FRAMES`]).
    pub fn set_max_frames(&mut self, n: usize) {
        self.max_frames = n;
        self.frames.truncate(n);
    }

    /// Applies the server's SDP answer (received at `now`).
    pub fn accept_answer(&mut self, now: Instant, answer: &str) -> Result<(), ClientError> {
        let pending = self
            .pending
            .take()
            .ok_or(ClientError::Misuse("the answer was already accepted"))?;
        let parsed = SdpAnswer::from_sdp_string(answer)
            .map_err(|e| ClientError::BadAnswer(e.to_string()))?;
        self.rtc
            .sdp_api()
            .accept_answer(pending, parsed)
            .map_err(|e| ClientError::BadAnswer(e.to_string()))?;
        self.counter.set_classes(rtp::payload_classes(answer));
        self.answered = Some(now);
        self.drain(now);
        Ok(())
    }

    /// Ends the session from this side: str0m sends RTCP BYE and a DTLS close_notify
    /// (collect them with [`WhepPeer::poll`]). The WHEP `DELETE` is the caller's job.
    pub fn close(&mut self, now: Instant) {
        if self.closed.is_some() {
            return;
        }
        self.closed = Some(PeerClosed::Local);
        let _ = self.rtc.close();
        self.drain(now);
    }

    // ---- handle_* ----

    /// Feeds a datagram received at `now` from `from` on the local address `to`.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, to: SocketAddr, data: &[u8]) {
        if self.closed.is_some() {
            return;
        }
        self.stats.datagrams_in += 1;
        match rtp::classify(data) {
            DatagramKind::Rtp => {
                self.count_rtp(now, data);
                if self.mode == ReceiveMode::Light {
                    return;
                }
            }
            DatagramKind::Rtcp => self.stats.rtcp_packets += 1,
            DatagramKind::Stun | DatagramKind::Dtls => {}
            DatagramKind::Other => {
                self.stats.malformed += 1;
                return;
            }
        }
        let Ok(recv) = Receive::new(Protocol::Udp, from, to, data) else {
            self.stats.malformed += 1;
            return;
        };
        if let Err(e) = self.rtc.handle_input(Input::Receive(now, recv)) {
            self.fail(e.to_string());
            return;
        }
        self.drain(now);
    }

    /// Runs the timers due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.closed.is_some() {
            return;
        }
        if let Err(e) = self.rtc.handle_input(Input::Timeout(now)) {
            self.fail(e.to_string());
            return;
        }
        self.drain(now);
    }

    // ---- poll_* ----

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Datagram> {
        self.outbox.pop_front()
    }

    /// Runs the timers if due at `now`, moves the datagrams to send into `out`, and
    /// returns when to call again at the latest (`None` once closed).
    pub fn poll(&mut self, now: Instant, out: &mut Vec<Datagram>) -> Option<Instant> {
        if self.timeout.is_some_and(|t| t <= now) {
            self.handle_timeout(now);
        }
        out.extend(self.outbox.drain(..));
        self.poll_timeout()
    }

    // ---- internals ----

    fn fail(&mut self, msg: String) {
        self.rtc.disconnect();
        self.closed.get_or_insert(PeerClosed::Error(msg));
    }

    fn count_rtp(&mut self, now: Instant, data: &[u8]) {
        let Some(c) = self.counter.count(data) else {
            return;
        };
        self.stats.packets = self.counter.packets();
        self.stats.bytes = self.counter.bytes();
        self.stats.lost = self.counter.lost();
        self.stats.malformed = self.stats.malformed.max(self.counter.malformed);
        if !c.new {
            return;
        }
        match c.class {
            PayloadClass::Audio => self.stats.audio_packets += 1,
            PayloadClass::Rtx => self.stats.rtx_packets += 1,
            _ => {}
        }
        if self.mode != ReceiveMode::Light {
            return;
        }
        if let Some(f) = c.frame {
            self.stats.frames += 1;
            if self.stats.first_frame_after.is_none() {
                self.stats.first_frame_after = self.since_answer(now);
            }
            self.record(FrameRecord {
                kind: TrackKind::Video,
                mid: self.video_mid.to_string(),
                codec: None,
                rtp_time: f.rtp_time,
                arrival: now,
                size: f.bytes,
                nal_types: Vec::new(),
                annex_b: false,
                contiguous: true,
                payload: Vec::new(),
                sender_micros: None,
            });
        }
    }

    fn since_answer(&self, now: Instant) -> Option<Duration> {
        self.answered.map(|a| now.saturating_duration_since(a))
    }

    fn record(&mut self, f: FrameRecord) {
        if self.frames.len() < self.max_frames {
            self.frames.push(f);
        }
    }

    /// Drains str0m's output to its next timeout (the single-mutation invariant).
    fn drain(&mut self, now: Instant) {
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    self.timeout = Some(t);
                    if !self.rtc.is_alive() {
                        self.closed.get_or_insert(PeerClosed::Remote);
                    }
                    return;
                }
                Ok(Output::Transmit(t)) => {
                    self.stats.datagrams_out += 1;
                    self.outbox.push_back(Datagram {
                        source: t.source,
                        destination: t.destination,
                        contents: t.contents.into(),
                    });
                }
                Ok(Output::Event(e)) => self.on_event(now, e),
                Err(e) => {
                    self.fail(e.to_string());
                    return;
                }
            }
        }
    }

    fn on_event(&mut self, now: Instant, e: Event) {
        match e {
            Event::Connected if self.stats.connected_after.is_none() => {
                self.stats.connected_after = self.since_answer(now);
            }
            Event::IceConnectionStateChange(s) => {
                self.stats.ice_state = Some(s);
                if s == IceConnectionState::Disconnected {
                    self.stats.ice_disconnected = true;
                }
            }
            Event::MediaData(d) => self.on_media(now, d),
            Event::Closed => {
                self.closed.get_or_insert(PeerClosed::Remote);
            }
            _ => {}
        }
    }

    fn on_media(&mut self, now: Instant, d: MediaData) {
        let kind = if d.mid == self.video_mid {
            TrackKind::Video
        } else if d.mid == self.audio_mid {
            TrackKind::Audio
        } else {
            return;
        };
        let codec = d.params.spec().codec;
        let (nal_types, annex_b) = if codec == Codec::H264 {
            (
                annexb_nal_types(&d.data),
                d.data.starts_with(&[0, 0, 0, 1]) || d.data.starts_with(&[0, 0, 1]),
            )
        } else {
            (Vec::new(), false)
        };
        let rec = FrameRecord {
            kind,
            mid: d.mid.to_string(),
            codec: Some(codec),
            rtp_time: d.time.numer() as i64,
            arrival: now,
            size: d.data.len(),
            nal_types,
            annex_b,
            contiguous: d.contiguous,
            payload: if kind == TrackKind::Audio {
                d.data.to_vec()
            } else {
                Vec::new()
            },
            sender_micros: d.last_sender_info.as_ref().and_then(|sr| {
                let clock = Some(i64::from(d.time.denom())).filter(|c| *c > 0)?;
                let ntp = sr
                    .ntp_time
                    .duration_since(std::time::UNIX_EPOCH)
                    .ok()?
                    .as_micros();
                // RTP times are 32-bit on the wire: the distance wraps.
                let ticks = (d.time.numer() as u32).wrapping_sub(sr.rtp_time.numer() as u32) as i32;
                Some(i64::try_from(ntp).ok()? + i64::from(ticks) * 1_000_000 / clock)
            }),
        };
        match kind {
            TrackKind::Video => {
                self.stats.frames += 1;
                self.stats.keyframes += u64::from(rec.is_idr());
                self.stats.discontinuities += u64::from(!d.contiguous);
                if self.stats.first_frame_after.is_none() {
                    self.stats.first_frame_after = self.since_answer(now);
                    self.stats.first_frame_idr_with_sps_pps =
                        Some(rec.is_idr_with_parameter_sets());
                }
            }
            TrackKind::Audio => self.stats.audio_frames += 1,
        }
        self.record(rec);
    }
}

impl std::fmt::Debug for WhepPeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WhepPeer")
            .field("mode", &self.mode)
            .field("local", &self.local)
            .field("connected", &self.is_connected())
            .field("closed", &self.closed)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
