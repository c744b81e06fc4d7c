//! WebRTC signaling over the WebSocket at `/ws`: typed JSON messages (tagged by
//! `"type"`) and the per-socket state, [`WsSignaling`], whose sessions end with the
//! socket.
//!
//! - `{"type":"offer","stream":"live/cam1","sdp":"..."}` → `{"type":"answer","stream",
//!   "session","sdp"}` (with `"warning"` when the stream's video has B-frames, the text
//!   of WHEP's `Warning` header: browsers' WebRTC players stutter on them) then one `{"type":"candidate","session","candidate","sdpMid",
//!   "sdpMLineIndex"}` per server candidate (they are also in the answer); or
//!   `{"type":"error","message","status","stream"}` with the WHEP status (404, 400, 406,
//!   503).
//! - `{"type":"stop","session":"..."}` ends a session of this socket →
//!   `{"type":"stopped","session"}`.
//! - `{"type":"candidate",...}` from the viewer is accepted and not needed (the server is
//!   ICE-lite and learns the viewer's address from its checks).
//! - `{"type":"ping"}` → `{"type":"pong"}`.

use super::{Offer, SignalError};
use crate::auth::{Action, Credentials, Verdict};
use crate::shard::Shard;
use crate::stream::StreamPath;
use crate::webrtc::handle::Handle;
use crate::webrtc::table::SessionId;
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};

/// Most WebRTC sessions one WebSocket may hold.
pub const WS_MAX_SESSIONS: usize = 16;

/// A message from the viewer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
#[non_exhaustive]
pub enum ClientMsg {
    /// An SDP offer for a stream.
    Offer {
        /// The stream path.
        stream: String,
        /// The SDP offer.
        sdp: String,
    },
    /// End one of this socket's sessions.
    Stop {
        /// The session id (16 hex digits).
        session: String,
    },
    /// A trickled ICE candidate of the viewer (not needed: ignored).
    Candidate {
        /// The `candidate:` line.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        candidate: Option<String>,
        /// Its media section's mid.
        #[serde(default, rename = "sdpMid", skip_serializing_if = "Option::is_none")]
        sdp_mid: Option<String>,
        /// Its media section's index.
        #[serde(
            default,
            rename = "sdpMLineIndex",
            skip_serializing_if = "Option::is_none"
        )]
        sdp_m_line_index: Option<u32>,
    },
    /// Keep-alive.
    Ping,
}

/// A message to the viewer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
#[non_exhaustive]
pub enum ServerMsg {
    /// Sent once when the socket opens.
    Hello {
        /// `corecast`.
        server: String,
        /// The server's version.
        version: String,
        /// The shard the socket landed on.
        shard: usize,
    },
    /// The SDP answer to an offer.
    Answer {
        /// The stream path as the server names it.
        stream: String,
        /// The new session's id.
        session: String,
        /// The SDP answer.
        sdp: String,
        /// What the viewer should know about the stream (its video has B-frames, on
        /// which browsers' WebRTC players stutter); absent when nothing.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        warning: Option<String>,
    },
    /// One of the server's ICE candidates (all are in the answer too).
    Candidate {
        /// The session.
        session: String,
        /// The `candidate:` value.
        candidate: String,
        /// The first media section's mid.
        #[serde(rename = "sdpMid")]
        sdp_mid: String,
        /// Always 0.
        #[serde(rename = "sdpMLineIndex")]
        sdp_m_line_index: u32,
    },
    /// A session of this socket ended on request.
    Stopped {
        /// The session.
        session: String,
    },
    /// Answer to a ping.
    Pong,
    /// Something went wrong; the socket stays usable.
    Error {
        /// What went wrong.
        message: String,
        /// The WHEP (HTTP) status of the same failure, where there is one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status: Option<u16>,
        /// The stream the failed offer was for.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stream: Option<String>,
    },
}

impl ServerMsg {
    /// An error without status or stream.
    pub fn error(message: impl std::fmt::Display) -> ServerMsg {
        ServerMsg::Error {
            message: message.to_string(),
            status: None,
            stream: None,
        }
    }

    /// An error with an HTTP status.
    fn status(message: impl std::fmt::Display, status: u16, stream: Option<&str>) -> ServerMsg {
        ServerMsg::Error {
            message: message.to_string(),
            status: Some(status),
            stream: stream.map(str::to_string),
        }
    }

    /// The message as WebSocket text.
    pub fn to_text(&self) -> String {
        // Serializing these plain structs cannot fail; keep the socket going regardless.
        serde_json::to_string(self)
            .unwrap_or_else(|e| format!(r#"{{"type":"error","message":"{e}"}}"#))
    }
}

/// Reads one message; a message that cannot be read gets the error reply it deserves
/// (invalid JSON, no type, an unknown type, an offer without `stream` and `sdp`...).
pub fn decode(text: &str) -> Result<ClientMsg, ServerMsg> {
    let err = match serde_json::from_str::<ClientMsg>(text) {
        Ok(m) => return Ok(m),
        Err(e) => e,
    };
    if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(text) {
        return Err(ServerMsg::error(format!("invalid JSON: {e}")));
    }
    /// Just the tag, to say what was wrong with a message that did not decode.
    #[derive(Deserialize)]
    struct Tag {
        #[serde(rename = "type")]
        kind: Option<serde_json::Value>,
    }
    let kind = serde_json::from_str::<Tag>(text).ok().and_then(|t| t.kind);
    match kind.as_ref().and_then(|k| k.as_str()) {
        None => Err(ServerMsg::error("message has no \"type\"")),
        Some("offer") => Err(ServerMsg::status(
            "an offer needs \"stream\" and \"sdp\"",
            400,
            None,
        )),
        Some("stop") => Err(ServerMsg::status(
            "no such session on this socket",
            404,
            None,
        )),
        // A candidate or ping with odd extra fields is still what it says.
        Some("candidate") => Ok(ClientMsg::Candidate {
            candidate: None,
            sdp_mid: None,
            sdp_m_line_index: None,
        }),
        Some("ping") => Ok(ClientMsg::Ping),
        Some(other) => {
            tracing::debug!("websocket message not read: {err}");
            Err(ServerMsg::error(format!("unknown message type '{other}'")))
        }
    }
}

/// The signaling state of one WebSocket: the sessions it started, which end with it.
pub struct WsSignaling {
    rtc: Handle,
    /// The viewer's address (sessions count against `webrtc.max_sessions_per_ip`).
    from: Option<IpAddr>,
    /// The viewer's address and port, as the session list shows it.
    peer: Option<SocketAddr>,
    /// The credentials the socket was opened with; every offer is checked with them.
    creds: Credentials,
    sessions: Vec<SessionId>,
}

impl WsSignaling {
    /// The state of a new socket from `peer`, opened with `creds`, on the shard of `rtc`.
    pub fn new(rtc: Handle, peer: Option<SocketAddr>, creds: Credentials) -> Self {
        WsSignaling {
            rtc,
            from: peer.map(|p| p.ip()),
            peer,
            creds,
            sessions: Vec::new(),
        }
    }

    /// The greeting sent when the socket opens.
    pub fn hello(&self) -> ServerMsg {
        ServerMsg::Hello {
            server: "corecast".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            shard: self.rtc.shard(),
        }
    }

    /// Number of live sessions this socket started.
    pub fn sessions(&self) -> usize {
        self.sessions.len()
    }

    /// Answers one text message; returns the replies in order. An offer may wait for
    /// the stream's media (on-demand sources).
    pub async fn handle_text(&mut self, shard: &Shard, text: &str) -> Vec<ServerMsg> {
        match decode(text) {
            Err(reply) => vec![reply],
            Ok(ClientMsg::Ping) => vec![ServerMsg::Pong],
            Ok(ClientMsg::Candidate { .. }) => Vec::new(),
            Ok(ClientMsg::Stop { session }) => vec![self.stop(&session)],
            Ok(ClientMsg::Offer { stream, sdp }) => self.offer(shard, &stream, sdp).await,
        }
    }

    fn stop(&mut self, session: &str) -> ServerMsg {
        let id = session.parse::<SessionId>().ok();
        match id.and_then(|id| self.sessions.iter().position(|s| *s == id)) {
            Some(i) => {
                let id = self.sessions.swap_remove(i);
                self.rtc.end_session(id);
                ServerMsg::Stopped {
                    session: id.to_string(),
                }
            }
            None => ServerMsg::status("no such session on this socket", 404, None),
        }
    }

    /// Answers an offer: the same checks, in the same order, as a WHEP `POST` (404
    /// for a stream that cannot exist before the SDP is read, then the SDP, then the
    /// limits), all before the offer can start an on-demand source.
    async fn offer(&mut self, shard: &Shard, stream: &str, sdp: String) -> Vec<ServerMsg> {
        let raw = stream.trim_matches('/');
        let fail = |e: SignalError, stream: &str| {
            super::refused(shard, &self.rtc, self.from, &e);
            vec![ServerMsg::status(&e, e.status(), Some(stream))]
        };
        if let Ok(path) = StreamPath::parse(raw)
            && let refusal @ (Verdict::Unauthorized | Verdict::Forbidden | Verdict::Blocked) =
                shard.authorize(Action::Read, Some(path.as_str()), self.from, &self.creds)
        {
            let why = format!("not allowed to watch '{path}'");
            return vec![ServerMsg::status(why, refusal.status(), Some(raw))];
        }
        let offer = match super::find_stream(shard, stream).and_then(|_| Offer::parse(stream, sdp))
        {
            Ok(o) => o,
            Err(e) => return fail(e, raw),
        };
        if self.sessions.len() >= WS_MAX_SESSIONS {
            let why = format!("one WebSocket may watch at most {WS_MAX_SESSIONS} streams");
            return vec![ServerMsg::status(why, 503, Some(offer.path.as_str()))];
        }
        let via = super::Via {
            signaling: crate::session::Signaling::Ws,
            peer: self.peer,
        };
        let c = match super::answer(shard, &self.rtc, &offer, via).await {
            Ok(c) => c,
            Err(e) => return fail(e, offer.path.as_str()),
        };
        self.sessions.push(c.id);
        let session = c.id.to_string();
        let mut replies = vec![ServerMsg::Answer {
            stream: c.path.to_string(),
            session: session.clone(),
            sdp: c.answer.clone(),
            warning: c.warning.clone(),
        }];
        let (mid, candidates) = c.candidates();
        replies.extend(candidates.into_iter().map(|cand| ServerMsg::Candidate {
            session: session.clone(),
            candidate: cand.to_string(),
            sdp_mid: mid.to_string(),
            sdp_m_line_index: 0,
        }));
        replies
    }
}

impl Drop for WsSignaling {
    fn drop(&mut self) {
        for id in self.sessions.drain(..) {
            self.rtc.end_session(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    /// `msg` serializes to exactly `wire` (as JSON values) and reads back from it.
    fn round_trip<T>(msg: T, wire: Value)
    where
        T: Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
    {
        assert_eq!(serde_json::to_value(&msg).expect("serializes"), wire);
        let back: T = serde_json::from_value(wire.clone()).expect("deserializes");
        assert_eq!(back, msg, "{wire}");
    }

    #[test]
    fn client_messages_match_the_wire_format() {
        round_trip(
            ClientMsg::Offer {
                stream: "live/cam1".into(),
                sdp: "v=0\r\n".into(),
            },
            json!({"type": "offer", "stream": "live/cam1", "sdp": "v=0\r\n"}),
        );
        round_trip(
            ClientMsg::Stop {
                session: "0123456789abcdef".into(),
            },
            json!({"type": "stop", "session": "0123456789abcdef"}),
        );
        round_trip(
            ClientMsg::Candidate {
                candidate: Some("candidate:1 1 udp 1 127.0.0.1 9 typ host".into()),
                sdp_mid: Some("0".into()),
                sdp_m_line_index: Some(0),
            },
            json!({"type": "candidate", "candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host", "sdpMid": "0", "sdpMLineIndex": 0}),
        );
        round_trip(
            ClientMsg::Candidate {
                candidate: None,
                sdp_mid: None,
                sdp_m_line_index: None,
            },
            json!({"type": "candidate"}),
        );
        round_trip(ClientMsg::Ping, json!({"type": "ping"}));
    }

    #[test]
    fn server_messages_match_the_wire_format() {
        round_trip(
            ServerMsg::Hello {
                server: "corecast".into(),
                version: "1.2.3".into(),
                shard: 1,
            },
            json!({"type": "hello", "server": "corecast", "version": "1.2.3", "shard": 1}),
        );
        round_trip(
            ServerMsg::Answer {
                stream: "demo".into(),
                session: "00000000000000ff".into(),
                sdp: "v=0\r\n".into(),
                warning: None,
            },
            json!({"type": "answer", "stream": "demo", "session": "00000000000000ff", "sdp": "v=0\r\n"}),
        );
        round_trip(
            ServerMsg::Answer {
                stream: "bf".into(),
                session: "00000000000000ff".into(),
                sdp: "v=0\r\n".into(),
                warning: Some(super::super::bframes_warning("bf")),
            },
            json!({"type": "answer", "stream": "bf", "session": "00000000000000ff", "sdp": "v=0\r\n",
                   "warning": "stream 'bf' has B-frames: browsers' WebRTC players stutter on them; the page plays it over MSE"}),
        );
        round_trip(
            ServerMsg::Candidate {
                session: "00000000000000ff".into(),
                candidate: "candidate:1 1 udp 2130706431 127.0.0.1 8189 typ host".into(),
                sdp_mid: "0".into(),
                sdp_m_line_index: 0,
            },
            json!({"type": "candidate", "session": "00000000000000ff", "candidate": "candidate:1 1 udp 2130706431 127.0.0.1 8189 typ host", "sdpMid": "0", "sdpMLineIndex": 0}),
        );
        round_trip(
            ServerMsg::Stopped {
                session: "00000000000000ff".into(),
            },
            json!({"type": "stopped", "session": "00000000000000ff"}),
        );
        round_trip(ServerMsg::Pong, json!({"type": "pong"}));
        round_trip(
            ServerMsg::error("invalid JSON: EOF"),
            json!({"type": "error", "message": "invalid JSON: EOF"}),
        );
        round_trip(
            ServerMsg::status("no such session on this socket", 404, None),
            json!({"type": "error", "message": "no such session on this socket", "status": 404}),
        );
        round_trip(
            ServerMsg::status("no stream 'nope'", 404, Some("nope")),
            json!({"type": "error", "message": "no stream 'nope'", "status": 404, "stream": "nope"}),
        );
        let text = ServerMsg::Pong.to_text();
        assert_eq!(
            serde_json::from_str::<Value>(&text).expect("json"),
            json!({"type": "pong"})
        );
    }

    fn error_of(text: &str) -> (String, Option<u16>) {
        match decode(text) {
            Err(ServerMsg::Error {
                message, status, ..
            }) => (message, status),
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn unreadable_messages_get_the_same_errors_as_before() {
        let (m, s) = error_of("{not json");
        assert!(m.starts_with("invalid JSON: "), "{m}");
        assert_eq!(s, None);
        assert_eq!(
            error_of(r#"{"stream":"x"}"#),
            ("message has no \"type\"".into(), None)
        );
        assert_eq!(
            error_of(r#"{"type":5}"#),
            ("message has no \"type\"".into(), None)
        );
        assert_eq!(
            error_of(r#"{"type":"dance"}"#),
            ("unknown message type 'dance'".into(), None)
        );
        assert_eq!(
            error_of(r#"{"type":"offer","stream":"demo"}"#),
            ("an offer needs \"stream\" and \"sdp\"".into(), Some(400))
        );
        assert_eq!(
            error_of(r#"{"type":"offer","stream":7,"sdp":"v=0"}"#),
            ("an offer needs \"stream\" and \"sdp\"".into(), Some(400))
        );
        assert_eq!(
            error_of(r#"{"type":"stop"}"#),
            ("no such session on this socket".into(), Some(404))
        );
    }

    #[test]
    fn extra_fields_are_ignored() {
        assert_eq!(
            decode(r#"{"type":"ping","id":3}"#).expect("ping"),
            ClientMsg::Ping
        );
        assert!(matches!(
            decode(r#"{"type":"candidate","candidate":5,"usernameFragment":"x"}"#),
            Ok(ClientMsg::Candidate { .. })
        ));
        assert_eq!(
            decode(r#"{"type":"offer","stream":"demo","sdp":"v=0","extra":true}"#).expect("offer"),
            ClientMsg::Offer {
                stream: "demo".into(),
                sdp: "v=0".into()
            }
        );
    }
}
