//! Signaling in one place: an offer for a path, from WHEP (`POST /whep/{path}`) or the
//! WebSocket (`offer` message, see [`ws`]), is parsed once into an [`Offer`] and becomes a
//! session on this shard through [`answer`], which first waits (without polling) for the
//! stream's media when its source starts on demand.
//!
//! Validate first, then cost: the path must name a stream that exists or can start
//! ([`find_stream`]: 404 before the SDP is read), the SDP must be an offer with a
//! section that receives audio or video ([`Offer::parse`]: 400) in a codec the stream
//! has, or, while its tracks are unknown, one this server sends (406), and the shard and
//! the viewer's address must have room for one more session (503, 429) — all before the
//! offer subscribes, which is what starts an on-demand camera. A rejected offer never
//! starts a camera. Refusals are logged at most once per second, with a count
//! ([`refused`]).
#![allow(clippy::disallowed_methods)] // A driver: it reads the clock.

pub mod whip;
pub mod ws;

use super::handle::{Handle, Reservation};
use super::offer::{self, NoCommonCodec, OfferError, OfferedMedia};
use super::table::SessionId;
use crate::media::{MediaKind, TrackId, TrackSet};
use crate::session::{self, Signaling};
use crate::shard::Shard;
use crate::stats;
use crate::stream::{PathError, SinkHandle, StreamPath};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;
use tracing::{info, warn};

/// Why an offer got no session, with the HTTP status it maps to.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignalError {
    /// The stream path is not a valid path (400).
    #[error("bad stream path: {0}")]
    BadPath(#[from] PathError),
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
    /// Nothing this server sends can go to this offer, whatever the stream (406).
    #[error(
        "no common codec: this server sends H.264 (packetization-mode=1), H.265, Opus, \
         PCMU or PCMA; the offer accepts {0}"
    )]
    NothingSendable(String),
    /// The shard has no room (503).
    #[error("{0}")]
    Busy(String),
    /// Nothing the publisher's offer sends is a codec this server takes (406).
    #[error("{0}")]
    NothingTaken(offer::NothingTaken),
    /// The path has a publisher or a source already, or clashes with one (409).
    #[error("{0}")]
    Conflict(String),
    /// The viewer's address holds `webrtc.max_sessions_per_ip` sessions already (429).
    #[error(
        "this address already has {0} WebRTC sessions, the most one address may have; \
         end one first"
    )]
    TooManyFromAddress(usize),
}

impl SignalError {
    /// The HTTP status for this error.
    pub fn status(&self) -> u16 {
        match self {
            SignalError::NotFound(_) => 404,
            SignalError::BadPath(_) | SignalError::BadSdp(_) => 400,
            SignalError::NoCommonCodec(_)
            | SignalError::NothingSendable(_)
            | SignalError::NothingTaken(_) => 406,
            SignalError::Conflict(_) => 409,
            SignalError::NoMediaYet(_) | SignalError::Busy(_) => 503,
            SignalError::TooManyFromAddress(_) => 429,
        }
    }

    /// Whether the client should retry shortly (`Retry-After`).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            SignalError::NoMediaYet(_) | SignalError::Busy(_) | SignalError::TooManyFromAddress(_)
        )
    }
}

impl From<OfferError> for SignalError {
    fn from(e: OfferError) -> Self {
        SignalError::BadSdp(e.to_string())
    }
}

/// A viewer's offer for a stream, read once: the path, the SDP and its media sections.
#[derive(Debug, Clone)]
pub struct Offer {
    /// The stream asked for.
    pub path: StreamPath,
    /// The SDP text (str0m reads it again to answer).
    pub sdp: String,
    /// What the offer can receive.
    pub media: Vec<OfferedMedia>,
}

impl Offer {
    /// Reads an offer for the raw stream path `path` (normalised by [`StreamPath`]). An
    /// offer none of whose sections receives audio or video is refused here.
    pub fn parse(path: &str, sdp: impl Into<String>) -> Result<Offer, SignalError> {
        let path = StreamPath::parse(path)?;
        let sdp = sdp.into();
        let media = offer::parse_offer(&sdp)?;
        if !media.iter().any(|m| m.receives && m.kind.is_some()) {
            return Err(SignalError::BadSdp(
                "the offer has no audio or video section that receives".into(),
            ));
        }
        Ok(Offer { path, sdp, media })
    }
}

/// The stream a raw path names, if it exists or can start: published (on any shard, by
/// the directory every shard keeps) or configured (an on-demand source is published,
/// idle, from the start). Decided from the path alone, before any body is read.
pub fn find_stream(shard: &Shard, raw: &str) -> Result<StreamPath, SignalError> {
    let path = StreamPath::parse(raw)?;
    let hub = shard.hub.borrow();
    if hub.owner(path.as_str()).is_none() && hub.tracks(path.as_str()).is_none() {
        return Err(SignalError::NotFound(path.as_str().to_string()));
    }
    Ok(path)
}

/// Records a refused offer from `from` and logs, at most once per second per shard, how
/// many were refused since the last such line, with the latest reason (a flood of junk
/// offers does not flood the log).
pub fn refused(shard: &Shard, rtc: &Handle, from: Option<IpAddr>, e: &SignalError) {
    if let Some(n) = rtc.note_refusal(Instant::now()) {
        info!(
            shard = shard.id,
            refused = n,
            latest_from = ?from,
            latest_status = e.status(),
            "WebRTC offers refused (at most one such line per second): latest: {e}"
        );
    }
}

/// Where an offer came from: the signaling and the viewer's address.
#[derive(Debug, Clone, Copy)]
pub struct Via {
    /// WHEP or the WebSocket.
    pub signaling: Signaling,
    /// The viewer's address (of its signaling connection).
    pub peer: Option<SocketAddr>,
}

impl Via {
    /// The viewer's IP address.
    pub fn ip(&self) -> Option<IpAddr> {
        self.peer.map(|p| p.ip())
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
    /// What the viewer should know about the stream it gets (see [`bframes_warning`]):
    /// WHEP sends it as a `Warning` header, `/ws` as the answer's `warning`.
    pub warning: Option<String>,
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

/// Answers `offer` from the viewer `via` with a new session on this shard: checks
/// that str0m reads the offer, that the shard has room and that `from` has fewer than
/// `webrtc.max_sessions_per_ip` sessions (the place is taken now, so offers waiting for
/// a camera count too); only then waits for the stream's media when its source starts
/// on demand ([`await_media`]), which is what starts the source.
pub async fn answer(
    shard: &Shard,
    rtc: &Handle,
    offer: &Offer,
    via: Via,
) -> Result<Created, SignalError> {
    let from = via.ip();
    str0m::change::SdpOffer::from_sdp_string(&offer.sdp)
        .map_err(|e| SignalError::BadSdp(e.to_string()))?;
    check_codecs(shard, offer)?;
    check_room(shard, rtc)?;
    let limit = shard.shared.settings.config.webrtc.max_sessions_per_ip;
    let Some(place) = rtc.registry().reserve(from, limit) else {
        stats::add(&shard.stats().webrtc_refused_per_ip, 1);
        return Err(SignalError::TooManyFromAddress(limit));
    };
    let _demand = await_media(shard, offer.path.as_str()).await;
    create_session(shard, rtc, offer, place, via)
}

/// 406 when nothing the stream has (if its tracks are known yet) or nothing this server
/// sends at all can go to the offer.
fn check_codecs(shard: &Shard, offer: &Offer) -> Result<(), SignalError> {
    if let Ok(Some(tracks)) = tracks_of(shard, offer.path.as_str()) {
        offer::select(&offer.media, &tracks).map_err(SignalError::NoCommonCodec)?;
    }
    if offer::usable(&offer.media) {
        return Ok(());
    }
    let mut names: Vec<String> = Vec::new();
    for c in offer
        .media
        .iter()
        .filter(|m| m.receives)
        .flat_map(|m| &m.codecs)
    {
        let n = c.name.to_ascii_lowercase();
        if !names.contains(&n) {
            names.push(n);
        }
    }
    let accepts = if names.is_empty() {
        "nothing".to_string()
    } else {
        names.join(", ")
    };
    Err(SignalError::NothingSendable(accepts))
}

/// Busy when the shard is at `webrtc.max_sessions`.
pub(super) fn check_room(shard: &Shard, rtc: &Handle) -> Result<(), SignalError> {
    if rtc.engine().has_room() {
        return Ok(());
    }
    stats::add(&shard.stats().webrtc_refused, 1);
    Err(SignalError::Busy(format!(
        "this server is at its limit of {} WebRTC viewers per core; try again later",
        rtc.engine().max_sessions()
    )))
}

/// Waits until `path` has tracks, when it is published but has none yet and its source
/// says how long its first media may take ([`crate::stream::SourceInfo::start_timeout`],
/// known on every shard): an on-demand camera that starts pulling only now, a camera
/// that is connecting, a publisher between `publish` and its first media. The hub
/// wakes the wait when the path gets tracks or goes away. The returned subscription is
/// the demand that keeps an on-demand source connecting; hold it until the real viewer
/// has subscribed. Returns at once (None) when the stream has tracks, does not exist, or
/// its source gives no start time-out (a file source has media from the start).
pub async fn await_media(shard: &Shard, path: &str) -> Option<SinkHandle> {
    use futures_lite::future;
    if !matches!(tracks_of(shard, path), Ok(None)) {
        return None;
    }
    let limit = shard.hub.borrow().start_timeout(path)?;
    let sink = shard.hub.borrow_mut().subscribe(path).ok()?;
    let start = Instant::now();
    let media = MediaWait {
        shard,
        path,
        key: None,
    };
    let timeout = async { glommio::timer::sleep(limit).await };
    let stop = async { shard.shutdown.wait().await };
    future::or(media, future::or(timeout, stop)).await;
    info!(
        shard = shard.id,
        path,
        waited_ms = start.elapsed().as_millis() as u64,
        "viewer waited for the stream's media"
    );
    Some(sink)
}

/// Resolves when `path` has tracks or is gone; registered with the hub meanwhile.
struct MediaWait<'a> {
    shard: &'a Shard,
    path: &'a str,
    key: Option<u64>,
}

impl Future for MediaWait<'_> {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if !matches!(tracks_of(self.shard, self.path), Ok(None)) {
            return Poll::Ready(());
        }
        let mut hub = self.shard.hub.borrow_mut();
        if let Some(key) = self.key {
            hub.remove_media_waiter(self.path, key);
        }
        let key = hub.add_media_waiter(self.path, cx.waker());
        drop(hub);
        self.key = Some(key);
        Poll::Pending
    }
}

impl Drop for MediaWait<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key {
            self.shard
                .hub
                .borrow_mut()
                .remove_media_waiter(self.path, key);
        }
    }
}

/// Creates a WebRTC session on this shard for `offer`, counted under the viewer's
/// address through `place`, and lists it in the management API.
fn create_session(
    shard: &Shard,
    rtc: &Handle,
    offer: &Offer,
    place: Reservation<'_>,
    via: Via,
) -> Result<Created, SignalError> {
    let path = offer.path.as_str();
    let tracks = tracks_of(shard, path)?.ok_or_else(|| SignalError::NoMediaYet(path.into()))?;
    let sel = offer::select(&offer.media, &tracks).map_err(SignalError::NoCommonCodec)?;
    check_room(shard, rtc)?;
    let sink = shard
        .hub
        .borrow_mut()
        .subscribe_as(path, crate::stream::Viewer::Browser)
        .map_err(|_| SignalError::NotFound(path.to_string()))?;
    let hub_path = sink.path.clone();
    let now = Instant::now();
    let (id, answer) = rtc
        .engine()
        .create(now, &offer.sdp, &offer.media, &sel, sink)
        .map_err(|e| match e {
            super::engine::CreateError::Busy(n) => {
                SignalError::Busy(format!("this server shard has its maximum of {n} sessions"))
            }
            other => SignalError::BadSdp(other.to_string()),
        })?;
    rtc.registry().insert_reserved(id, shard.id, place);
    let listed = session::Info {
        protocol: session::Protocol::Webrtc,
        kind: session::Kind::Viewer,
        signaling: Some(via.signaling),
        path: Some(hub_path.clone()),
        remote: via.peer,
    };
    rtc.list(&shard.sessions, id, listed);
    stats::add(&shard.stats().webrtc_sessions, 1);
    stats::add(&shard.stats().webrtc_sessions_total, 1);
    let codecs: Vec<&str> = sel.send.iter().map(|c| c.codec.name()).collect();
    let warning = sel
        .send
        .iter()
        .filter(|c| c.codec.kind() == MediaKind::Video)
        .any(|c| has_bframes(shard, &hub_path, c.track))
        .then(|| bframes_warning(&hub_path));
    if let Some(w) = &warning {
        warn!(shard = shard.id, session = %id, path = %hub_path, "{w}");
    }
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
        warning,
    })
}

/// The warning a viewer of `path` gets when the video it is sent has B-frames.
pub fn bframes_warning(path: &str) -> String {
    format!(
        "stream '{path}' has B-frames: browsers' WebRTC players stutter on them; the page \
         plays it over MSE"
    )
}

/// Whether track `track` of `path` has had frames out of decode order (B-frames), as
/// the owner shard's last snapshot says (the one the API lists, refreshed every second:
/// the bit is set a few frames into a stream, and known on the owner only).
fn has_bframes(shard: &Shard, path: &str, track: TrackId) -> bool {
    let Some(owner) = shard.hub.borrow().owner(path) else {
        return false;
    };
    shard.shared.snapshots[owner].lock().ok().is_some_and(|s| {
        s.paths
            .iter()
            .find(|p| &*p.info.path == path)
            .is_some_and(|p| p.info.bframes(track))
    })
}

#[cfg(test)]
mod tests;
