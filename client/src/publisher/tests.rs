//! Tests of [`WhipPublisher`] against a stand-in WHIP endpoint on another thread: a
//! TCP listener that answers `POST` with a str0m receiver's answer (ICE-lite, frame
//! mode) on a UDP socket, and `DELETE` with 200; both on 127.0.0.1.
#![allow(clippy::disallowed_methods)] // Loopback tests drive real time and sockets.

use super::*;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread::JoinHandle;
use str0m::change::SdpOffer;
use str0m::media::{MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};

/// What the stand-in saw.
#[derive(Debug, Default)]
struct Seen {
    /// Method, path and `Authorization` of each request.
    requests: Vec<(String, String, Option<String>)>,
    video_frames: usize,
    audio_frames: usize,
    /// The first video frame's NAL unit types.
    first_video_nal_types: Vec<u8>,
    /// The publisher closed DTLS.
    closed: bool,
}

/// Reads one request: method, path, `Authorization`, body.
fn read_request(s: &mut TcpStream) -> (String, String, Option<String>, Vec<u8>) {
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut r = httparse::Request::new(&mut headers);
        if let Ok(httparse::Status::Complete(head)) = r.parse(&buf) {
            let value = |name: &str| {
                r.headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case(name))
                    .map(|h| String::from_utf8_lossy(h.value).into_owned())
            };
            let len: usize = value("content-length").map_or(0, |v| v.parse().expect("length"));
            if buf.len() >= head + len {
                return (
                    r.method.expect("method").to_string(),
                    r.path.expect("path").to_string(),
                    value("authorization"),
                    buf[head..head + len].to_vec(),
                );
            }
        }
        let n = s.read(&mut chunk).expect("request bytes");
        assert!(n > 0, "request cut short");
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn respond(s: &mut TcpStream, status: &str, headers: &str, body: &str) {
    let r = format!(
        "HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(r.as_bytes()).expect("response");
}

/// The receiving side: a str0m peer on a UDP socket.
struct Receiver {
    rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    video: Option<Mid>,
    audio: Option<Mid>,
}

impl Receiver {
    fn new(offer: &[u8]) -> (Receiver, String) {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
        socket.set_nonblocking(true).expect("nonblocking");
        let local = socket.local_addr().expect("addr");
        let mut rtc = Rtc::builder()
            .set_ice_lite(true)
            .clear_codecs()
            .enable_h264(true)
            .enable_opus(true, false)
            .build(Instant::now());
        rtc.add_local_candidate(Candidate::host(local, "udp").expect("candidate"));
        let offer = SdpOffer::from_sdp_string(&String::from_utf8_lossy(offer)).expect("offer");
        let answer = rtc.sdp_api().accept_offer(offer).expect("accepted");
        let r = Receiver {
            rtc,
            socket,
            local,
            video: None,
            audio: None,
        };
        (r, answer.to_sdp_string())
    }

    /// Feeds what arrived, runs timers, sends, and records media.
    fn step(&mut self, seen: &mut Seen) {
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = self.socket.recv_from(&mut buf) {
            if let Ok(r) = Receive::new(Protocol::Udp, from, self.local, &buf[..n]) {
                let _ = self.rtc.handle_input(Input::Receive(Instant::now(), r));
                self.drain(seen);
            }
        }
        let _ = self.rtc.handle_input(Input::Timeout(Instant::now()));
        self.drain(seen);
    }

    fn drain(&mut self, seen: &mut Seen) {
        while let Ok(o) = self.rtc.poll_output() {
            match o {
                Output::Timeout(_) => return,
                Output::Transmit(t) => {
                    let _ = self.socket.send_to(&t.contents, t.destination);
                }
                Output::Event(Event::MediaAdded(m)) => match m.kind {
                    MediaKind::Video => self.video = Some(m.mid),
                    MediaKind::Audio => self.audio = Some(m.mid),
                },
                Output::Event(Event::MediaData(d)) => {
                    if Some(d.mid) == self.video {
                        if seen.video_frames == 0 {
                            seen.first_video_nal_types = crate::annexb_nal_types(&d.data);
                        }
                        seen.video_frames += 1;
                    } else if Some(d.mid) == self.audio {
                        seen.audio_frames += 1;
                    }
                }
                Output::Event(Event::Closed) => seen.closed = true,
                Output::Event(_) => {}
            }
        }
    }
}

/// A WHIP endpoint answering `POST` with `post_status` (201: a session, with a
/// relative `Location`), until a `DELETE` and half a second more, a refused `POST`, or
/// 20 s.
fn stand_in(post_status: &'static str) -> (SocketAddr, JoinHandle<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
    listener.set_nonblocking(true).expect("nonblocking");
    let http = listener.local_addr().expect("addr");
    let h = std::thread::spawn(move || {
        let mut seen = Seen::default();
        let mut rx: Option<Receiver> = None;
        let mut end = Instant::now() + Duration::from_secs(20);
        while Instant::now() < end {
            if let Ok((mut s, _)) = listener.accept() {
                s.set_nonblocking(false).expect("blocking");
                let (method, path, auth, body) = read_request(&mut s);
                seen.requests.push((method.clone(), path, auth));
                match method.as_str() {
                    "POST" if post_status.starts_with("201") => {
                        let (r, answer) = Receiver::new(&body);
                        rx = Some(r);
                        let loc = "Location: cam/77\r\nContent-Type: application/sdp\r\n";
                        respond(&mut s, post_status, loc, &answer);
                    }
                    "POST" => {
                        respond(&mut s, post_status, "", "no entry");
                        end = Instant::now();
                    }
                    _ => {
                        respond(&mut s, "200 OK", "", "");
                        end = end.min(Instant::now() + Duration::from_millis(500));
                    }
                }
            }
            if let Some(r) = rx.as_mut() {
                r.step(&mut seen);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        seen
    });
    (http, h)
}

/// 30 AVCC access units, the first an IDR without parameter sets.
fn frames() -> Vec<(i64, bool, Vec<u8>)> {
    (0..30)
        .map(|i: i64| {
            let (t, len) = if i == 0 { (0x65, 3000) } else { (0x41, 800) };
            let mut au = (len as u32).to_be_bytes().to_vec();
            au.push(t);
            au.resize(4 + len, 0x11);
            (i * 3000, i == 0, au)
        })
        .collect()
}

#[test]
fn publishes_with_a_bearer_token_and_deletes_its_location() {
    let (http, server) = stand_in("201 Created");
    let mut p = WhipPublisher::connect(
        http,
        "/live/cam",
        Some("s3cret"),
        WhipOptions::default(),
        Duration::from_secs(10),
    )
    .expect("connected");
    assert_eq!(p.location(), "/whip/live/cam/77");
    assert!(p.stats().connected_after.is_some());
    p.peer_mut()
        .set_parameter_sets(vec![vec![0x67, 0x42, 0xe0, 0x1f], vec![0x68, 0xce]]);
    let opus = vec![vec![0xfc, 1, 2, 3]; 10];
    p.publish_for(
        Duration::from_secs(2),
        &frames(),
        30.0,
        Some(opus.as_slice()),
    )
    .expect("published");
    p.run_for(Duration::from_millis(300)).expect("ran");
    let s = p.stats().clone();
    assert!((55..=62).contains(&s.video_frames), "{s:?}");
    assert_eq!(s.keyframes, (s.video_frames).div_ceil(30), "{s:?}");
    assert!((95..=102).contains(&s.audio_frames), "{s:?}");
    assert_eq!(p.close().expect("deleted"), 200);
    let seen = server.join().expect("stand-in");
    let auth = Some("Bearer s3cret".to_string());
    assert_eq!(
        seen.requests,
        vec![
            ("POST".into(), "/whip/live/cam".into(), auth.clone()),
            ("DELETE".into(), "/whip/live/cam/77".into(), auth),
        ]
    );
    assert!(
        seen.video_frames as u64 >= s.video_frames - 2,
        "{seen:?} {s:?}"
    );
    assert!(
        seen.audio_frames as u64 >= s.audio_frames - 5,
        "{seen:?} {s:?}"
    );
    assert_eq!(seen.first_video_nal_types, vec![7, 8, 5]);
    assert!(seen.closed, "no DTLS close after the DELETE");
}

#[test]
fn a_refused_offer_is_a_status_error_with_its_body() {
    let (http, server) = stand_in("401 Unauthorized");
    let e = WhipPublisher::connect(
        http,
        "live/cam",
        None,
        WhipOptions::default(),
        Duration::from_secs(5),
    )
    .expect_err("refused");
    assert_eq!(e.status(), Some(401), "{e}");
    assert_eq!(e.body(), Some("no entry"));
    let seen = server.join().expect("stand-in");
    assert_eq!(seen.requests.len(), 1);
    assert_eq!(seen.requests[0].2, None, "no Authorization without a token");
}
