//! Connection limits against the real binary: each protocol its own cap, a cap per peer
//! address, the open-file limit raised at start, and refusals logged once a second with a
//! count instead of once each.
#![allow(clippy::disallowed_methods)] // Tests drive real time.

mod common;

use common::*;
use std::io::{BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::process::Child;
use std::time::{Duration, Instant};

/// A TCP connection to `to` from the loopback address `from` (127.0.0.2 is a different
/// peer address to the server, on the same machine).
fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    let local: IpAddr = from.parse().expect("ip");
    let s = corecast_client::http::connect_from(Some(local), to, Duration::from_secs(5))
        .expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    s
}

/// The RTMP handshake on `c`; false if the server closed instead.
fn rtmp_handshake(c: &mut TcpStream) -> bool {
    common::rtmp::handshake(c).is_ok()
}

/// Whether the server closes `c` (EOF or reset) within `limit` without sending anything.
fn closed_at_once(c: &mut TcpStream, limit: Duration) -> bool {
    c.set_read_timeout(Some(limit)).expect("timeout");
    let mut buf = [0u8; 64];
    match c.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

/// A GET on `c`, and its answer.
fn get_on(c: TcpStream, path: &str) -> Option<HttpResponse> {
    let mut c = c;
    let req = format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    c.write_all(req.as_bytes()).ok()?;
    read_response(&mut BufReader::new(c))
}

/// The answer a refused HTTP connection is sent without asking, if any arrives within
/// `limit` (an admitted idle connection is sent nothing).
fn unasked_answer(c: &TcpStream, limit: Duration) -> Option<HttpResponse> {
    c.set_read_timeout(Some(limit)).expect("timeout");
    let mut r = BufReader::new(c.try_clone().expect("clone"));
    read_response(&mut r)
}

#[test]
fn the_third_connection_from_one_address_is_refused_while_another_address_is_served() {
    let s = Server::start(
        "limits-per-ip",
        &test_config_sections(
            "max_connections_per_ip = 2",
            "max_connections_per_ip = 2",
            // 127.0.0.2 reads /metrics below, which the default users keep to 127.0.0.1
            // and ::1: this test is about connection limits, so everyone may.
            "[[auth.users]]\nuser = \"any\"\npermissions = [{ action = \"metrics\" }, { action = \"api\" }, { action = \"read\" }]\n",
        ),
    );
    // RTMP: two connections from 127.0.0.1 past the handshake, on whatever shards.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut c = connect_from("127.0.0.1", s.rtmp);
        assert!(rtmp_handshake(&mut c), "the first two are served");
        held.push(c);
    }
    let mut third = connect_from("127.0.0.1", s.rtmp);
    assert!(
        closed_at_once(&mut third, Duration::from_secs(3)),
        "the third RTMP connection from 127.0.0.1 is closed at once"
    );
    let mut other = connect_from("127.0.0.2", s.rtmp);
    assert!(rtmp_handshake(&mut other), "127.0.0.2 is served");

    // HTTP: two idle connections from 127.0.0.1; the third is told why.
    let idle: Vec<_> = (0..2).map(|_| connect_from("127.0.0.1", s.http)).collect();
    std::thread::sleep(Duration::from_millis(200));
    let third = connect_from("127.0.0.1", s.http);
    let r = unasked_answer(&third, Duration::from_secs(3)).expect("an answer");
    assert_eq!(r.status, 429, "{}", r.body_text());
    assert!(
        r.body_text()
            .contains("too many connections from your address")
    );
    let r = get_on(connect_from("127.0.0.2", s.http), "/metrics").expect("served");
    assert_eq!(r.status, 200);
    let metrics = r.body_text();
    assert!(
        metrics.contains("corecast_http_connections{shard="),
        "{metrics}"
    );
    // A freed slot is usable again.
    drop(idle);
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(r) = get_on(connect_from("127.0.0.1", s.http), "/api/v1/health")
            && r.status == 200
        {
            break;
        }
        assert!(Instant::now() < end, "127.0.0.1 never served again");
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(held);
}

/// Sum of the counts in the server's "RTMP: refused ..." lines, and how many lines.
fn refusal_lines(log: &[String]) -> (u64, usize) {
    let mut sum = 0;
    let mut lines = 0;
    for l in log {
        let Some(rest) = l.split("RTMP: refused ").nth(1) else {
            continue;
        };
        lines += 1;
        sum += if rest.starts_with("a connection") {
            1
        } else {
            rest.split_whitespace()
                .next()
                .and_then(|n| n.parse::<u64>().ok())
                .expect("a count")
        };
    }
    (sum, lines)
}

#[test]
fn a_flood_of_refused_connections_gives_a_few_log_lines_whose_counts_add_up() {
    let s = Server::start(
        "limits-log",
        &test_config_sections("", "max_connections_per_ip = 1", ""),
    );
    let mut holder = connect(s.rtmp);
    assert!(rtmp_handshake(&mut holder));
    // 200 more from the same address, each refused.
    for _ in 0..200 {
        let mut c = connect(s.rtmp);
        assert!(closed_at_once(&mut c, Duration::from_secs(3)), "refused");
    }
    // The last counts reach the log within a second of the last refusal.
    let end = Instant::now() + Duration::from_secs(5);
    let mut log = Vec::new();
    loop {
        log.extend(s.drain_log());
        let (sum, _) = refusal_lines(&log);
        if sum >= 200 || Instant::now() > end {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(1500));
    log.extend(s.drain_log());
    let (sum, lines) = refusal_lines(&log);
    assert_eq!(sum, 200, "the counts add up:\n{}", log.join("\n"));
    // Two shards, each at most one line a second: a few lines, not 200.
    assert!(lines <= 12, "{lines} refusal lines:\n{}", log.join("\n"));
    assert!(
        log.iter()
            .any(|l| l.contains("rtmp.max_connections_per_ip = 1 from 127.0.0.1")),
        "the line names the limit and the address:\n{}",
        log.join("\n")
    );
    let metrics = s.get("/metrics").body_text();
    let refused: u64 = metrics
        .lines()
        .filter(|l| l.starts_with("corecast_connections_refused_total{"))
        .filter_map(|l| l.split_whitespace().last()?.parse::<u64>().ok())
        .sum();
    assert_eq!(refused, 200, "{metrics}");
    drop(holder);
}

/// `ffmpeg -re -i demo.flv -c copy -f flv URL`.
fn publish(url: &str) -> Child {
    ffmpeg_publish_loop(&root().join("configs/media/demo.flv"), &[], url)
}

#[test]
fn idle_http_sockets_at_http_max_connections_do_not_lock_out_rtmp() {
    // The same cap for both: with one counter for all connections (as before), the idle
    // HTTP sockets would use up RTMP's.
    let s = Server::start(
        "limits-per-protocol",
        &test_config_sections("max_connections = 4", "max_connections = 4", ""),
    );
    // 16 idle sockets against 2 shards x 4: every shard's HTTP is full, the rest get 503.
    let mut idle = Vec::new();
    let mut busy = 0;
    for _ in 0..16 {
        let c = connect(s.http);
        idle.push(c);
    }
    // The refused ones are answered at once; the admitted ones are sent nothing.
    let mut answered = vec![false; idle.len()];
    let end = Instant::now() + Duration::from_secs(5);
    while busy < 8 && Instant::now() < end {
        for (c, done) in idle.iter().zip(answered.iter_mut()) {
            if *done {
                continue;
            }
            if let Some(r) = unasked_answer(c, Duration::from_millis(50)) {
                assert_eq!(r.status, 503, "{}", r.body_text());
                *done = true;
                busy += 1;
            }
        }
    }
    assert!(busy >= 8, "only {busy} of 16 refused");
    // RTMP is served all the same: a handshake, and a publish that ffmpeg makes.
    let mut c = connect(s.rtmp);
    assert!(rtmp_handshake(&mut c), "an RTMP connection is served");
    let mut ffmpeg = publish(&format!("rtmp://{}/live/limits", s.rtmp));
    let log = s.log_until("rtmp publish started", Duration::from_secs(15));
    let _ = ffmpeg.kill();
    let _ = ffmpeg.wait();
    assert!(log.contains("rtmp publish started"), "{log}");
    assert!(log.contains("HTTP: refused"), "{log}");
    assert!(!log.contains("RTMP: refused"), "{log}");
}

/// Sets the soft open-file limit to 512 (the hard limit stays).
fn soft_nofile_512() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit on a valid struct; async-signal-safe.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur = 512;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
    }
}

/// Sets both open-file limits to 4096, as some systemd setups have.
fn hard_nofile_4096() {
    let lim = libc::rlimit {
        rlim_cur: 4096,
        rlim_max: 4096,
    };
    // SAFETY: setrlimit on a valid struct; async-signal-safe.
    unsafe {
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
    }
}

/// This process's (soft, hard) open-file limits, after raising the soft one to the hard.
fn raise_own_nofile() -> (u64, u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit on a valid struct.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
    }
    (lim.rlim_cur, lim.rlim_max)
}

/// The "Max open files" soft and hard limits of process `pid`.
fn open_file_limits(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("Max open files");
    let mut v = line["Max open files".len()..].split_whitespace();
    (
        v.next().unwrap_or_default().to_string(),
        v.next().unwrap_or_default().to_string(),
    )
}

#[test]
fn with_a_soft_limit_of_512_the_server_raises_it_and_serves_700_connections() {
    let (own, hard) = raise_own_nofile();
    assert!(
        own >= 1024 && hard > 1024,
        "this test needs a hard open-file limit above 1024 (have {hard})"
    );
    let s = Server::start_with(
        "limits-nofile",
        &test_config_http("max_connections_per_ip = 1000", ""),
        Some(soft_nofile_512),
    );
    let (soft, server_hard) = open_file_limits(s.child.id());
    assert_eq!(soft, server_hard, "the soft limit is raised to the hard");
    assert_ne!(soft, "512");
    let log = s.startup.join("\n");
    assert!(
        log.contains("RLIMIT_NOFILE: soft limit raised from 512 to"),
        "{log}"
    );
    let idle: Vec<_> = (0..700).map(|_| connect(s.http)).collect();
    // All 700 are held (none refused), and a normal request is still answered.
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = s.get("/metrics").body_text();
        let open: u64 = metrics
            .lines()
            .filter(|l| l.starts_with("corecast_http_connections{"))
            .filter_map(|l| l.split_whitespace().last()?.parse::<u64>().ok())
            .sum();
        if open >= 700 {
            break;
        }
        assert!(Instant::now() < end, "only {open} HTTP connections open");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(s.get("/api/v1/health").status, 200);
    drop(idle);
}

#[test]
fn caps_that_do_not_fit_the_open_file_limit_stop_the_start_and_defaults_are_lowered() {
    // Configured caps that need more than a hard limit of 4096: a clear error.
    let cfg = write_config(
        "limits-nofile-error",
        &test_config_sections("max_connections = 8000", "max_connections = 100", ""),
    );
    let (code, err) = run_to_exit(
        &["--config", cfg.to_str().expect("path")],
        Some(hard_nofile_4096),
    );
    assert_eq!(code, 2, "{err}");
    for part in [
        "http.max_connections 8000",
        "rtmp.max_connections 100",
        "RLIMIT_NOFILE allows (4096; hard limit 4096)",
    ] {
        assert!(err.contains(part), "{err}");
    }
    // The defaults are lowered to fit, with a warning, and the server runs.
    let s = Server::start_with(
        "limits-nofile-lowered",
        &test_config(""),
        Some(hard_nofile_4096),
    );
    let log = s.startup.join("\n");
    assert!(log.contains("http.max_connections lowered to"), "{log}");
    assert_eq!(s.get("/api/v1/health").status, 200);
}

/// Sets the soft open-file limit of process `pid` (the hard one stays).
fn set_soft_nofile(pid: u32, soft: u64) {
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: prlimit reads the current limits of our own child into `old`.
    let rc = unsafe {
        libc::prlimit(
            pid as libc::pid_t,
            libc::RLIMIT_NOFILE,
            std::ptr::null(),
            &mut old,
        )
    };
    assert_eq!(rc, 0, "prlimit read");
    let new = libc::rlimit {
        rlim_cur: soft,
        rlim_max: old.rlim_max,
    };
    // SAFETY: prlimit sets our own child's soft limit from a valid struct.
    let rc = unsafe {
        libc::prlimit(
            pid as libc::pid_t,
            libc::RLIMIT_NOFILE,
            &new,
            std::ptr::null_mut(),
        )
    };
    assert_eq!(rc, 0, "prlimit set");
}

#[test]
fn out_of_file_descriptors_accept_fails_are_logged_once_a_second_and_the_backlog_is_served_after() {
    let s = Server::start("limits-emfile", &test_config(""));
    let pid = s.child.id();
    let (soft, _) = open_file_limits(pid);
    let open = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("fds")
        .count() as u64;
    // No descriptor left for a new connection.
    set_soft_nofile(pid, open);
    let waiting: Vec<_> = (0..20).map(|_| connect(s.http)).collect();
    std::thread::sleep(Duration::from_millis(2500));
    let log = s.drain_log();
    let failures: Vec<_> = log
        .iter()
        .filter(|l| l.contains("HTTP: accept failed"))
        .collect();
    // 10 ms between retries on each shard: hundreds of failures, a line or so a second.
    assert!(!failures.is_empty(), "{}", log.join("\n"));
    assert!(failures.len() <= 8, "{}", log.join("\n"));
    assert!(
        failures.iter().any(|l| l.contains("retrying every 10 ms")),
        "{}",
        log.join("\n")
    );
    // Descriptors again: the connections that waited in the backlog are served.
    set_soft_nofile(pid, soft.parse().expect("soft limit"));
    for c in waiting {
        let r = get_on(c, "/api/v1/health").expect("answered");
        assert_eq!(r.status, 200);
    }
    let metrics = s.get("/metrics").body_text();
    let errors: u64 = metrics
        .lines()
        .filter(|l| l.starts_with("corecast_accept_errors_total{"))
        .filter_map(|l| l.split_whitespace().last()?.parse::<u64>().ok())
        .sum();
    assert!(errors > 10, "{metrics}");
}
