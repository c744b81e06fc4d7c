//! The event loop of `corecast-load whep`: one thread drives many [`WhepPeer`]s, each on
//! its own non-blocking UDP socket, with one `epoll` set for all sockets, `recvmmsg` to
//! read each socket's burst in one call, and one deadline heap for all peers' timers.
//!
//! Signaling threads hand new peers over (answer applied) through a channel and an
//! `eventfd`; the loop publishes each viewer's counters to the shared [`Board`].
#![allow(clippy::disallowed_methods)] // A driver: it reads the clock for the peers.

use crate::whep_board::{Board, Reason, ViewerStat, state};
use corecast_client::rtp::{self, DatagramKind, PayloadClass};
use corecast_client::{Datagram, PeerClosed, WhepPeer};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

/// Datagrams read per `recvmmsg` call.
const BATCH: usize = 32;
/// Largest datagram read (the server sends at most ~1250 bytes).
const DATAGRAM: usize = 2048;
/// `recvmmsg` calls per socket per wake-up before the loop serves the others.
const MAX_BATCHES: usize = 8;
/// Epoll token of the wake-up eventfd.
const WAKE: u64 = u64::MAX;
/// How often set-up time-outs are checked.
const HOUSEKEEPING: Duration = Duration::from_millis(250);
/// Longest epoll wait (the stop flag is checked this often).
const MAX_WAIT: Duration = Duration::from_millis(100);

/// A viewer whose answer is applied, handed from a signaling thread to a loop.
pub struct NewViewer {
    /// Index on the board.
    pub idx: usize,
    /// Its non-blocking UDP socket.
    pub socket: UdpSocket,
    /// The peer, answer accepted.
    pub peer: WhepPeer,
    /// When the answer was applied.
    pub answered: Instant,
}

/// Wakes a loop blocked in `epoll_wait` (an `eventfd`).
pub struct Waker(OwnedFd);

impl Waker {
    /// A new eventfd.
    pub fn new() -> io::Result<Waker> {
        // SAFETY: eventfd takes no pointers; a non-negative result is a new fd we own.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a freshly created descriptor owned by nobody else.
        Ok(Waker(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Wakes the loop.
    pub fn wake(&self) {
        let one = 1u64;
        // SAFETY: writes 8 bytes from a live u64 to our eventfd. A full counter (EAGAIN)
        // means a wake-up is pending anyway.
        unsafe { libc::write(self.0.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }

    fn drain(&self) {
        let mut v = 0u64;
        // SAFETY: reads 8 bytes into a live u64 from our non-blocking eventfd.
        unsafe { libc::read(self.0.as_raw_fd(), (&mut v as *mut u64).cast(), 8) };
    }
}

/// Pins the calling thread to `cpu`.
pub fn pin_to(cpu: usize) -> io::Result<()> {
    // SAFETY: cpu_set_t is plain data for which all-zero is the empty set; CPU_SET and
    // sched_setaffinity only touch the set we pass.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// A non-blocking UDP socket on the local address that routes to `server` (loopback for
/// a loopback server), with `rcvbuf` bytes of receive buffer asked for (a joining viewer
/// gets the GOP cache as one burst).
pub fn bind_udp(server: SocketAddr, rcvbuf: usize) -> io::Result<UdpSocket> {
    let ip = if server.ip().is_loopback() || server.ip().is_unspecified() {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        let any = match server {
            SocketAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            SocketAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        };
        let probe = UdpSocket::bind(SocketAddr::new(any, 0))?;
        probe.connect(server)?;
        probe.local_addr()?.ip()
    };
    let sock = UdpSocket::bind(SocketAddr::new(ip, 0))?;
    sock.set_nonblocking(true)?;
    let v = rcvbuf.min(i32::MAX as usize) as libc::c_int;
    // SAFETY: `v` is a live c_int for the duration of the call. Best effort: the kernel
    // caps it at net.core.rmem_max.
    unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
    Ok(sock)
}

/// Video frames the RTP timestamps of a viewer's frames span: a frame the server never
/// sent (dropped from the viewer's queue before packetization, so without a sequence
/// gap) shows as a timestamp jump.
#[derive(Debug, Default)]
struct FrameClock {
    ssrc: Option<u32>,
    last: Option<(u32, i64)>,
    expected: u64,
}

impl FrameClock {
    /// Counts the frame a marker packet with timestamp `ts` completes. Gaps round to
    /// whole frames of `tpf` ticks, at least one (a catch-up burst's frames are 1 ms
    /// apart).
    fn frame(&mut self, ts: u32, tpf: i64) {
        match self.last {
            None => {
                self.last = Some((ts, 0));
                self.expected = 1;
            }
            Some((prev, ext)) => {
                let delta = i64::from(ts.wrapping_sub(prev) as i32);
                if delta <= 0 {
                    return; // reordered or repeated
                }
                self.expected += ((delta + tpf / 2) / tpf).max(1) as u64;
                self.last = Some((ts, ext + delta));
            }
        }
    }
}

struct Slot {
    idx: usize,
    clock: FrameClock,
    socket: UdpSocket,
    local: SocketAddr,
    peer: WhepPeer,
    answered: Instant,
    /// Deadline the peer asked for.
    want: Option<Instant>,
    /// Deadline of its live heap entry.
    queued: Option<Instant>,
    /// Local copy of the board state.
    state: u8,
    packets: u64,
    done: bool,
}

/// `recvmmsg` buffers, reused for every socket.
struct RecvBufs {
    data: Vec<u8>,
    addrs: Vec<libc::sockaddr_storage>,
    lens: [usize; BATCH],
}

impl RecvBufs {
    fn new() -> Self {
        RecvBufs {
            data: vec![0; BATCH * DATAGRAM],
            // SAFETY: sockaddr_storage is plain data for which all-zero is valid.
            addrs: vec![unsafe { std::mem::zeroed() }; BATCH],
            lens: [0; BATCH],
        }
    }

    /// Reads up to [`BATCH`] datagrams from `fd` without blocking; 0 when none waits.
    fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        let mut iovs: Vec<libc::iovec> = self
            .data
            .chunks_exact_mut(DATAGRAM)
            .map(|c| libc::iovec {
                iov_base: c.as_mut_ptr().cast(),
                iov_len: c.len(),
            })
            .collect();
        let mut msgs: Vec<libc::mmsghdr> = iovs
            .iter_mut()
            .zip(self.addrs.iter_mut())
            .map(|(iov, addr)| {
                // SAFETY: mmsghdr is plain data for which all-zero is valid.
                let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
                m.msg_hdr.msg_name = (addr as *mut libc::sockaddr_storage).cast();
                m.msg_hdr.msg_namelen =
                    std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
                m.msg_hdr.msg_iov = iov as *mut libc::iovec;
                m.msg_hdr.msg_iovlen = 1;
                m
            })
            .collect();
        // SAFETY: every header points at an iovec over a distinct DATAGRAM-byte chunk of
        // `self.data` and at a sockaddr_storage of `self.addrs`, all alive and unaliased
        // until the call returns; the kernel writes at most those lengths.
        let r = unsafe {
            libc::recvmmsg(
                fd,
                msgs.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock => Ok(0),
                _ => Err(e),
            };
        }
        let n = r as usize;
        for (len, m) in self.lens.iter_mut().zip(&msgs).take(n) {
            *len = m.msg_len as usize;
        }
        Ok(n)
    }

    fn datagram(&self, i: usize) -> &[u8] {
        &self.data[i * DATAGRAM..i * DATAGRAM + self.lens[i].min(DATAGRAM)]
    }

    fn from(&self, i: usize) -> Option<SocketAddr> {
        sockaddr(&self.addrs[i])
    }
}

/// The address in a `sockaddr_storage` the kernel filled in.
fn sockaddr(ss: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match i32::from(ss.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in, which it is large
            // enough and aligned for.
            let a = unsafe { &*(ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            Some(SocketAddr::new(
                IpAddr::V4(Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr))),
                u16::from_be(a.sin_port),
            ))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let a = unsafe { &*(ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            Some(SocketAddr::new(
                IpAddr::V6(Ipv6Addr::from(a.sin6_addr.s6_addr)),
                u16::from_be(a.sin6_port),
            ))
        }
        _ => None,
    }
}

/// One event loop thread's state.
pub struct Loop {
    epoll: OwnedFd,
    waker: Arc<Waker>,
    incoming: Receiver<NewViewer>,
    board: Arc<Board>,
    t0: Instant,
    connect_timeout: Duration,
    ticks_per_frame: i64,
    slots: Vec<Slot>,
    heap: BinaryHeap<Reverse<(Instant, usize)>>,
    out: Vec<Datagram>,
    bufs: RecvBufs,
}

impl Loop {
    /// A loop for the viewers arriving on `incoming`, woken by `waker`, of a stream
    /// whose video frames are `ticks_per_frame` 90 kHz ticks apart.
    pub fn new(
        waker: Arc<Waker>,
        incoming: Receiver<NewViewer>,
        board: Arc<Board>,
        t0: Instant,
        connect_timeout: Duration,
        ticks_per_frame: i64,
    ) -> io::Result<Loop> {
        // SAFETY: epoll_create1 takes no pointers; a non-negative result is a new fd.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is freshly created and owned by nobody else.
        let epoll = unsafe { OwnedFd::from_raw_fd(fd) };
        let lp = Loop {
            epoll,
            waker,
            incoming,
            board,
            t0,
            connect_timeout,
            ticks_per_frame: ticks_per_frame.max(1),
            slots: Vec::new(),
            heap: BinaryHeap::new(),
            out: Vec::new(),
            bufs: RecvBufs::new(),
        };
        lp.ctl(libc::EPOLL_CTL_ADD, lp.waker.0.as_raw_fd(), WAKE)?;
        Ok(lp)
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: token,
        };
        // SAFETY: `ev` is a live epoll_event; the kernel copies it.
        if unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), op, fd, &mut ev) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn micros(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.t0).as_micros()).unwrap_or(u64::MAX)
    }

    /// Runs until `stop` is set.
    pub fn run(&mut self, stop: &AtomicBool) {
        // SAFETY: epoll_event is plain data for which all-zero is valid.
        let mut events: Vec<libc::epoll_event> = vec![unsafe { std::mem::zeroed() }; 256];
        let mut next_housekeeping = Instant::now() + HOUSEKEEPING;
        while !stop.load(Relaxed) {
            let now = Instant::now();
            let mut wake_at = next_housekeeping.min(now + MAX_WAIT);
            if let Some(Reverse((t, _))) = self.heap.peek() {
                wake_at = wake_at.min(*t);
            }
            let wait = wake_at.saturating_duration_since(now);
            // Round up: waking before the deadline would spin.
            let ms = wait.as_micros().div_ceil(1000) as libc::c_int;
            // SAFETY: `events` is a live buffer of the length passed.
            let n = unsafe {
                libc::epoll_wait(
                    self.epoll.as_raw_fd(),
                    events.as_mut_ptr(),
                    events.len() as libc::c_int,
                    ms,
                )
            };
            let n = if n < 0 { 0 } else { n as usize };
            let now = Instant::now();
            for ev in &events[..n] {
                let token = ev.u64;
                if token == WAKE {
                    self.waker.drain();
                    self.take_new(now);
                } else {
                    self.receive(token as usize, now);
                }
            }
            self.run_timers(Instant::now());
            if now >= next_housekeeping {
                self.housekeeping(now);
                next_housekeeping = now + HOUSEKEEPING;
            }
        }
    }

    fn take_new(&mut self, now: Instant) {
        while let Ok(v) = self.incoming.try_recv() {
            let i = self.slots.len();
            let local = match v.socket.local_addr() {
                Ok(a) => a,
                Err(e) => {
                    self.fail_idx(v.idx, Reason::Io, format!("local address: {e}"));
                    continue;
                }
            };
            if let Err(e) = self.ctl(libc::EPOLL_CTL_ADD, v.socket.as_raw_fd(), i as u64) {
                self.fail_idx(v.idx, Reason::Io, format!("epoll: {e}"));
                continue;
            }
            self.slots.push(Slot {
                idx: v.idx,
                socket: v.socket,
                local,
                peer: v.peer,
                answered: v.answered,
                want: None,
                queued: None,
                clock: FrameClock::default(),
                state: state::CONNECTING,
                packets: 0,
                done: false,
            });
            self.flush(i, now);
        }
    }

    fn receive(&mut self, i: usize, now: Instant) {
        let Some(slot) = self.slots.get_mut(i) else {
            return;
        };
        if slot.done {
            return;
        }
        let fd = slot.socket.as_raw_fd();
        for _ in 0..MAX_BATCHES {
            let n = match self.bufs.recv(fd) {
                Ok(n) => n,
                // ICMP errors for earlier sends and the like: nothing to read now.
                Err(_) => break,
            };
            for k in 0..n {
                let Some(from) = self.bufs.from(k) else {
                    continue;
                };
                let d = self.bufs.datagram(k);
                slot.peer.handle_datagram(now, from, slot.local, d);
                if rtp::classify(d) == DatagramKind::Rtp
                    && let Some(h) = rtp::parse_header(d)
                    && h.marker
                {
                    if slot.clock.ssrc.is_none() {
                        slot.clock.ssrc = slot
                            .peer
                            .ssrcs()
                            .iter()
                            .find(|s| s.class == PayloadClass::Video)
                            .map(|s| s.ssrc);
                    }
                    if slot.clock.ssrc == Some(h.ssrc) {
                        slot.clock.frame(h.timestamp, self.ticks_per_frame);
                    }
                }
            }
            if n < BATCH {
                break;
            }
        }
        self.flush(i, now);
    }

    fn run_timers(&mut self, now: Instant) {
        while let Some(Reverse((t, i))) = self.heap.peek().copied() {
            if t > now {
                return;
            }
            self.heap.pop();
            let slot = &mut self.slots[i];
            if slot.queued != Some(t) || slot.done {
                continue; // stale
            }
            slot.queued = None;
            match slot.want {
                Some(w) if w > now => {
                    slot.queued = Some(w);
                    self.heap.push(Reverse((w, i)));
                }
                _ => {
                    slot.want = None;
                    self.flush(i, now);
                }
            }
        }
    }

    /// Runs the peer's due timers, sends its datagrams, publishes its counters and
    /// schedules its next deadline.
    fn flush(&mut self, i: usize, now: Instant) {
        let now_us = self.micros(now);
        let slot = &mut self.slots[i];
        let next = slot.peer.poll(now, &mut self.out);
        for d in self.out.drain(..) {
            // A full send buffer or an ICMP error: consent checks are retried anyway.
            let _ = slot.socket.send_to(&d.contents, d.destination);
        }
        let st: &ViewerStat = &self.board.viewers[slot.idx];
        let s = slot.peer.stats();
        if s.packets != slot.packets {
            slot.packets = s.packets;
            st.packets.store(s.packets, Relaxed);
            st.audio_packets.store(s.audio_packets, Relaxed);
            st.bytes.store(s.bytes, Relaxed);
            st.lost.store(s.lost, Relaxed);
            st.frames.store(s.frames, Relaxed);
            st.expected_frames.store(slot.clock.expected, Relaxed);
            st.last_rx_us.store(now_us, Relaxed);
        }
        if slot.state < state::CONNECTED
            && let Some(d) = s.connected_after
        {
            st.connect_us.store(d.as_micros() as u64, Relaxed);
            slot.state = state::CONNECTED;
            st.state.store(slot.state, Relaxed);
        }
        if slot.state < state::PLAYING
            && let Some(d) = s.first_frame_after
        {
            st.ttff_us.store(d.as_micros() as u64, Relaxed);
            slot.state = state::PLAYING;
            st.state.store(slot.state, Relaxed);
        }
        if let Some(c) = slot.peer.closed() {
            let (reason, text) = match c {
                PeerClosed::Remote => (Reason::ServerClosed, "the server closed DTLS".into()),
                PeerClosed::Error(e) => (Reason::RtcError, e.clone()),
                PeerClosed::Local => (Reason::ServerClosed, "closed".into()),
            };
            self.finish(i, reason, text);
            return;
        }
        match next {
            Some(at) => {
                let slot = &mut self.slots[i];
                slot.want = Some(at);
                if slot.queued.is_none_or(|q| at < q) {
                    slot.queued = Some(at);
                    self.heap.push(Reverse((at, i)));
                }
            }
            None => self.finish(i, Reason::ServerClosed, "peer stopped".into()),
        }
    }

    /// Viewers that did not connect, or got no frame, within the connect time-out.
    fn housekeeping(&mut self, now: Instant) {
        for i in 0..self.slots.len() {
            let s = &self.slots[i];
            if s.done || s.state >= state::PLAYING {
                continue;
            }
            if now.saturating_duration_since(s.answered) > self.connect_timeout {
                let (reason, what) = if s.state == state::CONNECTING {
                    (Reason::ConnectTimeout, "ICE/DTLS not up")
                } else {
                    (Reason::NoMedia, "connected but no video frame")
                };
                let text = format!("{what} {:?} after the answer", self.connect_timeout);
                self.finish(i, reason, text);
            }
        }
    }

    /// Stops serving slot `i`: off the epoll set; its socket closes when the loop ends
    /// (the server notices by consent time-out).
    fn finish(&mut self, i: usize, reason: Reason, text: String) {
        let slot = &mut self.slots[i];
        if slot.done {
            return;
        }
        slot.done = true;
        let fd = slot.socket.as_raw_fd();
        let idx = slot.idx;
        let _ = self.ctl(libc::EPOLL_CTL_DEL, fd, i as u64);
        self.fail_idx(idx, reason, text);
    }

    fn fail_idx(&self, idx: usize, reason: Reason, text: String) {
        let st = &self.board.viewers[idx];
        st.finish(reason);
        self.board
            .note_error(format!("viewer {idx}: {}: {text}", reason.name()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recvmmsg_reads_a_burst_with_its_sender() {
        let rx = bind_udp("127.0.0.1:9".parse().unwrap(), 1 << 20).unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = rx.local_addr().unwrap();
        for i in 0..40u8 {
            tx.send_to(&[i; 100], to).unwrap();
        }
        let mut b = RecvBufs::new();
        let n = b.recv(rx.as_raw_fd()).unwrap();
        assert_eq!(n, BATCH);
        assert_eq!(b.datagram(3), &[3u8; 100][..]);
        assert_eq!(b.from(0), Some(tx.local_addr().unwrap()));
        assert_eq!(b.recv(rx.as_raw_fd()).unwrap(), 40 - BATCH);
        assert_eq!(b.recv(rx.as_raw_fd()).unwrap(), 0);
    }

    #[test]
    fn frame_clock_counts_timestamp_gaps() {
        let mut c = FrameClock::default();
        // A burst 1 ms apart, then live frames 33 ms apart with one missing and a
        // timestamp wrap.
        let base = u32::MAX - 10_000;
        for (i, ts) in [0u32, 90, 180, 3180, 6180, 12180, 15180].iter().enumerate() {
            c.frame(base.wrapping_add(*ts), 3000);
            assert_eq!(c.expected, [1, 2, 3, 4, 5, 7, 8][i]);
        }
        c.frame(base.wrapping_add(15180), 3000); // repeated
        assert_eq!(c.expected, 8);
    }

    #[test]
    fn waker_wakes_epoll() {
        let w = Waker::new().unwrap();
        w.wake();
        w.wake();
        w.drain();
        w.drain(); // empty: EAGAIN, ignored
    }
}
