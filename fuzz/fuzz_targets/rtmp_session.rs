#![no_main]
//! Feeds arbitrary bytes to a `ServerSession` after a valid plain handshake, accepting any
//! publish/play request, and drains events and output.

use corecast::rtmp::proto::{ServerSession, SessionConfig, SessionEvent};
use libfuzzer_sys::fuzz_target;

/// C0 (version 3), C1 and C2 of the plain handshake.
fn handshake() -> Vec<u8> {
    let mut hs = vec![0x03];
    hs.resize(1 + 2 * 1536, 0);
    hs
}

fuzz_target!(|data: &[u8]| {
    let config = SessionConfig {
        max_message_len: 1 << 16,
        ..SessionConfig::default()
    };
    let mut session = ServerSession::new(config, 1);
    if session.handle_input(&handshake()).is_err() {
        panic!("valid handshake rejected");
    }
    for part in data.chunks(97) {
        if session.handle_input(part).is_err() {
            break;
        }
        while let Some(event) = session.poll_event() {
            let result = match event {
                SessionEvent::PublishRequested { .. } => session.accept_publish(),
                SessionEvent::PlayRequested { .. } => {
                    let r = session.accept_play();
                    session.send_media(0x09, 0, &[0x17, 0x01]);
                    session.send_unpublish_notify();
                    r
                }
                _ => Ok(()),
            };
            if result.is_err() {
                break;
            }
        }
        while session.take_output().is_some() {}
    }
    while session.poll_event().is_some() {}
    while session.take_output().is_some() {}
});
