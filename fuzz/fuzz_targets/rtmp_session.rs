#![no_main]
//! Feeds arbitrary bytes to a `ServerSession` after a valid plain handshake, with a policy
//! that keys one path, knows one stream and configures two (so the key check, the play
//! alias and the publish claim rule run),
//! accepting any publish/play request the session allows, firing its timers on a virtual
//! clock, and draining its output.

use corecast::rtmp::proto::{
    AccessTable, Event, Input, Output, ServerSession, SessionConfig, SessionError,
};
use corecast::stream::StreamPath;
use libfuzzer_sys::fuzz_target;
use std::time::{Duration, Instant};

/// C0 (version 3), C1 and C2 of the plain handshake.
fn handshake() -> Vec<u8> {
    let mut hs = vec![0x03];
    hs.resize(1 + 2 * 1536, 0);
    hs
}

fn access() -> AccessTable {
    let mut a = AccessTable::default();
    if let (Ok(keyed), Ok(demo)) = (StreamPath::parse("live/cam"), StreamPath::parse("demo")) {
        a.publish_keys.insert(keyed, "s3".into());
        a.streams.insert(demo);
    }
    // A configured source and push path, so the alias rule of publish runs.
    if let (Ok(src), Ok(push)) = (StreamPath::parse("file1"), StreamPath::parse("push")) {
        a.sources.insert(src);
        a.targets.insert(push);
    }
    a
}

/// Drains the session's output, answering publish/play requests.
fn drain(session: &mut ServerSession) -> Result<(), SessionError> {
    loop {
        match session.poll_output() {
            Output::Event(Event::PublishRequested { .. }) => session.accept_publish()?,
            Output::Event(Event::PlayRequested { .. }) => {
                session.accept_play()?;
                session.send_media(0x09, 0, &[0x17, 0x01]);
                session.send_unpublish_notify();
            }
            Output::Event(_) | Output::Transmit(_) => {}
            Output::Timeout(_) => return Ok(()),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let config = SessionConfig {
        max_message_len: 1 << 16,
        ..SessionConfig::default()
    };
    #[allow(clippy::disallowed_methods)] // The fuzz driver's clock origin.
    let mut now = Instant::now();
    let mut session = ServerSession::new(now, config, 1).with_access(Box::new(access()));
    if session
        .handle_input(now, Input::Receive(&handshake()))
        .is_err()
    {
        panic!("valid handshake rejected");
    }
    for (i, part) in data.chunks(97).enumerate() {
        // Time moves on a little with every part, and now and then past a timer.
        now += Duration::from_millis(if i % 16 == 15 { 40_000 } else { 10 });
        session.handle_timeout(now);
        if session.handle_input(now, Input::Receive(part)).is_err() {
            break;
        }
        if drain(&mut session).is_err() {
            break;
        }
    }
    let _ = drain(&mut session);
});
