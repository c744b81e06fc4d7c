//! WebRTC egress: the costs one WebRTC viewer adds to a shard.
//!
//! - `packetize_idr_30k`: H.264 RTP packetization of a 30 kB IDR access unit (once per
//!   frame and shard, shared by every viewer there).
//! - `write_frame_to_n_peers/{1,10,100}`: the real egress path. An [`Engine`] with N
//!   sessions, each made from the offer of an in-process str0m client (full ICE,
//!   recvonly H.264) and connected to it in memory; the step measured is what the hub and
//!   the driver do per frame: wrap an ~8 kB P-frame with its arrival time in
//!   [`OutFrame::arrived`], push it into the N viewers' queues, [`Input::Ready`] and
//!   [`Engine::handle_timeout`] (str0m releases written RTP at its next timeout, due at
//!   once), drain [`Engine::poll_output`] into the driver's batch buffer with the
//!   frames' departures ([`Engine::take_departures`], the latency bookkeeping). Fake time
//!   advances 33 ms a frame; once a second, untimed, the clients' consent checks reach
//!   the engine so that no session times out. Throughput is in
//!   viewer-packets (N x RTP packets per frame): the per-viewer per-packet reference the
//!   load numbers of `perf/whep_load.sh` are normalised by. `write_idr_to_n_peers` is the
//!   same with the 30 kB IDR.
//! - `send_batch`: 64 datagrams of 1200 bytes to a local UDP socket with the driver's
//!   `send_all`: one GSO message (`webrtc.gso`) in one call, 64 messages in one `sendmmsg`,
//!   and one `sendto` each.
// A bench: the fake clock of the in-memory pairing starts at the real one.
#![allow(clippy::disallowed_methods)]

use bytes::Bytes;
use corecast::media::{Codec, Frame, MediaKind, Track, TrackId, TrackSet};
use corecast::rtp::{MAX_PAYLOAD, packetize_h264};
use corecast::stats::{Histogram, ShardStats};
use corecast::stream::{OutFrame, SinkEvent, SinkHandle, SinkLimits, SinkQueue};
use corecast::webrtc::driver::{SendMode, Timed, send_all};
use corecast::webrtc::engine::{
    Closed, Engine, EngineConfig, Event as EngineEvent, Input as EngineInput,
    Output as EngineOutput,
};
use corecast::webrtc::offer::{parse_offer, select};
use corecast::webrtc::peer::{Departure, PeerConfig};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::collections::HashMap;
use std::hint::black_box;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};
use str0m::change::SdpAnswer;
use str0m::media::Direction;
use str0m::net::{Protocol, Receive, Transmit};
use str0m::{Candidate, Event, Input, Output, Rtc};

/// A 720p High-profile SPS (level 3.1) and its PPS, as x264 writes them.
const SPS: &[u8] = &[
    0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50, 0x05, 0xbb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00,
    0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x83, 0x19, 0x60,
];
const PPS: &[u8] = &[0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0];

/// Size of the IDR slice.
const IDR_BYTES: usize = 30_000;
/// Size of the P slice (a 2 Mbit/s 30 fps stream averages ~8 kB per frame).
const P_BYTES: usize = 8_000;
/// 90 kHz ticks per frame at 30 fps.
const FRAME_TICKS: i64 = 3000;
/// Wall time per frame at 30 fps.
const FRAME_TIME: Duration = Duration::from_micros(33_333);

fn h264_track() -> Track {
    let mut t = Track::new(TrackId(0), Codec::H264, 90_000);
    t.params.sps = vec![Bytes::from_static(SPS)];
    t.params.pps = vec![Bytes::from_static(PPS)];
    t
}

/// One AVCC access unit holding a single slice NAL unit of `len` bytes (header included).
fn access_unit(nal_header: u8, len: usize, keyframe: bool, pts: i64) -> Frame {
    let mut data = Vec::with_capacity(len + 4);
    data.extend_from_slice(&(len as u32).to_be_bytes());
    data.push(nal_header);
    // Entropy-coded slice data looks random; its content does not matter here.
    let mut x = 0x2545_f491_4f6c_dd1du64;
    data.extend((1..len).map(|_| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x as u8
    }));
    Frame {
        track: TrackId(0),
        kind: MediaKind::Video,
        keyframe,
        dts: pts,
        pts,
        data: Bytes::from(data),
    }
}

fn idr(pts: i64) -> Frame {
    access_unit(0x65, IDR_BYTES, true, pts)
}

fn p_frame(pts: i64) -> Frame {
    access_unit(0x41, P_BYTES, false, pts)
}

fn bench_packetize(c: &mut Criterion) {
    let track = h264_track();
    let frame = idr(0);
    let packets = packetize_h264(&track, &frame, MAX_PAYLOAD)
        .expect("IDR packetizes")
        .payloads
        .len();
    eprintln!("packetize_idr_30k: {packets} RTP payloads");
    let mut group = c.benchmark_group("packetize_idr_30k");
    group.throughput(Throughput::Elements(1));
    group.bench_function("frame", |b| {
        b.iter(|| packetize_h264(black_box(&track), black_box(&frame), MAX_PAYLOAD))
    });
    group.finish();
}

/// A shard's engine with N connected viewers, each fed by its own sink queue, and the
/// str0m clients at the other ends.
struct Rig {
    engine: Engine,
    /// The driver's batch buffer.
    batch: Vec<Transmit>,
    /// The live frames' departures of the batch (the driver's latency bookkeeping).
    departures: Vec<Departure>,
    /// Sessions that ended (none should).
    closed: Vec<Closed>,
    queues: Vec<Rc<SinkQueue>>,
    clients: Vec<Client>,
    by_addr: HashMap<SocketAddr, usize>,
    now: Instant,
    /// When [`Rig::exchange`] last ran.
    exchanged: Instant,
    pts: i64,
}

/// The str0m client side of the in-memory pairing.
struct Client {
    rtc: Rtc,
    timeout: Instant,
    connected: bool,
}

/// Drains a client's output: datagrams go straight to the engine.
fn poll_client(cl: &mut Client, engine: &mut Engine, now: Instant) {
    loop {
        match cl.rtc.poll_output() {
            Ok(Output::Transmit(t)) => {
                let input = EngineInput::Datagram {
                    from: t.source,
                    data: &t.contents,
                };
                let _ = engine.handle_input(now, input);
            }
            Ok(Output::Timeout(t)) => {
                cl.timeout = t;
                return;
            }
            Ok(Output::Event(Event::Connected)) => cl.connected = true,
            Ok(Output::Event(_)) => {}
            Err(e) => panic!("client: {e}"),
        }
    }
}

impl Rig {
    /// Creates `n` sessions from str0m clients' offers and steps engine and clients
    /// through fake time until every client is connected; then lets the catch-up burst
    /// (the queued IDR) and a few live frames pass.
    fn connect(n: usize) -> Rig {
        let cert = corecast::webrtc::process_cert().expect("DTLS certificate");
        let server: SocketAddr = ([127, 0, 0, 1], 5000).into();
        let engine = Engine::new(
            Instant::now(),
            cert,
            EngineConfig {
                peer: PeerConfig::default(),
                ingest: Default::default(),
                max_sessions: n,
                candidates: vec![server],
                local: server,
                resend: Default::default(),
            },
        );
        let tracks: TrackSet = Arc::from(vec![h264_track()]);
        let path: Arc<str> = Arc::from("bench");
        let limits = SinkLimits {
            max_frames: 600,
            max_bytes: 8 << 20,
        };
        // The GOP every viewer finds queued when it joins.
        let gop = OutFrame::new(idr(0));
        let mut rig = Rig {
            engine,
            batch: Vec::new(),
            departures: Vec::new(),
            closed: Vec::new(),
            queues: Vec::with_capacity(n),
            clients: Vec::with_capacity(n),
            by_addr: HashMap::new(),
            now: Instant::now(),
            exchanged: Instant::now(),
            pts: 0,
        };
        let now = rig.now;
        for i in 0..n {
            let addr: SocketAddr = ([127, 0, 0, 1], 10_000 + i as u16).into();
            let mut rtc = Rtc::builder().build(now);
            rtc.add_local_candidate(Candidate::host(addr, "udp").expect("host candidate"));
            let mut api = rtc.sdp_api();
            api.add_media(
                str0m::media::MediaKind::Video,
                Direction::RecvOnly,
                None,
                None,
                None,
            );
            let (offer, pending) = api.apply().expect("an offer");
            let sdp = offer.to_sdp_string();
            let offered = parse_offer(&sdp).expect("str0m's offer parses");
            let sel = select(&offered, &tracks).expect("str0m offers H.264");
            let queue = Rc::new(SinkQueue::new(limits));
            queue.push(SinkEvent::Tracks(tracks.clone()));
            queue.push(SinkEvent::Frame(gop.clone()));
            let sink = SinkHandle::standalone(path.clone(), queue.clone());
            let (_, answer) = rig
                .engine
                .create(now, &sdp, &offered, &sel, sink)
                .expect("session");
            let answer = SdpAnswer::from_sdp_string(&answer).expect("answer parses");
            rtc.sdp_api()
                .accept_answer(pending, answer)
                .expect("answer accepted");
            rig.by_addr.insert(addr, i);
            rig.clients.push(Client {
                rtc,
                timeout: now,
                connected: false,
            });
            rig.queues.push(queue);
        }
        let deadline = now + Duration::from_secs(30);
        while rig.clients.iter().any(|c| !c.connected) {
            assert!(
                rig.now < deadline,
                "clients not connected after 30 s of fake time"
            );
            rig.exchange();
            rig.now += Duration::from_millis(5);
        }
        // The burst goes out with the first timer after connect; then a few live frames.
        for _ in 0..3 {
            rig.step(p_frame);
        }
        rig.exchange();
        rig
    }

    /// Runs due timers on both sides and delivers datagrams both ways until neither side
    /// has more to say (ICE, DTLS, consent checks, RTCP).
    fn exchange(&mut self) {
        let now = self.now;
        self.exchanged = now;
        let _ = self.engine.handle_input(now, EngineInput::Ready);
        self.engine.handle_timeout(now);
        for cl in &mut self.clients {
            if cl.timeout <= now {
                cl.rtc
                    .handle_input(Input::Timeout(now))
                    .expect("client timeout");
            }
            poll_client(cl, &mut self.engine, now);
        }
        loop {
            match self.engine.poll_output(&mut self.batch) {
                EngineOutput::Transmit(_) => {}
                EngineOutput::Event(EngineEvent::Closed(c)) => {
                    self.closed.push(c);
                    continue;
                }
                EngineOutput::Event(_) => continue,
                EngineOutput::Timeout(_) => break,
            }
            let out = std::mem::take(&mut self.batch);
            for t in out {
                let Some(&i) = self.by_addr.get(&t.destination) else {
                    continue;
                };
                let recv = Receive::new(Protocol::Udp, t.source, t.destination, &t.contents)
                    .expect("datagram");
                let cl = &mut self.clients[i];
                cl.rtc
                    .handle_input(Input::Receive(now, recv))
                    .expect("client input");
                poll_client(cl, &mut self.engine, now);
            }
        }
    }

    /// One frame to every viewer, as the hub fans out and the driver's media task
    /// writes: returns the number of datagrams produced.
    fn step(&mut self, make: impl Fn(i64) -> Frame) -> usize {
        self.pts += FRAME_TICKS;
        self.now += FRAME_TIME;
        let f = OutFrame::arrived(make(self.pts), Some(self.now));
        for q in &self.queues {
            q.push(SinkEvent::Frame(f.clone()));
        }
        let _ = self.engine.handle_input(self.now, EngineInput::Ready);
        // str0m releases written RTP on its next timeout (its pacer refreshes the queue
        // snapshot there): each viewer's deadline is now due, as in the driver's loop.
        self.engine.handle_timeout(self.now);
        let mut n = 0;
        loop {
            match self.engine.poll_output(&mut self.batch) {
                EngineOutput::Transmit(k) => {
                    n += k;
                    self.engine.take_departures(&mut self.departures);
                    black_box(&self.departures);
                    self.departures.clear();
                    for t in self.batch.drain(..) {
                        black_box(&t);
                    }
                }
                EngineOutput::Event(EngineEvent::Closed(c)) => self.closed.push(c),
                EngineOutput::Event(_) => {}
                EngineOutput::Timeout(_) => break,
            }
        }
        n
    }

    /// Times `iters` steps; every second of fake time (30 frames), untimed, the clients' consent
    /// checks and RTCP are exchanged so that no session times out.
    fn time_steps(&mut self, iters: u64, make: fn(i64) -> Frame) -> Duration {
        let mut spent = Duration::ZERO;
        for _ in 0..iters {
            let t = Instant::now();
            black_box(self.step(make));
            spent += t.elapsed();
            if self.now.duration_since(self.exchanged) >= Duration::from_secs(1) {
                self.exchange();
            }
        }
        spent
    }
}

fn bench_write(c: &mut Criterion) {
    let track = h264_track();
    let packets_of = |f: &Frame| {
        packetize_h264(&track, f, MAX_PAYLOAD)
            .expect("packetizes")
            .payloads
            .len()
    };
    let (p_packets, idr_packets) = (packets_of(&p_frame(0)), packets_of(&idr(0)));
    let mut rigs: Vec<(usize, Rig)> = [1usize, 10, 100]
        .into_iter()
        .map(|n| {
            let t = Instant::now();
            let rig = Rig::connect(n);
            eprintln!("{n} viewers connected in {:?}", t.elapsed());
            (n, rig)
        })
        .collect();
    for (n, rig) in &mut rigs {
        // Every viewer writes every packet of a live frame (plus an RTCP report if due).
        let sent = rig.step(p_frame);
        assert!(
            sent >= *n * p_packets,
            "{n} viewers x {p_packets} packets: {sent}"
        );
    }
    for (name, packets, make) in [
        (
            "write_frame_to_n_peers",
            p_packets,
            p_frame as fn(i64) -> Frame,
        ),
        ("write_idr_to_n_peers", idr_packets, idr),
    ] {
        let mut group = c.benchmark_group(name);
        for (n, rig) in &mut rigs {
            group.throughput(Throughput::Elements((*n * packets) as u64));
            group.bench_function(BenchmarkId::from_parameter(*n), |b| {
                b.iter_custom(|iters| rig.time_steps(iters, make))
            });
        }
        group.finish();
    }
    for (n, rig) in &mut rigs {
        let closed = std::mem::take(&mut rig.closed);
        assert!(
            closed.is_empty() && rig.engine.len() == *n,
            "{} of {n} sessions ended during the bench: {:?}",
            closed.len(),
            closed.first().map(|c| c.reason)
        );
    }
}

/// Reads everything waiting on `rx` without blocking.
fn drain(rx: &UdpSocket, buf: &mut [u8]) -> usize {
    let mut n = 0;
    while rx.recv(buf).is_ok() {
        n += 1;
    }
    n
}

fn bench_send(c: &mut Criterion) {
    let rx = UdpSocket::bind("127.0.0.1:0").expect("bind receiver");
    rx.set_nonblocking(true).expect("non-blocking");
    let rx_addr = rx.local_addr().expect("receiver address");
    let tx = UdpSocket::bind("127.0.0.1:0").expect("bind sender");
    let tx_addr = tx.local_addr().expect("sender address");
    let out: Vec<Transmit> = (0..64u8)
        .map(|i| Transmit {
            proto: Protocol::Udp,
            source: tx_addr,
            destination: rx_addr,
            contents: vec![i; 1200].into(),
        })
        .collect();
    let stats = ShardStats::default();
    let latency = Histogram::default();
    let untimed = Timed {
        departures: &[],
        latency: &latency,
    };
    let mut buf = vec![0u8; 2048];
    let mut group = c.benchmark_group("send_batch");
    group.throughput(Throughput::Elements(out.len() as u64));
    let fd = tx.as_raw_fd();
    for (name, batch, gso) in [
        ("gso", true, true),
        ("sendmmsg", true, false),
        ("sendto", false, false),
    ] {
        let mut mode = SendMode::new(fd, batch, gso);
        group.bench_function(BenchmarkId::new(name, out.len()), |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    let t = Instant::now();
                    send_all(fd, &out, &mut mode, &stats, untimed);
                    spent += t.elapsed();
                    // Untimed: empty the receiver so that it never fills.
                    drain(&rx, &mut buf);
                }
                spent
            })
        });
    }
    group.finish();
    let dropped = stats
        .udp_send_dropped
        .load(std::sync::atomic::Ordering::Relaxed);
    let sent = stats
        .udp_datagrams_out
        .load(std::sync::atomic::Ordering::Relaxed);
    eprintln!("send_batch: {sent} datagrams sent, {dropped} dropped");
}

criterion_group!(benches, bench_packetize, bench_write, bench_send);
criterion_main!(benches);
