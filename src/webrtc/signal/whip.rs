//! A publisher's offer (WHIP): checked in full, then the path is claimed in the hub and
//! a publisher session created on this shard, whose UDP port the publisher then uses;
//! the stream is owned here. Validate first, then cost, as for viewers: the SDP (400),
//! a codec this server takes (406), room on the shard (503) and for the address (429),
//! then the path (409 when it has a publisher or a source, or clashes with one).
#![allow(clippy::disallowed_methods)] // A driver: it reads the clock.

use super::{Created, SignalError, Via, check_room};
use crate::session;
use crate::shard::Shard;
use crate::stats;
use crate::stream::{SourceInfo, SourceState, StreamPath};
use crate::webrtc::Handle;
use crate::webrtc::offer;
use std::time::{Duration, Instant};
use tracing::info;

/// How long an offer for the stream may wait for the publisher's first media.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Creates a publisher session for `sdp`, publishing `path` on this shard.
pub fn publish(
    shard: &Shard,
    rtc: &Handle,
    path: &StreamPath,
    sdp: &str,
    via: Via,
) -> Result<Created, SignalError> {
    let media = offer::parse_offer(sdp)?;
    if !media.iter().any(|m| m.sends && m.kind.is_some()) {
        return Err(SignalError::BadSdp(
            "the offer has no audio or video section that sends".into(),
        ));
    }
    str0m::change::SdpOffer::from_sdp_string(sdp)
        .map_err(|e| SignalError::BadSdp(e.to_string()))?;
    let take = offer::select_ingest(&media).map_err(SignalError::NothingTaken)?;
    check_room(shard, rtc)?;
    let limit = shard.shared.settings.config.webrtc.max_sessions_per_ip;
    let Some(place) = rtc.registry().reserve(via.ip(), limit) else {
        stats::add(&shard.stats().webrtc_refused_per_ip, 1);
        return Err(SignalError::TooManyFromAddress(limit));
    };
    let info = SourceInfo {
        kind: "whip",
        url: match via.peer {
            Some(a) => format!("whip://{a}"),
            None => "whip".into(),
        },
        state: SourceState::Live,
        stats: None,
        start_timeout: Some(START_TIMEOUT),
        continues_timeline: false,
    };
    path.check_claim(shard.shared.streams().configured_paths())
        .map_err(|e| SignalError::Conflict(format!("cannot publish: {e}")))?;
    let hub_path = shard
        .hub
        .borrow_mut()
        .publish(path.as_str(), info)
        .map_err(|e| SignalError::Conflict(format!("cannot publish: {e}")))?;
    let created =
        rtc.engine()
            .create_publisher(Instant::now(), sdp, &media, &take, hub_path.clone());
    let (id, answer) = match created {
        Ok(c) => c,
        Err(e) => {
            let _ = shard.hub.borrow_mut().unpublish(&hub_path);
            return Err(match e {
                crate::webrtc::engine::CreateError::Busy(n) => {
                    SignalError::Busy(format!("this server shard has its maximum of {n} sessions"))
                }
                other => SignalError::BadSdp(other.to_string()),
            });
        }
    };
    rtc.registry().insert_reserved(id, shard.id, place);
    rtc.registry().set_publishing(id, hub_path.clone());
    let listed = session::Info {
        protocol: session::Protocol::Webrtc,
        kind: session::Kind::Publisher,
        signaling: Some(via.signaling),
        path: Some(hub_path.clone()),
        remote: via.peer,
    };
    rtc.list(&shard.sessions, id, listed);
    stats::add(&shard.stats().webrtc_sessions, 1);
    stats::add(&shard.stats().webrtc_sessions_total, 1);
    stats::add(&shard.stats().whip_publishers, 1);
    let codecs: Vec<&str> = take.iter().map(|t| t.codec.name()).collect();
    info!(
        shard = shard.id,
        session = %id,
        path = %hub_path,
        codecs = ?codecs,
        from = ?via.peer,
        "whip publish started"
    );
    Ok(Created {
        id,
        path: hub_path,
        answer,
        warning: None,
    })
}
