//! `corecast-load camera`: M simulated RTSP cameras in one process, for the RTSP ingest
//! load test (`perf/rtsp_load.sh`).
//!
//! ```text
//! corecast-load camera --clip clip.flv --port 8554 --threads 1 --cpu 1 --duration 60
//! ffprobe -rtsp_transport tcp rtsp://127.0.0.1:8554/cam0
//! ```
//!
//! A minimal RTSP/1.0 server ([`crate::camera_rtsp`]) on `--bind:--port`; every path
//! serves the same media: the H.264 video of `--clip`, packetized once at start-up
//! ([`crate::camera_reel`]) and looped with continuous timestamps like corecast's file
//! source. Each executor (`--threads`, pinned with `--cpu`) accepts on the same port
//! (SO_REUSEPORT) and runs one clock for all of its sessions: at each frame's due time it
//! writes the frame to every playing session with the session's own SSRC, sequence
//! numbers and timestamp offset, over TCP (interleaved, through a bounded per-session
//! queue: a frame that does not fit is dropped, then the session waits for the next IDR)
//! or UDP (from the executor's RTP socket to the client's port; a send that would block
//! drops the rest of the frame the same way). Sender reports go out every 5 s.
//!
//! PLAY starts a session at the current GOP's IDR (`--start gop`: the frames since then
//! are sent at once, like a camera's fresh IDR) or at the next IDR (`--start next`).
//!
//! Prints `READY <port>` on stderr once every executor listens, a progress line every
//! `--report` seconds on stderr, and one line of JSON on stdout at the end
//! (`--duration`, SIGTERM or SIGINT).
#![allow(clippy::disallowed_methods)] // A driver: it reads the clock.

use crate::camera_reel::{LiveFrame, Reel};
use crate::camera_rtsp::{
    self as proto, Action, Control, ControlState, Env, RequestReader, Transport,
};
use corecast::media::clip::Clip;
use futures_lite::{AsyncReadExt, AsyncWriteExt, future};
use glommio::net::{TcpListener, TcpStream};
use glommio::{LocalExecutorBuilder, Placement};
use serde_json::json;
use std::cell::{Cell, RefCell};
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, mpsc};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Usage of the `camera` mode.
pub const USAGE: &str = "\
corecast-load camera: M simulated RTSP cameras. Serves the H.264 video of an FLV clip,
looped, at every path (rtsp://HOST:PORT/cam0, /cam1, ...) over RTSP/1.0 with RTP over TCP
(interleaved) or UDP. Prints READY <port> on stderr once listening, progress lines on
stderr, and one line of JSON on stdout at exit (--duration, SIGTERM, SIGINT).

usage: corecast-load camera --clip FILE.flv [options]

  --clip FILE               FLV file with H.264 video (required; audio is left out)
  --bind IP                 address to listen on (default 127.0.0.1)
  --port P                  RTSP port, 0 for any (default 8554)
  --threads T               executors, each with its own clock and UDP ports (default 1)
  --cpu LIST                pin executors to these CPUs, e.g. 1 or 1,2 (default: unpinned)
  --duration S              stop after S seconds (default: run until SIGTERM/SIGINT)
  --start gop|next          PLAY starts at the current GOP's IDR, sent at once (gop), or
                            at the next IDR (next) (default gop)
  --udp on|off              offer RTP over UDP (default on)
  --max-sessions N          sessions set up at once; more SETUPs get 453 (default 10000)
  --queue-bytes B           per-session TCP send queue; frames that do not fit are
                            dropped up to the next IDR (default 1048576)
  --write-timeout S         a TCP session whose socket accepts nothing this long is
                            closed (default 10)
  --report S                progress line on stderr every S seconds, 0 for none (default 5)
";

/// Largest clip tag accepted.
const MAX_TAG: usize = 16 << 20;
/// Bytes read from a connection at a time.
const READ_BUF: usize = 4096;
/// Interval of RTCP sender reports.
const SR_INTERVAL_MS: i64 = 5000;
/// A frame sent later than this after its due time counts as late.
const LATE: Duration = Duration::from_millis(50);
/// A connection silent for this long is closed (twice the announced session time-out).
const IDLE: Duration = Duration::from_secs(2 * proto::SESSION_TIMEOUT_S);
/// Control replies may exceed the media queue by this much before the connection is
/// cut (a client that sends requests and never reads).
const REPLY_SLACK: usize = 64 * 1024;
/// Datagrams drained from each UDP socket per frame.
const UDP_DRAIN: usize = 256;
/// Seconds between the NTP epoch (1900) and the Unix epoch.
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// Where PLAY starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    /// The current GOP's IDR, its frames sent at once.
    Gop,
    /// The next IDR.
    NextIdr,
}

#[derive(Debug, Clone)]
struct Args {
    clip: String,
    bind: IpAddr,
    port: u16,
    threads: usize,
    cpus: Vec<usize>,
    duration: Option<f64>,
    start: Start,
    udp: bool,
    max_sessions: usize,
    queue_bytes: usize,
    write_timeout: f64,
    report: f64,
}

fn parse_args(argv: &[String]) -> Result<Args, String> {
    let mut a = Args {
        clip: String::new(),
        bind: IpAddr::from([127, 0, 0, 1]),
        port: 8554,
        threads: 1,
        cpus: Vec::new(),
        duration: None,
        start: Start::Gop,
        udp: true,
        max_sessions: 10_000,
        queue_bytes: 1 << 20,
        write_timeout: 10.0,
        report: 5.0,
    };
    for pair in crate::args::pairs(argv) {
        let (flag, value) = pair?;
        let num = |v: &str| crate::args::num(flag, v);
        let count = |v: &str| crate::args::count(flag, v);
        match flag {
            "--clip" => a.clip = value.to_owned(),
            "--bind" => {
                a.bind = value
                    .parse()
                    .map_err(|_| format!("--bind: not an IP address: {value:?}"))?;
            }
            "--port" => {
                a.port = u16::try_from(count(value)?).map_err(|_| "--port: above 65535")?;
            }
            "--threads" => a.threads = count(value)?,
            "--cpu" => {
                a.cpus = value
                    .split(',')
                    .map(|c| count(c.trim()))
                    .collect::<Result<_, _>>()?;
            }
            "--duration" => a.duration = Some(num(value)?),
            "--start" => {
                a.start = match value {
                    "gop" => Start::Gop,
                    "next" => Start::NextIdr,
                    _ => return Err(format!("--start: gop or next, not {value:?}")),
                };
            }
            "--udp" => {
                a.udp = match value {
                    "on" => true,
                    "off" => false,
                    _ => return Err(format!("--udp: on or off, not {value:?}")),
                };
            }
            "--max-sessions" => a.max_sessions = count(value)?,
            "--queue-bytes" => a.queue_bytes = count(value)?,
            "--write-timeout" => a.write_timeout = num(value)?,
            "--report" => a.report = num(value)?,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if a.clip.is_empty() {
        return Err("--clip is required".into());
    }
    if !(1..=64).contains(&a.threads) {
        return Err("--threads must be 1..=64".into());
    }
    if a.max_sessions == 0 || a.max_sessions > 100_000 {
        return Err("--max-sessions must be 1..=100000".into());
    }
    if !(64 * 1024..=256 << 20).contains(&a.queue_bytes) {
        return Err("--queue-bytes must be 64KiB..=256MiB".into());
    }
    if a.write_timeout <= 0.0 || a.write_timeout > 600.0 {
        return Err("--write-timeout must be in (0, 600] seconds".into());
    }
    if a.duration.is_some_and(|d| d <= 0.0 || d > 86_400.0) {
        return Err("--duration must be in (0, 86400] seconds".into());
    }
    Ok(a)
}

/// Counters of the whole process, written by every executor.
#[derive(Debug, Default)]
struct Counters {
    connections: AtomicU64,
    connections_refused: AtomicU64,
    /// Open connections (a gauge).
    open: AtomicUsize,
    /// Sessions set up and not yet closed (a gauge, bounded by `--max-sessions`).
    sessions: AtomicUsize,
    /// Sessions playing (a gauge).
    playing: AtomicUsize,
    requests: AtomicU64,
    error_replies: AtomicU64,
    sessions_tcp: AtomicU64,
    sessions_udp: AtomicU64,
    teardowns: AtomicU64,
    closed_idle: AtomicU64,
    write_errors: AtomicU64,
    frames: AtomicU64,
    packets: AtomicU64,
    bytes: AtomicU64,
    frames_dropped: AtomicU64,
    packets_dropped: AtomicU64,
    sessions_with_drops: AtomicU64,
    udp_send_errors: AtomicU64,
    /// RTCP (and anything else) received: UDP datagrams and interleaved frames.
    rtcp_in: AtomicU64,
    late_frames: AtomicU64,
    max_lag_us: AtomicU64,
    errors: Mutex<Vec<String>>,
}

impl Counters {
    fn note_error(&self, text: String) {
        if let Ok(mut e) = self.errors.lock()
            && e.len() < 5
        {
            e.push(text);
        }
    }
}

/// A one-slot wake-up for a connection task (single-threaded).
#[derive(Debug, Default)]
struct Notify {
    set: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

impl Notify {
    fn notify(&self) {
        self.set.set(true);
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }

    async fn wait(&self) {
        std::future::poll_fn(|cx| {
            if self.set.replace(false) {
                Poll::Ready(())
            } else {
                *self.waker.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }
}

/// Why a session waits for an IDR before sending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wait {
    /// Sending.
    No,
    /// Just started (`--start next`).
    FirstIdr,
    /// Dropped a frame.
    AfterDrop,
}

/// The media state of a set-up session.
#[derive(Debug)]
struct Media {
    transport: Transport,
    /// UDP destinations (RTP, RTCP).
    udp_to: Option<(SocketAddr, SocketAddr)>,
    ssrc: u32,
    ts_offset: u32,
    seq: u16,
    wait: Wait,
    dropped: bool,
    /// Packets and payload octets sent, for sender reports (wrapping, RFC 3550).
    sr_packets: u32,
    sr_octets: u32,
    next_sr_ms: i64,
}

/// One RTSP connection, shared by its task and the executor's clock.
#[derive(Debug)]
struct Conn {
    /// Bytes to write: replies and (TCP) interleaved media.
    out: RefCell<Vec<u8>>,
    /// Bytes of the write under way.
    inflight: Cell<usize>,
    wake: Notify,
    media: RefCell<Option<Media>>,
    /// The clock sends to it.
    playing: Cell<bool>,
    /// `--start gop`: frames from this live index up to the clock's cursor are sent once
    /// the PLAY reply is written.
    burst_from: Cell<Option<u64>>,
    last_rx: Cell<Instant>,
    expired: Cell<bool>,
}

/// The executor's RTP and RTCP sockets.
#[derive(Debug)]
struct UdpPair {
    rtp: UdpSocket,
    rtcp: UdpSocket,
    ports: (u16, u16),
}

/// Everything one executor's tasks share.
struct Cam {
    args: Arc<Args>,
    reel: Arc<Reel>,
    sdp: Arc<str>,
    counters: Arc<Counters>,
    udp: Option<UdpPair>,
    conns: RefCell<Vec<Rc<Conn>>>,
    /// The next live index the clock sends.
    cursor: Cell<u64>,
    /// The live index of the last IDR sent.
    last_idr: Cell<Option<u64>>,
    t0: Instant,
    rng: Cell<u64>,
    /// Scratch for one UDP datagram.
    datagram: RefCell<Vec<u8>>,
}

impl Cam {
    /// SplitMix64.
    fn random(&self) -> u64 {
        let s = self.rng.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
        self.rng.set(s);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Writes frame `f` to `conn`'s session (TCP: into its queue; UDP: sends). `live`:
    /// the frame is due now (not part of a join burst), so a sender report may map the
    /// wall clock to its timestamp.
    fn deliver(&self, conn: &Conn, f: LiveFrame<'_>, live: bool) {
        let mut media = conn.media.borrow_mut();
        let Some(m) = media.as_mut() else { return };
        let c = &self.counters;
        if m.wait != Wait::No {
            if !f.frame.keyframe {
                if m.wait == Wait::AfterDrop {
                    c.frames_dropped.fetch_add(1, Relaxed);
                    c.packets_dropped
                        .fetch_add(f.frame.payloads.len() as u64, Relaxed);
                }
                return;
            }
            m.wait = Wait::No;
        }
        let ts = f.rtp_ts.wrapping_add(m.ts_offset);
        let n = f.frame.payloads.len();
        let mut sent = 0usize;
        match m.transport {
            Transport::Interleaved { rtp, .. } => {
                let need =
                    n * (proto::INTERLEAVED_HEADER + proto::RTP_HEADER) + f.frame.payload_bytes;
                let mut out = conn.out.borrow_mut();
                if out.len() + conn.inflight.get() + need <= self.args.queue_bytes {
                    out.reserve(need);
                    for p in &f.frame.payloads {
                        out.extend_from_slice(&proto::interleaved_header(
                            rtp,
                            proto::RTP_HEADER + p.data.len(),
                        ));
                        out.extend_from_slice(&proto::rtp_header(p.marker, m.seq, ts, m.ssrc));
                        out.extend_from_slice(&p.data);
                        m.seq = m.seq.wrapping_add(1);
                    }
                    sent = n;
                }
            }
            Transport::Udp { .. } => {
                if let (Some(udp), Some((to, _))) = (&self.udp, m.udp_to) {
                    let mut d = self.datagram.borrow_mut();
                    for p in &f.frame.payloads {
                        d.clear();
                        d.extend_from_slice(&proto::rtp_header(p.marker, m.seq, ts, m.ssrc));
                        d.extend_from_slice(&p.data);
                        match udp.rtp.send_to(&d, to) {
                            Ok(_) => {}
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                            // An ICMP error for an earlier datagram: the packet is gone.
                            Err(_) => {
                                c.udp_send_errors.fetch_add(1, Relaxed);
                            }
                        }
                        m.seq = m.seq.wrapping_add(1);
                        sent += 1;
                    }
                }
            }
        }
        let bytes = f.frame.payloads[..sent]
            .iter()
            .map(|p| proto::RTP_HEADER + p.data.len())
            .sum::<usize>() as u64;
        c.packets.fetch_add(sent as u64, Relaxed);
        c.bytes.fetch_add(bytes, Relaxed);
        m.sr_packets = m.sr_packets.wrapping_add(sent as u32);
        m.sr_octets = m
            .sr_octets
            .wrapping_add((bytes - (sent * proto::RTP_HEADER) as u64) as u32);
        if sent < n {
            c.frames_dropped.fetch_add(1, Relaxed);
            c.packets_dropped.fetch_add((n - sent) as u64, Relaxed);
            m.wait = Wait::AfterDrop;
            if !m.dropped {
                m.dropped = true;
                c.sessions_with_drops.fetch_add(1, Relaxed);
            }
        } else {
            c.frames.fetch_add(1, Relaxed);
        }
        if live && f.due_ms >= m.next_sr_ms {
            m.next_sr_ms = f.due_ms + SR_INTERVAL_MS;
            let sr = proto::sender_report(m.ssrc, ntp_now(), ts, m.sr_packets, m.sr_octets);
            match (m.transport, &self.udp, m.udp_to) {
                (Transport::Interleaved { rtcp, .. }, _, _) => {
                    let mut out = conn.out.borrow_mut();
                    if out.len() + conn.inflight.get() + sr.len() <= self.args.queue_bytes {
                        out.extend_from_slice(&proto::interleaved_header(rtcp, sr.len()));
                        out.extend_from_slice(&sr);
                    }
                }
                (Transport::Udp { .. }, Some(udp), Some((_, to))) => {
                    let _ = udp.rtcp.send_to(&sr, to);
                }
                _ => {}
            }
        }
        drop(media);
        conn.wake.notify();
    }

    /// Reads and discards what clients sent to the UDP ports (RTCP receiver reports,
    /// NAT punch packets).
    fn drain_udp(&self) {
        let Some(udp) = &self.udp else { return };
        let mut buf = [0u8; 2048];
        for s in [&udp.rtp, &udp.rtcp] {
            for _ in 0..UDP_DRAIN {
                match s.recv_from(&mut buf) {
                    Ok(_) => {
                        self.counters.rtcp_in.fetch_add(1, Relaxed);
                    }
                    Err(_) => break,
                }
            }
        }
    }
}

/// The current wall-clock time as a 64-bit NTP timestamp.
fn ntp_now() -> u64 {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs() + NTP_UNIX_OFFSET;
    let frac = (u64::from(d.subsec_nanos()) << 32) / 1_000_000_000;
    secs << 32 | frac
}

/// The executor's clock: sends each frame of the replay at its due time to every
/// playing session.
async fn clock(cam: Rc<Cam>) {
    let mut index = 0u64;
    loop {
        let f = cam.reel.live(index);
        let due = cam.t0 + Duration::from_millis(f.due_ms.max(0) as u64);
        let now = Instant::now();
        if due > now {
            glommio::timer::sleep(due - now).await;
        } else {
            let lag = now - due;
            if lag > LATE {
                cam.counters.late_frames.fetch_add(1, Relaxed);
            }
            cam.counters
                .max_lag_us
                .fetch_max(lag.as_micros() as u64, Relaxed);
        }
        for conn in cam.conns.borrow().iter().filter(|c| c.playing.get()) {
            cam.deliver(conn, f, true);
        }
        if f.frame.keyframe {
            cam.last_idr.set(Some(index));
        }
        index += 1;
        cam.cursor.set(index);
        cam.drain_udp();
        // Let the connection tasks write before the next frame even when behind.
        glommio::executor().yield_if_needed().await;
    }
}

/// Closes connections that have been silent too long.
async fn housekeeping(cam: Rc<Cam>) {
    loop {
        glommio::timer::sleep(Duration::from_secs(1)).await;
        let now = Instant::now();
        for c in cam.conns.borrow().iter() {
            if now.saturating_duration_since(c.last_rx.get()) > IDLE && !c.expired.get() {
                c.expired.set(true);
                c.wake.notify();
            }
        }
    }
}

/// What woke a connection task.
enum Event {
    Read(io::Result<usize>),
    Wake,
}

/// Serves one RTSP connection until it closes, is torn down, fails or goes silent.
async fn serve(cam: Rc<Cam>, mut stream: TcpStream, peer: SocketAddr) {
    let c = &cam.counters;
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(Duration::from_secs_f64(cam.args.write_timeout)));
    let conn = Rc::new(Conn {
        out: RefCell::new(Vec::new()),
        inflight: Cell::new(0),
        wake: Notify::default(),
        media: RefCell::new(None),
        playing: Cell::new(false),
        burst_from: Cell::new(None),
        last_rx: Cell::new(Instant::now()),
        expired: Cell::new(false),
    });
    cam.conns.borrow_mut().push(conn.clone());
    let mut control = Control::new(format!("{:016X}", cam.random()));
    let mut reader = RequestReader::new();
    let mut buf = vec![0u8; READ_BUF];
    let mut spare: Vec<u8> = Vec::new();
    let mut setup_uri = String::new();
    let mut has_session = false;
    let mut counted_playing = false;
    loop {
        if !conn.out.borrow().is_empty() {
            std::mem::swap(&mut *conn.out.borrow_mut(), &mut spare);
            conn.inflight.set(spare.len());
            let r = stream.write_all(&spare).await;
            conn.inflight.set(0);
            spare.clear();
            if spare.capacity() > 2 * cam.args.queue_bytes {
                spare = Vec::new();
            }
            if let Err(e) = r {
                // Clients close right after TEARDOWN, often before reading the reply.
                if control.state() != ControlState::Closing {
                    c.write_errors.fetch_add(1, Relaxed);
                    c.note_error(format!("{peer}: write: {e}"));
                }
                break;
            }
            continue;
        }
        if let Some(first) = conn.burst_from.take() {
            // The PLAY reply is out: the current GOP, then live frames from the clock.
            for i in first..cam.cursor.get() {
                cam.deliver(&conn, cam.reel.live(i), false);
            }
            conn.playing.set(true);
            continue;
        }
        if control.state() == ControlState::Closing {
            break;
        }
        if conn.expired.get() {
            c.closed_idle.fetch_add(1, Relaxed);
            break;
        }
        let ev = future::or(async { Event::Read(stream.read(&mut buf).await) }, async {
            conn.wake.wait().await;
            Event::Wake
        })
        .await;
        let n = match ev {
            Event::Wake => continue,
            Event::Read(Ok(0)) => break,
            Event::Read(Err(e)) => {
                c.note_error(format!("{peer}: read: {e}"));
                break;
            }
            Event::Read(Ok(n)) => n,
        };
        conn.last_rx.set(Instant::now());
        let skipped = reader.skipped_frames();
        let mut parsed = reader.feed(&buf[..n]);
        loop {
            let req = match parsed.and_then(|()| reader.next_request()) {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(e) => {
                    c.error_replies.fetch_add(1, Relaxed);
                    c.note_error(format!("{peer}: bad request: {e}"));
                    control.bad_request().encode(&mut conn.out.borrow_mut());
                    break;
                }
            };
            parsed = Ok(());
            c.requests.fetch_add(1, Relaxed);
            let ssrc = cam.random() as u32;
            let env = Env {
                sdp: &cam.sdp,
                server_ports: cam.udp.as_ref().map(|u| u.ports),
                ssrc,
                admit: c.sessions.load(Relaxed) < cam.args.max_sessions,
            };
            let mut reply = control.handle(&req, &env);
            match reply.action {
                Action::None => {}
                Action::Setup(t) => {
                    has_session = true;
                    c.sessions.fetch_add(1, Relaxed);
                    let udp_to = match t {
                        Transport::Udp { rtp, rtcp } => {
                            c.sessions_udp.fetch_add(1, Relaxed);
                            Some((
                                SocketAddr::new(peer.ip(), rtp),
                                SocketAddr::new(peer.ip(), rtcp),
                            ))
                        }
                        Transport::Interleaved { .. } => {
                            c.sessions_tcp.fetch_add(1, Relaxed);
                            None
                        }
                    };
                    setup_uri = req.uri.clone();
                    let r = cam.random();
                    *conn.media.borrow_mut() = Some(Media {
                        transport: t,
                        udp_to,
                        ssrc,
                        ts_offset: (r >> 16) as u32,
                        seq: r as u16,
                        wait: Wait::No,
                        dropped: false,
                        sr_packets: 0,
                        sr_octets: 0,
                        next_sr_ms: 0,
                    });
                }
                Action::Play => {
                    let cursor = cam.cursor.get();
                    let (first, gop) = match (cam.args.start, cam.last_idr.get()) {
                        (Start::Gop, Some(k)) => (k, true),
                        _ => (cam.reel.next_keyframe(cursor), false),
                    };
                    if let Some(m) = conn.media.borrow_mut().as_mut() {
                        let ts = cam.reel.live(first).rtp_ts.wrapping_add(m.ts_offset);
                        reply.header(
                            "RTP-Info",
                            format!("url={setup_uri};seq={};rtptime={ts}", m.seq),
                        );
                        m.wait = if gop { Wait::No } else { Wait::FirstIdr };
                    }
                    if !counted_playing {
                        counted_playing = true;
                        c.playing.fetch_add(1, Relaxed);
                    }
                    if gop {
                        conn.burst_from.set(Some(first));
                    } else {
                        conn.playing.set(true);
                    }
                }
                Action::Teardown => {
                    c.teardowns.fetch_add(1, Relaxed);
                    if counted_playing {
                        counted_playing = false;
                        c.playing.fetch_sub(1, Relaxed);
                    }
                    conn.playing.set(false);
                    conn.burst_from.set(None);
                }
            }
            if reply.status >= 400 {
                c.error_replies.fetch_add(1, Relaxed);
            }
            let mut out = conn.out.borrow_mut();
            reply.encode(&mut out);
            if out.len() > cam.args.queue_bytes + REPLY_SLACK {
                c.note_error(format!("{peer}: does not read its replies"));
                drop(out);
                control.bad_request();
                conn.out.borrow_mut().clear();
                break;
            }
            if control.state() == ControlState::Closing {
                break;
            }
        }
        let interleaved_in = reader.skipped_frames() - skipped;
        if interleaved_in > 0 {
            c.rtcp_in.fetch_add(interleaved_in, Relaxed);
        }
    }
    // Closed: off the clock, counters released.
    if counted_playing {
        c.playing.fetch_sub(1, Relaxed);
    }
    if has_session {
        c.sessions.fetch_sub(1, Relaxed);
    }
    conn.playing.set(false);
    cam.conns.borrow_mut().retain(|x| !Rc::ptr_eq(x, &conn));
    c.open.fetch_sub(1, Relaxed);
    let _ = stream.close().await;
}

/// Binds an RTP/RTCP pair of non-blocking UDP sockets on consecutive ports (RTP even).
fn bind_udp_pair(ip: IpAddr) -> io::Result<UdpPair> {
    let mut last = io::Error::other("no port pair found");
    for _ in 0..100 {
        let rtp = UdpSocket::bind(SocketAddr::new(ip, 0))?;
        let port = rtp.local_addr()?.port();
        if !port.is_multiple_of(2) || port == u16::MAX {
            continue;
        }
        match UdpSocket::bind(SocketAddr::new(ip, port + 1)) {
            Ok(rtcp) => {
                rtp.set_nonblocking(true)?;
                rtcp.set_nonblocking(true)?;
                return Ok(UdpPair {
                    rtp,
                    rtcp,
                    ports: (port, port + 1),
                });
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// What every executor gets.
struct Shared {
    args: Arc<Args>,
    reel: Arc<Reel>,
    sdp: Arc<str>,
    counters: Arc<Counters>,
    /// Most connections at once: sessions plus some for probes.
    max_connections: usize,
}

/// One executor: binds, reports its port, then accepts until the process exits.
async fn run_executor(
    thread: usize,
    shared: Arc<Shared>,
    port: u16,
    ready: mpsc::Sender<Result<u16, String>>,
) {
    let args = shared.args.clone();
    let listener = match TcpListener::bind(SocketAddr::new(args.bind, port)) {
        Ok(l) => l,
        Err(e) => {
            let _ = ready.send(Err(format!(
                "executor {thread}: bind {}:{port}: {e}",
                args.bind
            )));
            return;
        }
    };
    let port = match listener.local_addr() {
        Ok(a) => a.port(),
        Err(e) => {
            let _ = ready.send(Err(format!("executor {thread}: local address: {e}")));
            return;
        }
    };
    let udp = if args.udp {
        match bind_udp_pair(args.bind) {
            Ok(u) => Some(u),
            Err(e) => {
                let _ = ready.send(Err(format!("executor {thread}: UDP ports: {e}")));
                return;
            }
        }
    } else {
        None
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as u64;
    let cam = Rc::new(Cam {
        args: args.clone(),
        reel: shared.reel.clone(),
        sdp: shared.sdp.clone(),
        counters: shared.counters.clone(),
        udp,
        conns: RefCell::new(Vec::new()),
        cursor: Cell::new(0),
        last_idr: Cell::new(None),
        t0: Instant::now(),
        rng: Cell::new(now ^ (thread as u64).wrapping_mul(0xA076_1D64_78BD_642F)),
        datagram: RefCell::new(Vec::with_capacity(
            crate::camera_reel::MAX_PAYLOAD + proto::RTP_HEADER,
        )),
    });
    glommio::spawn_local(clock(cam.clone())).detach();
    glommio::spawn_local(housekeeping(cam.clone())).detach();
    let _ = ready.send(Ok(port));
    let c = &shared.counters;
    loop {
        match listener.accept().await {
            Ok(stream) => {
                let peer = match stream.peer_addr() {
                    Ok(p) => p,
                    Err(_) => continue,
                };
                if c.open.load(Relaxed) >= shared.max_connections {
                    c.connections_refused.fetch_add(1, Relaxed);
                    continue; // dropping the stream closes it
                }
                c.open.fetch_add(1, Relaxed);
                c.connections.fetch_add(1, Relaxed);
                glommio::spawn_local(serve(cam.clone(), stream, peer)).detach();
            }
            Err(e) => {
                c.note_error(format!("accept: {e}"));
                // Out of descriptors and the like: do not spin.
                glommio::timer::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Set by SIGTERM and SIGINT.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Relaxed);
}

/// Whether SIGTERM or SIGINT came (after [`install_signal_handlers`]).
pub(crate) fn stop_requested() -> bool {
    STOP.load(Relaxed)
}

/// Makes SIGTERM and SIGINT set [`stop_requested`] instead of ending the process.
pub(crate) fn install_signal_handlers() {
    for sig in [libc::SIGTERM, libc::SIGINT] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe {
            libc::signal(sig, on_signal as *const () as libc::sighandler_t);
        }
    }
}

/// A snapshot of the counters the progress lines and the summary use.
#[derive(Debug, Clone, Copy, Default)]
struct Snap {
    at: f64,
    cpu_ticks: u64,
    packets: u64,
    bytes: u64,
    frames_dropped: u64,
}

impl Snap {
    fn take(c: &Counters, t0: Instant) -> Snap {
        Snap {
            at: t0.elapsed().as_secs_f64(),
            cpu_ticks: crate::stats::cpu_ticks("self").unwrap_or(0),
            packets: c.packets.load(Relaxed),
            bytes: c.bytes.load(Relaxed),
            frames_dropped: c.frames_dropped.load(Relaxed),
        }
    }
}

/// Runs the `camera` mode; returns the process exit code.
pub fn main(argv: &[String]) -> i32 {
    let args = match crate::args::or_usage("camera", USAGE, parse_args(argv)) {
        Ok(a) => a,
        Err(code) => return code,
    };
    match run(args) {
        Ok(summary) => {
            println!("{summary}");
            0
        }
        Err(e) => {
            eprintln!("corecast-load camera: {e}");
            1
        }
    }
}

fn run(args: Args) -> Result<serde_json::Value, String> {
    let data = std::fs::read(&args.clip).map_err(|e| format!("{}: {e}", args.clip))?;
    let clip = Clip::parse(bytes::Bytes::from(data), MAX_TAG)
        .map_err(|e| format!("{}: {e}", args.clip))?;
    let reel = Reel::from_clip(&clip).map_err(|e| format!("{}: {e}", args.clip))?;
    let session_id = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let sdp = proto::sdp(
        reel.track(),
        Some(reel.fps()),
        reel.payload_bps(),
        session_id,
    )
    .ok_or("the clip's H.264 track has no usable SPS/PPS")?;
    crate::whep::raise_nofile();
    install_signal_handlers();

    let args = Arc::new(args);
    let shared = Arc::new(Shared {
        args: args.clone(),
        reel: Arc::new(reel),
        sdp: sdp.into(),
        counters: Arc::new(Counters::default()),
        max_connections: args.max_sessions + 256,
    });
    let t0 = Instant::now();
    let mut port = args.port;
    for thread in 0..args.threads {
        let placement = match args.cpus.get(thread % args.cpus.len().max(1)) {
            Some(&cpu) => Placement::Fixed(cpu),
            None => Placement::Unbound,
        };
        let (tx, rx) = mpsc::channel();
        let sh = shared.clone();
        LocalExecutorBuilder::new(placement)
            .name(&format!("camera-{thread}"))
            .io_memory(512 * 1024)
            .spawn(move || run_executor(thread, sh, port, tx))
            .map_err(|e| format!("cannot start executor {thread}: {e}"))?;
        // Executor 0 picks the port (with --port 0); the others share it (SO_REUSEPORT).
        port = rx
            .recv_timeout(Duration::from_secs(10))
            .map_err(|_| format!("executor {thread} did not start"))??;
    }
    eprintln!("READY {port}");
    let reel = &shared.reel;
    let track = reel.track();
    eprintln!(
        "corecast-load camera: rtsp://{}:{port}/cam0 ... : {}x{} H.264 {:.2} fps, {:.0} kbit/s RTP payload, \
         {:.0} packets/s per session, {} frames in a {} ms loop; {} executor(s), UDP {}",
        args.bind,
        track.width.unwrap_or(0),
        track.height.unwrap_or(0),
        reel.fps(),
        reel.payload_bps() / 1000.0,
        reel.packets_per_s(),
        reel.frame_count(),
        reel.loop_ms(),
        args.threads,
        if args.udp { "on" } else { "off" },
    );

    let c = &shared.counters;
    let clk = crate::stats::clock_ticks_per_sec();
    let first = Snap::take(c, t0);
    let mut last = first;
    let mut max_playing = 0usize;
    let mut next_report = args.report;
    loop {
        std::thread::sleep(Duration::from_millis(50));
        max_playing = max_playing.max(c.playing.load(Relaxed));
        let now = t0.elapsed().as_secs_f64();
        if STOP.load(Relaxed) || args.duration.is_some_and(|d| now >= d) {
            break;
        }
        if args.report > 0.0 && now >= next_report {
            next_report += args.report;
            let s = Snap::take(c, t0);
            let dt = (s.at - last.at).max(1e-3);
            eprintln!(
                "corecast-load camera: {:.0} s: {} playing ({} tcp, {} udp set up), {:.0} packets/s, \
                 {:.1} Mbit/s, {} frames dropped, {} late, cpu {:.1} %",
                s.at,
                c.playing.load(Relaxed),
                c.sessions_tcp.load(Relaxed),
                c.sessions_udp.load(Relaxed),
                (s.packets - last.packets) as f64 / dt,
                (s.bytes - last.bytes) as f64 * 8.0 / dt / 1e6,
                s.frames_dropped - last.frames_dropped,
                c.late_frames.load(Relaxed),
                s.cpu_ticks.saturating_sub(last.cpu_ticks) as f64 / clk / dt * 100.0,
            );
            last = s;
        }
    }
    let end = Snap::take(c, t0);
    let wall = end.at.max(1e-3);
    let load = |a: &AtomicU64| a.load(Relaxed);
    let errors = c.errors.lock().map(|e| e.clone()).unwrap_or_default();
    let r1 = |x: f64| (x * 10.0).round() / 10.0;
    Ok(json!({
        "mode": "camera",
        "port": port,
        "threads": args.threads,
        "clip": {
            "file": args.clip,
            "width": track.width,
            "height": track.height,
            "fps": (reel.fps() * 100.0).round() / 100.0,
            "frames": reel.frame_count(),
            "loop_ms": reel.loop_ms(),
            "payload_bps": reel.payload_bps().round(),
            "packets_per_s": r1(reel.packets_per_s()),
        },
        "wall_s": r1(wall),
        "cpu_pct": r1(end.cpu_ticks.saturating_sub(first.cpu_ticks) as f64 / clk / wall * 100.0),
        "connections": load(&c.connections),
        "connections_refused": load(&c.connections_refused),
        "requests": load(&c.requests),
        "error_replies": load(&c.error_replies),
        "sessions_tcp": load(&c.sessions_tcp),
        "sessions_udp": load(&c.sessions_udp),
        "sessions_max_playing": max_playing,
        "sessions_playing_at_end": c.playing.load(Relaxed),
        "teardowns": load(&c.teardowns),
        "closed_idle": load(&c.closed_idle),
        "write_errors": load(&c.write_errors),
        "frames_sent": load(&c.frames),
        "packets_sent": end.packets,
        "bytes_sent": end.bytes,
        "frames_dropped": end.frames_dropped,
        "packets_dropped": load(&c.packets_dropped),
        "sessions_with_drops": load(&c.sessions_with_drops),
        "udp_send_errors": load(&c.udp_send_errors),
        "rtcp_in": load(&c.rtcp_in),
        "late_frames": load(&c.late_frames),
        "max_lag_ms": r1(load(&c.max_lag_us) as f64 / 1000.0),
        "errors": errors,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Result<Args, String> {
        let v: Vec<String> = s.split_whitespace().map(str::to_owned).collect();
        parse_args(&v)
    }

    #[test]
    fn flags() {
        let a = args("--clip c.flv --port 0 --threads 2 --cpu 1,0 --start next --udp off").unwrap();
        assert_eq!((a.port, a.threads, a.cpus.clone()), (0, 2, vec![1, 0]));
        assert_eq!((a.start, a.udp, a.duration), (Start::NextIdr, false, None));
        assert_eq!(a.queue_bytes, 1 << 20);
        assert!(args("--port 1").is_err());
        assert!(args("--clip c --port 70000").is_err());
        assert!(args("--clip c --start later").is_err());
        assert!(args("--clip c --queue-bytes 10").is_err());
        assert!(args("--clip c --bind nowhere").is_err());
        assert_eq!(args("--help").unwrap_err(), "");
    }

    #[test]
    fn ntp_time_is_after_1900_by_the_unix_offset() {
        assert!(ntp_now() >> 32 > NTP_UNIX_OFFSET);
    }
}
