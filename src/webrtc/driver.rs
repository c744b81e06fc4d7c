//! The shard's WebRTC driver: one UDP socket, two tasks. The receive task feeds every
//! datagram to the shard's [`Engine`](super::engine::Engine); the media task wakes when
//! viewers' queues have frames, when the earliest session timer is due, or when
//! signaling kicks it. Both drain the engine's output the same way: datagrams are sent
//! in batches (`sendmmsg`, non-blocking) on the socket's fd, events are answered. A send
//! call that carries the first datagram of a live frame for a viewer reads the clock once
//! when it returns: the frame's server-added latency ([`crate::stats::FrameLatency`]).
#![allow(clippy::disallowed_methods)] // A driver: it reads the clock.

use super::engine::{Closed, Event, Input, Output};
use super::handle::Handle;
use super::ingest::Produced;
use super::peer::{CloseReason, Departure};
use crate::shard::{Shard, ShardRef};
use crate::stats::{self, Histogram, ShardStats};
use crate::stream::SourceStats;
use glommio::net::UdpSocket;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::time::{Duration, Instant};
use str0m::net::Transmit;
use tracing::{debug, info, warn};

/// Most datagrams per `sendmmsg` call.
const BATCH: usize = 64;

/// The UDP side of a shard's WebRTC: the socket and the batch buffer.
struct Driver {
    shard: ShardRef,
    rtc: Handle,
    udp: Rc<UdpSocket>,
    /// The batch being sent (swapped with the engine's output buffer, capacity kept).
    batch: Vec<Transmit>,
    /// The live frames whose first datagram is in the batch.
    departures: Vec<Departure>,
    /// When the engine's next timer is due.
    next: Instant,
    /// When the datagram being handled arrived: the arrival of a publisher's frame it
    /// completes.
    received: Instant,
}

/// How often the sessions' counters are copied to the management API's list.
const COUNTERS_EVERY: Duration = Duration::from_millis(500);

/// Runs the shard's WebRTC egress until the shard shuts down.
pub async fn run(shard: ShardRef, rtc: Handle, udp: UdpSocket) {
    let udp = Rc::new(udp);
    set_buffers(
        udp.as_raw_fd(),
        shard.shared.settings.config.webrtc.send_buffer.as_usize(),
    );
    let mut rx = Driver {
        shard: shard.clone(),
        rtc: rtc.clone(),
        udp: udp.clone(),
        batch: Vec::new(),
        departures: Vec::new(),
        next: Instant::now(),
        received: Instant::now(),
    };
    let rx_task = glommio::spawn_local(async move { rx.receive_loop().await });
    let mut media = Driver {
        shard,
        rtc,
        udp,
        batch: Vec::new(),
        departures: Vec::new(),
        next: Instant::now(),
        received: Instant::now(),
    };
    media.media_loop().await;
    drop(rx_task);
    // Tell viewers goodbye (DTLS close), then forget them.
    let now = Instant::now();
    let _ = media
        .rtc
        .engine()
        .handle_input(now, Input::CloseAll(CloseReason::Shutdown));
    media.drain();
}

impl Driver {
    async fn receive_loop(&mut self) {
        let mut buf = vec![0u8; 2048];
        loop {
            match self.udp.recv_from(&mut buf).await {
                Ok((n, from)) => {
                    let st = self.shard.stats();
                    stats::add(&st.udp_datagrams_in, 1);
                    stats::add(&st.bytes_in, n as u64);
                    let now = Instant::now();
                    self.received = now;
                    let data = &buf[..n];
                    // A datagram of no session is dropped.
                    let _ = self
                        .rtc
                        .engine()
                        .handle_input(now, Input::Datagram { from, data });
                    self.drain();
                }
                Err(e) => {
                    warn!(shard = self.shard.id, "webrtc udp receive: {e}");
                    glommio::timer::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    async fn media_loop(&mut self) {
        use futures_lite::future;
        let ready = self.rtc.engine().ready_list();
        self.drain();
        let mut counters_at = Instant::now();
        loop {
            // The receive task may have moved the engine's next timer since.
            let next = self.next_timeout();
            let wait = next.saturating_duration_since(Instant::now());
            let stop = future::or(
                async {
                    ready.wait().await;
                    false
                },
                future::or(
                    async {
                        if !wait.is_zero() {
                            glommio::timer::sleep(wait).await;
                        }
                        false
                    },
                    async {
                        self.shard.shutdown.wait().await;
                        true
                    },
                ),
            )
            .await;
            if stop {
                return;
            }
            let now = Instant::now();
            self.received = now;
            {
                let mut engine = self.rtc.engine();
                let _ = engine.handle_input(now, Input::Ready);
                engine.handle_timeout(now);
            }
            self.drain();
            if now >= counters_at {
                self.rtc.sync_counters();
                self.sync_publishers(now);
                counters_at = now + COUNTERS_EVERY;
            }
        }
    }

    /// When the engine's next timer is due (without sending: only a timeout is left
    /// once [`Driver::drain`] ran, or a fresh input the loop handles next).
    fn next_timeout(&mut self) -> Instant {
        self.drain();
        self.next
    }

    /// Drains the engine's output until its next timeout: sends datagrams in batches,
    /// answers keyframe requests from the hub's GOP cache, accounts for ended sessions.
    fn drain(&mut self) {
        let batch_send = self.shard.shared.settings.config.webrtc.batch_send;
        loop {
            let out = self.rtc.engine().poll_output(&mut self.batch);
            match out {
                Output::Transmit(_) => {
                    self.rtc.engine().take_departures(&mut self.departures);
                    let timed = Timed {
                        departures: &self.departures,
                        latency: &self.shard.latency().webrtc,
                    };
                    send_all(
                        self.udp.as_raw_fd(),
                        &self.batch,
                        batch_send,
                        self.shard.stats(),
                        timed,
                    );
                    self.batch.clear();
                    self.departures.clear();
                    if self.batch.capacity() > 4096 {
                        self.batch.shrink_to(256);
                    }
                }
                Output::Event(ev) => self.event(ev),
                Output::Timeout(at) => {
                    self.next = at;
                    return;
                }
            }
        }
    }

    fn event(&mut self, ev: Event) {
        let shard = &self.shard;
        match ev {
            Event::GopWanted { id, path } => {
                // A publisher on another shard is asked too (this shard's own is asked
                // by the engine).
                if let Some(owner) = shard.hub.borrow().owner(&path) {
                    self.rtc.keyframe_wanted(&path, owner, Instant::now());
                }
                let gop = shard.hub.borrow().gop(&path);
                if !gop.is_empty() {
                    let input = Input::Gop { id, gop: &gop };
                    let _ = self.rtc.engine().handle_input(Instant::now(), input);
                }
            }
            Event::GopResend { id, bytes, skipped } => {
                if skipped {
                    stats::add(&shard.stats().webrtc_gop_resends_skipped, 1);
                    debug!(shard = shard.id, session = %id, bytes, "keyframe request not answered: re-send budget spent");
                } else {
                    stats::add(&shard.stats().webrtc_gop_resends, 1);
                }
            }
            Event::PacketsWritten(n) => stats::add(&shard.stats().rtp_packets_out, n),
            Event::Produced { id, path, produced } => {
                let mut hub = shard.hub.borrow_mut();
                let r = match produced {
                    Produced::Tracks(t) => hub.set_tracks(&path, t),
                    // Completed by the datagram just received, or released by a timer
                    // (a reorder gap given up): then that timer's time.
                    Produced::Frame(f) => hub.push_frame_arrived(&path, f, self.received),
                };
                if let Err(e) = r {
                    // The path was taken from the publisher (removed): end it.
                    drop(hub);
                    debug!(shard = shard.id, session = %id, "whip media not taken: {e}");
                    let input = Input::Close {
                        id,
                        reason: CloseReason::StreamRemoved,
                    };
                    let _ = self.rtc.engine().handle_input(Instant::now(), input);
                }
            }
            Event::Closed(c) => ended(shard, &self.rtc, &c),
        }
    }
}

impl Driver {
    /// Copies publishers' counters to the shard's statistics and their streams' source
    /// statistics (the API shows each track's packets, losses and bitrate).
    fn sync_publishers(&mut self, now: Instant) {
        let mut reports = Vec::new();
        self.rtc.engine().publisher_reports(now, &mut reports);
        let st = self.shard.stats();
        let mut hub = self.shard.hub.borrow_mut();
        for r in reports {
            stats::add(&st.whip_packets_in, r.delta.packets);
            stats::add(&st.whip_packets_lost, r.delta.lost);
            stats::add(&st.whip_frames_dropped, r.delta.frames_dropped);
            stats::add(&st.whip_keyframe_requests, r.delta.keyframe_requests);
            let source = SourceStats {
                transport: Some("webrtc"),
                reconnects: 0,
                last_error: None,
                tracks: r.tracks,
            };
            hub.set_source_stats(&r.path, source);
        }
    }
}

fn ended(shard: &Shard, rtc: &Handle, c: &Closed) {
    rtc.registry().remove(c.id);
    rtc.unlist(c.id);
    stats::sub(&shard.stats().webrtc_sessions, 1);
    if let Some(ingest) = &c.ingest {
        stats::sub(&shard.stats().whip_publishers, 1);
        // Viewers stay attached and resume when the path is published again.
        let _ = shard.hub.borrow_mut().unpublish(&c.path);
        info!(
            shard = shard.id,
            session = %c.id,
            path = %c.path,
            reason = c.reason.as_str(),
            lived_ms = c.lived.as_millis() as u64,
            packets = ingest.packets,
            frames = ingest.frames,
            lost = ingest.lost,
            frames_dropped = ingest.frames_dropped,
            keyframe_requests = ingest.keyframe_requests,
            "whip publish ended"
        );
        return;
    }
    info!(
        shard = shard.id,
        session = %c.id,
        path = %c.path,
        reason = c.reason.as_str(),
        lived_ms = c.lived.as_millis() as u64,
        frames = c.stats.frames,
        packets = c.stats.packets,
        frames_skipped = c.stats.skipped,
        keyframe_requests = c.stats.keyframe_requests,
        "webrtc session ended"
    );
}

/// The live frames whose first datagram is in a batch ([`Departure`], sorted by index),
/// and the histogram their latency goes to.
#[derive(Clone, Copy)]
pub struct Timed<'a> {
    /// The frames.
    pub departures: &'a [Departure],
    /// Where their latency is counted.
    pub latency: &'a Histogram,
}

impl Timed<'_> {
    /// Datagrams `sent` of the batch left now: observes the frames whose first datagram
    /// is among them (reading the clock once), skips those at indices before `sent`
    /// (dropped). `next` is the first departure not yet handled.
    fn sent(&self, sent: std::ops::Range<usize>, next: &mut usize) {
        let due = |k: &usize| self.departures.get(*k).is_some_and(|d| d.index < sent.end);
        if !due(next) {
            return;
        }
        let now = Instant::now();
        while due(next) {
            let d = self.departures[*next];
            if d.index >= sent.start {
                self.latency.observe(d.arrived, now);
            }
            *next += 1;
        }
    }
}

/// Sends `out` on `fd` without blocking: `sendmmsg` in batches of [`BATCH`], or one
/// `sendto` each when `batch` is false. A full socket buffer drops the rest (UDP: the
/// viewer's NACKs recover what matters); a datagram the kernel refuses is skipped. The
/// live frames of `timed` are observed as their first datagram leaves (frames whose first
/// datagram was dropped are not).
pub fn send_all(fd: RawFd, out: &[Transmit], batch: bool, st: &ShardStats, timed: Timed<'_>) {
    let mut next_departure = 0;
    let mut sent = 0u64;
    let mut bytes = 0u64;
    let mut calls = 0u64;
    let mut dropped = 0u64;
    let mut i = 0;
    while i < out.len() {
        let n = if batch { (out.len() - i).min(BATCH) } else { 1 };
        calls += 1;
        let r = send_batch(fd, &out[i..i + n]);
        match r {
            Ok(k) if k > 0 => {
                timed.sent(i..i + k, &mut next_departure);
                bytes += out[i..i + k]
                    .iter()
                    .map(|t| t.contents.len() as u64)
                    .sum::<u64>();
                sent += k as u64;
                i += k;
            }
            Ok(_) => {
                dropped += 1;
                i += 1;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                dropped += (out.len() - i) as u64;
                break;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => {
                // Refused by the kernel (e.g. an ICMP error reported for an earlier
                // datagram to a gone viewer): skip this one.
                dropped += 1;
                i += 1;
            }
        }
    }
    stats::add(&st.udp_datagrams_out, sent);
    stats::add(&st.bytes_out, bytes);
    stats::add(&st.udp_send_calls, calls);
    if dropped > 0 {
        stats::add(&st.udp_send_dropped, dropped);
    }
}

/// One `sendmmsg` (or `sendto` for a single datagram) of at most [`BATCH`] datagrams of
/// `out`, non-blocking. The headers live on the stack: no allocation per batch.
fn send_batch(fd: RawFd, out: &[Transmit]) -> std::io::Result<usize> {
    let out = &out[..out.len().min(BATCH)];
    if let [t] = out {
        let addr = socket2::SockAddr::from(t.destination);
        let data: &[u8] = &t.contents;
        // SAFETY: `data` and `addr` are valid for the duration of the call; the kernel
        // only reads them.
        let r = unsafe {
            libc::sendto(
                fd,
                data.as_ptr().cast(),
                data.len(),
                libc::MSG_DONTWAIT,
                addr.as_ptr().cast(),
                addr.len(),
            )
        };
        return if r < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(1)
        };
    }
    let addrs: [Option<socket2::SockAddr>; BATCH] =
        std::array::from_fn(|k| out.get(k).map(|t| socket2::SockAddr::from(t.destination)));
    let mut iovs = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; BATCH];
    // SAFETY: mmsghdr is a plain C struct for which all-zero is a valid value.
    let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
    for (k, t) in out.iter().enumerate() {
        iovs[k] = libc::iovec {
            iov_base: t.contents.as_ptr() as *mut libc::c_void,
            iov_len: t.contents.len(),
        };
        if let Some(addr) = &addrs[k] {
            msgs[k].msg_hdr.msg_name = addr.as_ptr() as *mut libc::c_void;
            msgs[k].msg_hdr.msg_namelen = addr.len();
        }
        msgs[k].msg_hdr.msg_iov = &mut iovs[k] as *mut libc::iovec;
        msgs[k].msg_hdr.msg_iovlen = 1;
    }
    // SAFETY: the first `out.len()` headers point at addresses and iovecs that live until
    // the call returns (`addrs`, `iovs`), each iovec at a datagram borrowed from `out`;
    // the kernel only reads them and writes `msg_len`.
    let r = unsafe {
        libc::sendmmsg(
            fd,
            msgs.as_mut_ptr(),
            out.len() as libc::c_uint,
            libc::MSG_DONTWAIT,
        )
    };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}

/// Raises the socket's send buffer (with SO_SNDBUFFORCE when allowed, past
/// `net.core.wmem_max`) and its receive buffer to a quarter of it (viewers send little,
/// STUN consent checks and RTCP, but a busy shard reads late); logs failures.
fn set_buffers(fd: RawFd, bytes: usize) {
    let snd = bytes.min(i32::MAX as usize) as libc::c_int;
    let rcv = (snd / 4).max(256 * 1024);
    for (what, force, plain, v) in [
        ("send", libc::SO_SNDBUFFORCE, libc::SO_SNDBUF, snd),
        ("receive", libc::SO_RCVBUFFORCE, libc::SO_RCVBUF, rcv),
    ] {
        if set_int_option(fd, force, v) != 0 && set_int_option(fd, plain, v) != 0 {
            warn!(
                "webrtc: could not set the UDP {what} buffer to {v} bytes: {}",
                std::io::Error::last_os_error()
            );
        }
    }
}

/// `setsockopt(fd, SOL_SOCKET, opt, &v)`; 0 on success.
fn set_int_option(fd: RawFd, opt: libc::c_int, v: libc::c_int) -> libc::c_int {
    // SAFETY: `v` is a valid c_int for the duration of the call; the kernel only reads it.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            opt,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    }
}

/// The addresses to announce as ICE host candidates for a socket bound to `bind`:
/// `advertised` if set; the bound address if specific; otherwise the machine's IPv4
/// addresses, non-loopback first, then loopback.
pub fn candidate_addrs(
    bind: std::net::IpAddr,
    advertised: &[std::net::IpAddr],
    port: u16,
) -> Vec<SocketAddr> {
    let ips: Vec<std::net::IpAddr> = if !advertised.is_empty() {
        advertised.to_vec()
    } else if !bind.is_unspecified() {
        vec![bind]
    } else {
        let mut v = local_ipv4();
        v.sort_by_key(|ip| ip.is_loopback());
        if !v.iter().any(|ip| ip.is_loopback()) {
            v.push(std::net::IpAddr::from([127, 0, 0, 1]));
        }
        v
    };
    ips.into_iter()
        .map(|ip| SocketAddr::new(ip, port))
        .collect()
}

/// The machine's IPv4 interface addresses (up interfaces).
fn local_ipv4() -> Vec<std::net::IpAddr> {
    let mut out = Vec::new();
    let mut ifap: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `ifap` with a list we free below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut ifap) } != 0 {
        return out;
    }
    let mut p = ifap;
    while !p.is_null() {
        // SAFETY: `p` is a node of the list getifaddrs returned, valid until freeifaddrs.
        let ifa = unsafe { &*p };
        let up = ifa.ifa_flags & (libc::IFF_UP as libc::c_uint) != 0;
        if up && !ifa.ifa_addr.is_null() {
            // SAFETY: ifa_addr is non-null and points at a sockaddr of the family it names.
            let family = unsafe { (*ifa.ifa_addr).sa_family };
            if i32::from(family) == libc::AF_INET {
                // SAFETY: AF_INET addresses are sockaddr_in.
                let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                let ip = std::net::Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
                if !out.contains(&std::net::IpAddr::V4(ip)) {
                    out.push(std::net::IpAddr::V4(ip));
                }
            }
        }
        p = ifa.ifa_next;
    }
    // SAFETY: `ifap` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(ifap) };
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_send_observes_the_frames_it_starts_and_skips_dropped_ones() {
        let latency = Histogram::default();
        let arrived = Instant::now() - Duration::from_secs(2);
        let at = |index| Departure { index, arrived };
        let departures = [at(0), at(3), at(5), at(9)];
        let timed = Timed {
            departures: &departures,
            latency: &latency,
        };
        let mut next = 0;
        timed.sent(0..2, &mut next);
        assert_eq!((next, latency.snapshot().count()), (1, 1));
        timed.sent(2..3, &mut next);
        assert_eq!((next, latency.snapshot().count()), (1, 1));
        // Datagrams 3 to 5 were dropped, 6 to 9 sent: only the frame at 9 left.
        timed.sent(6..10, &mut next);
        assert_eq!((next, latency.snapshot().count()), (4, 2));
        // Two seconds after arrival: over the last bound.
        assert_eq!(latency.snapshot().buckets.last(), Some(&2));
    }
}
