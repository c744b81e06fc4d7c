//! The RTMP connection driver: owns the socket and the clock, feeds the sans-IO
//! [`ServerSession`] and drains its output, and connects publishers and players to the
//! shard's hub (the hub's answer to a publish or play goes back to the session). Protocol
//! decisions and timers live in the session; I/O policy (merged writes, send buffers)
//! lives here. RTMPS is the same driver over a TLS stream ([`crate::tls`]): the handshake
//! comes first, bounded by `rtmp.handshake_timeout`.
#![allow(clippy::disallowed_methods)] // A driver: it reads the clock.

use super::proto::SessionError;
use super::proto::session::{
    Access, Event, Input, Output, ServerSession, SessionConfig, encode_media_parts,
};
use crate::auth::{Action, Credentials, Verdict};
use crate::media::flv::{self, DemuxOutput, Demuxer};
use crate::media::{Track, TrackSet};
use crate::session::{self, Kick, Protocol, SessionGuard};
use crate::shard::{ConnGuard, Listener, Shard, ShardRef, Wake};
use crate::stats;
use crate::stream::{ClaimError, HubError, SinkEvent, SinkHandle, SourceInfo, StreamPath};
use crate::tls::{Acceptor, Stream};
use bytes::{Bytes, BytesMut};
use futures_lite::future;
use glommio::net::{TcpListener, TcpStream};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tracing::{debug, info, warn};

/// Read buffer of a publisher (media comes in large messages).
const READ_CHUNK: usize = 64 * 1024;
/// Read buffer of other connections (handshake, commands, a player's acknowledgements):
/// small, as a thousand players hold one each.
const READ_CHUNK_SMALL: usize = 4 * 1024;
/// Most sink events handled before the player's output is written out.
const PLAYER_BATCH: usize = 1024;

/// Accepts RTMP connections (RTMPS with `tls`) until the task is dropped. One refused at
/// a limit is closed at once.
pub async fn serve(shard: ShardRef, listener: TcpListener, tls: Option<Acceptor>) {
    let serving = shard.clone();
    crate::shard::accept_loop(
        shard,
        Listener::Rtmp,
        listener,
        |stream, guard| {
            glommio::spawn_local(connection(serving.clone(), stream, guard, tls.clone())).detach();
        },
        |stream, _| drop(stream),
    )
    .await
}

/// Why a connection ended, for the log.
#[derive(Debug, thiserror::Error)]
enum End {
    /// The peer closed the connection.
    #[error("closed by the peer")]
    Closed,
    /// An expected end (refused request, session over, time-out, shutdown).
    #[error("{0}")]
    Quiet(String),
    /// The socket failed; the kind is kept for the log and for tests.
    #[error("{op}: {source}")]
    Io {
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// The peer broke the protocol.
    #[error("protocol error: {0}")]
    Protocol(#[from] SessionError),
    /// The session refused what the driver asked of it (a bug, not the peer's fault).
    #[error("session refused {0}")]
    Refused(&'static str),
}

/// What the connection is doing.
enum Role {
    /// Handshake, connect, createStream...
    Control,
    /// Publishing `path`.
    Publisher(Box<Publisher>),
    /// Playing.
    Player(Player),
}

struct Publisher {
    path: Arc<str>,
    demux: Demuxer,
    /// Listed in the management API while publishing.
    session: SessionGuard,
    /// When the latest read from the socket returned: the arrival time of the frames
    /// it completed.
    arrived: Instant,
}

struct Player {
    sink: SinkHandle,
    /// Listed in the management API while playing.
    session: SessionGuard,
    tracks: Option<TrackSet>,
    ended: bool,
    audio: bool,
    video: bool,
    /// Arrival times of the live frames handed to the session since the last write.
    departing: Vec<Instant>,
}

impl Role {
    /// A read from the socket returned at `now`: a publisher's frames completed by it
    /// arrived then.
    fn read_at(&mut self, now: Instant) {
        if let Role::Publisher(p) = self {
            p.arrived = now;
        }
    }

    /// The output was written to the socket at `now`: a player's live frames in it
    /// left then (one latency observation each).
    fn written_at(&mut self, shard: &Shard, now: Instant) {
        if let Role::Player(p) = self {
            for at in p.departing.drain(..) {
                shard.latency().rtmp.observe(at, now);
            }
        }
    }

    /// The session registered for the publisher or player.
    fn session(&self) -> Option<&SessionGuard> {
        match self {
            Role::Control => None,
            Role::Publisher(p) => Some(&p.session),
            Role::Player(p) => Some(&p.session),
        }
    }
}

/// Who is at the other end, as the log and the session list name it.
#[derive(Debug, Clone, Copy)]
struct Peer {
    addr: Option<SocketAddr>,
    protocol: Protocol,
}

impl Peer {
    /// Registers the connection's session: `kind` of `path`.
    fn register(self, shard: &Shard, kind: session::Kind, path: &Arc<str>) -> SessionGuard {
        let info = session::Info {
            protocol: self.protocol,
            kind,
            signaling: None,
            path: Some(path.clone()),
            remote: self.addr,
        };
        shard.sessions.register(SystemTime::now(), info)
    }
}

/// What wakes a connection besides its socket.
enum Poke {
    /// A player's next stream event.
    Media(SinkEvent),
    /// The session was ended through the management API.
    Kicked,
}

/// The shard's answers to the session's publish/play questions, for the peer at the
/// address.
struct ShardAccess(ShardRef, Option<std::net::IpAddr>);

impl Access for ShardAccess {
    fn publish_key(&self, path: &StreamPath) -> Option<String> {
        let global = self.0.shared.settings.config.rtmp.publish_key.as_deref();
        let streams = self.0.shared.streams();
        streams.publish_key(path, global).map(str::to_string)
    }

    fn check_claim(&self, path: &StreamPath) -> Result<(), ClaimError> {
        path.check_claim(self.0.shared.streams().configured_paths())?;
        self.0.hub.borrow().check_claim(path)
    }

    fn exists(&self, path: &StreamPath) -> bool {
        self.0.hub.borrow().owner(path).is_some()
    }

    fn authorize(&self, action: Action, path: &StreamPath, creds: &Credentials) -> Verdict {
        self.0.authorize(action, Some(path.as_str()), self.1, creds)
    }
}

async fn connection(shard: ShardRef, tcp: TcpStream, _guard: ConnGuard, tls: Option<Acceptor>) {
    let peer = tcp.peer_addr().ok();
    let cfg = &shard.shared.settings.config.rtmp;
    let _ = tcp.set_nodelay(true);
    let _ = tcp.set_write_timeout(Some(cfg.send_timeout.0));
    if cfg.send_buffer.0 > 0 {
        crate::shard::set_send_buffer(&tcp, cfg.send_buffer.as_usize());
    }
    let mut stream = match &tls {
        None => Stream::Plain(tcp),
        Some(acceptor) => {
            let timeout = cfg.handshake_timeout.0;
            match shard
                .accept_tls(acceptor, tcp, timeout, Listener::Rtmp)
                .await
            {
                Some(s) => s,
                None => return,
            }
        }
    };
    let seed = seed(peer);
    let config = SessionConfig {
        out_chunk_size: cfg.chunk_size,
        max_message_len: cfg.max_message_bytes.as_usize(),
        handshake_timeout: cfg.handshake_timeout.0,
        idle_timeout: cfg.idle_timeout.0,
        ..SessionConfig::default()
    };
    let mut session = ServerSession::new(Instant::now(), config, seed)
        .with_access(Box::new(ShardAccess(shard.clone(), peer.map(|p| p.ip()))));
    let mut role = Role::Control;
    let mut pending = Vec::new();
    let protocol = match tls {
        None => Protocol::Rtmp,
        Some(_) => Protocol::Rtmps,
    };
    let who = Peer {
        addr: peer,
        protocol,
    };
    let end = run(
        &shard,
        &mut stream,
        &mut session,
        &mut role,
        who,
        &mut pending,
    )
    .await;
    // Whatever ended the connection, the session may have a last word (an error status).
    loop {
        match session.poll_output() {
            Output::Transmit(bytes) => pending.push(bytes),
            Output::Event(_) => {}
            Output::Timeout(_) => break,
        }
    }
    if write_output(&shard, &mut stream, &mut pending)
        .await
        .is_ok()
    {
        stream.close().await;
    }
    if let Role::Publisher(p) = &role {
        let _ = shard.hub.borrow_mut().unpublish(&p.path);
    }
    match &end {
        End::Closed => debug!(peer = ?peer, "rtmp connection closed"),
        End::Quiet(why) => info!(peer = ?peer, "rtmp connection closed: {why}"),
        End::Io { .. } | End::Protocol(_) | End::Refused(_) => {
            warn!(peer = ?peer, "rtmp connection closed: {end}")
        }
    }
}

/// The connection's loop: wait for input, media to send (players), the session's timer or
/// shutdown; hand it to the session; act on its output; write.
async fn run(
    shard: &Shard,
    stream: &mut Stream,
    session: &mut ServerSession,
    role: &mut Role,
    peer: Peer,
    pending: &mut Vec<Bytes>,
) -> End {
    let mut tmp = vec![0u8; READ_CHUNK_SMALL];
    let mut last_write: Option<Instant> = None;
    let mut timeout = Instant::now();
    let mut media = false;
    // Bytes written on the connection, for its session's counters (the session core
    // counts what it read).
    let mut bytes_out = 0u64;
    loop {
        if let Some(end) = drain(shard, session, role, peer, pending, &mut timeout) {
            return end;
        }
        let written = write_output(shard, stream, pending).await;
        if let Ok(n) = &written {
            bytes_out += *n as u64;
        }
        if let Some(s) = role.session() {
            s.counters().set_bytes(session.bytes_received(), bytes_out);
        }
        match written {
            // Only media sends start a merge interval: the replies to `play` must not
            // hold back the first frames.
            Ok(n) if n > 0 && media => {
                let now = Instant::now();
                last_write = Some(now);
                role.written_at(shard, now);
            }
            Ok(_) => {}
            Err(source) => {
                return End::Io {
                    op: "write",
                    source,
                };
            }
        }
        if session.is_closed() {
            return End::Quiet("session ended".into());
        }
        if matches!(role, Role::Publisher(_)) && tmp.len() < READ_CHUNK {
            tmp.resize(READ_CHUNK, 0);
        }
        let sink = match role {
            Role::Player(p) => Some(p.sink.queue.clone()),
            _ => None,
        };
        let kick = role.session().map(SessionGuard::signal);
        let deadline = timeout.saturating_duration_since(Instant::now());
        let wake = shard
            .wait_io(stream, &mut tmp, poke(sink, kick), deadline)
            .await;
        media = matches!(wake, Wake::Other(Poke::Media(_)));
        match wake {
            Wake::Read(Ok(0)) => return End::Closed,
            Wake::Read(Ok(n)) => {
                let now = Instant::now();
                role.read_at(now);
                if let Err(e) = session.handle_input(now, Input::Receive(&tmp[..n])) {
                    return End::Protocol(e);
                }
            }
            Wake::Read(Err(source)) => return End::Io { op: "read", source },
            Wake::Other(Poke::Media(ev)) => {
                if let Role::Player(p) = role {
                    play_batch(shard, session, p, ev, last_write).await;
                    p.session.counters().set_dropped(p.sink.queue.dropped());
                }
            }
            Wake::Other(Poke::Kicked) => {
                return End::Quiet("ended through the management API".into());
            }
            Wake::Timeout => session.handle_timeout(Instant::now()),
            Wake::Shutdown => {
                if let Role::Player(_) = role {
                    session.send_unpublish_notify();
                }
                return End::Quiet("server shutting down".into());
            }
        }
        // Input that keeps coming (a publisher's pings) must not keep a due timer from
        // firing.
        let now = Instant::now();
        if now >= timeout {
            session.handle_timeout(now);
        }
    }
}

/// The next stream event of a player's `sink`, or the kick of its session.
async fn poke(sink: Option<Rc<crate::stream::SinkQueue>>, kick: Option<Rc<Kick>>) -> Poke {
    let media = async {
        match &sink {
            Some(q) => Poke::Media(q.recv().await),
            None => future::pending().await,
        }
    };
    let kicked = async {
        match &kick {
            Some(k) => {
                k.wait().await;
                Poke::Kicked
            }
            None => future::pending().await,
        }
    };
    future::or(media, kicked).await
}

/// Sends a player's stream event and whatever else is queued behind it.
///
/// Merged writes: at most one send per [`merge_interval`] per player (the first one after
/// joining, or after a pause of the stream, goes at once), on the shard's grid
/// ([`next_flush`]). Frames that arrive meanwhile wait in the player's queue and go in the
/// same send.
async fn play_batch(
    shard: &Shard,
    session: &mut ServerSession,
    p: &mut Player,
    ev: SinkEvent,
    last_write: Option<Instant>,
) {
    play_event(shard, session, p, ev);
    let cfg = &shard.shared.settings.config.rtmp;
    let merge = merge_interval(
        cfg.merge_write.0,
        cfg.merge_write_max.0,
        session.peer_buffer_ms(),
    );
    if let Some(at) = last_write {
        let now = Instant::now();
        let due = next_flush(flush_epoch(), at, merge);
        if due > now {
            glommio::timer::sleep(due - now).await;
        }
    }
    // Take what else is queued, then write it all out.
    for _ in 1..PLAYER_BATCH {
        let Some(ev) = p.sink.queue.try_pop() else {
            break;
        };
        play_event(shard, session, p, ev);
    }
}

/// How long a player's writes are merged: `base` (`rtmp.merge_write`), or a tenth of the
/// buffer the player announced (Set Buffer Length) when that is longer, up to `max`
/// (`rtmp.merge_write_max`). A player that buffers seconds starts that much behind and
/// does not notice a send every 250 ms instead of every 100 ms; each send wakes it and
/// costs the server a system call and the kernel a packet, so fewer and larger sends are
/// cheaper for both.
fn merge_interval(base: Duration, max: Duration, buffer_ms: Option<u32>) -> Duration {
    let by_buffer = Duration::from_millis(u64::from(buffer_ms.unwrap_or(0)) / 10);
    base.max(by_buffer.min(max))
}

/// The start of the merge grid: one instant for the whole process.
fn flush_epoch() -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// When a player whose last media write was at `last` may be written to next: the first
/// point after `last` of a grid of `merge` steps from `epoch` (`last` itself with no
/// merging). Every player of a shard with the same interval is due at the same instants,
/// so their timers fire in one wake-up of the shard, and each tick sends to all of them
/// in one pass instead of waking the shard once per player.
fn next_flush(epoch: Instant, last: Instant, merge: Duration) -> Instant {
    let step = merge.as_nanos();
    if step == 0 {
        return last;
    }
    let since = last.saturating_duration_since(epoch).as_nanos();
    let ticks = since / step + 1;
    // Past u64 nanoseconds (584 years after the epoch) the grid point saturates.
    epoch + Duration::from_nanos(u64::try_from(ticks * step).unwrap_or(u64::MAX))
}

/// Drains the session's output: bytes into `pending`, events acted on, the next timeout
/// into `timeout`. Returns why the connection ends, if it does.
fn drain(
    shard: &Shard,
    session: &mut ServerSession,
    role: &mut Role,
    peer: Peer,
    pending: &mut Vec<Bytes>,
    timeout: &mut Instant,
) -> Option<End> {
    loop {
        match session.poll_output() {
            Output::Transmit(bytes) => pending.push(bytes),
            Output::Event(ev) => {
                if let Some(end) = handle_event(shard, session, role, peer, ev) {
                    return Some(end);
                }
            }
            Output::Timeout(at) => {
                *timeout = at;
                return None;
            }
        }
    }
}

/// Writes every pending output buffer ([`Stream::write_bufs`]: one `sendmsg` when the
/// socket has room, the rest bounded by `rtmp.send_timeout`) and counts the bytes.
async fn write_output(
    shard: &Shard,
    stream: &mut Stream,
    pending: &mut Vec<Bytes>,
) -> std::io::Result<usize> {
    let n = stream.write_bufs(pending).await?;
    stats::add(&shard.stats().bytes_out, n as u64);
    Ok(n)
}

/// Reacts to one event of the session. Returns why the connection ends, if it does.
fn handle_event(
    shard: &Shard,
    session: &mut ServerSession,
    role: &mut Role,
    who: Peer,
    ev: Event,
) -> Option<End> {
    let peer = who.addr;
    match ev {
        Event::Connected { app, flash_ver, .. } => {
            debug!(peer = ?peer, app, flash_ver = ?flash_ver, "rtmp connect");
        }
        Event::PublishRequested { path, .. } => return publish(shard, session, role, who, path),
        Event::PlayRequested { path, .. } => return play(shard, session, role, who, path),
        Event::Metadata(body) => {
            if let Role::Publisher(p) = role {
                let _ = shard.hub.borrow_mut().set_metadata(&p.path, body);
            }
        }
        Event::Media {
            type_id,
            timestamp,
            body,
        } => {
            if let Role::Publisher(p) = role
                && !publish_media(shard, p, type_id, timestamp, &body)
            {
                let path = p.path.clone();
                *role = Role::Control;
                return Some(End::Quiet(format!(
                    "publisher of '{path}' cut off: the stream was published on another shard at the same time"
                )));
            }
        }
        Event::Unpublished => {
            if let Role::Publisher(p) = role {
                let _ = shard.hub.borrow_mut().unpublish(&p.path);
                info!(peer = ?peer, path = %p.path, "rtmp publish stopped");
                *role = Role::Control;
                return Some(End::Closed);
            }
        }
        Event::PlayStopped => {
            if let Role::Player(_) = role {
                return Some(End::Closed);
            }
        }
        Event::ReceiveAudio(on) => {
            if let Role::Player(p) = role {
                p.audio = on;
            }
        }
        Event::ReceiveVideo(on) => {
            if let Role::Player(p) = role {
                p.video = on;
            }
        }
        Event::Closed(reason) => return Some(End::Quiet(reason.to_string())),
    }
    None
}

/// Publishes `path` (allowed by the session) in the hub and reports the hub's answer.
fn publish(
    shard: &Shard,
    session: &mut ServerSession,
    role: &mut Role,
    who: Peer,
    path: StreamPath,
) -> Option<End> {
    let peer = who.addr;
    let info = SourceInfo {
        kind: "rtmp",
        url: match peer {
            Some(a) => format!("rtmp://{a}"),
            None => "rtmp".into(),
        },
        state: crate::stream::SourceState::Live,
        stats: None,
        // An offer that comes between `publish` and the first media waits as long as a
        // new publisher has to get going.
        start_timeout: Some(shard.shared.settings.config.rtmp.handshake_timeout.0),
        continues_timeline: false,
    };
    let published = shard.hub.borrow_mut().publish(&path, info);
    match published {
        Ok(p) => {
            // The role first: should accepting fail, the end of the connection still
            // unpublishes.
            info!(peer = ?peer, path = %p, "rtmp publish started");
            let listed = who.register(shard, session::Kind::Publisher, &p);
            *role = Role::Publisher(Box::new(Publisher {
                path: p,
                demux: Demuxer::new(),
                session: listed,
                // Media in the read that carried `publish` arrived about now.
                arrived: Instant::now(),
            }));
            if session.accept_publish().is_err() {
                return Some(End::Refused("accept_publish"));
            }
            None
        }
        Err(e) => {
            let _ = session.reject_publish("NetStream.Publish.BadName", &e.to_string());
            Some(End::Quiet(format!("publish refused: {e}")))
        }
    }
}

/// Subscribes to `path` (the session applied the alias rule) and reports the hub's answer.
fn play(
    shard: &Shard,
    session: &mut ServerSession,
    role: &mut Role,
    who: Peer,
    path: StreamPath,
) -> Option<End> {
    let peer = who.addr;
    let subscribed = shard.hub.borrow_mut().subscribe(&path);
    match subscribed {
        Ok(sink) => {
            if session.accept_play().is_err() {
                return Some(End::Refused("accept_play"));
            }
            info!(peer = ?peer, path = %path, "rtmp play started");
            let listed = who.register(shard, session::Kind::Player, &sink.path);
            *role = Role::Player(Player {
                session: listed,
                sink,
                tracks: None,
                ended: false,
                audio: true,
                video: true,
                departing: Vec::new(),
            });
            None
        }
        Err(HubError::NotFound(_)) | Err(_) => {
            let _ = session.reject_play(
                "NetStream.Play.StreamNotFound",
                &format!("no stream is published at '{path}'"),
            );
            Some(End::Quiet(format!("play refused: '{path}' not found")))
        }
    }
}

/// Hands one publisher message to the hub as tracks or a frame. False if this shard no
/// longer owns the stream.
fn publish_media(shard: &Shard, p: &mut Publisher, type_id: u8, ts: i64, body: &Bytes) -> bool {
    if body.is_empty() {
        return true;
    }
    let out = match type_id {
        0x09 => p.demux.video(ts, body),
        0x08 => p.demux.audio(ts, body),
        _ => return true,
    };
    let mut hub = shard.hub.borrow_mut();
    let pushed = match out {
        Ok(Some(DemuxOutput::TracksChanged)) => hub.set_tracks(&p.path, p.demux.tracks()),
        Ok(Some(DemuxOutput::Frame(frame))) => hub.push_frame_arrived(&p.path, frame, p.arrived),
        Ok(None) => Ok(()),
        Err(e) => {
            debug!(path = %p.path, "rtmp: skipping undecodable media message: {e}");
            Ok(())
        }
    };
    !matches!(pushed, Err(HubError::NotOwner(_)))
}

/// Sends one stream event to a player.
fn play_event(shard: &Shard, session: &mut ServerSession, p: &mut Player, ev: SinkEvent) {
    match ev {
        SinkEvent::Metadata(body) => session.send_metadata(&body, 0),
        SinkEvent::Tracks(tracks) => {
            if p.ended {
                session.send_publish_notify();
                p.ended = false;
            }
            for t in tracks.iter() {
                if let Some(sh) = flv::mux_sequence_header(t) {
                    session.send_media(sh.tag_type, sh.timestamp, &sh.to_vec());
                }
            }
            p.tracks = Some(tracks);
        }
        SinkEvent::Frame(out) => {
            let Some(track) = find_track(p.tracks.as_deref(), out.frame.track) else {
                return;
            };
            let video = out.frame.kind == crate::media::MediaKind::Video;
            if (video && !p.video) || (!video && !p.audio) {
                return;
            }
            let chunk_size = shard.shared.settings.config.rtmp.chunk_size;
            if session.shares_encoding(chunk_size) {
                // Muxed and chunked once per shard; every player here sends these bytes.
                let bytes = out
                    .rtmp
                    .get_or_init(|| match flv::mux_frame(track, &out.frame) {
                        Some(tag) => {
                            // Straight from the frame's payload into the chunked buffer:
                            // the one copy of the media bytes per shard.
                            let chunks = tag.len() / chunk_size as usize + 1;
                            let mut buf = BytesMut::with_capacity(tag.len() + chunks * 12 + 16);
                            encode_media_parts(
                                tag.tag_type,
                                tag.timestamp,
                                &tag.parts(),
                                chunk_size,
                                &mut buf,
                            );
                            buf.freeze()
                        }
                        None => Bytes::new(),
                    });
                if bytes.is_empty() {
                    return;
                }
                session.send_prechunked(bytes.clone());
            } else if let Some(tag) = flv::mux_frame(track, &out.frame) {
                session.send_media(tag.tag_type, tag.timestamp, &tag.to_vec());
            } else {
                return;
            }
            // Frames replayed from the GOP cache on joining are not live: not measured.
            if let Some(at) = p.sink.queue.live_arrival(&out) {
                p.departing.push(at);
            }
        }
        SinkEvent::End => {
            session.send_unpublish_notify();
            p.ended = true;
        }
        SinkEvent::Removed => session.end_play(),
    }
}

fn find_track(tracks: Option<&[Track]>, id: crate::media::TrackId) -> Option<&Track> {
    tracks?.iter().find(|t| t.id == id)
}

fn seed(peer: Option<SocketAddr>) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write(format!("{peer:?}").as_bytes());
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::{merge_interval, next_flush};
    use std::time::{Duration, Instant};

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn merge_interval_is_a_tenth_of_the_players_buffer_within_bounds() {
        // No Set Buffer Length, or a short buffer: the base interval.
        assert_eq!(merge_interval(MS(100), MS(250), None), MS(100));
        assert_eq!(merge_interval(MS(100), MS(250), Some(500)), MS(100));
        // ffmpeg's 3 s: capped; 1.5 s: a tenth.
        assert_eq!(merge_interval(MS(100), MS(250), Some(1500)), MS(150));
        assert_eq!(merge_interval(MS(100), MS(250), Some(3000)), MS(250));
        // rtmpdump's 10 hours, and the largest value the field holds.
        assert_eq!(merge_interval(MS(100), MS(250), Some(36_000_000)), MS(250));
        assert_eq!(merge_interval(MS(100), MS(250), Some(u32::MAX)), MS(250));
        // A maximum below the base never shortens the base; "0ms" merges nothing.
        assert_eq!(merge_interval(MS(100), MS(50), Some(3000)), MS(100));
        assert_eq!(merge_interval(MS(0), MS(0), Some(3000)), MS(0));
    }

    #[test]
    fn flushes_fall_on_one_grid_whatever_the_last_write() {
        let epoch = Instant::now();
        let at = |ms| epoch + MS(ms);
        // Players written at different times are all due at the next grid point.
        assert_eq!(next_flush(epoch, at(0), MS(100)), at(100));
        assert_eq!(next_flush(epoch, at(1), MS(100)), at(100));
        assert_eq!(next_flush(epoch, at(99), MS(100)), at(100));
        // Written on a grid point: the next one, a whole interval later.
        assert_eq!(next_flush(epoch, at(100), MS(100)), at(200));
        assert_eq!(next_flush(epoch, at(1234), MS(250)), at(1250));
        // No merging: due at once.
        assert_eq!(next_flush(epoch, at(1234), MS(0)), at(1234));
        // Before the epoch (cannot happen, but must not panic): the first grid point.
        assert_eq!(next_flush(at(50), epoch, MS(100)), at(150));
    }
}
