//! [`WhipPublisher`]: a blocking driver for one [`WhipPeer`] on a `std::net::UdpSocket`,
//! with WHIP signaling over [`super::http`]: `POST /whip/{path}` with the offer (and
//! `Authorization: Bearer` when given), `DELETE` on the `Location` to end.
//!
//! Sending services the socket too (datagrams out, then whatever has arrived), so a
//! test that writes frames in a loop keeps ICE consent, RTCP and retransmissions going;
//! [`WhipPublisher::publish_for`] loops recorded frames in real time.
#![allow(clippy::disallowed_methods)] // A driver: it reads the clock for the peer.

use super::ClientError;
use super::http;
use super::viewer::{Answered, bind_udp, resolve_location};
use super::whep::Datagram;
use super::whip::{WhipOptions, WhipPeer, WhipStats};
use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// Duration of one Opus packet in [`WhipPublisher::publish_for`].
pub const OPUS_PACKET: Duration = Duration::from_millis(20);
/// RTP ticks (48 kHz) of one Opus packet.
const OPUS_TICKS: i64 = 960;

/// `POST /whip/{stream_path}` with `offer` (and `Authorization: Bearer {bearer}` when
/// given); a `201 Created` with a `Location` and an answer, or
/// [`ClientError::Status`] with the status and body of anything else.
pub fn post_whip_offer(
    http_addr: SocketAddr,
    stream_path: &str,
    bearer: Option<&str>,
    offer: &str,
    timeout: Duration,
) -> Result<Answered, ClientError> {
    post_whip_offer_from(None, http_addr, stream_path, bearer, offer, timeout)
}

/// Like [`post_whip_offer`], from the local address `from` when given (e.g.
/// `127.0.0.2`, another client address on loopback).
pub fn post_whip_offer_from(
    from: Option<IpAddr>,
    http_addr: SocketAddr,
    stream_path: &str,
    bearer: Option<&str>,
    offer: &str,
    timeout: Duration,
) -> Result<Answered, ClientError> {
    let path = format!("/whip/{}", stream_path.trim_start_matches('/'));
    let auth = bearer.map(|b| format!("Bearer {b}"));
    let headers: Vec<(&str, &str)> = auth
        .as_deref()
        .map(|a| ("Authorization", a))
        .into_iter()
        .collect();
    let r = http::request_from(
        from,
        http_addr,
        "POST",
        &path,
        &headers,
        Some(("application/sdp", offer.as_bytes())),
        timeout,
    )?;
    if r.status != 201 {
        return Err(ClientError::Status {
            method: "POST",
            path,
            status: r.status,
            body: r.body_text(),
        });
    }
    let location = r
        .header("location")
        .map(|l| resolve_location(&path, l))
        .ok_or_else(|| ClientError::NoLocation(path.clone()))?;
    Ok(Answered {
        location,
        answer: r.body_text(),
    })
}

/// One WHIP publisher on its own UDP socket, driven by the calling thread.
///
/// Dropping it without [`WhipPublisher::close`] just stops sending (no `DELETE`, no
/// DTLS close): the server must notice by itself that the media and consent are gone.
#[derive(Debug)]
pub struct WhipPublisher {
    peer: WhipPeer,
    socket: UdpSocket,
    local: SocketAddr,
    from: Option<IpAddr>,
    http: SocketAddr,
    bearer: Option<String>,
    location: String,
    answer: String,
    timeout: Duration,
    buf: Vec<u8>,
    out: Vec<Datagram>,
    send_errors: u64,
}

impl WhipPublisher {
    /// Binds a UDP socket, `POST`s an offer for `stream_path` to the WHIP endpoint at
    /// `http_addr` (with `Authorization: Bearer {bearer}` when given), applies the answer
    /// and runs until ICE and DTLS are up. `timeout` bounds the HTTP exchange and,
    /// again, the connection. A status other than 201 is [`ClientError::Status`]; no
    /// connection in time is [`ClientError::NotConnected`].
    pub fn connect(
        http_addr: SocketAddr,
        stream_path: &str,
        bearer: Option<&str>,
        opts: WhipOptions,
        timeout: Duration,
    ) -> Result<WhipPublisher, ClientError> {
        Self::connect_from(None, http_addr, stream_path, bearer, opts, timeout)
    }

    /// Like [`WhipPublisher::connect`], with the HTTP connections and the UDP socket
    /// bound to the local address `from` when given.
    pub fn connect_from(
        from: Option<IpAddr>,
        http_addr: SocketAddr,
        stream_path: &str,
        bearer: Option<&str>,
        opts: WhipOptions,
        timeout: Duration,
    ) -> Result<WhipPublisher, ClientError> {
        let socket = bind_udp(http_addr, from)?;
        let local = socket.local_addr()?;
        let mut peer = WhipPeer::new(Instant::now(), local, opts)?;
        let a = post_whip_offer_from(from, http_addr, stream_path, bearer, &peer.offer(), timeout)?;
        peer.accept_answer(Instant::now(), &a.answer)?;
        let mut p = WhipPublisher {
            peer,
            socket,
            local,
            from,
            http: http_addr,
            bearer: bearer.map(str::to_string),
            location: a.location,
            answer: a.answer,
            timeout,
            buf: vec![0; 2048],
            out: Vec::new(),
            send_errors: 0,
        };
        let deadline = Instant::now() + timeout;
        while !p.peer.is_connected() {
            if Instant::now() >= deadline {
                return Err(ClientError::NotConnected(timeout));
            }
            p.step(deadline)?;
        }
        Ok(p)
    }

    // ---- getters ----

    /// The peer.
    pub fn peer(&self) -> &WhipPeer {
        &self.peer
    }

    /// The peer, mutable (e.g. [`WhipPeer::set_drop`]).
    pub fn peer_mut(&mut self) -> &mut WhipPeer {
        &mut self.peer
    }

    /// Counters so far.
    pub fn stats(&self) -> &WhipStats {
        self.peer.stats()
    }

    /// The session resource from `Location` (its path), for `DELETE`.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The server's SDP answer.
    pub fn answer(&self) -> &str {
        &self.answer
    }

    /// The publisher's UDP address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Datagrams the socket refused to send.
    pub fn send_errors(&self) -> u64 {
        self.send_errors
    }

    // ---- sending ----

    /// Writes one H.264 access unit (Annex B or AVCC, see [`WhipPeer::send_video`]) now,
    /// then services the socket.
    pub fn send_video(
        &mut self,
        pts_90k: i64,
        data: &[u8],
        keyframe: bool,
    ) -> Result<(), ClientError> {
        self.peer
            .send_video(Instant::now(), pts_90k, data, keyframe)?;
        self.service()
    }

    /// Writes one Opus packet (RTP time at 48 kHz) now, then services the socket.
    pub fn send_audio(&mut self, rtp_time_48k: i64, opus_packet: &[u8]) -> Result<(), ClientError> {
        self.peer
            .send_audio(Instant::now(), rtp_time_48k, opus_packet)?;
        self.service()
    }

    /// Loops `video` (presentation time at 90 kHz, keyframe flag, access unit in AVCC or
    /// Annex B; it should start with a keyframe) at `fps` frames a second, and `audio`
    /// (Opus packets of 20 ms) when given, in real time for `d`, servicing the socket in
    /// between. Each lap of the video shifts its times by the lap's span (last minus
    /// first time plus one frame), so the times keep growing; audio times grow by 960
    /// ticks a packet. Fails if the session ends.
    pub fn publish_for(
        &mut self,
        d: Duration,
        video: &[(i64, bool, Vec<u8>)],
        fps: f64,
        audio: Option<&[Vec<u8>]>,
    ) -> Result<(), ClientError> {
        let audio = audio.unwrap_or(&[]);
        let frame = Duration::from_secs_f64(1.0 / fps.max(0.1));
        let first = video.first().map_or(0, |v| v.0);
        let last = video.last().map_or(0, |v| v.0);
        let span = last - first + (90_000.0 / fps.max(0.1)).round() as i64;
        let start = Instant::now();
        let end = start + d;
        let (mut vi, mut ai) = (0usize, 0usize);
        loop {
            let now = Instant::now();
            if now >= end {
                return Ok(());
            }
            while !video.is_empty() && start + frame * vi as u32 <= now {
                let (pts, key, au) = &video[vi % video.len()];
                let lap = (vi / video.len()) as i64;
                let t = (pts - first).max(0) + lap * span;
                self.peer.send_video(now, t, au, *key)?;
                vi += 1;
            }
            while !audio.is_empty() && start + OPUS_PACKET * ai as u32 <= now {
                let t = ai as i64 * OPUS_TICKS;
                self.peer.send_audio(now, t, &audio[ai % audio.len()])?;
                ai += 1;
            }
            let mut wake = end;
            if !video.is_empty() {
                wake = wake.min(start + frame * vi as u32);
            }
            if !audio.is_empty() {
                wake = wake.min(start + OPUS_PACKET * ai as u32);
            }
            self.step(wake)?;
        }
    }

    // ---- running ----

    /// Receives and runs timers for `d`. Fails if the session ends.
    pub fn run_for(&mut self, d: Duration) -> Result<(), ClientError> {
        let deadline = Instant::now() + d;
        while Instant::now() < deadline {
            self.step(deadline)?;
        }
        Ok(())
    }

    /// Receives and runs timers until `pred` holds for the counters (true) or `timeout`
    /// passes (false). Fails if the session ends first.
    pub fn run_until(
        &mut self,
        mut pred: impl FnMut(&WhipStats) -> bool,
        timeout: Duration,
    ) -> Result<bool, ClientError> {
        let deadline = Instant::now() + timeout;
        loop {
            if pred(self.peer.stats()) {
                return Ok(true);
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
            self.step(deadline)?;
        }
    }

    /// Ends the session: `DELETE` on its `Location` (with the bearer token when one was
    /// given), then RTCP BYE and a DTLS close_notify. Returns the status of the `DELETE`.
    pub fn close(&mut self) -> Result<u16, ClientError> {
        let auth = self.bearer.as_ref().map(|b| format!("Bearer {b}"));
        let headers: Vec<(&str, &str)> = auth
            .as_deref()
            .map(|a| ("Authorization", a))
            .into_iter()
            .collect();
        let r = http::request_from(
            self.from,
            self.http,
            "DELETE",
            &self.location,
            &headers,
            None,
            self.timeout,
        );
        self.peer.close(Instant::now());
        self.flush();
        Ok(r?.status)
    }

    // ---- internals ----

    /// Sends what the peer has to send.
    fn flush(&mut self) {
        self.peer.poll(Instant::now(), &mut self.out);
        for d in self.out.drain(..) {
            if self.socket.send_to(&d.contents, d.destination).is_err() {
                self.send_errors += 1;
            }
        }
    }

    /// Sends, then feeds the peer every datagram already received, without waiting.
    fn service(&mut self) -> Result<(), ClientError> {
        self.flush();
        self.socket.set_nonblocking(true)?;
        let r = loop {
            match self.socket.recv_from(&mut self.buf) {
                Ok((n, from)) => {
                    self.peer
                        .handle_datagram(Instant::now(), from, self.local, &self.buf[..n]);
                }
                Err(e) if is_transient(&e) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        self.socket.set_nonblocking(false)?;
        r?;
        self.flush();
        self.check_open()
    }

    fn check_open(&self) -> Result<(), ClientError> {
        match self.peer.closed() {
            Some(c) => Err(ClientError::Closed(c.clone())),
            None => Ok(()),
        }
    }

    /// One round: run due timers, send, then wait for one datagram until the next timer
    /// or `deadline`.
    fn step(&mut self, deadline: Instant) -> Result<(), ClientError> {
        self.flush();
        self.check_open()?;
        let next = self.peer.poll_timeout();
        let wake = next.map_or(deadline, |t| t.min(deadline));
        let wait = wake.saturating_duration_since(Instant::now());
        if wait.is_zero() {
            return Ok(());
        }
        self.socket.set_read_timeout(Some(wait))?;
        match self.socket.recv_from(&mut self.buf) {
            Ok((n, from)) => {
                self.peer
                    .handle_datagram(Instant::now(), from, self.local, &self.buf[..n]);
                Ok(())
            }
            Err(e) if is_transient(&e) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// A receive error that only means "nothing now".
fn is_transient(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::WouldBlock
            | ErrorKind::TimedOut
            | ErrorKind::Interrupted
            // ICMP port unreachable for an earlier send.
            | ErrorKind::ConnectionRefused
    )
}

#[cfg(test)]
mod tests;
