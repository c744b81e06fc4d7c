//! UDP GSO on the WebRTC egress (`webrtc.gso`): a frame's equal-size packets leave as one
//! message to the kernel, which cuts it into datagrams; on loopback the viewer's socket
//! receives them one by one. A viewer gets every packet of every frame with GSO on, and
//! with it off, and the server's counters tell the two apart.
//!
//! `CORECAST_TEST_LOG=1` echoes the server's log; `--nocapture` shows the measurements.
#![allow(clippy::disallowed_methods)] // Tests drive real time.

mod common;

use common::*;
use corecast_client::{ReceiveMode, WhepViewer};
use std::time::Duration;

const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for the first frame (no latency is measured here).
const FIRST_FRAME_LIMIT: Duration = Duration::from_secs(10);
/// How long the viewer plays.
const WINDOW: Duration = Duration::from_secs(3);

/// What one viewer got and how the server sent it.
#[derive(Debug)]
struct Played {
    packets: u64,
    lost: u64,
    received: u64,
    expected: u64,
    datagrams_out: u64,
    messages: u64,
}

/// Plays the demo stream (a keyframe every 2 s, so the window holds IDRs of many
/// fragments) in `Full` mode, where str0m only hands out frames it reassembled whole, on
/// a server with `webrtc.gso = gso`.
fn play(gso: bool) -> Played {
    let extra = format!("gso = {gso}\n{}", demo_stream("demo", 0));
    let s = Server::start(&format!("webrtc-gso-{gso}"), &test_config(&extra));
    s.wait_stream("demo", |v| {
        v["tracks"].as_array().is_some_and(|t| !t.is_empty())
    });
    let mut v = WhepViewer::connect(s.http, "demo", ReceiveMode::Full, HTTP_TIMEOUT)
        .unwrap_or_else(|e| panic!("WHEP: {e}"));
    let got = v
        .run_until(|st| st.frames >= 1, FIRST_FRAME_LIMIT)
        .expect("session alive");
    assert!(got, "no frame in {FIRST_FRAME_LIMIT:?}: {:?}", v.stats());
    v.run_for(WINDOW).expect("session alive");
    let st = v.stats().clone();
    let cov = v.peer().video_coverage(30.0);
    assert_eq!(v.close().expect("DELETE"), 200);
    let played = Played {
        packets: st.packets,
        lost: st.lost,
        received: cov.received,
        expected: cov.expected,
        datagrams_out: s.metric("corecast_udp_datagrams_out_total"),
        messages: s.metric("corecast_udp_send_messages_total"),
    };
    eprintln!("webrtc.gso = {gso}: {played:?}");
    played
}

/// Every packet arrived (no gap in the sequence numbers) and the frames the RTP
/// timestamps span were reassembled (95 %, as the other WHEP tests ask: the window's
/// edges cut frames).
fn check_complete(p: &Played, gso: bool) {
    assert!(p.packets > 0, "gso = {gso}: no packet: {p:?}");
    assert_eq!(p.lost, 0, "gso = {gso}: packets missing: {p:?}");
    assert!(
        p.expected >= 60 && p.received as f64 >= 0.95 * p.expected as f64,
        "gso = {gso}: frames missing: {p:?}"
    );
}

#[test]
fn a_viewer_gets_every_packet_with_gso_on_and_off() {
    let on = play(true);
    check_complete(&on, true);
    // Fewer messages than datagrams: the frames' fragments went out as GSO runs (audio,
    // RTCP and DTLS go one datagram per message).
    assert!(
        on.messages < on.datagrams_out,
        "GSO on: {} messages for {} datagrams",
        on.messages,
        on.datagrams_out
    );
    let off = play(false);
    check_complete(&off, false);
    assert_eq!(
        off.messages, off.datagrams_out,
        "GSO off: one datagram per message"
    );
}
