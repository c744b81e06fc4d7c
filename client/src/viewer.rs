//! [`WhepViewer`]: a blocking driver for one [`WhepPeer`] on a `std::net::UdpSocket`,
//! with WHEP signaling over [`super::http`]. For tests and simple tools; a load tool
//! drives many [`WhepPeer`]s from its own loop instead.
#![allow(clippy::disallowed_methods)] // A driver: it reads the clock for the peer.

use super::ClientError;
use super::http;
use super::whep::{Datagram, FrameRecord, ReceiveMode, ViewerStats, WhepPeer};
use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// Receive buffer asked for on the viewer's socket: a joining viewer gets the GOP cache
/// as one burst (hundreds of KiB for 720p), faster than a busy test machine may read it.
const RECV_BUFFER: usize = 2 * 1024 * 1024;

/// A successful WHEP `POST`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answered {
    /// The session resource (path part of `Location`), for `DELETE`.
    pub location: String,
    /// The SDP answer.
    pub answer: String,
}

/// `POST /whep/{stream_path}` with `offer`; a `201 Created` with a `Location` and an
/// answer, or [`ClientError::Status`] with the status and body of anything else.
pub fn post_offer(
    http_addr: SocketAddr,
    stream_path: &str,
    offer: &str,
    timeout: Duration,
) -> Result<Answered, ClientError> {
    post_offer_from(None, http_addr, stream_path, offer, timeout)
}

/// Like [`post_offer`], from the local address `from` when given.
pub fn post_offer_from(
    from: Option<IpAddr>,
    http_addr: SocketAddr,
    stream_path: &str,
    offer: &str,
    timeout: Duration,
) -> Result<Answered, ClientError> {
    let path = format!("/whep/{}", stream_path.trim_start_matches('/'));
    let r = http::request_from(
        from,
        http_addr,
        "POST",
        &path,
        &[],
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

/// The path of a `Location` value: an absolute URL's path, an absolute path as is, a
/// relative reference against the directory of `base`.
pub(crate) fn resolve_location(base: &str, location: &str) -> String {
    if location.starts_with('/') {
        return location.to_string();
    }
    if let Some((_, rest)) = location.split_once("://") {
        return rest
            .find('/')
            .map_or_else(|| "/".to_string(), |i| rest[i..].to_string());
    }
    let dir = base.rfind('/').map_or("", |i| &base[..i]);
    format!("{dir}/{location}")
}

/// A UDP socket on `from`, or else the local address that routes to `server` (loopback
/// for a loopback server), port chosen by the kernel, with a large receive buffer.
pub(crate) fn bind_udp(server: SocketAddr, from: Option<IpAddr>) -> Result<UdpSocket, ClientError> {
    let ip = if let Some(ip) = from {
        ip
    } else if server.ip().is_loopback() || server.ip().is_unspecified() {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        let probe = UdpSocket::bind(SocketAddr::new(
            if server.is_ipv4() {
                IpAddr::V4(Ipv4Addr::UNSPECIFIED)
            } else {
                IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
            },
            0,
        ))?;
        probe.connect(server)?;
        probe.local_addr()?.ip()
    };
    let addr = SocketAddr::new(ip, 0);
    let s = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    // Best effort: the kernel caps it at net.core.rmem_max.
    let _ = s.set_recv_buffer_size(RECV_BUFFER);
    s.bind(&addr.into())?;
    Ok(s.into())
}

/// One WHEP viewer on its own UDP socket, driven by the calling thread.
///
/// Dropping it without [`WhepViewer::close`] just stops sending (no `DELETE`, no DTLS
/// close): the server must notice by itself that consent is gone.
#[derive(Debug)]
pub struct WhepViewer {
    peer: WhepPeer,
    socket: UdpSocket,
    local: SocketAddr,
    http: SocketAddr,
    location: String,
    answer: String,
    timeout: Duration,
    buf: Vec<u8>,
    out: Vec<Datagram>,
    send_errors: u64,
}

impl WhepViewer {
    /// Binds a UDP socket, `POST`s an offer for `stream_path` to the WHEP endpoint at
    /// `http_addr` and applies the answer. `timeout` bounds each HTTP exchange. A status
    /// other than 201 is [`ClientError::Status`].
    pub fn connect(
        http_addr: SocketAddr,
        stream_path: &str,
        mode: ReceiveMode,
        timeout: Duration,
    ) -> Result<WhepViewer, ClientError> {
        Self::connect_from(None, http_addr, stream_path, mode, timeout)
    }

    /// Like [`WhepViewer::connect`], with the HTTP connection and the UDP socket bound
    /// to the local address `from` when given (e.g. `127.0.0.2`: another viewer
    /// address on loopback).
    pub fn connect_from(
        from: Option<IpAddr>,
        http_addr: SocketAddr,
        stream_path: &str,
        mode: ReceiveMode,
        timeout: Duration,
    ) -> Result<WhepViewer, ClientError> {
        let socket = bind_udp(http_addr, from)?;
        let local = socket.local_addr()?;
        let mut peer = WhepPeer::new(Instant::now(), local, mode)?;
        let a = post_offer_from(from, http_addr, stream_path, &peer.offer(), timeout)?;
        peer.accept_answer(Instant::now(), &a.answer)?;
        Ok(WhepViewer {
            peer,
            socket,
            local,
            http: http_addr,
            location: a.location,
            answer: a.answer,
            timeout,
            buf: vec![0; 2048],
            out: Vec::new(),
            send_errors: 0,
        })
    }

    /// The peer.
    pub fn peer(&self) -> &WhepPeer {
        &self.peer
    }

    /// The peer, mutable (e.g. [`WhepPeer::set_max_frames`]).
    pub fn peer_mut(&mut self) -> &mut WhepPeer {
        &mut self.peer
    }

    /// Counters so far.
    pub fn stats(&self) -> &ViewerStats {
        self.peer.stats()
    }

    /// Frames recorded so far.
    pub fn frames(&self) -> &[FrameRecord] {
        self.peer.frames()
    }

    /// The session resource from `Location`.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The server's SDP answer.
    pub fn answer(&self) -> &str {
        &self.answer
    }

    /// The viewer's UDP address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Datagrams the socket refused to send.
    pub fn send_errors(&self) -> u64 {
        self.send_errors
    }

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
        mut pred: impl FnMut(&ViewerStats) -> bool,
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

    /// Ends the session with `DELETE` on its `Location`, and returns the status. Sends
    /// nothing else (no DTLS close), so the server ends the session because of the
    /// `DELETE` alone; the viewer can still be run afterwards to watch the media stop.
    pub fn close(&mut self) -> Result<u16, ClientError> {
        Ok(http::delete(self.http, &self.location, self.timeout)?.status)
    }

    /// One round: run due timers, send, then wait for one datagram until the next timer
    /// or `deadline`.
    fn step(&mut self, deadline: Instant) -> Result<(), ClientError> {
        let next = self.peer.poll(Instant::now(), &mut self.out);
        for d in self.out.drain(..) {
            if self.socket.send_to(&d.contents, d.destination).is_err() {
                self.send_errors += 1;
            }
        }
        if let Some(c) = self.peer.closed() {
            return Err(ClientError::Closed(c.clone()));
        }
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
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock
                        | ErrorKind::TimedOut
                        | ErrorKind::Interrupted
                        // ICMP port unreachable for an earlier send.
                        | ErrorKind::ConnectionRefused
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::resolve_location;

    #[test]
    fn location_forms() {
        assert_eq!(
            resolve_location("/whep/live/cam1", "/whep/live/cam1/9"),
            "/whep/live/cam1/9"
        );
        assert_eq!(
            resolve_location("/whep/demo", "http://127.0.0.1:8080/whep/demo/3"),
            "/whep/demo/3"
        );
        assert_eq!(resolve_location("/whep/demo", "https://h"), "/");
        assert_eq!(resolve_location("/whep/demo", "demo/4"), "/whep/demo/4");
    }
}
