//! Hostile input against the real binary: what a peer sends may cost the server only
//! what it sent, bounded, and closes that one connection; everyone else is served.
#![allow(clippy::disallowed_methods)] // Tests drive real time.

mod common;

use bytes::BytesMut;
use common::{Server, demo_stream, test_config};
use corecast::rtmp::proto::chunk::encode_message;
use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Sends `wire` right after the RTMP handshake to a server that also runs the demo
/// stream, and checks the cost: that connection is closed, the server's peak RSS grows
/// by less than 16 MiB, the log says `why`, and everyone else is still served.
fn rtmp_flood_closes_that_connection_at_bounded_cost(tag: &str, wire: &[u8], why: &str) {
    let s = Server::start(tag, &test_config(&demo_stream("demo", 0)));
    let pid = s.child.id();
    assert_eq!(s.get("/api/v1/health").status, 200);
    let before = common::peak_rss_kib(pid);

    let mut c = common::rtmp::after_handshake(s.rtmp);
    // The server stops reading at the offending chunk; the rest may not be accepted.
    let _ = c.write_all(wire);
    assert!(
        common::closed_within(&mut c, Duration::from_secs(10)).is_some(),
        "that connection is closed"
    );

    let after = common::peak_rss_kib(pid);
    assert!(
        after < before + 16 * 1024,
        "peak RSS grew from {before} KiB to {after} KiB"
    );
    let log = s.log_until(why, Duration::from_secs(5));
    assert!(log.contains("rtmp connection closed"), "{log}");
    assert!(log.contains(why), "{log}");
    // Everyone else is served.
    assert_eq!(s.get("/api/v1/health").status, 200);
    let streams = s.get_json("/api/v1/streams");
    assert_eq!(streams["streams"][0]["path"], "demo", "{streams}");
}

#[test]
fn an_8_mib_amf_array_after_the_handshake_costs_no_memory_and_closes_that_connection() {
    // A strict array of ~8 Mi one-byte nulls: tens of bytes each once decoded.
    let n: u32 = (8 << 20) - 5; // the whole message: 8 MiB, the default rtmp.max_message_bytes
    let mut body = vec![0x0A];
    body.extend_from_slice(&n.to_be_bytes());
    body.resize(5 + n as usize, 0x05);
    let mut wire = BytesMut::new();
    encode_message(3, 0x14, 0, 0, &body, 128, &mut wire);
    rtmp_flood_closes_that_connection_at_bounded_cost(
        "flood-amf",
        &wire,
        "exceeds the limit of 65536",
    );
}

#[test]
fn pipelined_requests_from_clients_that_do_not_read_cost_bounded_memory() {
    let s = Server::start("flood-pipeline", &test_config(&demo_stream("demo", 0)));
    let pid = s.child.id();
    assert_eq!(s.get("/metrics").status, 200);
    let before = common::peak_rss_kib(pid);
    let one = b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n";
    let burst: Vec<u8> = one.repeat(16 * 1024 / one.len());
    // 50 clients, each 16 KiB of pipelined requests (about 470 /metrics answers), none
    // of which reads a byte.
    let mut clients = Vec::new();
    for _ in 0..50 {
        let mut c = TcpStream::connect(s.http).expect("connect");
        c.write_all(&burst).expect("pipeline");
        clients.push(c);
    }
    // Everyone else is served meanwhile, and the server has read every burst.
    let end = Instant::now() + Duration::from_secs(3);
    while Instant::now() < end {
        assert_eq!(s.get("/api/v1/health").status, 200);
        std::thread::sleep(Duration::from_millis(100));
    }
    let after = common::peak_rss_kib(pid);
    assert!(
        after < before + 20 * 1024,
        "peak RSS grew from {before} KiB to {after} KiB"
    );
    drop(clients);
    assert_eq!(s.get("/metrics").status, 200);
}

#[test]
fn opening_65000_chunk_streams_is_refused_at_the_bound_and_closes_that_connection() {
    // An Acknowledgement (type 3, 4 bytes) on each of 65,000 chunk stream ids, the 3-byte
    // basic header form: harmless messages, every one on a new chunk stream.
    let mut wire = Vec::new();
    for csid in 320..65_320u32 {
        let id = csid - 64;
        wire.extend_from_slice(&[0x01, id as u8, (id >> 8) as u8]);
        wire.extend_from_slice(&[0, 0, 0, 0, 0, 4, 0x03, 0, 0, 0, 0, 0, 0, 0, 1]);
    }
    rtmp_flood_closes_that_connection_at_bounded_cost(
        "flood-csid",
        &wire,
        "chunk stream 384 would exceed the 64 chunk streams a connection may open",
    );
}
