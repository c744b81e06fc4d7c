#![no_main]
//! Drives the RTSP ingest core with a script the input chooses (camera bytes, datagrams,
//! connect and bind results, demand, time, shutdown): errors are fine; panics, a
//! `poll_output` that never reaches its timeout, and timers in the past are not.

use corecast::rtsp::ingest::{
    Ingest, IngestConfig, IngestError, Input, Output, RedirectPolicy, TransportMode,
};
use corecast::rtsp::proto::url::RtspUrl;
use libfuzzer_sys::fuzz_target;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

#[allow(clippy::disallowed_methods)] // An origin; time then moves by the script.
fn origin() -> Instant {
    Instant::now()
}

fn config(mode: u8) -> Option<IngestConfig> {
    Some(IngestConfig {
        name: "fuzz".to_string(),
        url: RtspUrl::parse("rtsp://u:p@192.0.2.10/live").ok()?,
        credentials: None,
        transport: [TransportMode::Tcp, TransportMode::Udp, TransportMode::Auto]
            [usize::from(mode % 3)],
        follow_redirects: [
            RedirectPolicy::SameHost,
            RedirectPolicy::Any,
            RedirectPolicy::Never,
        ][usize::from((mode >> 3) % 3)],
        on_demand: mode & 4 != 0,
        close_after: Duration::from_secs(10),
        udp_port_min: 30000,
        udp_port_max: 30009,
        udp_timeout: Duration::from_secs(3),
        response_timeout: Duration::from_secs(10),
        read_timeout: Duration::from_secs(10),
        retry_min: Duration::from_secs(1),
        retry_max: Duration::from_secs(30),
        seed: 1,
        user_agent: "fuzz".to_string(),
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, mut rest)) = data.split_first() else {
        return;
    };
    let Some(cfg) = config(mode) else { return };
    let camera = SocketAddr::from(([192, 0, 2, 10], 554));
    let mut now = origin();
    let mut ing = Ingest::new(cfg, now);
    while let Some((&op, tail)) = rest.split_first() {
        let len = usize::from(tail.first().copied().unwrap_or(0)).min(tail.len());
        let (chunk, next) = tail.split_at(len);
        rest = next;
        let input = match op % 11 {
            0 | 1 | 2 => Input::Tcp(chunk),
            3 => Input::Datagram {
                local_port: 30000 + u16::from(op >> 4),
                from: camera,
                data: chunk,
            },
            4 => Input::Connected { peer: camera },
            5 => Input::ConnectFailed(IngestError::Closed),
            6 => Input::Bound {
                rtp_ports: vec![30000, 30002],
            },
            7 => Input::BindFailed,
            8 => Input::Demand(usize::from(op >> 4)),
            9 => Input::TcpClosed,
            _ => {
                now += Duration::from_millis(u64::from(op) * 100);
                ing.handle_timeout(now);
                Input::Demand(usize::from(op & 1))
            }
        };
        ing.handle_input(now, input);
        let mut drained = false;
        for _ in 0..100_000 {
            if let Output::Timeout(t) = ing.poll_output() {
                assert!(t >= now, "a timeout in the past");
                drained = true;
                break;
            }
        }
        assert!(drained, "poll_output never returned its timeout");
    }
    ing.handle_input(now, Input::Close);
    assert!(ing.is_stopped());
});
