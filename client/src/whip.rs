//! [`WhipPeer`]: the sans-IO WHIP publisher, a str0m [`Rtc`] in frame mode that offers
//! to send one H.264 video and one Opus audio track and counts what it sends and what
//! the receiver asks for.
//!
//! The caller owns the socket and the clock, as with [`super::WhepPeer`]: build the peer
//! with the local socket address, send [`WhipPeer::offer`] to the server, give the answer
//! to [`WhipPeer::accept_answer`], then loop: feed every received datagram to
//! [`WhipPeer::handle_datagram`], call [`WhipPeer::poll`] to run due timers and collect
//! the datagrams to send, and wait until the deadline it returns or the next datagram.
//! Once [`WhipPeer::is_connected`], write media with [`WhipPeer::send_video`] and
//! [`WhipPeer::send_audio`]; str0m packetizes (H.264 from Annex B: SPS and PPS go into
//! one STAP-A, large NAL units into FU-A), paces, sends sender reports, keeps the video
//! packets it sent for retransmission and answers NACKs on the RTX stream.
//!
//! The offer (video before audio, each optional):
//! - video `sendonly`: H.264 constrained baseline `42e01f`, packetization-mode 1, with
//!   RTX (payload types 108 and 109: str0m's own numbers for this profile), NACK, PLI,
//!   FIR, REMB and transport-cc feedback;
//! - audio `sendonly`: Opus (payload type 111).
//!
//! The client is the ICE controlling full agent; the server is ICE-lite and lists its
//! host candidates in the answer.
//!
//! For tests, [`WhipPeer::set_drop`] withholds a share of the original RTP media packets
//! (never STUN, DTLS, RTCP or retransmissions), chosen by a seeded generator, so that a
//! test can check that the receiver's NACKs bring them back.

use super::ClientError;
use super::rtp::{self, DatagramKind, PayloadClass, RtpCounter};
use super::whep::{Datagram, PeerClosed, annexb_nal_types, init_crypto};
use std::borrow::Cow;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use str0m::bwe::BweKind;
use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, KeyframeRequestKind, MediaKind, MediaTime, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};

/// The H.264 payload type offered (str0m's number for constrained baseline 42e01f,
/// packetization-mode 1).
pub const H264_PT: u8 = 108;
/// The RTX payload type of [`H264_PT`].
pub const H264_RTX_PT: u8 = 109;
/// The H.264 profile-level-id offered: constrained baseline, level 3.1.
pub const H264_PROFILE_LEVEL_ID: u32 = 0x42e01f;

/// What a [`WhipPeer`] offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WhipOptions {
    /// Offer a send-only H.264 video section.
    pub video: bool,
    /// Offer a send-only Opus audio section.
    pub audio: bool,
    /// Video packets kept for retransmission (str0m's send buffer; its default is 1000).
    pub rtx_cache_packets: usize,
    /// How often str0m reports its send statistics (the NACK count comes from them).
    pub stats_interval: Duration,
}

impl Default for WhipOptions {
    fn default() -> Self {
        WhipOptions {
            video: true,
            audio: true,
            rtx_cache_packets: 1000,
            stats_interval: Duration::from_millis(500),
        }
    }
}

/// Counters of a [`WhipPeer`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WhipStats {
    /// Datagrams received.
    pub datagrams_in: u64,
    /// Datagrams handed out to send (those withheld by [`WhipPeer::set_drop`] excluded).
    pub datagrams_out: u64,
    /// Video frames written.
    pub video_frames: u64,
    /// Of those, the ones the caller flagged as keyframes.
    pub keyframes: u64,
    /// Audio frames (Opus packets) written.
    pub audio_frames: u64,
    /// Original video RTP packets str0m produced (dropped ones included).
    pub video_packets: u64,
    /// Original audio RTP packets str0m produced (dropped ones included).
    pub audio_packets: u64,
    /// Original video RTP packets withheld on purpose ([`WhipPeer::set_drop`]).
    pub video_dropped: u64,
    /// Original audio RTP packets withheld on purpose.
    pub audio_dropped: u64,
    /// Retransmissions sent (RTX packets, or a sequence number sent again).
    pub retransmissions: u64,
    /// RTCP datagrams received.
    pub rtcp_in: u64,
    /// NACK messages received, over all tracks, as of str0m's latest statistics event
    /// ([`WhipOptions::stats_interval`]).
    pub nacks: u64,
    /// Picture loss indications received (`Event::KeyframeRequest` of kind PLI).
    pub plis: u64,
    /// Full intra requests received.
    pub firs: u64,
    /// REMB messages received (`Event::EgressBitrateEstimate(BweKind::Remb)`).
    pub rembs: u64,
    /// The bitrate of the latest REMB, bit/s.
    pub remb_bps: Option<u64>,
    /// Media the writer refused (payload type or track not negotiated).
    pub write_errors: u64,
    /// Time from the answer to ICE and DTLS being up.
    pub connected_after: Option<Duration>,
    /// Last ICE connection state str0m reported.
    pub ice_state: Option<IceConnectionState>,
    /// ICE reported the connection lost at some point.
    pub ice_disconnected: bool,
    /// Datagrams str0m could not parse.
    pub malformed: u64,
}

impl WhipStats {
    /// RTP packets withheld on purpose, both kinds.
    pub fn dropped(&self) -> u64 {
        self.video_dropped + self.audio_dropped
    }
}

/// A small deterministic generator (xorshift64) for the drop decisions.
#[derive(Debug, Clone)]
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> Self {
        // Zero is the generator's fixed point.
        XorShift(if seed == 0 {
            0x9e37_79b9_7f4a_7c15
        } else {
            seed
        })
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

/// Loss injection: `ppm` of the original media packets, by a seeded generator.
#[derive(Debug, Clone)]
struct Dropper {
    ppm: u32,
    rng: XorShift,
}

impl Dropper {
    fn drop_next(&mut self) -> bool {
        self.ppm > 0 && self.rng.next() % 1_000_000 < u64::from(self.ppm)
    }
}

/// The sans-IO WHIP publisher. See the [module docs](self).
pub struct WhipPeer {
    rtc: Rtc,
    local: SocketAddr,
    offer: String,
    pending: Option<SdpPendingOffer>,
    video_mid: Option<Mid>,
    audio_mid: Option<Mid>,
    video_pt: Option<Pt>,
    audio_pt: Option<Pt>,
    /// Counts the outgoing RTP headers (originals against retransmissions).
    out_counter: RtpCounter,
    dropper: Dropper,
    stats: WhipStats,
    video_nacks: u64,
    audio_nacks: u64,
    keyframe_wanted: bool,
    /// SPS/PPS NAL units put ahead of keyframes that lack an SPS.
    param_sets: Vec<Vec<u8>>,
    answered: Option<Instant>,
    outbox: VecDeque<Datagram>,
    timeout: Option<Instant>,
    closed: Option<PeerClosed>,
}

impl WhipPeer {
    /// A peer on the UDP socket bound at `local` (a concrete address, not a wildcard: it
    /// is announced as the host candidate) that offers what `opts` asks for (at least
    /// one track).
    pub fn new(now: Instant, local: SocketAddr, opts: WhipOptions) -> Result<Self, ClientError> {
        init_crypto();
        if local.ip().is_unspecified() || local.port() == 0 {
            return Err(ClientError::Misuse(
                "the local address must be a bound, concrete address",
            ));
        }
        if !opts.video && !opts.audio {
            return Err(ClientError::Misuse("a WHIP offer needs video or audio"));
        }
        let mut cfg = Rtc::builder()
            .clear_codecs()
            .enable_opus(opts.audio, false)
            .set_send_buffer_video(opts.rtx_cache_packets.max(1))
            .set_stats_interval(Some(opts.stats_interval));
        if opts.video {
            cfg.codec_config().add_h264(
                H264_PT.into(),
                Some(H264_RTX_PT.into()),
                true,
                H264_PROFILE_LEVEL_ID,
            );
        }
        let mut rtc = cfg.build(now);
        let cand = Candidate::host(local, "udp").map_err(|e| ClientError::Rtc(e.to_string()))?;
        rtc.add_local_candidate(cand);
        let mut api = rtc.sdp_api();
        let video_mid = opts
            .video
            .then(|| api.add_media(MediaKind::Video, Direction::SendOnly, None, None, None));
        let audio_mid = opts
            .audio
            .then(|| api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None));
        let (offer, pending) = api
            .apply()
            .ok_or(ClientError::Misuse("str0m produced no offer"))?;
        let mut peer = WhipPeer {
            rtc,
            local,
            offer: offer.to_sdp_string(),
            pending: Some(pending),
            video_mid,
            audio_mid,
            video_pt: None,
            audio_pt: None,
            out_counter: RtpCounter::default(),
            dropper: Dropper {
                ppm: 0,
                rng: XorShift::new(0),
            },
            stats: WhipStats::default(),
            video_nacks: 0,
            audio_nacks: 0,
            keyframe_wanted: false,
            param_sets: Vec::new(),
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

    /// The local (socket) address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Counters so far.
    pub fn stats(&self) -> &WhipStats {
        &self.stats
    }

    /// The video section's mid, when video was offered.
    pub fn video_mid(&self) -> Option<Mid> {
        self.video_mid
    }

    /// The audio section's mid, when audio was offered.
    pub fn audio_mid(&self) -> Option<Mid> {
        self.audio_mid
    }

    /// The answer accepted a video track to send (known once the answer is applied).
    pub fn sends_video(&self) -> bool {
        self.video_pt.is_some()
    }

    /// The answer accepted an audio track to send.
    pub fn sends_audio(&self) -> bool {
        self.audio_pt.is_some()
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

    /// Withholds `ppm` (parts per million) of the original RTP media packets from now
    /// on, chosen by a xorshift generator seeded with `seed` (the same seed and traffic
    /// drop the same packets). STUN, DTLS, RTCP and retransmissions always go out, so
    /// NACK and RTX can recover every dropped video packet. `ppm` 0 turns it off.
    pub fn set_drop(&mut self, ppm: u32, seed: u64) {
        self.dropper = Dropper {
            ppm: ppm.min(1_000_000),
            rng: XorShift::new(seed),
        };
    }

    /// H.264 parameter sets (SPS and PPS NAL units, without start codes or lengths) to
    /// put ahead of every keyframe that carries no SPS of its own, as browsers and OBS
    /// send them in band: WHIP has no other place for them. An FLV or RTMP source keeps
    /// them in its sequence header (corecast's `Track::params`), not in the frames.
    pub fn set_parameter_sets(&mut self, nal_units: Vec<Vec<u8>>) {
        self.param_sets = nal_units;
    }

    /// Whether a keyframe request (PLI or FIR) came since the last call; clears it.
    pub fn take_keyframe_request(&mut self) -> bool {
        std::mem::take(&mut self.keyframe_wanted)
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
        // The answer's payload types, then the offer's for any the answer leaves out.
        let mut classes = rtp::payload_classes(answer);
        for (pt, class) in rtp::payload_classes(&self.offer) {
            if !classes.iter().any(|(p, _)| *p == pt) {
                classes.push((pt, class));
            }
        }
        self.out_counter.set_classes(classes);
        self.video_pt = self.negotiated_pt(self.video_mid, Codec::H264);
        self.audio_pt = self.negotiated_pt(self.audio_mid, Codec::Opus);
        if self.video_pt.is_none() && self.audio_pt.is_none() {
            return Err(ClientError::BadAnswer(
                "the answer accepts neither H.264 video nor Opus audio".into(),
            ));
        }
        self.answered = Some(now);
        self.drain(now);
        Ok(())
    }

    /// Writes one H.264 access unit with presentation time `pts_90k` (90 kHz, not
    /// negative; it becomes the RTP timestamp) and `now` as its wallclock. `data` is
    /// Annex B, or AVCC with 4-byte lengths (as corecast's frames hold it), which is
    /// converted ([`to_annex_b`]). A `keyframe` without an SPS gets the parameter sets
    /// of [`WhipPeer::set_parameter_sets`] ahead of it.
    pub fn send_video(
        &mut self,
        now: Instant,
        pts_90k: i64,
        data: &[u8],
        keyframe: bool,
    ) -> Result<(), ClientError> {
        let (mid, pt) = self.ready(self.video_mid, self.video_pt, "video")?;
        let time = media_time(pts_90k)?;
        let mut au = to_annex_b(data).into_owned();
        if keyframe && !self.param_sets.is_empty() && !annexb_nal_types(&au).contains(&7) {
            let mut with = Vec::with_capacity(au.len() + 64);
            for n in &self.param_sets {
                with.extend_from_slice(&[0, 0, 0, 1]);
                with.extend_from_slice(n);
            }
            with.extend_from_slice(&au);
            au = with;
        }
        self.write(now, mid, pt, MediaTime::from_90khz(time), au)?;
        self.stats.video_frames += 1;
        self.stats.keyframes += u64::from(keyframe);
        Ok(())
    }

    /// Writes one Opus packet with RTP time `rtp_time_48k` (48 kHz, not negative) and
    /// `now` as its wallclock.
    pub fn send_audio(
        &mut self,
        now: Instant,
        rtp_time_48k: i64,
        opus_packet: &[u8],
    ) -> Result<(), ClientError> {
        let (mid, pt) = self.ready(self.audio_mid, self.audio_pt, "audio")?;
        let time = media_time(rtp_time_48k)?;
        let t = MediaTime::new(time, str0m::media::Frequency::FORTY_EIGHT_KHZ);
        self.write(now, mid, pt, t, opus_packet.to_vec())?;
        self.stats.audio_frames += 1;
        Ok(())
    }

    /// Ends the session from this side: str0m sends RTCP BYE and a DTLS close_notify
    /// (collect them with [`WhipPeer::poll`]). The WHIP `DELETE` is the caller's job.
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
            DatagramKind::Rtcp => self.stats.rtcp_in += 1,
            DatagramKind::Stun | DatagramKind::Dtls | DatagramKind::Rtp => {}
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

    /// The payload type str0m negotiated for `codec` on `mid`.
    fn negotiated_pt(&mut self, mid: Option<Mid>, codec: Codec) -> Option<Pt> {
        let w = self.rtc.writer(mid?)?;
        w.payload_params()
            .find(|p| p.spec().codec == codec)
            .map(|p| p.pt())
    }

    fn ready(
        &self,
        mid: Option<Mid>,
        pt: Option<Pt>,
        what: &'static str,
    ) -> Result<(Mid, Pt), ClientError> {
        if let Some(c) = &self.closed {
            return Err(ClientError::Closed(c.clone()));
        }
        if !self.rtc.is_connected() {
            return Err(ClientError::Misuse(
                "media written before ICE and DTLS are up",
            ));
        }
        match (mid, pt) {
            (Some(m), Some(p)) => Ok((m, p)),
            _ => Err(ClientError::Rtc(format!(
                "no {what} track was negotiated to send"
            ))),
        }
    }

    fn write(
        &mut self,
        now: Instant,
        mid: Mid,
        pt: Pt,
        time: MediaTime,
        data: Vec<u8>,
    ) -> Result<(), ClientError> {
        let Some(w) = self.rtc.writer(mid) else {
            return Err(ClientError::Closed(PeerClosed::Error(
                "str0m is no longer alive".into(),
            )));
        };
        if let Err(e) = w.write(pt, now, time, data) {
            self.stats.write_errors += 1;
            return Err(ClientError::Rtc(e.to_string()));
        }
        self.drain(now);
        Ok(())
    }

    fn fail(&mut self, msg: String) {
        self.rtc.disconnect();
        self.closed.get_or_insert(PeerClosed::Error(msg));
    }

    fn since_answer(&self, now: Instant) -> Option<Duration> {
        self.answered.map(|a| now.saturating_duration_since(a))
    }

    /// Counts an outgoing datagram and decides whether it goes out (false: withheld).
    fn admit(&mut self, data: &[u8]) -> bool {
        if rtp::classify(data) != DatagramKind::Rtp {
            return true;
        }
        let Some(c) = self.out_counter.count(data) else {
            return true;
        };
        let video = match c.class {
            // A sequence number sent before: a retransmission without RTX.
            PayloadClass::Video | PayloadClass::Audio if !c.new => {
                self.stats.retransmissions += 1;
                return true;
            }
            PayloadClass::Rtx => {
                self.stats.retransmissions += 1;
                return true;
            }
            PayloadClass::Video => true,
            PayloadClass::Audio => false,
            PayloadClass::Other => return true,
        };
        let dropped = self.dropper.drop_next();
        match (video, dropped) {
            (true, d) => {
                self.stats.video_packets += 1;
                self.stats.video_dropped += u64::from(d);
            }
            (false, d) => {
                self.stats.audio_packets += 1;
                self.stats.audio_dropped += u64::from(d);
            }
        }
        !dropped
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
                    if self.admit(&t.contents) {
                        self.stats.datagrams_out += 1;
                        self.outbox.push_back(Datagram {
                            source: t.source,
                            destination: t.destination,
                            contents: t.contents.into(),
                        });
                    }
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
            Event::KeyframeRequest(r) => {
                match r.kind {
                    KeyframeRequestKind::Pli => self.stats.plis += 1,
                    KeyframeRequestKind::Fir => self.stats.firs += 1,
                }
                self.keyframe_wanted = true;
            }
            Event::EgressBitrateEstimate(BweKind::Remb { estimate, .. }) => {
                self.stats.rembs += 1;
                self.stats.remb_bps = Some(estimate.as_u64());
            }
            Event::MediaEgressStats(s) => {
                // Cumulative per track.
                if Some(s.mid) == self.video_mid {
                    self.video_nacks = s.nacks;
                } else if Some(s.mid) == self.audio_mid {
                    self.audio_nacks = s.nacks;
                }
                self.stats.nacks = self.video_nacks + self.audio_nacks;
            }
            Event::Closed => {
                self.closed.get_or_insert(PeerClosed::Remote);
            }
            _ => {}
        }
    }
}

impl std::fmt::Debug for WhipPeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WhipPeer")
            .field("local", &self.local)
            .field("connected", &self.is_connected())
            .field("closed", &self.closed)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// A media time from a caller's timestamp (not negative).
fn media_time(t: i64) -> Result<u64, ClientError> {
    u64::try_from(t).map_err(|_| ClientError::Misuse("a negative media timestamp"))
}

/// The NAL units of an AVCC access unit (4-byte big-endian lengths), if `data` is one
/// exactly: every length at least 1, inside the data, the last one ending at its end.
pub fn avcc_nal_units(data: &[u8]) -> Option<Vec<&[u8]>> {
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let (len, tail) = rest.split_first_chunk::<4>()?;
        let len = usize::try_from(u32::from_be_bytes(*len)).ok()?;
        if len == 0 || len > tail.len() {
            return None;
        }
        let (nal, tail) = tail.split_at(len);
        out.push(nal);
        rest = tail;
    }
    (!out.is_empty()).then_some(out)
}

/// An H.264 access unit in Annex B form (4-byte start codes) for str0m's packetizer.
/// Data that starts with a 4-byte start code is Annex B already; otherwise data that
/// parses exactly as AVCC ([`avcc_nal_units`]) is converted; anything else is passed
/// as is (str0m then sends it as one NAL unit, or splits it at 3-byte start codes).
pub fn to_annex_b(data: &[u8]) -> Cow<'_, [u8]> {
    if data.starts_with(&[0, 0, 0, 1]) {
        return Cow::Borrowed(data);
    }
    match avcc_nal_units(data) {
        Some(nals) => {
            let mut out = Vec::with_capacity(data.len());
            for n in nals {
                out.extend_from_slice(&[0, 0, 0, 1]);
                out.extend_from_slice(n);
            }
            Cow::Owned(out)
        }
        None => Cow::Borrowed(data),
    }
}

#[cfg(test)]
mod tests;
