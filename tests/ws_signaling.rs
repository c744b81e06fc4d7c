//! WebRTC signaling over the WebSocket at `/ws`: one socket watches two streams, stops
//! one, gets errors with WHEP statuses, and its sessions end when it closes. The viewers
//! are the project's str0m-based client core; the WebSocket client is tungstenite.
#![allow(clippy::disallowed_methods)] // Tests drive real time.

mod common;

use common::{Server, demo_stream, test_config};
use corecast_client::{PeerClosed, ReceiveMode, WhepPeer};
use serde_json::{Value, json};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};
use tungstenite::{Message, WebSocket};

type Ws = WebSocket<TcpStream>;

fn connect_ws(http: SocketAddr) -> Ws {
    let stream = TcpStream::connect(http).expect("tcp connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let (ws, _) =
        tungstenite::client::client(format!("ws://{http}/ws"), stream).expect("ws handshake");
    ws
}

fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::text(v.to_string())).expect("ws send");
}

/// Reads messages until one of `kind` arrives (bounded); returns it and the ones before.
fn read_until(ws: &mut Ws, kind: &str) -> (Value, Vec<Value>) {
    let mut before = Vec::new();
    for _ in 0..50 {
        let msg = ws.read().expect("ws read");
        let Message::Text(t) = msg else { continue };
        let v: Value = serde_json::from_str(t.as_str()).expect("json");
        if v["type"] == kind {
            return (v, before);
        }
        before.push(v);
    }
    panic!("no '{kind}' message; got {before:?}");
}

/// A viewer driven by hand over its own UDP socket.
struct Viewer {
    sock: UdpSocket,
    local: SocketAddr,
    peer: WhepPeer,
}

impl Viewer {
    fn new() -> Viewer {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("udp");
        sock.set_read_timeout(Some(Duration::from_millis(5)))
            .expect("timeout");
        let local = sock.local_addr().expect("addr");
        let peer = WhepPeer::new(Instant::now(), local, ReceiveMode::Full).expect("peer");
        Viewer { sock, local, peer }
    }

    /// A viewer of `stream` signaled over `ws`; returns it with the answer message.
    fn join(ws: &mut Ws, stream: &str) -> (Viewer, Value) {
        let mut v = Viewer::new();
        send(
            ws,
            json!({"type": "offer", "stream": stream, "sdp": v.peer.offer()}),
        );
        let (answer, _) = read_until(ws, "answer");
        v.peer
            .accept_answer(Instant::now(), answer["sdp"].as_str().expect("sdp"))
            .expect("answer accepted");
        (v, answer)
    }

    /// Pumps the peer until `frames` video frames arrived or `limit` passed.
    fn play(&mut self, frames: u64, limit: Duration) -> u64 {
        self.play_lossy(frames, limit, 0).0
    }

    /// Like `play`, dropping every `drop_every`-th RTP packet (0: none) as a lossy
    /// network would; returns the frames and the packets dropped.
    fn play_lossy(&mut self, frames: u64, limit: Duration, drop_every: u64) -> (u64, u64) {
        let mut rtp_seen = 0u64;
        let mut dropped = 0u64;
        let end = Instant::now() + limit;
        let mut out = Vec::new();
        let mut buf = vec![0u8; 2048];
        while Instant::now() < end && self.peer.stats().frames < frames {
            self.peer.poll(Instant::now(), &mut out);
            for d in out.drain(..) {
                let _ = self.sock.send_to(&d.contents, d.destination);
            }
            if let Ok((n, from)) = self.sock.recv_from(&mut buf) {
                let rtp =
                    n > 1 && (128..192).contains(&buf[0]) && !(64..96).contains(&(buf[1] & 0x7f));
                if rtp && drop_every > 0 {
                    rtp_seen += 1;
                    if rtp_seen.is_multiple_of(drop_every) {
                        dropped += 1;
                        continue;
                    }
                }
                self.peer
                    .handle_datagram(Instant::now(), from, self.local, &buf[..n]);
            }
        }
        (self.peer.stats().frames, dropped)
    }
}

fn sessions(server: &Server) -> u64 {
    let r = common::request(
        server.http,
        "GET /api/v1/health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    let v: Value = serde_json::from_slice(&r.body).expect("health json");
    v["shards"]
        .as_array()
        .expect("shards")
        .iter()
        .map(|s| s["webrtc_sessions"].as_u64().unwrap_or(0))
        .sum()
}

fn wait_sessions(server: &Server, want: u64) {
    let end = Instant::now() + Duration::from_secs(10);
    while sessions(server) != want {
        assert!(
            Instant::now() < end,
            "sessions stayed at {}, want {want}",
            sessions(server)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn one_websocket_watches_two_streams_and_its_sessions_end_with_it() {
    let config = test_config(&format!(
        "{}{}",
        demo_stream("demo", 0),
        demo_stream("cam/two", 1)
    ));
    let server = Server::start("ws-signaling", &config);
    let mut ws = connect_ws(server.http);
    let (hello, _) = read_until(&mut ws, "hello");
    assert_eq!(hello["server"], "corecast");

    let mut viewers = Vec::new();
    let mut ids = Vec::new();
    for stream in ["demo", "cam/two"] {
        let mut v = Viewer::new();
        send(
            &mut ws,
            json!({"type": "offer", "stream": stream, "sdp": v.peer.offer()}),
        );
        let (answer, _) = read_until(&mut ws, "answer");
        assert_eq!(answer["stream"], stream);
        let id = answer["session"].as_str().expect("session").to_string();
        assert_eq!(id.len(), 16);
        // Candidates follow the answer as separate messages too.
        let (cand, _) = read_until(&mut ws, "candidate");
        assert_eq!(cand["session"], id.as_str());
        assert!(
            cand["candidate"]
                .as_str()
                .is_some_and(|c| c.starts_with("candidate:") && c.contains("127.0.0.1")),
            "{cand}"
        );
        let sdp = answer["sdp"].as_str().expect("sdp");
        v.peer
            .accept_answer(Instant::now(), sdp)
            .expect("answer accepted");
        viewers.push(v);
        ids.push(id);
    }
    for (v, stream) in viewers.iter_mut().zip(["demo", "cam/two"]) {
        let got = v.play(30, Duration::from_secs(5));
        assert!(got >= 30, "{stream}: only {got} frames");
        assert_eq!(v.peer.stats().first_frame_idr_with_sps_pps, Some(true));
    }
    assert_eq!(sessions(&server), 2);

    // Errors carry the WHEP status and leave the socket usable.
    send(
        &mut ws,
        json!({"type": "offer", "stream": "nope", "sdp": Viewer::new().peer.offer()}),
    );
    let (err, _) = read_until(&mut ws, "error");
    assert_eq!(err["status"], 404, "{err}");
    send(
        &mut ws,
        json!({"type": "offer", "stream": "demo", "sdp": "v=0 garbage"}),
    );
    let (err, _) = read_until(&mut ws, "error");
    assert_eq!(err["status"], 400, "{err}");
    send(&mut ws, json!({"type": "offer", "stream": "demo"}));
    let (err, _) = read_until(&mut ws, "error");
    assert_eq!(err["status"], 400, "{err}");
    send(
        &mut ws,
        json!({"type": "offer", "stream": "live//demo", "sdp": Viewer::new().peer.offer()}),
    );
    let (err, _) = read_until(&mut ws, "error");
    assert_eq!(err["status"], 400, "{err}");
    assert!(
        err["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("bad stream path")),
        "{err}"
    );
    send(
        &mut ws,
        json!({"type": "stop", "session": "0123456789abcdef"}),
    );
    let (err, _) = read_until(&mut ws, "error");
    assert_eq!(err["status"], 404, "{err}");
    // A viewer's trickled candidates are accepted silently; ping still answers.
    send(
        &mut ws,
        json!({"type": "candidate", "candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host"}),
    );
    send(&mut ws, json!({"type": "ping"}));
    let (_, before) = read_until(&mut ws, "pong");
    assert!(before.is_empty(), "unexpected replies: {before:?}");

    // Stop one stream: that session ends, the other keeps playing.
    send(&mut ws, json!({"type": "stop", "session": ids[0]}));
    let (stopped, _) = read_until(&mut ws, "stopped");
    assert_eq!(stopped["session"], ids[0].as_str());
    wait_sessions(&server, 1);
    // The server said goodbye (DTLS close_notify): the viewer knows at once.
    viewers[0].play(u64::MAX, Duration::from_millis(300));
    assert!(
        matches!(viewers[0].peer.closed(), Some(PeerClosed::Remote)),
        "viewer state after stop: {:?}",
        viewers[0].peer.closed()
    );
    let before = viewers[1].peer.stats().frames;
    let after = viewers[1].play(before + 15, Duration::from_secs(3));
    assert!(
        after >= before + 15,
        "the other stream stopped too: {before} -> {after}"
    );

    // Closing the socket ends the rest.
    ws.close(None).expect("close");
    let _ = ws.flush();
    drop(ws);
    wait_sessions(&server, 0);
}
#[test]
fn keyframe_request_is_answered_from_the_gop_cache() {
    let server = Server::start("ws-pli", &test_config(&demo_stream("demo", 0)));
    let mut ws = connect_ws(server.http);
    let (mut v, _) = Viewer::join(&mut ws, "demo");
    // Past the join burst, into live frames.
    assert!(v.play(90, Duration::from_secs(6)) >= 90);
    assert_eq!(server.metric("corecast_webrtc_gop_resends_total"), 0);
    let keyframes = v.peer.stats().keyframes;
    let frames = v.peer.stats().frames;
    assert!(v.peer.request_keyframe(), "PLI not sent");
    // The server re-sends the GOP (keyframe first) at once, rate-limited to one per
    // webrtc.keyframe_interval; the picture stays decodable (str0m reassembles it).
    let end = Instant::now() + Duration::from_secs(3);
    while server.metric("corecast_webrtc_gop_resends_total") == 0 {
        assert!(Instant::now() < end, "no GOP re-send after a PLI");
        v.play(v.peer.stats().frames + 1, Duration::from_millis(100));
    }
    v.play(v.peer.stats().frames + 10, Duration::from_secs(2));
    assert!(
        v.peer.stats().keyframes > keyframes,
        "no keyframe after the request"
    );
    assert!(v.peer.stats().frames > frames + 10);
    // A burst of requests is served at most once per keyframe_interval (2 s).
    for _ in 0..20 {
        v.peer.request_keyframe();
        v.play(v.peer.stats().frames + 1, Duration::from_millis(20));
    }
    v.play(v.peer.stats().frames + 3, Duration::from_millis(300));
    let resends = server.metric("corecast_webrtc_gop_resends_total");
    assert!((1..=3).contains(&resends), "{resends} GOP re-sends");
    assert!(server.metric("corecast_rtp_packets_out_total") > 100);
}

#[test]
fn lost_packets_are_retransmitted_on_nack() {
    let server = Server::start("ws-nack", &test_config(&demo_stream("demo", 0)));
    let mut ws = connect_ws(server.http);
    let (mut v, answer) = Viewer::join(&mut ws, "demo");
    let sdp = answer["sdp"].as_str().expect("sdp");
    assert!(sdp.contains("rtx/90000"), "RTX negotiated: {sdp}");
    assert!(v.play(45, Duration::from_secs(5)) >= 45);
    // 3 s of live video with every 10th RTP packet lost on the way: str0m's NACKs make
    // the server resend them (RTX), and the frames still reassemble.
    let frames_before = v.peer.stats().frames;
    let (_, dropped) = v.play_lossy(u64::MAX, Duration::from_secs(3), 10);
    // Let the last retransmissions arrive.
    v.play(u64::MAX, Duration::from_millis(500));
    let got = v.peer.stats().frames - frames_before;
    assert!(dropped > 20, "only {dropped} packets dropped");
    assert!(
        v.peer.stats().rtx_packets >= dropped / 2,
        "{} retransmissions for {dropped} lost packets",
        v.peer.stats().rtx_packets
    );
    let cov = v.peer.video_coverage(30.0);
    assert!(
        cov.ratio() >= 0.95,
        "{got} frames in 3.5 s; coverage {}/{}",
        cov.received,
        cov.expected
    );
}

/// Reads what the server sends on `ws` for a moment without waiting longer: queues the
/// Pongs tungstenite owes for the server's pings and writes them on the next call.
fn answer_pings(ws: &mut Ws) {
    ws.get_mut()
        .set_read_timeout(Some(Duration::from_millis(20)))
        .expect("timeout");
    // Text that arrives here is the answer's trailing candidates: not needed.
    while ws.read().is_ok() {}
    let _ = ws.flush();
}

#[test]
fn a_quiet_websocket_that_answers_pings_stays_and_a_silent_one_is_closed() {
    let cfg = common::test_config_http(
        "idle_timeout = \"2s\"\nws_ping_interval = \"1s\"",
        &demo_stream("demo", 0),
    );
    let server = Server::start("ws-ping", &cfg);
    let mut watcher = connect_ws(server.http);
    let _ = read_until(&mut watcher, "hello");
    let (mut viewer, _) = Viewer::join(&mut watcher, "demo");
    assert!(viewer.play(30, Duration::from_secs(10)) >= 30, "plays");
    // A client that never reads: it answers no ping.
    let mut silent = connect_ws(server.http);

    // Ten seconds of only watching (five idle_timeouts): the watcher answers pings.
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        let before = viewer.peer.stats().frames;
        viewer.play(before + 15, Duration::from_millis(500));
        answer_pings(&mut watcher);
    }
    // Still open, still signaling, and its session still gets media.
    watcher
        .get_mut()
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    send(&mut watcher, json!({"type": "ping"}));
    let _ = read_until(&mut watcher, "pong");
    let frames = viewer.peer.stats().frames;
    assert!(
        viewer.play(frames + 30, Duration::from_secs(5)) >= frames + 30,
        "media still arrives after 10 s on a quiet socket"
    );
    assert_eq!(sessions(&server), 1);

    // The silent client was closed: two pings unanswered (its read sees the close).
    silent
        .get_mut()
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut closed = false;
    for _ in 0..100 {
        match silent.read() {
            Ok(Message::Close(frame)) => {
                let code = frame.map(|f| u16::from(f.code));
                assert_eq!(code, Some(1001), "going away");
                closed = true;
                break;
            }
            Ok(_) => {}
            Err(_) => {
                closed = true;
                break;
            }
        }
    }
    assert!(closed, "the silent socket was closed");
    let log = server.log_until("two pings unanswered", Duration::from_secs(5));
    assert!(log.contains("two pings unanswered"), "{log}");

    // Timed on its own: a socket that answers no ping is gone within 3 s (two pings at
    // 1 s intervals unanswered), from the server's side (its FIN reaches our TCP socket).
    let quiet = TcpStream::connect(server.http).expect("tcp connect");
    let connected = Instant::now();
    let mut raw = quiet.try_clone().expect("clone");
    let (_quiet, _) = tungstenite::client::client(format!("ws://{}/ws", server.http), quiet)
        .expect("ws handshake");
    let took = common::closed_within(&mut raw, Duration::from_secs(6))
        .map(|_| connected.elapsed())
        .expect("closed");
    assert!(
        took <= Duration::from_secs(3) + Duration::from_millis(300),
        "closed after {took:?}"
    );
}
