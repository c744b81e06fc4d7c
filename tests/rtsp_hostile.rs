//! RTSP cameras' hostile neighbours, against the real binary: RTP from the camera's
//! address but another port is dropped and counted while the camera plays on; a camera
//! that redirects to another host gets the configured credentials sent nowhere but
//! itself (refused by default, followed without `Authorization` with
//! `follow_redirects = "any"`), and the credentials never show.
#![allow(clippy::disallowed_methods)] // Tests drive real time.

mod common;

use common::camera::{Camera, CameraOpts};
use common::{Server, test_config};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Video frames the source has depacketized so far.
fn video_frames(s: &Server, path: &str) -> u64 {
    s.stream(path)["source"]["tracks"][0]["frames"]
        .as_u64()
        .unwrap_or(0)
}

/// An RTP packet (H.264 payload type, a P-slice-looking payload).
fn rtp(seq: u16, ts: u32, ssrc: u32) -> Vec<u8> {
    let mut p = vec![0x80, 96 | 0x80];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(&[0x41, 0x9A, 0x02, 0x03, 0x04, 0x05]);
    p
}

#[test]
fn rtp_from_the_cameras_address_but_another_port_is_dropped_and_counted() {
    let cam = Camera::start(&CameraOpts {
        protocols: "udp",
        ..CameraOpts::default()
    });
    let cfg = test_config(&format!(
        "[[streams]]\npath = \"cam\"\nsource = \"{}\"\ntransport = \"udp\"\n",
        cam.url
    ));
    let s = Server::start("rtsp-foreign-port", &cfg);
    let st = s.wait_state("cam", Duration::from_secs(20), |st| st == "live");
    assert_eq!(st["source"]["transport"], "udp", "{st}");
    // The server logs the ports of the session when it plays.
    let log = s.log_until("rtsp: playing", Duration::from_secs(5));
    let line = log
        .lines()
        .find(|l| l.contains("rtsp: playing"))
        .unwrap_or_else(|| panic!("no 'rtsp: playing' line in\n{log}"));
    let ports: Vec<u16> = line
        .split("client_ports=[")
        .nth(1)
        .and_then(|r| r.split(']').next())
        .unwrap_or("")
        .split(',')
        .filter_map(|p| p.trim().parse().ok())
        .collect();
    assert!(!ports.is_empty(), "client ports in {line}");
    let rtp_port = ports[0];
    assert_eq!(s.metric("corecast_rtsp_foreign_packets_total"), 0);

    // The same address as the camera (127.0.0.1), another port: 2 s of 200 packets/s to
    // the video track's RTP port and its RTCP port, with a stranger's SSRC and with
    // sequence numbers just ahead of the camera's.
    let frames_before = video_frames(&s, "cam");
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let mut sent = 0u64;
    for i in 0..400u16 {
        let ssrc = if i % 2 == 0 { 0xBAD0_BAD0 } else { 0x1234_5678 };
        let p = rtp(i.wrapping_mul(7), u32::from(i) * 450, ssrc);
        for port in [rtp_port, rtp_port + 1] {
            sock.send_to(&p, ("127.0.0.1", port)).expect("send");
            sent += 1;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    // Counted (the counters reach /metrics with the next event drain).
    let end = Instant::now() + Duration::from_secs(5);
    let mut foreign = 0;
    while Instant::now() < end {
        foreign = s.metric("corecast_rtsp_foreign_packets_total");
        if foreign >= sent {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // Loopback may drop a datagram under load; none is counted twice.
    assert!(
        foreign >= sent * 95 / 100 && foreign <= sent,
        "{foreign} of {sent} foreign datagrams counted"
    );
    // One warning, not one per packet.
    let log = s.log_until("dropping UDP from a sender", Duration::from_secs(2));
    assert_eq!(
        log.matches("dropping UDP from a sender").count(),
        1,
        "one warning per session:\n{log}"
    );
    // The camera plays on: frames still counted, still live, nothing taken from the
    // stranger.
    std::thread::sleep(Duration::from_secs(1));
    let st = s.stream("cam");
    assert_eq!(st["source"]["state"], "live", "{st}");
    let frames_after = video_frames(&s, "cam");
    // 25 fps for more than 3 s.
    assert!(
        frames_after >= frames_before + 50,
        "frames {frames_before} -> {frames_after}: {st}"
    );
    assert_eq!(s.metric("corecast_rtsp_ssrc_dropped_packets_total"), 0);
    assert_eq!(st["source"]["reconnects"], 0, "{st}");
}

/// Requests an RTSP stand-in received, each as its head's text.
type Seen = Arc<Mutex<Vec<String>>>;

/// A one-connection-at-a-time RTSP stand-in on `ip`: every request head goes to the
/// returned list; `answer(head, cseq)` is the response. Serves at most 16 connections,
/// each for at most 5 s of silence.
fn stand_in(
    ip: &str,
    answer: impl Fn(&str, &str) -> String + Send + 'static,
) -> (u16, Seen, Arc<Mutex<usize>>) {
    let l = TcpListener::bind((ip, 0)).expect("bind the stand-in");
    let port = l.local_addr().expect("addr").port();
    let seen: Seen = Arc::default();
    let connections = Arc::new(Mutex::new(0usize));
    let (s, c) = (seen.clone(), connections.clone());
    std::thread::spawn(move || {
        for conn in l.incoming().take(16) {
            let Ok(mut conn) = conn else { return };
            if let Ok(mut n) = c.lock() {
                *n += 1;
            }
            let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
            let Ok(clone) = conn.try_clone() else { return };
            let mut r = BufReader::new(clone);
            let mut head = String::new();
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                head.push_str(&line);
                if !line.trim_end().is_empty() {
                    continue;
                }
                let cseq = head
                    .lines()
                    .find_map(|l| l.strip_prefix("CSeq:"))
                    .unwrap_or("0")
                    .trim()
                    .to_string();
                let reply = answer(&head, &cseq);
                if let Ok(mut v) = s.lock() {
                    v.push(std::mem::take(&mut head));
                }
                if conn.write_all(reply.as_bytes()).is_err() {
                    break;
                }
            }
        }
    });
    (port, seen, connections)
}

/// OPTIONS answered; anything without `Authorization` gets a Basic challenge; with it,
/// `then`.
fn auth_camera(head: &str, cseq: &str, then: &str) -> String {
    if head.starts_with("OPTIONS") {
        return format!("RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nPublic: OPTIONS, DESCRIBE\r\n\r\n");
    }
    if !head.contains("Authorization:") {
        return format!(
            "RTSP/1.0 401 Unauthorized\r\nCSeq: {cseq}\r\nWWW-Authenticate: Basic realm=\"cam\"\r\n\r\n"
        );
    }
    format!("RTSP/1.0 {then}\r\nCSeq: {cseq}\r\n\r\n")
}

fn lock(seen: &Seen) -> Vec<String> {
    seen.lock().map(|v| v.clone()).unwrap_or_default()
}

#[test]
fn a_redirect_to_another_host_gets_no_authorization_header() {
    // Two cameras on 127.0.0.1 that want credentials, then redirect to "another host",
    // 127.0.0.2, which records what it gets (and asks for credentials too).
    let (far_default, far_default_seen, far_default_conns) =
        stand_in("127.0.0.2", |h, c| auth_camera(h, c, "404 Not Found"));
    let (far_any, far_any_seen, far_any_conns) =
        stand_in("127.0.0.2", |h, c| auth_camera(h, c, "404 Not Found"));
    // The default camera's Location carries credentials of its own: they must never show.
    let to_default = format!("rtsp://leak:leakpw@127.0.0.2:{far_default}/cam?password=leakq");
    let to_any = format!("rtsp://127.0.0.2:{far_any}/cam");
    let (near_default, near_default_seen, _) = stand_in("127.0.0.1", move |h, c| {
        auth_camera(h, c, &format!("302 Moved\r\nLocation: {to_default}"))
    });
    let (near_any, near_any_seen, _) = stand_in("127.0.0.1", move |h, c| {
        auth_camera(h, c, &format!("302 Moved\r\nLocation: {to_any}"))
    });
    let cfg = test_config(&format!(
        "[[streams]]\npath = \"default\"\nsource = \"rtsp://127.0.0.1:{near_default}/cam\"\n\
         transport = \"tcp\"\nuser = \"admin\"\npassword = \"s3cret-pw\"\n\
         [[streams]]\npath = \"any\"\nsource = \"rtsp://127.0.0.1:{near_any}/cam\"\n\
         transport = \"tcp\"\nuser = \"admin\"\npassword = \"s3cret-pw\"\n\
         follow_redirects = \"any\"\n"
    ));
    let s = Server::start("rtsp-redirects", &cfg);

    // Default ("same-host"): refused with a clear error, 127.0.0.2 never contacted.
    let st = s.wait_state("default", Duration::from_secs(10), |st| {
        st.contains("follow_redirects")
    });
    let state = st["source"]["state"].as_str().unwrap_or("");
    assert!(
        state.contains(&format!(
            "camera redirects to rtsp://127.0.0.2:{far_default}/cam?password=***: \
             rtsp.follow_redirects = \"same-host\""
        )),
        "{st}"
    );
    // The camera's own host did get the credentials.
    assert!(
        lock(&near_default_seen)
            .iter()
            .any(|h| h.contains("Authorization: Basic")),
        "{:?}",
        lock(&near_default_seen)
    );

    // "any": followed, and 127.0.0.2 sees no Authorization at all.
    let st = s.wait_state("any", Duration::from_secs(10), |st| {
        st.contains("requires a user name and password")
    });
    assert!(
        lock(&near_any_seen)
            .iter()
            .any(|h| h.contains("Authorization: Basic")),
        "{:?}",
        lock(&near_any_seen)
    );
    let far = lock(&far_any_seen);
    assert!(
        far.iter().any(|h| h.starts_with("DESCRIBE")),
        "the redirect was followed: {far:?} {st}"
    );
    assert!(
        far.iter().all(|h| !h.contains("Authorization")),
        "credentials sent to another host: {far:?}"
    );
    assert_eq!(far_any_conns.lock().map(|n| *n).unwrap_or(99), 1);

    // Nothing reached 127.0.0.2 for the default stream, a second later still.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(far_default_conns.lock().map(|n| *n).unwrap_or(99), 0);
    assert!(lock(&far_default_seen).is_empty());

    // No password anywhere the operator looks: API, metrics, log.
    let api = s.get("/api/v1/streams").body_text();
    let log = s.drain_log().join("\n");
    for secret in ["s3cret-pw", "leakpw", "leakq", "leak:"] {
        assert!(!api.contains(secret), "{secret} in the API: {api}");
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
    }
    assert!(log.contains("camera redirects"), "{log}");
}
