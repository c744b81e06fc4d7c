//! A browser viewer over Media Source Extensions: the stream as fragmented MP4 on a
//! WebSocket (`GET /mse/{path}` with an upgrade). Sans-IO: the driver
//! ([`crate::http::mse_conn`]) feeds the viewer's stream events and the page's messages in
//! and writes out what comes back.
//!
//! What the page gets, in order:
//! - a text message `{"type":"init","codecs":"avc1.64001f,mp4a.40.2","mime":"video/mp4;
//!   codecs=\"…\"","tracks":[{"id":0,"kind":"video","codec":"h264"},…]}`, then the init
//!   segment (ftyp + moov) as one binary message: whenever the stream's tracks are (again)
//!   known, so a page that gets `init` starts a new `SourceBuffer`;
//! - one binary message per frame (moof + mdat), starting with the GOP cache so that the
//!   first picture comes at once; video starts at a keyframe;
//! - `{"type":"ended"}` when the source stops (the socket stays: `init` follows if the
//!   stream is published again);
//! - `{"type":"pong"}` for each `{"type":"ping"}`, and `{"type":"error","message":…}` for a
//!   message it does not understand (the socket stays open).
//!
//! It closes the socket when the stream cannot be played over MSE (no track an fMP4 can
//! carry, status 1003), when the page sends binary data (1003), and when the stream is
//! removed from the server (1000). Audio tracks the server made for WebRTC viewers (Opus
//! from AAC) are left out: MSE plays the original AAC.

use crate::media::fmp4::{Fragment, Muxer};
use crate::media::{MediaKind, Track, TrackSet};
use crate::stream::SinkEvent;
use bytes::Bytes;
use serde_json::{Value, json};

/// Where the endpoint lives: `GET /mse/{path}`.
pub const PREFIX: &str = "/mse/";

/// What the viewer asks the driver to send.
#[derive(Debug, Clone, PartialEq)]
pub enum MseOutput {
    /// A JSON text message.
    Text(String),
    /// A binary message: the init segment.
    Binary(Bytes),
    /// A binary message: one frame's fragment, whose payload is the frame's own buffer
    /// (send it as it is, [`crate::http::ws::WsSession::binary_header`]).
    Fragment(Fragment),
    /// Close the socket with this status and reason (after sending what came before).
    Close(u16, String),
}

/// Why the server ends a viewer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Ended through the management API.
    Kicked,
    /// The server is shutting down.
    Shutdown,
}

/// One MSE viewer of one stream.
#[derive(Debug)]
pub struct MseViewer {
    path: String,
    muxer: Option<Muxer>,
    /// Video frames are skipped until a keyframe after each init.
    wait_keyframe: bool,
    /// Fragments sent.
    fragments: u64,
    closed: bool,
}

impl MseViewer {
    /// A viewer of stream `path` (for messages); nothing is sent before the tracks.
    pub fn new(path: &str) -> Self {
        MseViewer {
            path: path.to_string(),
            muxer: None,
            wait_keyframe: true,
            fragments: 0,
            closed: false,
        }
    }

    /// Fragments sent so far.
    pub fn fragments(&self) -> u64 {
        self.fragments
    }

    /// Whether the viewer asked for the socket to close.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Turns one stream event into messages for the page, appended to `out`.
    pub fn handle_event(&mut self, ev: SinkEvent, out: &mut Vec<MseOutput>) {
        if self.closed {
            return;
        }
        match ev {
            SinkEvent::Tracks(tracks) => self.start(&tracks, out),
            SinkEvent::Frame(f) => {
                let Some(muxer) = &mut self.muxer else { return };
                let frame = &f.frame;
                if !muxer.carries(frame.track) {
                    return;
                }
                if frame.kind == MediaKind::Video && self.wait_keyframe {
                    if !frame.keyframe {
                        return;
                    }
                    self.wait_keyframe = false;
                }
                if let Some(fragment) = muxer.push_parts(frame) {
                    self.fragments += 1;
                    out.push(MseOutput::Fragment(fragment));
                }
            }
            SinkEvent::End => {
                self.finish(out);
                out.push(MseOutput::Text(json!({"type": "ended"}).to_string()));
            }
            SinkEvent::Removed => {
                self.finish(out);
                self.close(1000, "the stream was removed", out);
            }
            SinkEvent::Metadata(_) => {}
        }
    }

    /// Answers one text message from the page.
    pub fn handle_text(&mut self, text: &str, out: &mut Vec<MseOutput>) {
        let kind = serde_json::from_str::<Value>(text)
            .ok()
            .and_then(|v| v.get("type").and_then(Value::as_str).map(str::to_string));
        let reply = match kind.as_deref() {
            Some("ping") => json!({"type": "pong"}),
            Some(other) => error(&format!(
                "unknown message type '{}': this socket only takes {{\"type\":\"ping\"}}",
                clip(other)
            )),
            None => error("messages are JSON objects with a \"type\", e.g. {\"type\":\"ping\"}"),
        };
        out.push(MseOutput::Text(reply.to_string()));
    }

    /// The page sent binary data, which this socket never takes: the socket closes.
    pub fn handle_binary(&mut self, out: &mut Vec<MseOutput>) {
        let why = "this socket takes no binary messages";
        out.push(MseOutput::Text(error(why).to_string()));
        self.close(1003, why, out);
    }

    /// The server ends the viewer (`why`): the socket closes with the matching status.
    pub fn end(&mut self, why: End, out: &mut Vec<MseOutput>) {
        let (code, reason) = match why {
            End::Kicked => (1000, "ended through the management API"),
            End::Shutdown => (1001, "server shutting down"),
        };
        self.close(code, reason, out);
    }

    /// New tracks: a new muxer, `init` and the init segment.
    fn start(&mut self, tracks: &TrackSet, out: &mut Vec<MseOutput>) {
        self.finish(out);
        // Tracks made for WebRTC viewers are not sent: MSE plays the originals.
        let own: Vec<Track> = tracks
            .iter()
            .filter(|t| t.transcoded_from.is_none())
            .cloned()
            .collect();
        let muxer = match Muxer::new(&own) {
            Ok(m) => m,
            Err(e) => {
                let why = format!("'{}' cannot be played over MSE: {e}", self.path);
                out.push(MseOutput::Text(error(&why).to_string()));
                self.close(1003, &why, out);
                return;
            }
        };
        let listed: Vec<Value> = own
            .iter()
            .filter(|t| muxer.carries(t.id))
            .map(|t| {
                let kind = match t.kind() {
                    MediaKind::Video => "video",
                    MediaKind::Audio => "audio",
                };
                json!({"id": t.id.0, "kind": kind, "codec": t.codec.name()})
            })
            .collect();
        let codecs = muxer.codecs().to_string();
        let init = json!({
            "type": "init",
            "mime": format!("video/mp4; codecs=\"{codecs}\""),
            "codecs": codecs,
            "tracks": listed,
        });
        out.push(MseOutput::Text(init.to_string()));
        out.push(MseOutput::Binary(muxer.init_segment()));
        self.muxer = Some(muxer);
        self.wait_keyframe = true;
    }

    /// Sends the frames the muxer holds and forgets it.
    fn finish(&mut self, out: &mut Vec<MseOutput>) {
        if let Some(mut m) = self.muxer.take() {
            for fragment in m.flush_parts() {
                self.fragments += 1;
                out.push(MseOutput::Fragment(fragment));
            }
        }
    }

    fn close(&mut self, code: u16, why: &str, out: &mut Vec<MseOutput>) {
        self.closed = true;
        out.push(MseOutput::Close(code, why.to_string()));
    }
}

fn error(message: &str) -> Value {
    json!({"type": "error", "message": message})
}

/// At most 64 characters of what a peer sent, for an error message.
fn clip(s: &str) -> &str {
    match s.char_indices().nth(64) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests;
