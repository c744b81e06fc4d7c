//! Engine tests: the driver contract, with a str0m client in memory.
#![allow(clippy::disallowed_methods)] // Any instant serves as the origin; time then moves by hand.

use super::*;

fn engine(now: Instant) -> Engine {
    let cert = crate::webrtc::process_cert().expect("certificate");
    let local = SocketAddr::from(([127, 0, 0, 1], 8189));
    let cfg = EngineConfig {
        peer: PeerConfig::default(),
        ingest: Default::default(),
        max_sessions: 2,
        candidates: vec![local],
        local,
        resend: Default::default(),
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
    /// The mid of its video section.
    mid: str0m::media::Mid,
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

/// A connected session: the engine, its client, the session id, the viewer's queue and
/// the fake time it connected at.
struct Connected {
    e: Engine,
    cl: Client,
    id: SessionId,
    queue: Rc<crate::stream::SinkQueue>,
    now: Instant,
    events: Vec<Event>,
}

/// Creates a session for a recvonly H.264 client whose queue holds the tracks and one
/// IDR, and runs both sides in 5 ms steps of fake time until ICE and DTLS are up.
fn connected() -> Connected {
    use crate::stream::{SinkEvent, SinkLimits, SinkQueue};
    let mut now = Instant::now();
    let mut e = engine(now);
    let addr = SocketAddr::from(([127, 0, 0, 1], 41000));
    let mut rtc = str0m::Rtc::builder().build(now);
    rtc.add_local_candidate(str0m::Candidate::host(addr, "udp").expect("candidate"));
    let mut api = rtc.sdp_api();
    let dir = str0m::media::Direction::RecvOnly;
    let mid = api.add_media(str0m::media::MediaKind::Video, dir, None, None, None);
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
        mid,
    };
    let mut events = Vec::new();
    let deadline = now + Duration::from_secs(10);
    while !cl.connected {
        assert!(now < deadline, "not connected in 10 s of fake time");
        step(&mut e, &mut cl, now, &mut events);
        now += Duration::from_millis(5);
    }
    Connected {
        e,
        cl,
        id,
        queue,
        now,
        events,
    }
}

/// One round of both sides at `now`, as the driver and a client would run it.
fn step(e: &mut Engine, cl: &mut Client, now: Instant, events: &mut Vec<Event>) {
    let _ = e.handle_input(now, Input::Ready);
    e.handle_timeout(now);
    if cl.timeout <= now {
        cl.rtc
            .handle_input(str0m::Input::Timeout(now))
            .expect("client timeout");
    }
    poll_client(cl, e, now);
    drain(e, cl, now, events);
}

#[test]
fn a_session_connects_sends_media_and_closes_through_the_contract() {
    let Connected {
        mut e,
        mut cl,
        id,
        queue,
        now,
        mut events,
    } = connected();
    use crate::stream::SinkEvent;
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

/// The client asks for a keyframe (RTCP PLI) now.
fn request_keyframe(cl: &mut Client, now: Instant) {
    let mut w = cl.rtc.writer(cl.mid).expect("writer of the video mid");
    w.request_keyframe(None, str0m::media::KeyframeRequestKind::Pli)
        .expect("keyframe request");
    cl.rtc
        .handle_input(str0m::Input::Timeout(now))
        .expect("client timeout");
}

/// Answers every [`Event::GopWanted`] among `events` from `gop`, as the driver does;
/// returns how many were wanted.
fn answer_gops(
    e: &mut Engine,
    events: &mut Vec<Event>,
    now: Instant,
    gop: &[Rc<OutFrame>],
) -> usize {
    let wanted: Vec<SessionId> = events
        .iter()
        .filter_map(|ev| match ev {
            Event::GopWanted { id, .. } => Some(*id),
            _ => None,
        })
        .collect();
    events.retain(|ev| !matches!(ev, Event::GopWanted { .. }));
    for id in &wanted {
        e.handle_input(now, Input::Gop { id: *id, gop })
            .expect("session");
    }
    wanted.len()
}

/// (re-sent, skipped) among `events`, with the bytes re-sent.
fn resends(events: &[Event]) -> (usize, usize, u64) {
    let mut r = (0, 0, 0);
    for ev in events {
        if let Event::GopResend { bytes, skipped, .. } = ev {
            if *skipped {
                r.1 += 1;
            } else {
                r.0 += 1;
                r.2 += bytes;
            }
        }
    }
    r
}

#[test]
fn many_keyframe_requests_within_the_interval_cause_one_gop_resend() {
    let Connected {
        mut e,
        mut cl,
        mut now,
        mut events,
        ..
    } = connected();
    let gop = vec![crate::stream::OutFrame::new(idr(3000))];
    let interval = PeerConfig::default().keyframe_interval;
    assert_eq!(interval, Duration::from_secs(2));
    // Ten requests 100 ms apart (one second): one re-send.
    let mut wanted = 0;
    for _ in 0..10 {
        request_keyframe(&mut cl, now);
        for _ in 0..20 {
            poll_client(&mut cl, &mut e, now);
            step(&mut e, &mut cl, now, &mut events);
            wanted += answer_gops(&mut e, &mut events, now, &gop);
            drain(&mut e, &mut cl, now, &mut events);
            now += Duration::from_millis(5);
        }
    }
    assert_eq!(wanted, 1, "{events:?}");
    assert_eq!(resends(&events), (1, 0, 204));
    // Past the interval, the next request is answered again.
    now += interval;
    request_keyframe(&mut cl, now);
    for _ in 0..20 {
        poll_client(&mut cl, &mut e, now);
        step(&mut e, &mut cl, now, &mut events);
        wanted += answer_gops(&mut e, &mut events, now, &gop);
        now += Duration::from_millis(5);
    }
    assert_eq!(wanted, 2);
    assert_eq!(resends(&events).0, 2);
}

#[test]
fn gop_resends_are_cut_to_the_bound_and_skipped_past_the_shard_budget() {
    let Connected {
        mut e,
        mut cl,
        id,
        now,
        mut events,
        ..
    } = connected();
    // Frames of 204 bytes; one re-send carries at most 450 (two frames); the shard
    // re-sends at most 1000 bytes per second.
    e.set_resend_limits(ResendLimits {
        max_bytes: 450,
        budget: 1000,
    });
    let gop: Vec<_> = (1..=3)
        .map(|i| crate::stream::OutFrame::new(idr(i * 3000)))
        .collect();
    let resend = |e: &mut Engine, cl: &mut Client, events: &mut Vec<Event>, at: Instant| {
        e.handle_input(at, Input::Gop { id, gop: &gop })
            .expect("session");
        drain(e, cl, at, events);
    };
    resend(&mut e, &mut cl, &mut events, now);
    assert_eq!(resends(&events), (1, 0, 408), "cut to two frames");
    resend(&mut e, &mut cl, &mut events, now);
    assert_eq!(resends(&events), (2, 0, 816));
    // 184 bytes left of the second's budget: the third is skipped and counted.
    resend(&mut e, &mut cl, &mut events, now);
    assert_eq!(resends(&events), (2, 1, 816));
    // Half a second refills 500 bytes.
    resend(
        &mut e,
        &mut cl,
        &mut events,
        now + Duration::from_millis(500),
    );
    assert_eq!(resends(&events), (3, 1, 1224));
    // A keyframe alone over the bound is never re-sent.
    e.set_resend_limits(ResendLimits {
        max_bytes: 100,
        budget: 1000,
    });
    resend(&mut e, &mut cl, &mut events, now + Duration::from_secs(5));
    assert_eq!(resends(&events), (3, 2, 1224));
    assert!(e.contains(id), "the session lives on");
}

/// Drains the engine as the driver does, collecting the departures of each batch; each
/// names an RTP datagram (not RTCP) to the client in its batch.
fn drain_departures(e: &mut Engine, cl: &Client) -> Vec<Departure> {
    let mut batch = Vec::new();
    let mut all = Vec::new();
    loop {
        match e.poll_output(&mut batch) {
            Output::Transmit(_) => {
                let mut these = Vec::new();
                e.take_departures(&mut these);
                for d in &these {
                    let t = batch.get(d.index).expect("a datagram at the index");
                    assert_eq!(t.destination, cl.addr);
                    let rtp = t.contents.first().is_some_and(|b| b >> 6 == 2)
                        && t.contents
                            .get(1)
                            .is_some_and(|pt| !(72..=79).contains(&(pt & 0x7f)));
                    assert!(rtp, "not RTP: {:?}", &t.contents[..4]);
                }
                all.extend(these);
                batch.clear();
            }
            Output::Event(_) => {}
            Output::Timeout(_) => return all,
        }
    }
}

#[test]
fn live_frames_are_reported_at_their_first_datagram_and_replays_are_not() {
    use crate::stream::{OutFrame, SinkEvent};
    let Connected {
        mut e,
        cl,
        id,
        queue,
        now,
        ..
    } = connected();
    let arrived = now - Duration::from_millis(3);
    // A GOP re-send answering a keyframe request replays frames: not live.
    let gop = [OutFrame::arrived(idr(3000), Some(arrived))];
    e.handle_input(now, Input::Gop { id, gop: &gop })
        .expect("session");
    assert!(drain_departures(&mut e, &cl).is_empty());
    // A live frame: one departure, at its first datagram, with its arrival.
    queue.push(SinkEvent::Frame(OutFrame::arrived(
        idr(6000),
        Some(arrived),
    )));
    let _ = e.handle_input(now, Input::Ready);
    let departed = drain_departures(&mut e, &cl);
    assert_eq!(departed.len(), 1, "{departed:?}");
    assert_eq!(departed[0].arrived, arrived);
    // A frame without an arrival time is not measured.
    queue.push(SinkEvent::Frame(OutFrame::new(idr(9000))));
    let _ = e.handle_input(now, Input::Ready);
    assert!(drain_departures(&mut e, &cl).is_empty());
}
