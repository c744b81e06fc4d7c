//! One viewer: a str0m [`Rtc`] in RTP mode, the viewer's queue of stream events and the
//! per-viewer RTP state (SSRC by str0m; sequence numbers and timestamp offset here).
//!
//! Sans-IO: the caller passes `now`, feeds datagrams in, and collects datagrams out.
//! Frames are packetized once per shard ([`OutFrame::rtp`]) and written here with the
//! viewer's own sequence numbers and timestamps; payload buffers are shared, not copied.
//!
//! First picture at once: everything queued when DTLS comes up (the GOP cache from the
//! last keyframe, and frames that arrived during the handshake) is sent as a *burst*
//! whose video timestamps are compressed to 1 ms apart, so the browser decodes it
//! immediately and is at the live edge when the first live frame arrives; audio joins
//! with the first live frame. A keyframe request (PLI/FIR) is answered the same way
//! from the GOP cache, at most once per [`PeerConfig::keyframe_interval`].

use super::offer::{Choice, OfferedCodec, Selection};
use crate::media::{Codec, MediaKind, TrackId, TrackSet};
use crate::rtp;
use crate::stream::{OutFrame, SinkEvent, SinkHandle};
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};
use str0m::change::SdpOffer;
use str0m::config::DtlsCert;
use str0m::format::{Codec as SCodec, FormatParams};
use str0m::media::{Frequency, Mid, Pt};
use str0m::net::{Protocol, Receive, Transmit};
use str0m::rtp::{Extension, RtpWrite};
use str0m::{Candidate, Event, IceConnectionState, IceCreds, Input, Output, Rtc, RtcError};

/// Tunables of a peer.
#[derive(Debug, Clone, Copy)]
pub struct PeerConfig {
    /// Largest RTP payload.
    pub max_payload: usize,
    /// Fewest time between two GOP re-sends answering keyframe requests.
    pub keyframe_interval: Duration,
    /// A session that receives nothing (STUN consent, RTCP) for this long is closed.
    pub inactivity: Duration,
    /// A session that has not completed ICE and DTLS this long after the answer is closed.
    pub connect_timeout: Duration,
    /// Most video packets kept per viewer for retransmission on NACK.
    pub nack_packets: usize,
    /// Oldest video packet kept for retransmission.
    pub nack_age: Duration,
}

impl Default for PeerConfig {
    fn default() -> Self {
        PeerConfig {
            max_payload: rtp::MAX_PAYLOAD,
            keyframe_interval: Duration::from_secs(2),
            inactivity: Duration::from_secs(7),
            connect_timeout: Duration::from_secs(10),
            nack_packets: 128,
            nack_age: Duration::from_secs(1),
        }
    }
}

/// Why a session cannot be created from an offer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PeerError {
    /// str0m rejected the offer.
    #[error("bad SDP offer: {0}")]
    BadOffer(String),
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The viewer asked (WHEP DELETE, WebSocket stop or close).
    Requested,
    /// ICE never completed or DTLS failed.
    ConnectFailed,
    /// Nothing received for [`PeerConfig::inactivity`] (consent lost).
    Inactive,
    /// ICE reported the peer disconnected.
    IceDisconnected,
    /// str0m failed on the session's input or output.
    Error,
    /// The server is shutting down.
    Shutdown,
    /// The stream was removed from the server.
    StreamRemoved,
}

impl CloseReason {
    /// Short name for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::Requested => "requested",
            CloseReason::ConnectFailed => "connect failed",
            CloseReason::Inactive => "no packets from the peer (consent lost)",
            CloseReason::IceDisconnected => "ICE disconnected",
            CloseReason::Error => "WebRTC error",
            CloseReason::Shutdown => "server shutting down",
            CloseReason::StreamRemoved => "stream removed",
        }
    }
}

/// Counters of one peer.
#[derive(Debug, Clone, Copy, Default)]
pub struct PeerStats {
    /// RTP packets written.
    pub packets: u64,
    /// Frames written.
    pub frames: u64,
    /// Frames skipped (not packetizable, or audio during a burst).
    pub skipped: u64,
    /// Keyframe requests received.
    pub keyframe_requests: u64,
    /// Bytes of the datagrams the viewer sent that reached the session.
    pub bytes_in: u64,
    /// Bytes of the datagrams the session sent.
    pub bytes_out: u64,
}

/// A live frame's first datagram in the output: where it is, and when the frame arrived
/// ([`OutFrame::arrived`]). The driver observes the frame's latency when it sends that
/// datagram ([`crate::stats::FrameLatency`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Departure {
    /// Index of the datagram in the output buffer it was written to.
    pub index: usize,
    /// When the frame arrived.
    pub arrived: Instant,
}

/// Per-track sending state.
#[derive(Debug)]
struct Tx {
    track: TrackId,
    kind: MediaKind,
    mid: Mid,
    pt: Pt,
    /// RTP clock of the negotiated payload type.
    rtp_clock: u32,
    /// Next extended sequence number.
    seq: u64,
    /// Random base of the RTP timestamps.
    base: u32,
    /// Last written RTP timestamp and the source time (in `rtp_clock` units) it stood for.
    last: Option<(u32, i64)>,
    /// Whether str0m's stream has been set up (retransmission history).
    configured: bool,
}

impl Tx {
    /// The RTP timestamp of a frame at `src` (converted to `rtp_clock` units). During a
    /// burst, video timestamps advance 1 ms per frame; afterwards they advance as the
    /// source does.
    fn timestamp(&mut self, src: i64, burst: bool) -> u32 {
        let ts = match self.last {
            None => self.base,
            Some((last_ts, _)) if burst => last_ts.wrapping_add(self.rtp_clock / 1000),
            Some((last_ts, last_src)) => {
                let delta = src
                    .saturating_sub(last_src)
                    .clamp(0, i64::from(u32::MAX / 2));
                last_ts.wrapping_add(delta as u32)
            }
        };
        self.last = Some((ts, src));
        ts
    }
}

/// One viewer.
pub struct Peer {
    rtc: Rtc,
    /// The viewer's attachment to its stream (path and queue, fed by the shard's hub).
    pub sink: SinkHandle,
    tracks: Option<TrackSet>,
    txs: Vec<Tx>,
    connected: bool,
    /// Frames left in the current burst.
    burst_left: usize,
    /// A GOP re-send is wanted (keyframe request); the driver supplies the frames.
    want_gop: bool,
    last_gop: Option<Instant>,
    last_input: Instant,
    /// The wall-clock time of one media instant (µs of the stream's timeline): every
    /// track's writes are dated from it, so the sender reports map audio and video onto
    /// one clock (lip sync in the browser). See [`Peer::wallclock`].
    anchor: Option<(Instant, i64)>,
    created: Instant,
    cfg: PeerConfig,
    closed: Option<CloseReason>,
    /// Local ICE ufrag (the session table routes first STUN by it).
    pub ufrag: String,
    /// Counters.
    pub stats: PeerStats,
    /// Live frames written since the caller last took them ([`Peer::take_departures`]).
    departures: Vec<Departure>,
}

fn random_u64() -> u64 {
    RandomState::new().build_hasher().finish()
}

impl Peer {
    /// Creates a peer from a viewer's offer: builds an ICE-lite, RTP-mode `Rtc` with the
    /// process certificate and one host candidate per address, configured with exactly
    /// the offered payload types `sel` chose, and returns the peer with its SDP answer.
    #[allow(clippy::too_many_arguments)]
    pub fn accept(
        now: Instant,
        offer_sdp: &str,
        sel: &Selection,
        mids: &[Option<String>],
        cert: &DtlsCert,
        candidates: &[SocketAddr],
        sink: SinkHandle,
        cfg: PeerConfig,
    ) -> Result<(Peer, String), PeerError> {
        let offer =
            SdpOffer::from_sdp_string(offer_sdp).map_err(|e| PeerError::BadOffer(e.to_string()))?;
        let creds = IceCreds::new();
        let mut rc = Rtc::builder()
            .set_ice_lite(true)
            .set_rtp_mode(true)
            .set_dtls_cert(cert.clone())
            .set_local_ice_credentials(creds.clone())
            .set_stats_interval(None)
            // No bandwidth estimation runs, so no transport-cc (str0m would record every
            // packet sent for it) and no other header extension but the MID, which
            // BUNDLE needs to tell the m-lines apart.
            .clear_extension_map()
            .set_extension(4, Extension::RtpMid)
            .clear_codecs();
        {
            let cc = rc.codec_config();
            for c in &sel.send {
                add_codec(cc, c.codec, &c.offered);
            }
            if let Some((_, c)) = &sel.idle_audio {
                let codec = match c.name.as_str() {
                    "PCMU" => Codec::Pcmu,
                    "PCMA" => Codec::Pcma,
                    _ => Codec::Opus,
                };
                add_codec(cc, codec, c);
            }
        }
        let mut rtc = rc.build(now);
        for a in candidates {
            match Candidate::host(*a, "udp") {
                Ok(c) => {
                    rtc.add_local_candidate(c);
                }
                Err(e) => tracing::warn!("candidate {a}: {e}"),
            }
        }
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| PeerError::BadOffer(e.to_string()))?;
        let mut txs = Vec::new();
        for c in &sel.send {
            let Some(Some(mid)) = mids.get(c.media) else {
                continue;
            };
            txs.push(tx_for(c, Mid::from(mid.as_str())));
        }
        let peer = Peer {
            rtc,
            sink,
            tracks: None,
            txs,
            connected: false,
            burst_left: 0,
            want_gop: false,
            last_gop: None,
            last_input: now,
            anchor: None,
            created: now,
            cfg,
            closed: None,
            ufrag: creds.ufrag,
            stats: PeerStats::default(),
            departures: Vec::new(),
        };
        Ok((peer, answer.to_sdp_string()))
    }

    /// Whether ICE and DTLS are up.
    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// Why the session ended, once it has.
    pub fn closed(&self) -> Option<CloseReason> {
        self.closed
    }

    /// Ends the session (sends a DTLS close alert if connected).
    pub fn close(&mut self, reason: CloseReason, out: &mut Vec<Transmit>) {
        if self.closed.is_some() {
            return;
        }
        self.closed = Some(reason);
        self.sink.queue.detach();
        // Tell the viewer (RTCP BYE, DTLS close_notify) so a browser notices at once
        // instead of after its ICE timeout; then drop the rest. Bounded: str0m drains
        // a closing session in a few outputs.
        close_rtc(
            &mut self.rtc,
            self.connected,
            &mut self.stats.bytes_out,
            out,
        );
    }

    /// Feeds a datagram from the viewer, then collects output.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        to: SocketAddr,
        data: &[u8],
        out: &mut Vec<Transmit>,
    ) -> Option<Instant> {
        let Ok(recv) = Receive::new(Protocol::Udp, from, to, data) else {
            return self.poll(now, out);
        };
        self.last_input = now;
        self.stats.bytes_in += data.len() as u64;
        if let Err(e) = self.rtc.handle_input(Input::Receive(now, recv)) {
            // One bad datagram does not end a session (anyone can send one from a
            // spoofed address); a dead Rtc does.
            tracing::debug!("webrtc input rejected: {e}");
            if !self.rtc.is_alive() {
                self.close(CloseReason::Error, out);
                return None;
            }
        }
        self.poll(now, out)
    }

    /// Runs the session's timer, then collects output.
    pub fn handle_timeout(&mut self, now: Instant, out: &mut Vec<Transmit>) -> Option<Instant> {
        if self.closed.is_none() {
            let since = (self.created, self.last_input);
            let limits = (self.cfg.connect_timeout, self.cfg.inactivity);
            if let Some(why) = timed_out(now, self.connected, since, limits) {
                self.close(why, out);
                return None;
            }
        }
        if self.rtc.handle_input(Input::Timeout(now)).is_err() {
            self.close(CloseReason::Error, out);
            return None;
        }
        self.poll(now, out)
    }

    /// Writes whatever the viewer's queue holds (once connected), then collects output.
    /// Each live frame written is noted as a [`Departure`] at its first datagram in
    /// `out`; catch-up frames (the burst: the GOP replay and what came during the
    /// handshake) are not live.
    pub fn pump(&mut self, now: Instant, out: &mut Vec<Transmit>) -> Option<Instant> {
        if !self.connected || self.closed.is_some() {
            return self.poll(now, out);
        }
        while let Some(ev) = self.sink.queue.try_pop() {
            match ev {
                SinkEvent::Tracks(t) => self.tracks = Some(t),
                SinkEvent::Frame(f) => {
                    let burst = self.burst_left > 0;
                    self.burst_left = self.burst_left.saturating_sub(1);
                    let live = if burst {
                        None
                    } else {
                        self.sink.queue.live_arrival(&f)
                    };
                    let (first, packets) = (out.len(), self.stats.packets);
                    self.write_frame(now, &f, burst);
                    self.send_written(now, out)?;
                    if let Some(arrived) = live
                        && self.stats.packets > packets
                        && out.len() > first
                    {
                        let index = first;
                        self.departures.push(Departure { index, arrived });
                    }
                }
                SinkEvent::Metadata(_) | SinkEvent::End => {}
                SinkEvent::Removed => {
                    self.close(CloseReason::StreamRemoved, out);
                    return None;
                }
            }
        }
        self.poll(now, out)
    }

    /// Moves the live frames written since the last call into `into`, oldest first.
    pub fn take_departures(&mut self, into: &mut Vec<Departure>) {
        into.append(&mut self.departures);
    }

    /// Whether a keyframe request asked for the GOP cache to be re-sent.
    pub fn wants_gop(&self) -> bool {
        self.want_gop && self.connected && self.closed.is_none()
    }

    /// Drops the pending keyframe request unanswered (the shard's re-send budget is
    /// spent): the next one counts from `now`.
    pub fn skip_gop(&mut self, now: Instant) {
        self.want_gop = false;
        self.last_gop = Some(now);
    }

    /// Re-sends a GOP (keyframe first) as a burst, answering a keyframe request, then
    /// whatever is queued.
    pub fn send_gop(
        &mut self,
        now: Instant,
        gop: &[Rc<OutFrame>],
        out: &mut Vec<Transmit>,
    ) -> Option<Instant> {
        self.want_gop = false;
        self.last_gop = Some(now);
        // Every queued frame is also in the GOP cache (the hub adds each frame to both),
        // or older than its keyframe: drop them so no frame is decoded twice.
        while let Some(ev) = self.sink.queue.try_pop() {
            if let SinkEvent::Tracks(t) = ev {
                self.tracks = Some(t);
            }
        }
        self.burst_left = 0;
        for f in gop {
            self.write_frame(now, f, true);
            self.send_written(now, out)?;
        }
        self.pump(now, out)
    }

    /// Sends what was just written. str0m releases written RTP on its next timeout, so
    /// run it now: packets leave at once (no second wake through the timer heap) and
    /// str0m's send queue holds at most one frame, even during a GOP burst.
    fn send_written(&mut self, now: Instant, out: &mut Vec<Transmit>) -> Option<Instant> {
        if self.rtc.handle_input(Input::Timeout(now)).is_err() {
            self.close(CloseReason::Error, out);
            return None;
        }
        self.poll(now, out)
    }

    fn write_frame(&mut self, now: Instant, f: &OutFrame, burst: bool) {
        let frame = &f.frame;
        let Some(ti) = self.txs.iter().position(|t| t.track == frame.track) else {
            return; // a track this viewer does not get
        };
        if burst && self.txs[ti].kind == MediaKind::Audio {
            self.stats.skipped += 1;
            return;
        }
        let tracks = self.tracks.as_deref().unwrap_or(&[]);
        let Some(track) = tracks.iter().find(|t| t.id == frame.track) else {
            self.stats.skipped += 1;
            return;
        };
        let src_clock = track.clock_rate;
        let max_payload = self.cfg.max_payload;
        let Some(pf) = f
            .rtp
            .get_or_init(|| rtp::packetize(track, frame, max_payload).ok())
            .as_ref()
        else {
            self.stats.skipped += 1;
            return;
        };
        let wallclock = if burst {
            now
        } else {
            self.wallclock(now, frame.pts, src_clock)
        };
        let tx = &mut self.txs[ti];
        let src = convert(frame.pts, src_clock, tx.rtp_clock);
        let ts = tx.timestamp(src, burst);
        let mut api = self.rtc.direct_api();
        let Some(stream) = api.stream_tx_by_mid(tx.mid, None) else {
            self.stats.skipped += 1;
            return;
        };
        let video = tx.kind == MediaKind::Video;
        if !tx.configured {
            tx.configured = true;
            // str0m keeps 1024 packets / 3 s of history per stream by default (~440
            // bytes of bookkeeping each, the payload itself is shared): bound it.
            if video {
                stream.set_rtx_cache(self.cfg.nack_packets, self.cfg.nack_age, Some(0.15));
            }
        }
        for p in &pf.payloads {
            // Browsers NACK video only.
            let w = RtpWrite::new(tx.pt, tx.seq.into(), ts, wallclock, p.data.clone())
                .marker(p.marker)
                .nackable(video);
            stream.write_rtp(w);
            tx.seq += 1;
        }
        self.stats.packets += pf.payloads.len() as u64;
        self.stats.frames += 1;
    }

    /// When media time `pts` (in `clock` Hz) happens on the wall clock. The anchor is
    /// the frame that came earliest for its media time: a frame that comes sooner moves
    /// it. So every track is dated by the fastest path (not by audio that the
    /// transcoder delivers a few tens of milliseconds late), and no date lies ahead of
    /// `now` (str0m dates its sender reports from the latest write).
    fn wallclock(&mut self, now: Instant, pts: i64, clock: u32) -> Instant {
        let micros = convert(pts, clock, 1_000_000);
        let (at, base) = *self.anchor.get_or_insert((now, micros));
        let d = micros.saturating_sub(base);
        let w = if d >= 0 {
            at.checked_add(Duration::from_micros(d.unsigned_abs()))
        } else {
            at.checked_sub(Duration::from_micros(d.unsigned_abs()))
        };
        match w {
            Some(w) if w <= now => w,
            _ => {
                self.anchor = Some((now, micros));
                now
            }
        }
    }

    /// Drains str0m's output; returns the next timeout, or `None` once closed.
    fn poll(&mut self, now: Instant, out: &mut Vec<Transmit>) -> Option<Instant> {
        if self.closed.is_some() {
            return None;
        }
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Transmit(t)) => {
                    self.stats.bytes_out += t.contents.len() as u64;
                    out.push(t);
                }
                Ok(Output::Timeout(t)) => return Some(t),
                Ok(Output::Event(e)) => self.on_event(now, e),
                Err(RtcError::Dtls(_)) => {
                    self.close(CloseReason::ConnectFailed, out);
                    return None;
                }
                Err(_) => {
                    self.close(CloseReason::Error, out);
                    return None;
                }
            }
            if self.closed.is_some() {
                return None;
            }
            if !self.rtc.is_alive() {
                self.closed = Some(CloseReason::IceDisconnected);
                self.sink.queue.detach();
                return None;
            }
        }
    }

    fn on_event(&mut self, now: Instant, e: Event) {
        match e {
            Event::Connected => {
                self.connected = true;
                // Everything queued so far is the catch-up burst.
                self.burst_left = self.sink.queue.queued_frames();
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                self.closed = Some(CloseReason::IceDisconnected);
                self.sink.queue.detach();
            }
            Event::KeyframeRequest(_) => {
                self.stats.keyframe_requests += 1;
                let due = self
                    .last_gop
                    .is_none_or(|t| now.duration_since(t) >= self.cfg.keyframe_interval);
                if due && self.burst_left == 0 {
                    self.want_gop = true;
                }
            }
            _ => {}
        }
    }
}

/// Says goodbye on a closing str0m session (RTCP BYE, DTLS close_notify) if it was
/// connected, in a bounded number of outputs counted into `bytes_out`, then drops the
/// rest. Viewers and publishers end the same way.
pub(super) fn close_rtc(
    rtc: &mut Rtc,
    connected: bool,
    bytes_out: &mut u64,
    out: &mut Vec<Transmit>,
) {
    if connected && rtc.close().is_ok() {
        for _ in 0..16 {
            match rtc.poll_output() {
                Ok(Output::Transmit(t)) => {
                    *bytes_out += t.contents.len() as u64;
                    out.push(t);
                }
                Ok(Output::Event(_)) => {}
                Ok(Output::Timeout(_)) | Err(_) => break,
            }
        }
    }
    rtc.disconnect();
}

/// Why a session ends at `now`: no ICE+DTLS within `connect` of its creation, or nothing
/// received for `inactivity`. `since` is (created, last input), `limits` (connect,
/// inactivity).
pub(super) fn timed_out(
    now: Instant,
    connected: bool,
    since: (Instant, Instant),
    limits: (Duration, Duration),
) -> Option<CloseReason> {
    if !connected && now.duration_since(since.0) > limits.0 {
        return Some(CloseReason::ConnectFailed);
    }
    (now.duration_since(since.1) > limits.1).then_some(CloseReason::Inactive)
}

/// `t` in `from` ticks per second as `to` ticks per second.
fn convert(t: i64, from: u32, to: u32) -> i64 {
    if from == to || from == 0 {
        return t;
    }
    (i128::from(t) * i128::from(to) / i128::from(from)) as i64
}

fn tx_for(c: &Choice, mid: Mid) -> Tx {
    let r = random_u64();
    Tx {
        track: c.track,
        kind: c.codec.kind(),
        mid,
        pt: Pt::from(c.offered.pt),
        rtp_clock: c.offered.clock_rate.max(1),
        // Start below 2^15 so the SRTP rollover counter starts at 0 with room to spare.
        seq: r & 0x7fff,
        base: (r >> 32) as u32,
        last: None,
        configured: false,
    }
}

/// Adds the offered payload type `o` (with its RTX) for `codec` to str0m's codecs.
pub(super) fn add_codec(cc: &mut str0m::format::CodecConfig, codec: Codec, o: &OfferedCodec) {
    let pt = Pt::from(o.pt);
    let rtx = o.rtx.map(Pt::from);
    match codec {
        Codec::H264 => cc.add_config(
            pt,
            rtx,
            SCodec::H264,
            Frequency::NINETY_KHZ,
            None,
            FormatParams {
                level_asymmetry_allowed: Some(true),
                packetization_mode: Some(1),
                profile_level_id: o.profile_level_id(),
                ..Default::default()
            },
        ),
        Codec::H265 => {
            let num = |k: &str, d: u8| o.param(k).and_then(|v| v.parse().ok()).unwrap_or(d);
            cc.add_h265(
                pt,
                rtx,
                num("profile-id", 1),
                num("tier-flag", 0),
                num("level-id", 93),
            )
        }
        Codec::Opus => cc.add_config(
            pt,
            None,
            SCodec::Opus,
            Frequency::FORTY_EIGHT_KHZ,
            Some(2),
            FormatParams {
                min_p_time: Some(10),
                use_inband_fec: Some(true),
                ..Default::default()
            },
        ),
        Codec::Pcmu => cc.add_config(
            pt,
            None,
            SCodec::PCMU,
            Frequency::EIGHT_KHZ,
            None,
            FormatParams::default(),
        ),
        Codec::Pcma => cc.add_config(
            pt,
            None,
            SCodec::PCMA,
            Frequency::EIGHT_KHZ,
            None,
            FormatParams::default(),
        ),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tx(clock: u32) -> Tx {
        Tx {
            track: TrackId(0),
            kind: MediaKind::Video,
            mid: Mid::from("0"),
            pt: Pt::from(96),
            rtp_clock: clock,
            seq: 0,
            base: u32::MAX - 100,
            last: None,
            configured: false,
        }
    }

    #[test]
    fn burst_timestamps_are_compressed_then_follow_the_source() {
        let mut t = tx(90_000);
        // A 3-frame GOP burst of frames 33 ms apart goes out 1 ms apart...
        assert_eq!(t.timestamp(0, true), u32::MAX - 100);
        assert_eq!(t.timestamp(3000, true), (u32::MAX - 100).wrapping_add(90));
        assert_eq!(t.timestamp(6000, true), (u32::MAX - 100).wrapping_add(180));
        // ...and live frames continue at the source's pace (wrapping through 2^32).
        assert_eq!(
            t.timestamp(9000, false),
            (u32::MAX - 100).wrapping_add(3180)
        );
        assert_eq!(
            t.timestamp(12000, false),
            (u32::MAX - 100).wrapping_add(6180)
        );
        // A source jumping backwards (republish) does not move time backwards.
        assert_eq!(t.timestamp(0, false), (u32::MAX - 100).wrapping_add(6180));
    }

    #[test]
    fn clock_conversion() {
        assert_eq!(convert(1000, 1000, 90_000), 90_000);
        assert_eq!(convert(-40, 1000, 90_000), -3600);
        assert_eq!(convert(48_000, 48_000, 48_000), 48_000);
        assert_eq!(convert(5, 0, 90_000), 5);
    }

    /// The answer's H.264 payload types with their `profile-level-id`.
    fn answered_h264(answer: &str) -> Vec<(u8, String)> {
        let h264: Vec<&str> = answer
            .lines()
            .filter_map(|l| l.strip_prefix("a=rtpmap:"))
            .filter(|m| m.contains("H264/"))
            .filter_map(|m| m.split(' ').next())
            .collect();
        answer
            .lines()
            .filter_map(|l| l.strip_prefix("a=fmtp:"))
            .filter_map(|f| f.split_once(' '))
            .filter(|(pt, _)| h264.contains(pt))
            .filter_map(|(pt, params)| {
                let pli = params
                    .split(';')
                    .find_map(|kv| kv.strip_prefix("profile-level-id="))?;
                Some((pt.parse().ok()?, pli.to_string()))
            })
            .collect()
    }

    #[test]
    #[allow(clippy::disallowed_methods)] // Any instant serves: nothing runs.
    fn chromium_is_answered_with_the_selected_h264_entry_alone() {
        use super::super::offer::tests::{CHROMIUM_148_OFFER, chromium_offer_with_high};
        use super::super::offer::{parse_offer, select};
        use crate::media::Track;
        use bytes::Bytes;
        use std::sync::Arc;
        let cert = crate::webrtc::process_cert().expect("certificate");
        let mut high = Track::new(TrackId(0), Codec::H264, 90_000);
        high.params.sps = vec![Bytes::from_static(&[0x67, 0x64, 0x00, 0x1f, 0xac])];
        let answer = |sdp: &str| {
            let offer = parse_offer(sdp).expect("parses");
            let sel = select(&offer, std::slice::from_ref(&high)).expect("H.264");
            let mids: Vec<Option<String>> = offer.iter().map(|m| m.mid.clone()).collect();
            let queue = Rc::new(crate::stream::SinkQueue::new(crate::stream::SinkLimits {
                max_frames: 10,
                max_bytes: 1 << 16,
            }));
            let sink = SinkHandle::standalone(Arc::from("high"), queue);
            let local = SocketAddr::from(([127, 0, 0, 1], 8189));
            let (_, answer) = Peer::accept(
                Instant::now(),
                sdp,
                &sel,
                &mids,
                &cert,
                &[local],
                sink,
                PeerConfig::default(),
            )
            .expect("accepted");
            answered_h264(&answer)
        };
        // Chromium without a hardware decoder offers no High: High 4:4:4 Predictive.
        assert_eq!(answer(CHROMIUM_148_OFFER), [(41, "f4001f".to_string())]);
        // With a High entry, that one.
        let with_high = chromium_offer_with_high();
        assert_eq!(answer(&with_high), [(123, "64001f".to_string())]);
    }
}
