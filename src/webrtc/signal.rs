//! Signaling entry points shared by WHEP and the WebSocket: turn an offer for a path into
//! a session on this shard, and end sessions wherever they live.
#![allow(clippy::disallowed_methods)] // A driver: it reads the clock.

use super::handle::Handle;
use super::offer::{self, NoCommonCodec, OfferError};
use super::table::SessionId;
use crate::media::TrackSet;
use crate::shard::Shard;
use crate::stats;
use std::sync::Arc;
use std::time::Instant;
use tracing::info;

/// Why an offer got no session, with the HTTP status it maps to.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignalError {
    /// No such stream (404).
    #[error("no stream '{0}'")]
    NotFound(String),
    /// The stream is published but has no tracks yet (503, retry).
    #[error("stream '{0}' has no media yet; retry in a moment")]
    NoMediaYet(String),
    /// The offer is not usable SDP (400).
    #[error("bad SDP offer: {0}")]
    BadSdp(String),
    /// Nothing the stream has can go to this offer (406).
    #[error("{0}")]
    NoCommonCodec(NoCommonCodec),
    /// The shard has no room (503).
    #[error("{0}")]
    Busy(String),
}

impl SignalError {
    /// The HTTP status for this error.
    pub fn status(&self) -> u16 {
        match self {
            SignalError::NotFound(_) => 404,
            SignalError::BadSdp(_) => 400,
            SignalError::NoCommonCodec(_) => 406,
            SignalError::NoMediaYet(_) | SignalError::Busy(_) => 503,
        }
    }
}

impl From<OfferError> for SignalError {
    fn from(e: OfferError) -> Self {
        SignalError::BadSdp(e.to_string())
    }
}

/// A session created from an offer.
#[derive(Debug)]
pub struct Created {
    /// The session's id.
    pub id: SessionId,
    /// The stream path as the hub names it.
    pub path: Arc<str>,
    /// The SDP answer.
    pub answer: String,
}

impl Created {
    /// The answer's ICE candidates (`candidate:...` values, at most eight) with the
    /// `a=mid` of the first media section, for signaling that sends them one by one as
    /// well (they are all in the answer already: the server is ICE-lite).
    pub fn candidates(&self) -> (&str, Vec<&str>) {
        answer_candidates(&self.answer)
    }
}

/// See [`Created::candidates`].
fn answer_candidates(answer: &str) -> (&str, Vec<&str>) {
    let attrs = answer.lines().filter_map(|l| l.trim().strip_prefix("a="));
    let mid = attrs
        .clone()
        .find_map(|a| a.strip_prefix("mid:"))
        .unwrap_or("0");
    let candidates = attrs
        .filter(|a| a.starts_with("candidate:"))
        .take(8)
        .collect();
    (mid, candidates)
}

/// The tracks of `path`: from this shard's hub, or else from the owner shard's last
/// published snapshot (a relay that does not exist yet has no tracks locally).
fn tracks_of(shard: &Shard, path: &str) -> Result<Option<TrackSet>, SignalError> {
    let hub = shard.hub.borrow();
    if let Some(t) = hub.tracks(path) {
        return Ok(Some(t));
    }
    let owner = hub
        .owner(path)
        .ok_or_else(|| SignalError::NotFound(path.to_string()))?;
    drop(hub);
    let snap = shard.shared.snapshots[owner].lock().ok().and_then(|s| {
        s.paths
            .iter()
            .find(|p| &*p.info.path == path)
            .and_then(|p| p.info.tracks.clone())
    });
    Ok(snap)
}

/// Waits until `path` has tracks, when it is published but has none yet: an on-demand
/// camera that starts pulling only now, or a publisher between `publish` and its first
/// media. The returned subscription is the demand that keeps an on-demand source
/// connecting; hold it until the real viewer has subscribed. Returns at once (None) when
/// the stream has tracks or does not exist; gives up after `rtsp.on_demand_start_timeout`.
pub async fn await_media(shard: &Shard, path: &str) -> Option<crate::stream::SinkHandle> {
    if !matches!(tracks_of(shard, path), Ok(None)) {
        return None;
    }
    let sink = shard.hub.borrow_mut().subscribe(path).ok()?;
    let limit = shard.shared.settings.config.rtsp.on_demand_start_timeout.0;
    let start = Instant::now();
    while start.elapsed() < limit && !shard.shutdown.is_fired() {
        glommio::timer::sleep(std::time::Duration::from_millis(20)).await;
        match tracks_of(shard, path) {
            Ok(None) => {}
            _ => break,
        }
    }
    info!(
        shard = shard.id,
        path,
        waited_ms = start.elapsed().as_millis() as u64,
        "viewer waited for the stream's media"
    );
    Some(sink)
}

/// Creates a WebRTC session on this shard for a viewer of `path` who sent `offer_sdp`.
pub fn create_session(
    shard: &Shard,
    rtc: &Handle,
    path: &str,
    offer_sdp: &str,
) -> Result<Created, SignalError> {
    let offer = offer::parse_offer(offer_sdp)?;
    let tracks = tracks_of(shard, path)?.ok_or_else(|| SignalError::NoMediaYet(path.into()))?;
    let sel = offer::select(&offer, &tracks).map_err(SignalError::NoCommonCodec)?;
    if !rtc.engine().has_room() {
        stats::add(&shard.stats().webrtc_refused, 1);
        return Err(SignalError::Busy(format!(
            "this server is at its limit of {} WebRTC viewers per core; try again later",
            shard.shared.settings.config.webrtc.max_sessions
        )));
    }
    let sink = shard
        .hub
        .borrow_mut()
        .subscribe(path)
        .map_err(|_| SignalError::NotFound(path.to_string()))?;
    let hub_path = sink.path.clone();
    let now = Instant::now();
    let (id, answer) = rtc
        .engine()
        .create(now, offer_sdp, &offer, &sel, sink)
        .map_err(|e| match e {
            super::engine::CreateError::Busy(n) => {
                SignalError::Busy(format!("this server shard has its maximum of {n} sessions"))
            }
            other => SignalError::BadSdp(other.to_string()),
        })?;
    rtc.registry().insert(id, shard.id);
    stats::add(&shard.stats().webrtc_sessions, 1);
    stats::add(&shard.stats().webrtc_sessions_total, 1);
    let codecs: Vec<&str> = sel.send.iter().map(|c| c.codec.name()).collect();
    info!(
        shard = shard.id,
        session = %id,
        path = %hub_path,
        codecs = ?codecs,
        gop_frames = shard.hub.borrow().gop(&hub_path).len(),
        "webrtc session created"
    );
    Ok(Created {
        id,
        path: hub_path,
        answer,
    })
}

#[cfg(test)]
mod tests {
    use super::answer_candidates;

    #[test]
    fn candidates_and_first_mid_of_an_answer() {
        let answer = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:v0\r\n\
a=candidate:1 1 udp 2130706431 127.0.0.1 8189 typ host\r\n\
a=candidate:2 1 udp 2130706175 192.0.2.1 8189 typ host\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:a1\r\n";
        let (mid, c) = answer_candidates(answer);
        assert_eq!(mid, "v0");
        assert_eq!(
            c,
            [
                "candidate:1 1 udp 2130706431 127.0.0.1 8189 typ host",
                "candidate:2 1 udp 2130706175 192.0.2.1 8189 typ host"
            ]
        );
        assert_eq!(answer_candidates("v=0\r\n"), ("0", vec![]));
    }
}
