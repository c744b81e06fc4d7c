//! Engine tests: the driver contract, with a str0m client in memory.
#![allow(clippy::disallowed_methods)] // Any instant serves as the origin; time then moves by hand.

use super::*;

fn engine(now: Instant) -> Engine {
    let cert = crate::webrtc::process_cert().expect("certificate");
    let local = SocketAddr::from(([127, 0, 0, 1], 8189));
    let cfg = EngineConfig {
        peer: PeerConfig::default(),
        max_sessions: 2,
        candidates: vec![local],
        local,
    };
    Engine::new(now, cert, cfg)
}

#[test]
fn an_idle_engine_only_asks_to_be_called_again_within_a_second() {
    let now = Instant::now();
    let mut e = engine(now);
    let mut batch = Vec::new();
    match e.poll_output(&mut batch) {
        Output::Timeout(at) => assert_eq!(at, now + super::super::table::MAX_TIMER),
        other => panic!("{other:?}"),
    }
    let later = now + Duration::from_secs(5);
    e.handle_timeout(later);
    assert!(matches!(e.poll_output(&mut batch), Output::Timeout(at) if at > later));
    assert!(batch.is_empty());
}

#[test]
fn inputs_for_no_session_are_refused_without_output() {
    let now = Instant::now();
    let mut e = engine(now);
    let from = SocketAddr::from(([127, 0, 0, 1], 40000));
    let stun_like = [0u8, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42];
    for data in [&b"hello"[..], &stun_like[..], &[][..]] {
        let r = e.handle_input(now, Input::Datagram { from, data });
        assert_eq!(r, Err(InputError::Unrouted));
    }
    let id = SessionId(9);
    let close = Input::Close {
        id,
        reason: CloseReason::Requested,
    };
    assert_eq!(e.handle_input(now, close), Err(InputError::NoSession(id)));
    let gop = Input::Gop { id, gop: &[] };
    assert_eq!(e.handle_input(now, gop), Err(InputError::NoSession(id)));
    assert_eq!(e.handle_input(now, Input::Ready), Ok(()));
    let mut batch = Vec::new();
    assert!(matches!(e.poll_output(&mut batch), Output::Timeout(_)));
    assert!(e.is_empty() && e.has_room());
}

/// The viewer side: a str0m client (full ICE, recvonly H.264) in memory.
struct Client {
    rtc: str0m::Rtc,
    timeout: Instant,
    connected: bool,
    addr: SocketAddr,
}

fn h264_tracks() -> crate::media::TrackSet {
    use crate::media::{Codec, Track, TrackId};
    let mut t = Track::new(TrackId(0), Codec::H264, 90_000);
    t.params.sps = vec![bytes::Bytes::from_static(&[
        0x67, 0x42, 0xc0, 0x1f, 0xda, 0x01, 0x40, 0x16, 0xe8, 0x40,
    ])];
    t.params.pps = vec![bytes::Bytes::from_static(&[0x68, 0xce, 0x3c, 0x80])];
    Arc::from(vec![t])
}

fn idr(pts: i64) -> crate::media::Frame {
    use crate::media::{Frame, MediaKind, TrackId};
    let mut data = vec![0, 0, 0, 200, 0x65];
    data.extend(std::iter::repeat_n(0x5a, 199));
    Frame {
        track: TrackId(0),
        kind: MediaKind::Video,
        keyframe: true,
        dts: pts,
        pts,
        data: bytes::Bytes::from(data),
    }
}

/// Feeds the client's datagrams to the engine.
fn poll_client(cl: &mut Client, e: &mut Engine, now: Instant) {
    loop {
        match cl.rtc.poll_output().expect("client output") {
            str0m::Output::Transmit(t) => {
                let input = Input::Datagram {
                    from: t.source,
                    data: &t.contents,
                };
                let _ = e.handle_input(now, input);
            }
            str0m::Output::Timeout(t) => {
                cl.timeout = t;
                return;
            }
            str0m::Output::Event(str0m::Event::Connected) => cl.connected = true,
            str0m::Output::Event(_) => {}
        }
    }
}

/// Drains the engine as the driver does: datagrams to the client, events collected.
fn drain(e: &mut Engine, cl: &mut Client, now: Instant, events: &mut Vec<Event>) -> usize {
    let mut batch = Vec::new();
    let mut sent = 0;
    loop {
        match e.poll_output(&mut batch) {
            Output::Transmit(n) => {
                sent += n;
                for t in std::mem::take(&mut batch) {
                    if t.destination != cl.addr {
                        continue;
                    }
                    let recv = str0m::net::Receive::new(
                        str0m::net::Protocol::Udp,
                        t.source,
                        t.destination,
                        &t.contents,
                    )
                    .expect("datagram");
                    cl.rtc
                        .handle_input(str0m::Input::Receive(now, recv))
                        .expect("client input");
                    poll_client(cl, e, now);
                }
            }
            Output::Event(ev) => events.push(ev),
            Output::Timeout(_) => return sent,
        }
    }
}

#[test]
fn a_session_connects_sends_media_and_closes_through_the_contract() {
    use crate::stream::{SinkEvent, SinkLimits, SinkQueue};
    let mut now = Instant::now();
    let mut e = engine(now);
    let addr = SocketAddr::from(([127, 0, 0, 1], 41000));
    let mut rtc = str0m::Rtc::builder().build(now);
    rtc.add_local_candidate(str0m::Candidate::host(addr, "udp").expect("candidate"));
    let mut api = rtc.sdp_api();
    let dir = str0m::media::Direction::RecvOnly;
    api.add_media(str0m::media::MediaKind::Video, dir, None, None, None);
    let (offer, pending) = api.apply().expect("offer");
    let sdp = offer.to_sdp_string();
    let offered = super::super::offer::parse_offer(&sdp).expect("offer parses");
    let tracks = h264_tracks();
    let sel = super::super::offer::select(&offered, &tracks).expect("H.264");
    let queue = Rc::new(SinkQueue::new(SinkLimits {
        max_frames: 100,
        max_bytes: 1 << 20,
    }));
    queue.push(SinkEvent::Tracks(tracks.clone()));
    queue.push(SinkEvent::Frame(crate::stream::OutFrame::new(idr(0))));
    let sink = SinkHandle::standalone(Arc::from("demo"), queue.clone());
    let (id, answer) = e.create(now, &sdp, &offered, &sel, sink).expect("session");
    let answer = str0m::change::SdpAnswer::from_sdp_string(&answer).expect("answer");
    rtc.sdp_api()
        .accept_answer(pending, answer)
        .expect("accepted");
    let mut cl = Client {
        rtc,
        timeout: now,
        connected: false,
        addr,
    };
    let mut events = Vec::new();
    let deadline = now + Duration::from_secs(10);
    while !cl.connected {
        assert!(now < deadline, "not connected in 10 s of fake time");
        let _ = e.handle_input(now, Input::Ready);
        e.handle_timeout(now);
        if cl.timeout <= now {
            cl.rtc
                .handle_input(str0m::Input::Timeout(now))
                .expect("client timeout");
        }
        poll_client(&mut cl, &mut e, now);
        drain(&mut e, &mut cl, now, &mut events);
        now += Duration::from_millis(5);
    }
    // A live frame: the queue announces itself, `Ready` writes it, the due timer
    // releases the packets, and they come out as one transmit batch.
    queue.push(SinkEvent::Frame(crate::stream::OutFrame::new(idr(3000))));
    let _ = e.handle_input(now, Input::Ready);
    e.handle_timeout(now);
    let sent = drain(&mut e, &mut cl, now, &mut events);
    assert!(sent > 0, "no datagrams: {events:?}");
    let written: u64 = events
        .iter()
        .filter_map(|ev| match ev {
            Event::PacketsWritten(n) => Some(*n),
            _ => None,
        })
        .sum();
    assert!(written > 0, "{events:?}");
    assert_eq!(e.len(), 1);
    let close = Input::Close {
        id,
        reason: CloseReason::Requested,
    };
    assert_eq!(e.handle_input(now, close), Ok(()));
    drain(&mut e, &mut cl, now, &mut events);
    let closed: Vec<&Closed> = events
        .iter()
        .filter_map(|ev| match ev {
            Event::Closed(c) => Some(c),
            _ => None,
        })
        .collect();
    assert_eq!(closed.len(), 1, "{events:?}");
    assert_eq!(
        (closed[0].id, closed[0].reason),
        (id, CloseReason::Requested)
    );
    assert_eq!(&*closed[0].path, "demo");
    assert!(closed[0].stats.packets > 0);
    assert!(e.is_empty());
    assert!(queue.is_detached(), "the viewer's queue is let go");
}
