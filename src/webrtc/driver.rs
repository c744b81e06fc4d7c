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
    /// How datagrams go out (GSO off once the kernel refused it).
    send: SendMode,
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
    let webrtc = &shard.shared.settings.config.webrtc;
    let send = SendMode::new(udp.as_raw_fd(), webrtc.batch_send, webrtc.gso);
    if webrtc.gso && !send.gso {
        info!(
            shard = shard.id,
            "webrtc: no UDP GSO in this kernel; sending one datagram per message"
        );
    }
    let mut rx = Driver {
        shard: shard.clone(),
        rtc: rtc.clone(),
        udp: udp.clone(),
        send,
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
        send,
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
                        &mut self.send,
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

/// Most datagrams in one GSO message (the kernel's `UDP_MAX_SEGMENTS`).
pub const GSO_SEGMENTS: usize = 64;
/// Most bytes in one GSO message: the largest UDP payload over IPv4 (65 535 bytes less
/// the IP and UDP headers).
pub const GSO_BYTES: usize = 65_507;
/// Most datagrams in one send call: the iovecs live on the stack.
const CALL_DATAGRAMS: usize = 4 * BATCH;
/// `UDP_SEGMENT` from `linux/udp.h` (not in `libc` for glibc targets): the cmsg and
/// socket option that carry the GSO segment size.
const UDP_SEGMENT: libc::c_int = 103;

/// How [`send_all`] hands datagrams to the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendMode {
    /// Several messages per call (`sendmmsg`, up to [`BATCH`]) instead of one.
    pub batch: bool,
    /// A run of datagrams to one destination with one length (the last may be shorter)
    /// goes as one message with a `UDP_SEGMENT` cmsg (UDP GSO, [`gso_run`]): the kernel
    /// builds one packet and cuts it in datagrams at the end of its path. [`send_all`]
    /// turns it off for good if the kernel refuses a GSO message (EIO, EINVAL).
    pub gso: bool,
}

impl SendMode {
    /// The mode the configuration asks for, GSO only if `fd`'s kernel knows it.
    pub fn new(fd: RawFd, batch: bool, gso: bool) -> Self {
        let gso = gso && gso_supported(fd);
        SendMode { batch, gso }
    }
}

/// Whether the kernel knows UDP GSO on `fd` (Linux 4.18 and later): reads the socket's
/// `UDP_SEGMENT` option.
pub fn gso_supported(fd: RawFd) -> bool {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `v` and `len` are valid for the duration of the call; the kernel writes at
    // most `len` bytes into `v`.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_UDP,
            UDP_SEGMENT,
            (&mut v as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    r == 0
}

/// How many datagrams at the start of `out` go as one GSO message: the first, and after
/// it those to the same destination with the same length, until one is shorter (it ends
/// the run: the kernel's last segment may be short), at most [`GSO_SEGMENTS`] datagrams
/// and [`GSO_BYTES`] bytes. 0 for an empty `out`, 1 where no run starts.
pub fn gso_run(out: &[Transmit]) -> usize {
    let Some((first, rest)) = out.split_first() else {
        return 0;
    };
    let size = first.contents.len();
    if size == 0 {
        return 1;
    }
    let (mut n, mut bytes) = (1, size);
    for t in rest {
        let len = t.contents.len();
        if n == GSO_SEGMENTS
            || t.destination != first.destination
            || len > size
            || len == 0
            || bytes + len > GSO_BYTES
        {
            break;
        }
        n += 1;
        bytes += len;
        if len < size {
            break;
        }
    }
    n
}

/// Sends `out` on `fd` without blocking, as `mode` says: messages of one datagram or
/// (GSO) one run each, [`BATCH`] messages per `sendmmsg`, or one message per call when
/// `mode.batch` is false. A full socket buffer drops the rest (UDP: the viewer's NACKs
/// recover what matters); a message the kernel refuses is skipped. The live frames of
/// `timed` are observed as their first datagram leaves (frames whose first datagram was
/// dropped are not). Counters count datagrams, whatever the messages.
pub fn send_all(
    fd: RawFd,
    out: &[Transmit],
    mode: &mut SendMode,
    st: &ShardStats,
    timed: Timed<'_>,
) {
    let mut next_departure = 0;
    let (mut sent, mut bytes, mut calls, mut messages, mut dropped) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    let mut i = 0;
    while i < out.len() {
        calls += 1;
        match send_batch(fd, &out[i..], *mode) {
            Ok((m, k)) if k > 0 => {
                timed.sent(i..i + k, &mut next_departure);
                bytes += out[i..i + k]
                    .iter()
                    .map(|t| t.contents.len() as u64)
                    .sum::<u64>();
                sent += k as u64;
                messages += m as u64;
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
            Err(e) if mode.gso && gso_run(&out[i..]) > 1 && gso_refused(&e) => {
                // The first message was a GSO one: this kernel or device cannot (no
                // checksum offload, a segment over the path's MTU). Send plainly from now.
                warn!("webrtc: UDP GSO refused ({e}); sending one datagram per message");
                mode.gso = false;
            }
            Err(_) => {
                // Refused by the kernel (e.g. an ICMP error reported for an earlier
                // datagram to a gone viewer): skip this message.
                let n = if mode.gso { gso_run(&out[i..]) } else { 1 };
                dropped += n as u64;
                i += n;
            }
        }
    }
    stats::add(&st.udp_datagrams_out, sent);
    stats::add(&st.bytes_out, bytes);
    stats::add(&st.udp_send_calls, calls);
    stats::add(&st.udp_send_messages, messages);
    if dropped > 0 {
        stats::add(&st.udp_send_dropped, dropped);
    }
}

/// Whether a send error says the kernel cannot send this GSO message.
fn gso_refused(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EIO | libc::EINVAL))
}

/// The GSO control message: a `cmsghdr` and the segment size, laid out as
/// `CMSG_SPACE(2)` bytes.
#[repr(C)]
#[derive(Clone, Copy)]
struct GsoCmsg {
    hdr: libc::cmsghdr,
    size: u16,
}

/// One send call from the start of `out`, non-blocking: at most [`BATCH`] messages (one
/// unless `mode.batch`) of one datagram or (with `mode.gso`) one [`gso_run`] each, and at
/// most [`CALL_DATAGRAMS`] datagrams. Returns the messages and datagrams sent. The
/// headers live on the stack: no allocation per call.
fn send_batch(fd: RawFd, out: &[Transmit], mode: SendMode) -> std::io::Result<(usize, usize)> {
    // The messages: (first datagram, datagrams).
    let mut runs = [(0usize, 0usize); BATCH];
    let most = if mode.batch { BATCH } else { 1 };
    let (mut m, mut i) = (0, 0);
    while m < most && i < out.len() && i < CALL_DATAGRAMS {
        let n = if mode.gso { gso_run(&out[i..]) } else { 1 };
        let n = n.min(CALL_DATAGRAMS - i);
        runs[m] = (i, n);
        m += 1;
        i += n;
    }
    let runs = &runs[..m];
    if let [(0, 1)] = runs {
        return send_one(fd, &out[0]).map(|()| (1, 1));
    }
    let addrs: [Option<socket2::SockAddr>; BATCH] = std::array::from_fn(|k| {
        runs.get(k)
            .map(|&(first, _)| socket2::SockAddr::from(out[first].destination))
    });
    let mut iovs = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; CALL_DATAGRAMS];
    for (iov, t) in iovs.iter_mut().zip(&out[..i]) {
        *iov = libc::iovec {
            iov_base: t.contents.as_ptr() as *mut libc::c_void,
            iov_len: t.contents.len(),
        };
    }
    // SAFETY: cmsghdr is a plain C struct for which all-zero is a valid value.
    let mut cmsgs: [GsoCmsg; BATCH] = unsafe { std::mem::zeroed() };
    // SAFETY: mmsghdr is a plain C struct for which all-zero is a valid value.
    let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
    for (k, &(first, n)) in runs.iter().enumerate() {
        let h = &mut msgs[k].msg_hdr;
        if let Some(addr) = &addrs[k] {
            h.msg_name = addr.as_ptr() as *mut libc::c_void;
            h.msg_namelen = addr.len();
        }
        h.msg_iov = &mut iovs[first] as *mut libc::iovec;
        h.msg_iovlen = n as _;
        if n > 1 {
            let c = &mut cmsgs[k];
            // SAFETY: CMSG_LEN only computes a length.
            c.hdr.cmsg_len = unsafe { libc::CMSG_LEN(2) } as _;
            c.hdr.cmsg_level = libc::SOL_UDP;
            c.hdr.cmsg_type = UDP_SEGMENT;
            c.size = out[first].contents.len() as u16;
            h.msg_control = (c as *mut GsoCmsg).cast();
            // SAFETY: CMSG_SPACE only computes a length.
            h.msg_controllen = unsafe { libc::CMSG_SPACE(2) } as _;
        }
    }
    if let [(_, n)] = runs {
        // SAFETY: the header points at an address, iovecs and a cmsg that live until the
        // call returns, each iovec at a datagram borrowed from `out`; the kernel only
        // reads them.
        let r = unsafe { libc::sendmsg(fd, &msgs[0].msg_hdr, libc::MSG_DONTWAIT) };
        return if r < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok((1, *n))
        };
    }
    // SAFETY: the first `runs.len()` headers point at addresses, iovecs and cmsgs that
    // live until the call returns (`addrs`, `iovs`, `cmsgs`), each iovec at a datagram
    // borrowed from `out`; the kernel only reads them and writes `msg_len`.
    let r = unsafe {
        libc::sendmmsg(
            fd,
            msgs.as_mut_ptr(),
            runs.len() as libc::c_uint,
            libc::MSG_DONTWAIT,
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let k = (r as usize).min(runs.len());
    Ok((k, runs[..k].iter().map(|&(_, n)| n).sum()))
}

/// One datagram with `sendto`, non-blocking.
fn send_one(fd: RawFd, t: &Transmit) -> std::io::Result<()> {
    let addr = socket2::SockAddr::from(t.destination);
    let data: &[u8] = &t.contents;
    // SAFETY: `data` and `addr` are valid for the duration of the call; the kernel only
    // reads them.
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
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
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

    fn dgram(to: u16, len: usize) -> Transmit {
        Transmit {
            proto: str0m::net::Protocol::Udp,
            source: SocketAddr::from(([127, 0, 0, 1], 1)),
            destination: SocketAddr::from(([127, 0, 0, 1], to)),
            contents: vec![len as u8; len].into(),
        }
    }

    /// The GSO messages `out` is cut into: the length of each run.
    fn runs(out: &[Transmit]) -> Vec<usize> {
        let mut v = Vec::new();
        let mut i = 0;
        while i < out.len() {
            let n = gso_run(&out[i..]);
            v.push(n);
            i += n;
        }
        v
    }

    #[test]
    fn gso_runs_split_on_a_new_destination_and_a_new_length() {
        assert_eq!(gso_run(&[]), 0);
        let out = [
            dgram(1, 1000),
            dgram(1, 1000),
            dgram(1, 1000),
            // Shorter: ends the run with it.
            dgram(1, 700),
            dgram(1, 1000),
            // Another viewer.
            dgram(2, 1000),
            dgram(2, 1000),
            // Longer: a new run.
            dgram(2, 1100),
            dgram(2, 1100),
            dgram(2, 1100),
        ];
        assert_eq!(runs(&out), [4, 1, 2, 3]);
        // A shorter datagram after a shorter one ends its own run too.
        let out = [dgram(1, 1000), dgram(1, 500), dgram(1, 400), dgram(1, 400)];
        assert_eq!(runs(&out), [2, 2]);
        // An empty datagram never goes in a run.
        let out = [dgram(1, 0), dgram(1, 0), dgram(1, 10), dgram(1, 0)];
        assert_eq!(runs(&out), [1, 1, 1, 1]);
    }

    #[test]
    fn gso_runs_hold_at_most_64_segments_and_64_kib() {
        let out: Vec<Transmit> = (0..150).map(|_| dgram(1, 100)).collect();
        assert_eq!(runs(&out), [64, 64, 22]);
        // 1200-byte datagrams: 54 fit in 65 507 bytes, not 55.
        let out: Vec<Transmit> = (0..60).map(|_| dgram(1, 1200)).collect();
        assert_eq!(runs(&out), [54, 6]);
        const { assert!(54 * 1200 <= GSO_BYTES && 55 * 1200 > GSO_BYTES) };
        // A short last segment still counts against the bytes.
        let mut out: Vec<Transmit> = (0..54).map(|_| dgram(1, 1200)).collect();
        out[53] = dgram(1, 1199);
        assert_eq!(runs(&out), [54]);
        out.insert(53, dgram(1, 1200));
        assert_eq!(runs(&out), [54, 1]);
    }

    #[test]
    fn the_gso_cmsg_has_the_kernels_layout() {
        // SAFETY: CMSG_LEN and CMSG_SPACE only compute lengths.
        let (len, space) = unsafe { (libc::CMSG_LEN(0), libc::CMSG_SPACE(2)) };
        assert_eq!(std::mem::offset_of!(GsoCmsg, size), len as usize);
        assert_eq!(std::mem::size_of::<GsoCmsg>(), space as usize);
    }

    /// Sends `out` from a fresh socket with `mode` and reads back what a loopback
    /// receiver got, datagram by datagram, and the shard's counters.
    fn send_and_receive(lens: &[usize], mode: SendMode) -> (SendMode, ShardStats) {
        send_and_receive_on(lens, mode, |_| {})
    }

    /// [`send_and_receive`] with `prepare` run on the sending socket first.
    fn send_and_receive_on(
        lens: &[usize],
        mut mode: SendMode,
        prepare: impl Fn(RawFd),
    ) -> (SendMode, ShardStats) {
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind receiver");
        rx.set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        let to = rx.local_addr().expect("receiver address");
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind sender");
        prepare(tx.as_raw_fd());
        let mode_fd = SendMode::new(tx.as_raw_fd(), mode.batch, mode.gso);
        mode.gso = mode_fd.gso;
        let out: Vec<Transmit> = lens
            .iter()
            .enumerate()
            .map(|(k, &len)| Transmit {
                destination: to,
                contents: (0..len).map(|b| (b + k) as u8).collect::<Vec<u8>>().into(),
                ..dgram(0, 0)
            })
            .collect();
        let st = ShardStats::default();
        let latency = Histogram::default();
        let timed = Timed {
            departures: &[],
            latency: &latency,
        };
        send_all(tx.as_raw_fd(), &out, &mut mode, &st, timed);
        let mut got = Vec::new();
        let mut buf = vec![0u8; 70_000];
        while got.len() < lens.len() {
            let Ok(n) = rx.recv(&mut buf) else { break };
            got.push(buf[..n].to_vec());
        }
        assert_eq!(got.len(), out.len(), "datagrams received");
        for (k, (g, t)) in got.iter().zip(&out).enumerate() {
            assert!(g[..] == t.contents[..], "datagram {k} differs");
        }
        (mode, st)
    }

    fn count(c: &std::sync::atomic::AtomicU64) -> u64 {
        c.load(std::sync::atomic::Ordering::Relaxed)
    }

    #[test]
    fn gso_messages_arrive_as_separate_datagrams() {
        // A frame of 7 equal packets and a short last one, then another of 3.
        let lens = [1100, 1100, 1100, 1100, 1100, 1100, 900, 600, 600, 600];
        let gso = SendMode {
            batch: true,
            gso: true,
        };
        assert!(gso_supported(
            std::net::UdpSocket::bind("127.0.0.1:0")
                .expect("bind")
                .as_raw_fd()
        ));
        let (_, st) = send_and_receive(&lens, gso);
        assert_eq!(count(&st.udp_datagrams_out), 10);
        assert_eq!(count(&st.udp_send_messages), 2);
        assert_eq!(count(&st.udp_send_calls), 1);
        assert_eq!(count(&st.bytes_out), lens.iter().sum::<usize>() as u64);
        // Without batching: one message (a whole run) per call.
        let (_, st) = send_and_receive(
            &lens,
            SendMode {
                batch: false,
                ..gso
            },
        );
        assert_eq!(
            (count(&st.udp_send_messages), count(&st.udp_send_calls)),
            (2, 2)
        );
        // Without GSO: one datagram per message, as before.
        let plain = SendMode {
            batch: true,
            gso: false,
        };
        let (_, st) = send_and_receive(&lens, plain);
        assert_eq!(count(&st.udp_send_messages), 10);
        assert_eq!(count(&st.udp_send_calls), 1);
        // Growing lengths: no run, 64 messages per call, every datagram once.
        let lens: Vec<usize> = (0..150).map(|k| 100 + k).collect();
        let (_, st) = send_and_receive(&lens, gso);
        assert_eq!(count(&st.udp_datagrams_out), 150);
        assert_eq!(count(&st.udp_send_messages), 150);
        assert_eq!(count(&st.udp_send_calls), 3);
    }

    #[test]
    fn a_refused_gso_message_turns_gso_off_and_is_sent_plainly() {
        // Without UDP checksums (SO_NO_CHECK) the kernel refuses GSO with EINVAL.
        let no_check = |fd| assert_eq!(set_int_option(fd, libc::SO_NO_CHECK, 1), 0);
        let lens = [1000, 1000, 1000, 500, 800];
        let gso = SendMode {
            batch: true,
            gso: true,
        };
        let (mode, st) = send_and_receive_on(&lens, gso, no_check);
        assert!(!mode.gso);
        assert_eq!(count(&st.udp_datagrams_out), 5);
        assert_eq!(count(&st.udp_send_messages), 5);
        assert_eq!(count(&st.udp_send_dropped), 0);
    }

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
