//! The RTSP pull driver: keeps one camera's stream published on its owner shard.
//!
//! A thin loop around the sans-IO [`Session`](crate::rtsp::proto::session::Session): it
//! opens the TCP connection, writes what the session transmits, feeds it what the camera
//! sends, binds the UDP port pairs, and hands RTP to the per-track depacketizers, whose
//! frames go to the hub. Around one session it runs the source's lifecycle:
//!
//! - always-on (default): connect at start, reconnect after any failure with a backoff
//!   that doubles from `rtsp.retry_min` to `rtsp.retry_max` (reset once a session
//!   delivered media);
//! - `on_demand`: connect when the stream gets its first viewer, tear down
//!   `on_demand_close_after` after the last one left;
//! - `transport = "auto"`: UDP first; when no packet arrives within `rtsp.udp_timeout`
//!   (or the camera refuses UDP), TCP from then on.
//!
//! The stream stays published across reconnects, so viewers stay attached: each track's
//! depacketizer restarts at the track's last time plus the wall time that passed, so
//! viewers see continuous timestamps and resume at the next keyframe.
#![allow(clippy::disallowed_methods)] // A driver: it reads the clock.

use crate::config::{RtspSource, RtspTransport};
use crate::media::{MediaKind, Track};
use crate::rtp::depack::recv::{ReceiverStats, build_receiver_report};
use crate::rtp::depack::{DepackOutput, Depacketizer, RtpPacket};
use crate::rtsp::proto::sdp::SetupTrack;
use crate::rtsp::proto::session::{
    Event, Output, PlayingTrack, Session, SessionConfig, SessionError, Transport,
};
use crate::shard::{ShardRef, Wake};
use crate::stats;
use crate::stream::{SourceInfo, SourceState, SourceStats, SourceTrackStats};
use bytes::Bytes;
use futures_lite::AsyncWriteExt;
use glommio::net::{TcpStream, UdpSocket};
use std::cell::{Cell, RefCell};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::os::fd::{FromRawFd, IntoRawFd};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::{debug, info, warn};

/// How often the driver looks at demand, time-outs and statistics while connected.
const TICK: Duration = Duration::from_millis(250);
/// How often receiver reports go to the camera (RFC 3550 allows 5 s minimum).
const RR_INTERVAL: Duration = Duration::from_secs(5);
/// Bytes read from the TCP connection at a time.
const READ_BUF: usize = 64 * 1024;
/// Largest UDP datagram accepted.
const UDP_BUF: usize = 65_536;
/// Redirects (3xx with `Location`) followed in a row before a failure counts.
const MAX_REDIRECTS: u32 = 3;
/// How long a TEARDOWN may take to leave.
const TEARDOWN_GRACE: Duration = Duration::from_millis(300);

/// Why a session ended.
#[derive(Debug, thiserror::Error)]
enum SourceError {
    #[error("cannot resolve {0}: {1}")]
    Resolve(String, String),
    #[error("cannot connect to {0}: {1}")]
    Connect(SocketAddr, String),
    #[error("camera closed the connection")]
    Closed,
    #[error("connection error: {0}")]
    Io(String),
    #[error("no media from the camera for {0:?}")]
    ReadTimeout(Duration),
    #[error("no UDP packets within {0:?} (camera behind NAT or firewall?)")]
    NoUdp(Duration),
    #[error("no free UDP port pair in {0}..={1}")]
    NoUdpPorts(u16, u16),
    #[error("{0}")]
    Session(#[from] SessionError),
}

impl SourceError {
    /// Whether retrying soon cannot help (credentials); such failures wait the longest
    /// backoff so a camera's login lockout is not provoked.
    fn is_permanent(&self) -> bool {
        matches!(
            self,
            SourceError::Session(SessionError::WrongCredentials { .. })
                | SourceError::Session(SessionError::AuthRequired)
        )
    }
}

/// How a session ended without an error.
enum Ended {
    /// On-demand stream: nobody watched for `on_demand_close_after`.
    Idle,
    /// The shard is shutting down.
    Shutdown,
}

/// One received track, kept across reconnects while the camera offers the same tracks.
struct IngestTrack {
    track: Track,
    depack: Depacketizer,
    recv: ReceiverStats,
    /// Bytes at the last statistics tick, for the bitrate.
    last_bytes: u64,
    bitrate: u64,
}

/// What a source knows across sessions.
struct Ingest {
    shard: ShardRef,
    path: Arc<str>,
    tracks: Vec<IngestTrack>,
    /// Tracks as last published to the hub.
    published: Option<Vec<Track>>,
    /// When the media clock of the stream started (the first session's start).
    epoch: Option<Instant>,
    /// When the last session ended (for continuous timestamps).
    last_end: Option<Instant>,
    last_media: Instant,
    frames_this_session: u64,
    /// Frames from which a viewer can start (video keyframes; any frame of an audio-only
    /// stream) this session: the stream is live from the first one.
    starts_this_session: u64,
    reconnects: u64,
    last_error: Option<String>,
    transport: Option<&'static str>,
    out: Vec<DepackOutput>,
}

impl Ingest {
    /// Takes a camera's tracks for a new session: keeps the depacketizers (and counters)
    /// when the codecs are the same as before, restarting each at its continued time.
    fn begin(&mut self, setup: &[SetupTrack], now: Instant) {
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
                })
                .collect();
        }
        let epoch = *self.epoch.get_or_insert(now);
        for (t, s) in self.tracks.iter_mut().zip(setup) {
            // Parameter sets from this session's SDP; in-band ones may follow.
            if !s.track.params.sps.is_empty() || s.track.params.audio_config.is_some() {
                t.track = Track {
                    id: t.track.id,
                    ..s.track.clone()
                };
            }
            let clock = i64::from(t.track.clock_rate.max(1));
            let since_epoch = now.saturating_duration_since(epoch);
            let wall = (since_epoch.as_secs_f64() * clock as f64) as i64;
            let resume = match t.depack.last_time() {
                // Continue after the last frame by the wall time the camera was away.
                Some(last) => {
                    let away = self
                        .last_end
                        .map(|e| now.saturating_duration_since(e))
                        .unwrap_or_default();
                    (last + (away.as_secs_f64() * clock as f64) as i64 + clock / 30).max(last + 1)
                }
                None => wall,
            };
            t.depack.restart(resume);
            t.recv = ReceiverStats::new(t.track.clock_rate);
        }
        self.frames_this_session = 0;
        self.starts_this_session = 0;
        self.last_media = now;
        self.publish_tracks();
    }

    fn has_video(&self) -> bool {
        self.tracks
            .iter()
            .any(|t| t.track.kind() == MediaKind::Video)
    }

    /// Publishes the tracks to the hub when they differ from what viewers have.
    fn publish_tracks(&mut self) {
        let tracks: Vec<Track> = self.tracks.iter().map(|t| t.track.clone()).collect();
        if self.published.as_ref() == Some(&tracks) {
            return;
        }
        let _ = self
            .shard
            .hub
            .borrow_mut()
            .set_tracks(&self.path, tracks.clone());
        self.published = Some(tracks);
    }

    /// One RTP packet of track `idx`.
    fn on_rtp(&mut self, idx: usize, data: Bytes, now: Instant) {
        let shard = self.shard.clone();
        let st = shard.stats();
        stats::add(&st.rtsp_packets_in, 1);
        stats::add(&st.bytes_in, data.len() as u64);
        let has_video = self.has_video();
        let Some(t) = self.tracks.get_mut(idx) else {
            return;
        };
        let Ok(pkt) = RtpPacket::parse(data) else {
            return;
        };
        self.last_media = now;
        let lost_before = t.depack.stats().lost;
        let arrival = ticks(self.epoch, now, t.track.clock_rate);
        t.recv.on_rtp(&pkt, arrival);
        t.depack.push(&pkt, &mut self.out);
        let lost = t.depack.stats().lost.saturating_sub(lost_before);
        if lost > 0 {
            debug!(path = %self.path, track = idx, seq = pkt.sequence, ts = pkt.timestamp, lost, "rtsp: RTP sequence gap");
            stats::add(&st.rtsp_packets_lost, lost);
        }
        if self.out.is_empty() {
            return;
        }
        let mut params_changed = false;
        let mut hub = shard.hub.borrow_mut();
        for o in self.out.drain(..) {
            match o {
                DepackOutput::Frame(f) => {
                    self.frames_this_session += 1;
                    if f.keyframe && (f.kind == MediaKind::Video || !has_video) {
                        self.starts_this_session += 1;
                    }
                    let _ = hub.push_frame(&self.path, f);
                }
                DepackOutput::Params(p) => {
                    if t.track.params.sps != p.sps
                        || t.track.params.pps != p.pps
                        || t.track.params.vps != p.vps
                    {
                        t.track.params = p;
                        if t.track.codec == crate::media::Codec::H264
                            && let Ok(cfg) = crate::media::h264::AvcConfig::from_parameter_sets(
                                &t.track.params.sps,
                                &t.track.params.pps,
                            )
                        {
                            let _ = crate::media::h264::apply_avc_config(&mut t.track, &cfg);
                        }
                        if t.track.codec == crate::media::Codec::H265 {
                            crate::media::h265::apply_sps(&mut t.track);
                        }
                        params_changed = true;
                    }
                }
            }
        }
        drop(hub);
        if params_changed {
            self.publish_tracks();
        }
    }

    /// One RTCP packet of track `idx` (sender reports feed the receiver reports).
    fn on_rtcp(&mut self, idx: usize, data: &[u8], now: Instant) {
        if let Some(t) = self.tracks.get_mut(idx) {
            let arrival = ticks(self.epoch, now, t.track.clock_rate);
            let _ = t.recv.on_rtcp(data, arrival);
        }
    }

    /// Refreshes the counters shown in the API (once per second).
    fn publish_stats(&mut self, dt: Duration) {
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
        let stats = SourceStats {
            transport: self.transport,
            reconnects: self.reconnects,
            last_error: self.last_error.clone(),
            tracks,
        };
        self.shard
            .hub
            .borrow_mut()
            .set_source_stats(&self.path, stats);
    }
}

thread_local! {
    /// Where this shard's next search for a free UDP port pair starts.
    static NEXT_PAIR: Cell<u32> = const { Cell::new(0) };
}

/// Binds `n` RTP/RTCP socket pairs on even/odd ports of `min..=max`, without
/// `SO_REUSEPORT`, so two sources (or shards) never share a port.
fn bind_pairs(
    n: usize,
    min: u16,
    max: u16,
    shard: usize,
) -> Result<Vec<(UdpSocket, UdpSocket, u16)>, SourceError> {
    let first = u32::from(min.div_ceil(2) * 2);
    let pairs = (u32::from(max) + 1).saturating_sub(first) / 2;
    if pairs == 0 {
        return Err(SourceError::NoUdpPorts(min, max));
    }
    let mut out = Vec::with_capacity(n);
    let start = NEXT_PAIR.with(|c| c.get()).wrapping_add(shard as u32 * 97);
    for k in 0..pairs {
        if out.len() == n {
            break;
        }
        let pair = (start + k) % pairs;
        let port =
            u16::try_from(first + pair * 2).map_err(|_| SourceError::NoUdpPorts(min, max))?;
        let (Ok(rtp), Ok(rtcp)) = (bind_udp(port), bind_udp(port + 1)) else {
            continue;
        };
        NEXT_PAIR.with(|c| c.set(pair + 1));
        out.push((rtp, rtcp, port));
    }
    if out.len() < n {
        return Err(SourceError::NoUdpPorts(min, max));
    }
    Ok(out)
}

fn bind_udp(port: u16) -> std::io::Result<UdpSocket> {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)?;
    let _ = s.set_recv_buffer_size(1 << 20);
    s.bind(&SocketAddr::from(([0, 0, 0, 0], port)).into())?;
    s.set_nonblocking(true)?;
    // SAFETY: the descriptor comes from `into_raw_fd`, so the new socket owns it alone.
    Ok(unsafe { UdpSocket::from_raw_fd(s.into_raw_fd()) })
}

async fn resolve(host: &str, port: u16) -> Result<SocketAddr, SourceError> {
    if let Ok(ip) = host.trim_matches(['[', ']']).parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    let h = host.to_string();
    let found = glommio::executor()
        .spawn_blocking(move || (h.as_str(), port).to_socket_addrs().map(|mut a| a.next()))
        .await;
    match found {
        Ok(Some(a)) => Ok(a),
        Ok(None) => Err(SourceError::Resolve(host.into(), "no address".into())),
        Err(e) => Err(SourceError::Resolve(host.into(), e.to_string())),
    }
}

/// Runs the RTSP source `src` as `path` until the task is dropped.
pub async fn run(shard: ShardRef, path: &str, src: RtspSource) {
    let mut src = src;
    // The configured URL; a redirect changes `src.url` until a session fails.
    let configured = src.url.clone();
    let mut redirects = 0u32;
    let rcfg = shard.shared.settings.config.rtsp.clone();
    let info = SourceInfo {
        kind: "rtsp",
        url: src.url.redacted(),
        state: if src.on_demand {
            SourceState::Idle
        } else {
            SourceState::Connecting
        },
        stats: None,
        start_timeout: src.on_demand.then_some(rcfg.on_demand_start_timeout.0),
    };
    let path = match shard.hub.borrow_mut().publish(path, info) {
        Ok(p) => p,
        Err(e) => {
            warn!("rtsp source: {e}");
            return;
        }
    };
    info!(path = %path, url = %src.url.redacted(), transport = src.transport.name(), on_demand = src.on_demand, "rtsp source started");
    let ingest = Rc::new(RefCell::new(Ingest {
        shard: shard.clone(),
        path: path.clone(),
        tracks: Vec::new(),
        published: None,
        epoch: None,
        last_end: None,
        last_media: Instant::now(),
        frames_this_session: 0,
        starts_this_session: 0,
        reconnects: 0,
        last_error: None,
        transport: None,
        out: Vec::new(),
    }));
    let mut backoff = rcfg.retry_min.0;
    let mut use_tcp = src.transport == RtspTransport::Tcp;
    let mut sessions: u64 = 0;
    loop {
        if src.on_demand {
            shard
                .hub
                .borrow_mut()
                .set_source_state(&path, SourceState::Idle);
            loop {
                if shard.shutdown.is_fired() {
                    return;
                }
                if shard.hub.borrow().demand(&path) > 0 {
                    break;
                }
                glommio::timer::sleep(Duration::from_millis(50)).await;
            }
            info!(path = %path, "rtsp source: a viewer arrived, connecting");
        }
        if sessions > 0 {
            ingest.borrow_mut().reconnects += 1;
        }
        sessions += 1;
        shard
            .hub
            .borrow_mut()
            .set_source_state(&path, SourceState::Connecting);
        stats::add(&shard.stats().rtsp_connects, 1);
        let transport = if use_tcp {
            RtspTransport::Tcp
        } else {
            RtspTransport::Udp
        };
        let result = session(&shard, &path, &src, transport, &ingest, sessions).await;
        {
            let mut ing = ingest.borrow_mut();
            ing.last_end = Some(Instant::now());
            ing.transport = None;
        }
        let delivered = ingest.borrow().frames_this_session > 0;
        match result {
            Ok(Ended::Shutdown) => return,
            Ok(Ended::Idle) => {
                info!(path = %path, "rtsp source: no viewers, camera released");
                shard.hub.borrow_mut().clear_gop(&path);
                backoff = rcfg.retry_min.0;
                continue;
            }
            Err(SourceError::Session(SessionError::Redirect { location, .. }))
                if redirects < MAX_REDIRECTS =>
            {
                match crate::rtsp::proto::url::RtspUrl::parse(&location) {
                    Ok(mut to) => {
                        if to.user.is_none() {
                            to.user = src.url.user.clone();
                            to.password = src.url.password.clone();
                        }
                        info!(path = %path, to = %to.redacted(), "rtsp source: camera redirects");
                        src.url = to;
                        redirects += 1;
                        continue;
                    }
                    Err(e) => {
                        warn!(path = %path, "rtsp source: bad redirect '{location}': {e}");
                    }
                }
            }
            Err(e) => {
                if redirects > 0 && !delivered {
                    src.url = configured.clone();
                }
                redirects = 0;
                if src.transport == RtspTransport::Auto
                    && !use_tcp
                    && matches!(
                        e,
                        SourceError::NoUdp(_)
                            | SourceError::NoUdpPorts(..)
                            | SourceError::Session(SessionError::UnsupportedTransport)
                    )
                {
                    warn!(path = %path, "rtsp source: {e}; switching to TCP");
                    use_tcp = true;
                    continue;
                }
                if delivered {
                    backoff = rcfg.retry_min.0;
                }
                if e.is_permanent() {
                    backoff = rcfg.retry_max.0;
                }
                let msg = e.to_string();
                warn!(path = %path, retry_in = ?backoff, "rtsp source: {msg}");
                {
                    let mut ing = ingest.borrow_mut();
                    ing.last_error = Some(msg.clone());
                    ing.publish_stats(Duration::from_secs(1));
                }
                shard.hub.borrow_mut().set_source_state(
                    &path,
                    SourceState::Retrying {
                        in_secs: backoff.as_secs_f64().ceil() as u64,
                        why: msg,
                    },
                );
                shard.hub.borrow_mut().clear_gop(&path);
                let wake = futures_lite::future::or(
                    async {
                        glommio::timer::sleep(backoff).await;
                        false
                    },
                    async {
                        shard.shutdown.wait().await;
                        true
                    },
                )
                .await;
                if wake {
                    return;
                }
                backoff = (backoff * 2).min(rcfg.retry_max.0);
            }
        }
    }
}

/// Connects, sets up, plays and receives until the camera fails, the stream goes idle or
/// the shard stops.
async fn session(
    shard: &ShardRef,
    path: &Arc<str>,
    src: &RtspSource,
    transport: RtspTransport,
    ingest: &Rc<RefCell<Ingest>>,
    seq: u64,
) -> Result<Ended, SourceError> {
    let rcfg = &shard.shared.settings.config.rtsp;
    let addr = resolve(&src.url.host, src.url.port).await?;
    let mut tcp = TcpStream::connect_timeout(addr, rcfg.connect_timeout.0)
        .await
        .map_err(|e| SourceError::Connect(addr, e.to_string()))?;
    let _ = tcp.set_nodelay(true);
    let _open = OpenConnection::new(shard);
    debug!(path = %path, %addr, "rtsp: connected");
    let now = Instant::now();
    let mut sess = Session::new(
        SessionConfig {
            url: src.url.clone(),
            credentials: src.credentials.clone(),
            response_timeout: rcfg.response_timeout.0,
            seed: seed(seq, shard.id),
            user_agent: format!("corecast/{}", env!("CARGO_PKG_VERSION")),
        },
        now,
    );
    let our_ssrc = seed(seq, shard.id) as u32;
    let mut buf = vec![0u8; READ_BUF];
    let mut udp: Vec<(Rc<UdpSocket>, Rc<UdpSocket>, u16)> = Vec::new();
    let mut tasks: Vec<glommio::Task<()>> = Vec::new();
    let mut playing: Option<(Instant, Vec<PlayingTrack>)> = None;
    let mut idle_since: Option<Instant> = None;
    let mut last_stats = Instant::now();
    let mut last_rr = Instant::now();
    let mut live = false;
    loop {
        // Everything the session wants done now.
        sess.handle_timeout(Instant::now());
        let next = loop {
            match sess.poll_output()? {
                Output::Transmit(b) => write(&mut tcp, &b).await?,
                Output::Timeout(t) => break t,
                Output::Event(ev) => match ev {
                    Event::Described { tracks, skipped } => {
                        for s in &skipped {
                            info!(path = %path, "rtsp: skipping track {s}");
                        }
                        ingest.borrow_mut().begin(&tracks, Instant::now());
                        if transport == RtspTransport::Udp {
                            let pairs = bind_pairs(
                                tracks.len(),
                                rcfg.udp_port_min,
                                rcfg.udp_port_max,
                                shard.id,
                            )?;
                            let ports = pairs.iter().map(|p| p.2).collect();
                            udp = pairs
                                .into_iter()
                                .map(|(a, b, p)| (Rc::new(a), Rc::new(b), p))
                                .collect();
                            sess.setup(
                                Transport::Udp {
                                    client_rtp_ports: ports,
                                },
                                Instant::now(),
                            );
                        } else {
                            sess.setup(Transport::Tcp, Instant::now());
                        }
                    }
                    Event::Playing { tracks, .. } => {
                        let now = Instant::now();
                        ingest.borrow_mut().last_media = now;
                        ingest.borrow_mut().transport = Some(transport.name());
                        if transport == RtspTransport::Udp {
                            for (i, (rtp, rtcp, _)) in udp.iter().enumerate() {
                                let server = tracks.get(i).and_then(|t| t.server_ports);
                                tasks.push(glommio::spawn_local(udp_receive(
                                    rtp.clone(),
                                    ingest.clone(),
                                    i,
                                    addr.ip(),
                                    false,
                                )));
                                tasks.push(glommio::spawn_local(udp_receive(
                                    rtcp.clone(),
                                    ingest.clone(),
                                    i,
                                    addr.ip(),
                                    true,
                                )));
                                // Open the NAT/firewall path towards the camera's ports.
                                if let Some((srtp, srtcp)) = server {
                                    let _ =
                                        rtp.send_to(&PUNCH, SocketAddr::new(addr.ip(), srtp)).await;
                                    let _ = rtcp
                                        .send_to(&PUNCH, SocketAddr::new(addr.ip(), srtcp))
                                        .await;
                                }
                            }
                        }
                        info!(path = %path, transport = transport.name(), tracks = tracks.len(), "rtsp: playing");
                        playing = Some((now, tracks));
                    }
                    Event::Rtp { track, data } => {
                        ingest.borrow_mut().on_rtp(track, data, Instant::now());
                    }
                    Event::Rtcp { track, data } => {
                        ingest.borrow_mut().on_rtcp(track, &data, Instant::now());
                    }
                    #[allow(unreachable_patterns)]
                    _ => {}
                },
            }
        };

        let now = Instant::now();
        if let Some((since, tracks)) = &playing {
            let (starts, quiet, got_any) = {
                let ing = ingest.borrow();
                (
                    ing.starts_this_session,
                    now.saturating_duration_since(ing.last_media),
                    ing.tracks.iter().any(|t| t.depack.stats().packets > 0),
                )
            };
            if !live && starts > 0 {
                live = true;
                ingest
                    .borrow_mut()
                    .publish_stats(now.saturating_duration_since(last_stats));
                last_stats = now;
                shard
                    .hub
                    .borrow_mut()
                    .set_source_state(path, SourceState::Live);
                stats::add(&shard.stats().rtsp_sessions, 1);
                info!(path = %path, "rtsp source live");
            } else {
                if transport == RtspTransport::Udp
                    && src.transport == RtspTransport::Auto
                    && !got_any
                    && now.saturating_duration_since(*since) >= rcfg.udp_timeout.0
                {
                    end(&mut sess, &mut tcp, live, shard).await;
                    return Err(SourceError::NoUdp(rcfg.udp_timeout.0));
                }
                if quiet >= rcfg.read_timeout.0 {
                    end(&mut sess, &mut tcp, live, shard).await;
                    return Err(SourceError::ReadTimeout(rcfg.read_timeout.0));
                }
            }
            if now.saturating_duration_since(last_rr) >= RR_INTERVAL {
                last_rr = now;
                let reports = ingest.borrow_mut().receiver_reports(our_ssrc, now);
                send_reports(reports, tracks, &udp, addr.ip(), &mut tcp, transport).await;
            }
        }
        if now.saturating_duration_since(last_stats) >= Duration::from_secs(1) {
            ingest
                .borrow_mut()
                .publish_stats(now.saturating_duration_since(last_stats));
            last_stats = now;
        }
        if src.on_demand {
            if shard.hub.borrow().demand(path) > 0 {
                idle_since = None;
            } else if now.saturating_duration_since(*idle_since.get_or_insert(now))
                >= src.close_after
            {
                end(&mut sess, &mut tcp, live, shard).await;
                return Ok(Ended::Idle);
            }
        }

        let wait = next
            .saturating_duration_since(now)
            .min(TICK)
            .max(Duration::from_millis(1));
        match shard
            .wait_io(
                &mut tcp,
                &mut buf,
                futures_lite::future::pending::<()>(),
                wait,
            )
            .await
        {
            Wake::Read(Ok(0)) => {
                mark_down(live, shard);
                return Err(SourceError::Closed);
            }
            Wake::Read(Ok(n)) => {
                let _ = sess.handle_input(Instant::now(), &buf[..n]);
            }
            Wake::Read(Err(e)) => {
                mark_down(live, shard);
                return Err(SourceError::Io(e.to_string()));
            }
            Wake::Timeout | Wake::Other(()) => sess.handle_timeout(Instant::now()),
            Wake::Shutdown => {
                end(&mut sess, &mut tcp, live, shard).await;
                return Ok(Ended::Shutdown);
            }
        }
    }
}

/// Counts an open camera connection (`rtsp_connections`), so that shutdown waits for its
/// TEARDOWN.
struct OpenConnection<'a>(&'a ShardRef);

impl<'a> OpenConnection<'a> {
    fn new(shard: &'a ShardRef) -> Self {
        stats::add(&shard.stats().rtsp_connections, 1);
        OpenConnection(shard)
    }
}

impl Drop for OpenConnection<'_> {
    fn drop(&mut self) {
        stats::sub(&self.0.stats().rtsp_connections, 1);
    }
}

/// A harmless datagram sent to the camera's ports so NATs and firewalls let its RTP in.
const PUNCH: [u8; 4] = [0xce, 0xfa, 0xed, 0xfe];

fn seed(seq: u64, shard: usize) -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    t ^ seq.rotate_left(32) ^ (shard as u64).rotate_left(48) ^ 0x9e37_79b9_7f4a_7c15
}

fn mark_down(live: bool, shard: &ShardRef) {
    if live {
        stats::sub(&shard.stats().rtsp_sessions, 1);
    }
}

/// Sends TEARDOWN (best effort, bounded) and counts the session down.
async fn end(sess: &mut Session, tcp: &mut TcpStream, live: bool, shard: &ShardRef) {
    mark_down(live, shard);
    let now = Instant::now();
    sess.teardown(now);
    let deadline = now + TEARDOWN_GRACE;
    let mut sent = false;
    // Media still buffered comes out as events first; skip them (bounded by the input
    // buffer) until the TEARDOWN is written.
    while Instant::now() < deadline {
        match sess.poll_output() {
            Ok(Output::Transmit(b)) => {
                let wrote =
                    futures_lite::future::or(async { tcp.write_all(&b).await.is_ok() }, async {
                        glommio::timer::sleep(deadline.saturating_duration_since(Instant::now()))
                            .await;
                        false
                    })
                    .await;
                if !wrote {
                    break;
                }
                sent = true;
            }
            Ok(Output::Event(_)) => {}
            Ok(Output::Timeout(_)) | Err(_) => break,
        }
    }
    debug!(sent, "rtsp: TEARDOWN");
    let _ = tcp.close().await;
}

async fn write(tcp: &mut TcpStream, b: &[u8]) -> Result<(), SourceError> {
    tcp.write_all(b)
        .await
        .map_err(|e| SourceError::Io(e.to_string()))
}

/// Receives one UDP socket's RTP (or RTCP) for track `idx`; datagrams from anywhere but
/// the camera's address are dropped.
async fn udp_receive(
    sock: Rc<UdpSocket>,
    ingest: Rc<RefCell<Ingest>>,
    idx: usize,
    camera: IpAddr,
    rtcp: bool,
) {
    let mut buf = vec![0u8; UDP_BUF];
    loop {
        let Ok((n, from)) = sock.recv_from(&mut buf).await else {
            glommio::timer::sleep(Duration::from_millis(10)).await;
            continue;
        };
        if from.ip() != camera {
            continue;
        }
        let data = &buf[..n];
        let now = Instant::now();
        if rtcp {
            ingest.borrow_mut().on_rtcp(idx, data, now);
        } else {
            ingest
                .borrow_mut()
                .on_rtp(idx, Bytes::copy_from_slice(data), now);
        }
    }
}

/// Track-clock ticks of `now` since `epoch`, for RTCP arrival times.
fn ticks(epoch: Option<Instant>, now: Instant, clock_rate: u32) -> i64 {
    let since = epoch
        .map(|e| now.saturating_duration_since(e))
        .unwrap_or_default();
    (since.as_secs_f64() * f64::from(clock_rate)) as i64
}

impl Ingest {
    /// One receiver report (RR + SDES) per track that has received packets.
    fn receiver_reports(&mut self, our_ssrc: u32, now: Instant) -> Vec<(usize, Vec<u8>)> {
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

/// Sends the receiver reports: over UDP to the camera's RTCP port of each track, or
/// interleaved on the TCP connection.
async fn send_reports(
    reports: Vec<(usize, Vec<u8>)>,
    tracks: &[PlayingTrack],
    udp: &[(Rc<UdpSocket>, Rc<UdpSocket>, u16)],
    camera: IpAddr,
    tcp: &mut TcpStream,
    transport: RtspTransport,
) {
    for (i, rr) in reports {
        let Some(pt) = tracks.get(i) else { continue };
        match transport {
            RtspTransport::Tcp => {
                if let Some((_, ch)) = pt.interleaved {
                    let framed = Session::interleave(ch, &rr);
                    let _ = tcp.write_all(&framed).await;
                }
            }
            _ => {
                if let (Some((_, rtcp, _)), Some((_, sport))) = (udp.get(i), pt.server_ports) {
                    let _ = rtcp.send_to(&rr, SocketAddr::new(camera, sport)).await;
                }
            }
        }
    }
}
