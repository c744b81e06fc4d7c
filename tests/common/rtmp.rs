//! A bare RTMP client for tests that need to misbehave on purpose: the plain handshake,
//! AMF0 commands through the server's own encoders, and a check that the server closed.

use bytes::BytesMut;
use corecast::rtmp::proto::amf0::{Amf0Value, encode_all};
use corecast::rtmp::proto::chunk::{MSG_COMMAND_AMF0, encode_message};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// The plain handshake on `c`: sends C0 C1, reads S0 S1 S2, sends C2 (an echo of S1).
/// An error if the server closed instead.
pub fn handshake(c: &mut TcpStream) -> std::io::Result<()> {
    let mut c0c1 = vec![3u8];
    c0c1.extend_from_slice(&[0u8; 1536]);
    c.write_all(&c0c1)?;
    let mut s0s1s2 = vec![0u8; 1 + 2 * 1536];
    c.read_exact(&mut s0s1s2)?;
    c.write_all(&s0s1s2[1..1537])
}

/// An RTMP connection past the plain handshake.
pub fn after_handshake(addr: SocketAddr) -> TcpStream {
    after_handshake_from(None, addr)
}

/// Like [`after_handshake`], from the local address `from` (e.g. 127.0.0.2).
pub fn after_handshake_from(from: Option<std::net::IpAddr>, addr: SocketAddr) -> TcpStream {
    let mut c = corecast_client::http::connect_from(from, addr, Duration::from_secs(10))
        .expect("connect rtmp");
    c.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    handshake(&mut c).expect("RTMP handshake");
    c
}

/// An AMF0 command message on chunk stream 3, chunked at the default 128 bytes.
pub fn command(stream_id: u32, values: &[Amf0Value]) -> Vec<u8> {
    let mut wire = BytesMut::new();
    encode_message(
        3,
        MSG_COMMAND_AMF0,
        stream_id,
        0,
        &encode_all(values),
        128,
        &mut wire,
    );
    wire.to_vec()
}

/// connect to `app` and createStream, as a client starts.
fn connect_commands(app: &str) -> Vec<u8> {
    use Amf0Value::{Null, Number, Object, String as S};
    let mut out = command(
        0,
        &[
            S("connect".into()),
            Number(1.0),
            Object(vec![("app".into(), S(app.into()))]),
        ],
    );
    out.extend(command(0, &[S("createStream".into()), Number(2.0), Null]));
    out
}

/// connect, createStream and publish of `app/key`, as an encoder sends them (the
/// server's answers are left unread).
pub fn publish_commands(app: &str, key: &str) -> Vec<u8> {
    use Amf0Value::{Null, Number, String as S};
    let mut out = connect_commands(app);
    out.extend(command(
        1,
        &[
            S("publish".into()),
            Number(3.0),
            Null,
            S(key.into()),
            S("live".into()),
        ],
    ));
    out
}

/// connect, createStream and play of `app/name`, as a player sends them.
pub fn play_commands(app: &str, name: &str) -> Vec<u8> {
    use Amf0Value::{Null, Number, String as S};
    let mut out = connect_commands(app);
    out.extend(command(
        1,
        &[S("play".into()), Number(3.0), Null, S(name.into())],
    ));
    out
}
