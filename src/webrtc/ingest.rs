//! One WHIP publisher: a str0m [`Rtc`] (ICE-lite, RTP mode) that receives a browser's,
//! OBS's or GStreamer's media and turns it into the stream's tracks and [`Frame`]s.
//!
//! Sans-IO like [`super::peer::Peer`]: the caller passes `now`, feeds datagrams in, and
//! collects datagrams out and what the publisher [`Produced`]. RTP comes out of str0m
//! with retransmissions already unwrapped (str0m sends the NACKs for lost video packets
//! itself) and goes through [`crate::rtp::depack`], the same depacketizers an RTSP
//! camera's RTP goes through.
//!
//! Keyframes on demand: the publisher sends a PLI while the stream has no keyframe yet,
//! after a lost packet cost a frame (the depacketizer then drops frames up to the next
//! keyframe), and when the engine asks ([`Publisher::request_keyframe`]: a viewer's
//! keyframe request), at most once per [`IngestConfig::keyframe_interval`]. The most the
//! publisher may send is told with REMB (`goog-remb`), every few seconds.

use super::offer::Take;
use super::peer::{CloseReason, PeerError, add_codec, close_rtc, timed_out};
use crate::media::{Codec, Frame, MediaKind, Track, TrackId};
use crate::rtp::depack::{DepackConfig, DepackOutput, Depacketizer, RtpPacket};
use crate::stream::SourceTrackStats;
use bytes::Bytes;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use str0m::bwe::Bitrate;
use str0m::change::SdpOffer;
use str0m::config::DtlsCert;
use str0m::media::{KeyframeRequestKind, Mid};
use str0m::net::{Protocol, Receive, Transmit};
use str0m::rtp::Extension;
use str0m::{Candidate, Event, IceConnectionState, IceCreds, Input, Output, Rtc, RtcError};

/// How often the REMB bitrate limit is repeated.
const REMB_EVERY: Duration = Duration::from_secs(2);

/// Tunables of a publisher.
#[derive(Debug, Clone, Copy)]
pub struct IngestConfig {
    /// A publisher that sends nothing (media, STUN, RTCP) for this long is closed.
    pub inactivity: Duration,
    /// A publisher that has not completed ICE and DTLS this long after the answer is
    /// closed.
    pub connect_timeout: Duration,
    /// The most the publisher may send, told with REMB (bit/s; 0: nothing is told).
    pub max_bitrate: u64,
    /// Fewest time between two keyframe requests (PLI) to the publisher.
    pub keyframe_interval: Duration,
    /// Largest frame taken.
    pub max_frame: usize,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            inactivity: Duration::from_secs(7),
            connect_timeout: Duration::from_secs(10),
            max_bitrate: 6_000_000,
            keyframe_interval: Duration::from_millis(500),
            max_frame: 8 * 1024 * 1024,
        }
    }
}

/// Counters of one publisher.
#[derive(Debug, Clone, Copy, Default)]
pub struct IngestStats {
    /// RTP packets received (retransmissions included).
    pub packets: u64,
    /// Frames produced.
    pub frames: u64,
    /// Packets missing when their frame was due (after retransmissions).
    pub lost: u64,
    /// Frames dropped (a lost packet, a malformed payload, waiting for a keyframe).
    pub frames_dropped: u64,
    /// Keyframe requests (PLI) sent to the publisher.
    pub keyframe_requests: u64,
    /// Bytes of the datagrams the publisher sent.
    pub bytes_in: u64,
    /// Bytes of the datagrams sent to the publisher.
    pub bytes_out: u64,
}

/// What a publisher hands to its stream.
#[derive(Debug, Clone)]
pub enum Produced {
    /// The tracks, first and whenever they change (in-band parameter sets).
    Tracks(Vec<Track>),
    /// A frame of one of them.
    Frame(Frame),
}

/// One received track.
struct InTrack {
    mid: Mid,
    pt: u8,
    track: Track,
    depack: Depacketizer,
    /// Frames the depacketizer had dropped at the last look.
    dropped: u64,
    /// Payload bytes at the last report, for the bitrate.
    reported_bytes: u64,
    started: bool,
}

/// One publisher.
pub struct Publisher {
    rtc: Rtc,
    rx: Receiver,
    connected: bool,
    created: Instant,
    last_input: Instant,
    last_keyframe_request: Option<Instant>,
    keyframe_wanted: bool,
    next_remb: Option<Instant>,
    /// Counters at the last report and its time.
    reported: (IngestStats, Option<Instant>),
    cfg: IngestConfig,
    closed: Option<CloseReason>,
    /// Local ICE ufrag (the session table routes first STUN by it).
    pub ufrag: String,
    /// Counters.
    pub stats: IngestStats,
}

impl Publisher {
    /// Creates a publisher from its offer: an ICE-lite, RTP-mode `Rtc` with the process
    /// certificate, receiving exactly the payload types `take` chose (with their RTX),
    /// and its SDP answer.
    pub fn accept(
        now: Instant,
        offer_sdp: &str,
        take: &[Take],
        mids: &[Option<String>],
        cert: &DtlsCert,
        candidates: &[SocketAddr],
        cfg: IngestConfig,
    ) -> Result<(Publisher, String), PeerError> {
        let offer =
            SdpOffer::from_sdp_string(offer_sdp).map_err(|e| PeerError::BadOffer(e.to_string()))?;
        let creds = IceCreds::new();
        let mut rc = Rtc::builder()
            .set_ice_lite(true)
            .set_rtp_mode(true)
            .set_dtls_cert(cert.clone())
            .set_local_ice_credentials(creds.clone())
            .set_stats_interval(None)
            // REMB tells the most to send; no transport-cc (no BWE runs on this side).
            .clear_extension_map()
            .set_extension(4, Extension::RtpMid)
            .clear_codecs();
        {
            let cc = rc.codec_config();
            for t in take {
                add_codec(cc, t.codec, &t.offered);
            }
        }
        let mut rtc = rc.build(now);
        for a in candidates {
            if let Ok(c) = Candidate::host(*a, "udp") {
                rtc.add_local_candidate(c);
            }
        }
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| PeerError::BadOffer(e.to_string()))?;
        let publisher = Publisher {
            rtc,
            rx: Receiver::new(take, mids, cfg.max_frame),
            connected: false,
            created: now,
            last_input: now,
            last_keyframe_request: None,
            keyframe_wanted: true,
            next_remb: None,
            reported: (IngestStats::default(), None),
            cfg,
            closed: None,
            ufrag: creds.ufrag,
            stats: IngestStats::default(),
        };
        Ok((publisher, answer.to_sdp_string()))
    }

    /// Whether ICE and DTLS are up.
    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// Why the session ended, once it has.
    pub fn closed(&self) -> Option<CloseReason> {
        self.closed
    }

    /// Whether the stream has video.
    pub fn has_video(&self) -> bool {
        self.rx.has_video()
    }

    /// The counters' growth since the last report, and each track's totals (bitrate
    /// over the time since the last report) for the stream's source statistics.
    pub fn report(&mut self, now: Instant) -> (IngestStats, Vec<SourceTrackStats>) {
        let (last, at) = self.reported;
        let secs = at.map_or(0.0, |t| now.saturating_duration_since(t).as_secs_f64());
        let tracks = self.rx.track_stats(secs);
        self.stats.frames = self.rx.frames();
        let s = self.stats;
        let delta = IngestStats {
            packets: s.packets - last.packets,
            frames: s.frames - last.frames,
            lost: s.lost - last.lost,
            frames_dropped: s.frames_dropped - last.frames_dropped,
            keyframe_requests: s.keyframe_requests - last.keyframe_requests,
            bytes_in: s.bytes_in - last.bytes_in,
            bytes_out: s.bytes_out - last.bytes_out,
        };
        self.reported = (s, Some(now));
        (delta, tracks)
    }

    /// The next thing for the stream.
    pub fn poll_produced(&mut self) -> Option<Produced> {
        self.rx.poll()
    }

    /// Ends the session (a DTLS close alert if connected).
    pub fn close(&mut self, reason: CloseReason, out: &mut Vec<Transmit>) {
        if self.closed.is_some() {
            return;
        }
        self.closed = Some(reason);
        close_rtc(
            &mut self.rtc,
            self.connected,
            &mut self.stats.bytes_out,
            out,
        );
    }

    /// Asks the publisher for a keyframe (a viewer wants one), within the rate limit.
    pub fn request_keyframe(&mut self, now: Instant, out: &mut Vec<Transmit>) -> Option<Instant> {
        self.keyframe_wanted = true;
        self.poll(now, out)
    }

    /// Feeds a datagram from the publisher, then collects output.
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
            tracing::debug!("whip input rejected: {e}");
            if !self.rtc.is_alive() {
                self.close(CloseReason::Error, out);
                return None;
            }
        }
        self.poll(now, out)
    }

    /// Runs timers: time-outs, keyframe requests, REMB.
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

    fn poll(&mut self, now: Instant, out: &mut Vec<Transmit>) -> Option<Instant> {
        loop {
            if self.closed.is_some() {
                return None;
            }
            if self.feedback(now) && self.rtc.handle_input(Input::Timeout(now)).is_err() {
                self.close(CloseReason::Error, out);
                return None;
            }
            match self.rtc.poll_output() {
                Ok(Output::Transmit(t)) => {
                    self.stats.bytes_out += t.contents.len() as u64;
                    out.push(t);
                }
                Ok(Output::Timeout(t)) => return Some(self.next_timer(t)),
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
            if !self.rtc.is_alive() && self.closed.is_none() {
                self.closed = Some(CloseReason::IceDisconnected);
                return None;
            }
        }
    }

    /// The earlier of str0m's timer and this publisher's own (keyframe request retry,
    /// REMB).
    fn next_timer(&self, rtc: Instant) -> Instant {
        let mut at = rtc;
        if self.keyframe_wanted
            && let Some(last) = self.last_keyframe_request
        {
            at = at.min(last + self.cfg.keyframe_interval);
        }
        if let Some(remb) = self.next_remb {
            at = at.min(remb);
        }
        at
    }

    /// Queues a keyframe request and the REMB limit when due; whether anything was
    /// queued (str0m writes it at its next timeout).
    fn feedback(&mut self, now: Instant) -> bool {
        if !self.connected {
            return false;
        }
        let mut queued = false;
        let Some(video) = self.rx.started_video() else {
            return false;
        };
        let due = self
            .last_keyframe_request
            .is_none_or(|t| now.duration_since(t) >= self.cfg.keyframe_interval);
        let mut api = self.rtc.direct_api();
        let Some(rx) = api.stream_rx_by_mid(video, None) else {
            return false;
        };
        if self.keyframe_wanted && due {
            rx.request_keyframe(KeyframeRequestKind::Pli);
            self.keyframe_wanted = false;
            self.last_keyframe_request = Some(now);
            self.stats.keyframe_requests += 1;
            queued = true;
        }
        if self.cfg.max_bitrate > 0 && self.next_remb.is_none_or(|t| now >= t) {
            rx.request_remb(Bitrate::bps(self.cfg.max_bitrate));
            self.next_remb = Some(now + REMB_EVERY);
            queued = true;
        }
        queued
    }

    fn on_event(&mut self, now: Instant, e: Event) {
        match e {
            Event::Connected => self.connected = true,
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                self.closed = Some(CloseReason::IceDisconnected);
            }
            Event::RtpPacket(p) => self.on_rtp(now, p),
            _ => {}
        }
    }

    fn on_rtp(&mut self, now: Instant, p: str0m::rtp::RtpPacket) {
        self.stats.packets += 1;
        let pkt = RtpPacket {
            payload_type: *p.header.payload_type,
            marker: p.header.marker,
            sequence: p.header.sequence_number,
            timestamp: p.header.timestamp,
            ssrc: *p.header.ssrc,
            payload: Bytes::from_owner(p.payload),
        };
        let at = now.saturating_duration_since(self.created);
        let r = self.rx.push(at, &pkt);
        self.stats.lost += r.lost;
        self.stats.frames_dropped += r.frames_dropped;
        self.keyframe_wanted |= r.wants_keyframe;
    }
}

/// What one RTP packet did to a [`Receiver`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pushed {
    /// Packets found missing.
    pub lost: u64,
    /// Frames dropped.
    pub frames_dropped: u64,
    /// The stream needs a keyframe: it has had none, or a video frame was dropped.
    pub wants_keyframe: bool,
}

/// A publisher's tracks and their depacketizers: RTP packets in, [`Produced`] out. Pure
/// (the times are given), so a fuzz target drives it without a WebRTC session.
pub struct Receiver {
    tracks: Vec<InTrack>,
    produced: VecDeque<Produced>,
    published: Option<Vec<Track>>,
    got_keyframe: bool,
    frames: u64,
    out: Vec<DepackOutput>,
}

impl Receiver {
    /// Tracks for the payload types `take` chose, the `mids` of the offer's sections,
    /// frames up to `max_frame` bytes.
    pub fn new(take: &[Take], mids: &[Option<String>], max_frame: usize) -> Receiver {
        let mut tracks = Vec::new();
        for t in take {
            let Some(Some(mid)) = mids.get(t.media) else {
                continue;
            };
            let id = TrackId(tracks.len() as u8);
            tracks.push(in_track(t, id, Mid::from(mid.as_str()), max_frame));
        }
        Receiver {
            tracks,
            produced: VecDeque::new(),
            published: None,
            got_keyframe: false,
            frames: 0,
            out: Vec::new(),
        }
    }

    /// Frames produced so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Whether a track is video.
    pub fn has_video(&self) -> bool {
        self.tracks
            .iter()
            .any(|t| t.track.kind() == MediaKind::Video)
    }

    /// The video track's mid once its first packet came.
    fn started_video(&self) -> Option<Mid> {
        self.tracks
            .iter()
            .find(|t| t.track.kind() == MediaKind::Video && t.started)
            .map(|t| t.mid)
    }

    /// The next thing for the stream.
    pub fn poll(&mut self) -> Option<Produced> {
        self.produced.pop_front()
    }

    /// Takes one RTP packet that arrived `at` after the publisher started.
    pub fn push(&mut self, at: Duration, pkt: &RtpPacket) -> Pushed {
        let mut r = Pushed::default();
        let Some(i) = self.tracks.iter().position(|t| t.pt == pkt.payload_type) else {
            return r;
        };
        let t = &mut self.tracks[i];
        if !t.started {
            // Every track starts at its first packet's arrival on one clock, so audio
            // and video line up as they arrived.
            t.started = true;
            let clock = u128::from(t.track.clock_rate);
            t.depack
                .restart((at.as_micros() * clock / 1_000_000) as i64);
        }
        let lost_before = t.depack.stats().lost;
        t.depack.push(pkt, &mut self.out);
        let st = t.depack.stats();
        r.lost = st.lost.saturating_sub(lost_before);
        if st.frames_dropped > t.dropped {
            r.frames_dropped = st.frames_dropped - t.dropped;
            t.dropped = st.frames_dropped;
            // The depacketizer now waits for a keyframe.
            r.wants_keyframe = t.track.kind() == MediaKind::Video;
        }
        self.take_output(i);
        r.wants_keyframe |= !self.got_keyframe && self.has_video();
        r
    }

    fn take_output(&mut self, i: usize) {
        let mut changed = self.published.is_none();
        for o in std::mem::take(&mut self.out) {
            match o {
                DepackOutput::Frame(f) => {
                    if f.kind == MediaKind::Video && f.keyframe {
                        self.got_keyframe = true;
                    }
                    if changed {
                        self.publish_tracks();
                        changed = false;
                    }
                    self.frames += 1;
                    self.produced.push_back(Produced::Frame(f));
                }
                DepackOutput::Params(params) => {
                    let t = &mut self.tracks[i].track;
                    t.params = params;
                    t.apply_params();
                    changed = true;
                }
            }
        }
        if changed {
            self.publish_tracks();
        }
    }

    fn publish_tracks(&mut self) {
        let tracks: Vec<Track> = self.tracks.iter().map(|t| t.track.clone()).collect();
        if self.published.as_ref() != Some(&tracks) {
            self.published = Some(tracks.clone());
            self.produced.push_back(Produced::Tracks(tracks));
        }
    }

    /// Each track's totals (bitrate over `secs`) for the stream's source statistics.
    fn track_stats(&mut self, secs: f64) -> Vec<SourceTrackStats> {
        self.tracks
            .iter_mut()
            .map(|t| {
                let st = t.depack.stats();
                let grown = st.bytes.saturating_sub(t.reported_bytes);
                t.reported_bytes = st.bytes;
                SourceTrackStats {
                    codec: t.track.codec.name(),
                    packets: st.packets,
                    bytes: st.bytes,
                    lost: st.lost,
                    frames: st.frames,
                    frames_dropped: st.frames_dropped,
                    bitrate: if secs > 0.0 {
                        (grown as f64 * 8.0 / secs) as u64
                    } else {
                        0
                    },
                }
            })
            .collect()
    }
}

fn in_track(t: &Take, id: TrackId, mid: Mid, max_frame: usize) -> InTrack {
    let (config, clock, channels) = match t.codec {
        Codec::H264 => (DepackConfig::H264, 90_000, None),
        Codec::H265 => (DepackConfig::H265, 90_000, None),
        Codec::Pcmu => (DepackConfig::Pcmu, 8000, Some(1)),
        Codec::Pcma => (DepackConfig::Pcma, 8000, Some(1)),
        _ => (DepackConfig::Opus, 48_000, Some(2)),
    };
    let mut track = Track::new(id, t.codec, clock);
    track.channels = channels;
    InTrack {
        mid,
        pt: t.offered.pt,
        track,
        depack: Depacketizer::new(config, id, clock).with_max_frame(max_frame),
        dropped: 0,
        reported_bytes: 0,
        started: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webrtc::offer::OfferedCodec;

    /// SPS of a 1280x720 constrained baseline stream (as in `media::h264` tests).
    const SPS_720P: &str = "6742c01fd9005005bb0110000003001000000303c0f1832480";

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap_or(0))
            .collect()
    }

    fn take(media: usize, codec: Codec, pt: u8, name: &str, rate: u32) -> Take {
        Take {
            media,
            codec,
            offered: OfferedCodec {
                pt,
                name: name.into(),
                clock_rate: rate,
                channels: None,
                fmtp: Vec::new(),
                rtx: None,
            },
        }
    }

    fn receiver() -> Receiver {
        let takes = [
            take(0, Codec::H264, 102, "H264", 90_000),
            take(1, Codec::Opus, 111, "OPUS", 48_000),
        ];
        Receiver::new(&takes, &[Some("0".into()), Some("1".into())], 1 << 20)
    }

    fn pkt(pt: u8, seq: u16, ts: u32, marker: bool, payload: Vec<u8>) -> RtpPacket {
        RtpPacket {
            payload_type: pt,
            marker,
            sequence: seq,
            timestamp: ts,
            ssrc: 7,
            payload: Bytes::from(payload),
        }
    }

    /// Video packets of one access unit: SPS, PPS and IDR (keyframe) or one non-IDR.
    fn access_unit(seq: &mut u16, ts: u32, key: bool) -> Vec<RtpPacket> {
        let nals: Vec<Vec<u8>> = if key {
            vec![
                hex(SPS_720P),
                vec![0x68, 0xce, 0x3c, 0x80],
                vec![0x65, 0x88, 0x84, 0x00],
            ]
        } else {
            vec![vec![0x41, 0x9a, 0x02, 0x03]]
        };
        let n = nals.len();
        nals.into_iter()
            .enumerate()
            .map(|(i, nal)| {
                *seq = seq.wrapping_add(1);
                pkt(102, *seq, ts, i + 1 == n, nal)
            })
            .collect()
    }

    fn drain(rx: &mut Receiver) -> (Vec<Vec<Track>>, Vec<Frame>) {
        let (mut tracks, mut frames) = (Vec::new(), Vec::new());
        while let Some(p) = rx.poll() {
            match p {
                Produced::Tracks(t) => tracks.push(t),
                Produced::Frame(f) => frames.push(f),
            }
        }
        (tracks, frames)
    }

    #[test]
    fn video_and_opus_become_tracks_and_frames_with_the_picture_size() {
        let mut rx = receiver();
        let mut seq = 100u16;
        let mut at = Duration::ZERO;
        let mut wants = Vec::new();
        for i in 0..5u32 {
            for p in access_unit(&mut seq, 1000 + i * 3000, i == 0) {
                wants.push(rx.push(at, &p).wants_keyframe);
            }
            let opus = pkt(111, 500 + i as u16, 9000 + i * 960, true, vec![0xfc, 1, 2]);
            rx.push(at, &opus);
            at += Duration::from_millis(33);
        }
        let (tracks, frames) = drain(&mut rx);
        let last = tracks.last().expect("tracks");
        assert_eq!(last.len(), 2);
        assert_eq!(
            (last[0].codec, last[0].width, last[0].height),
            (Codec::H264, Some(1280), Some(720))
        );
        assert_eq!((last[1].codec, last[1].clock_rate), (Codec::Opus, 48_000));
        let video: Vec<&Frame> = frames
            .iter()
            .filter(|f| f.kind == MediaKind::Video)
            .collect();
        let audio = frames.len() - video.len();
        // The last access unit is complete at its marker: all five arrive.
        assert_eq!(video.len(), 5, "{frames:?}");
        assert!(video[0].keyframe && !video[1].keyframe);
        assert_eq!(video[1].pts - video[0].pts, 3000);
        assert_eq!(audio, 5);
        // Once the keyframe came, no keyframe is wanted.
        assert!(!*wants.last().expect("pushed"));
        assert_eq!(rx.frames(), 10);
    }

    #[test]
    fn a_lost_packet_drops_frames_until_a_keyframe_and_asks_for_one() {
        let mut rx = receiver();
        let mut seq = 0u16;
        let at = Duration::ZERO;
        for p in access_unit(&mut seq, 0, true) {
            rx.push(at, &p);
        }
        // A packet lost: the next frame after the gap is dropped and a keyframe wanted.
        seq = seq.wrapping_add(1);
        let mut dropped = 0;
        let mut wanted = false;
        let mut lost = 0;
        for i in 1..=40u32 {
            for p in access_unit(&mut seq, i * 3000, false) {
                let r = rx.push(at, &p);
                dropped += r.frames_dropped;
                lost += r.lost;
                wanted |= r.wants_keyframe;
            }
        }
        let (_, frames) = drain(&mut rx);
        assert_eq!(lost, 1);
        assert!(dropped >= 1, "no frame dropped");
        assert!(wanted, "no keyframe asked for");
        // Only the first (key)frame went out: the rest wait for the next keyframe.
        assert_eq!(frames.len(), 1, "{frames:?}");
        for p in access_unit(&mut seq, 41 * 3000, true) {
            rx.push(at, &p);
        }
        let (_, frames) = drain(&mut rx);
        assert!(frames.first().is_some_and(|f| f.keyframe), "{frames:?}");
    }

    #[test]
    fn packets_of_a_payload_type_not_taken_are_ignored() {
        let mut rx = receiver();
        let r = rx.push(Duration::ZERO, &pkt(96, 1, 0, true, vec![0x65, 1]));
        assert_eq!(r, Pushed::default());
        assert!(rx.poll().is_none());
    }
}
