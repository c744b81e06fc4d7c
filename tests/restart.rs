//! A restart binds its ports at once, though the connections the old process closed
//! still sit in TIME_WAIT on them; a second instance on the same ports is still refused.
#![allow(clippy::disallowed_methods)] // Tests drive real time.

mod common;

use common::{Server, demo_stream, run_to_exit, test_config, write_config};
use corecast_client::{ReceiveMode, WhepViewer};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A port nothing listens on right now.
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// Sockets in TIME_WAIT whose local port is `port` (from /proc/net/tcp: state 06).
fn time_wait_on(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("read /proc/net/tcp");
    table
        .lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let local_port = f
                .get(1)
                .and_then(|a| a.rsplit_once(':'))
                .and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
            local_port == Some(port) && f.get(3) == Some(&"06")
        })
        .count()
}

/// An HTTP keep-alive connection that got one answer and stays open.
fn keep_alive(s: &Server) -> TcpStream {
    let mut c = TcpStream::connect(s.http).expect("connect http");
    c.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    c.write_all(b"GET /api/v1/health HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("write");
    let mut buf = [0u8; 4096];
    let n = c.read(&mut buf).expect("read");
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "health answered");
    c
}

/// An RTMP connection past its handshake (the server answered C0+C1).
fn rtmp_handshake(s: &Server) -> TcpStream {
    common::rtmp::after_handshake(s.rtmp)
}

/// An ffmpeg RTMP player of `url` (killed when dropped).
struct Player(Child);

impl Drop for Player {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn rtmp_player(url: &str) -> Player {
    Player(
        Command::new("ffmpeg")
            .args([
                "-nostdin",
                "-loglevel",
                "error",
                "-rw_timeout",
                "10000000",
                "-i",
                url,
            ])
            .args(["-c", "copy", "-f", "null", "-"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ffmpeg (install it: apt-get install ffmpeg)"),
    )
}

/// Waits (bounded) until the API lists `n` viewers in all.
fn wait_viewers(s: &Server, n: u64) {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let v = s.get_json("/api/v1/streams");
        let viewers: u64 = v["streams"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s["viewers"]["total"].as_u64())
                    .sum()
            })
            .unwrap_or(0);
        if viewers >= n {
            return;
        }
        assert!(Instant::now() < end, "{n} viewers never listed: {v}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn restart_binds_at_once_and_a_second_instance_is_refused() {
    let (hp, rp) = (free_port(), free_port());
    let cfg = test_config(&demo_stream("demo", 0))
        .replacen(
            "listen = \"127.0.0.1:0\"",
            &format!("listen = \"127.0.0.1:{hp}\""),
            1,
        )
        .replacen(
            "listen = \"127.0.0.1:0\"",
            &format!("listen = \"127.0.0.1:{rp}\""),
            1,
        );
    let mut first = Server::start("restart-1", &cfg);
    assert_eq!(first.http.port(), hp);

    // A second instance while the first runs: refused by name.
    let path = write_config("restart-2nd", &cfg);
    let path = path.to_str().expect("utf-8 path");
    let (code, err) = run_to_exit(&["--config", path], None);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("http.listen"), "{err}");
    assert!(err.contains("already in use"), "{err}");

    // Clients the server will close at shutdown: their server-side sockets go to
    // TIME_WAIT on the listening ports once the clients close too. An HTTP keep-alive
    // connection, an RTMP connection mid-handshake, an RTMP player (ffmpeg) and a WHEP
    // viewer that gets media.
    let http = keep_alive(&first);
    let rtmp = rtmp_handshake(&first);
    let player = rtmp_player(&format!("rtmp://127.0.0.1:{rp}/live/demo"));
    let mut viewer = WhepViewer::connect(
        first.http,
        "demo",
        ReceiveMode::Light,
        Duration::from_secs(5),
    )
    .expect("WHEP viewer");
    assert!(
        viewer
            .run_until(|st| st.frames >= 10, Duration::from_secs(10))
            .expect("session alive"),
        "the WHEP viewer gets frames"
    );
    wait_viewers(&first, 2);
    assert_eq!(first.stop(), 0);
    drop((http, rtmp, player, viewer));
    let deadline = Instant::now() + Duration::from_secs(2);
    while (time_wait_on(hp) == 0 || time_wait_on(rp) == 0) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        time_wait_on(hp) >= 1 && time_wait_on(rp) >= 1,
        "the old connections are in TIME_WAIT on both ports (http {}, rtmp {})",
        time_wait_on(hp),
        time_wait_on(rp)
    );

    // Started again at once: it binds both ports and serves within 2 s.
    let started = Instant::now();
    let again = Server::start("restart-again", &cfg);
    assert_eq!((again.http.port(), again.rtmp.port()), (hp, rp));
    assert_eq!(again.get("/api/v1/health").status, 200);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "serving after {took:?}");
    let rtmp = rtmp_handshake(&again);
    drop(rtmp);
}
