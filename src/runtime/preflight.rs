//! Checks made before any shard starts, so that a bad environment or a taken port gives
//! one clear line instead of a failure deep inside a shard.

use crate::config::{ConfigError, Settings};
use std::net::{SocketAddr, TcpListener, UdpSocket};

/// glommio refuses to start below this RLIMIT_MEMLOCK.
const GLOMMIO_MIN_MEMLOCK: u64 = 512 * 1024;
/// glommio registers its I/O memory with three io_uring rings per shard.
const RINGS_PER_SHARD: u64 = 3;

/// A pre-flight failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PreflightError {
    /// A configured address or port cannot be used.
    #[error("config error: {0}")]
    Config(#[from] ConfigError),
    /// The locked-memory limit is too low for io_uring.
    #[error(
        "RLIMIT_MEMLOCK is {have_kib} KiB but corecast needs at least {need_kib} KiB of locked memory \
         for io_uring ({shards} shards x runtime.io_memory {io_kib} KiB x {rings} rings). Fix: raise the \
         limit (`ulimit -l {need_kib}` in the shell, LimitMEMLOCK={need_kib}K in a systemd unit, \
         --ulimit memlock=-1 for docker), or lower runtime.io_memory or runtime.shards"
    )]
    MemLock {
        /// Current soft limit, KiB.
        have_kib: u64,
        /// Needed, KiB.
        need_kib: u64,
        /// Shards.
        shards: usize,
        /// io_memory, KiB.
        io_kib: u64,
        /// Rings per shard.
        rings: u64,
    },
}

/// Checks RLIMIT_MEMLOCK against what the shards will lock. Processes with CAP_IPC_LOCK
/// (root) are exempt from the limit except for glommio's own minimum.
pub fn check_memlock(shards: usize, io_memory: u64) -> Result<(), PreflightError> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit for getrlimit to fill.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) };
    if rc != 0 || lim.rlim_cur == libc::RLIM_INFINITY {
        return Ok(());
    }
    let have = lim.rlim_cur;
    let io_memory = io_memory.max(64 * 1024);
    let needed = if has_cap_ipc_lock() {
        GLOMMIO_MIN_MEMLOCK
    } else {
        (shards as u64)
            .saturating_mul(io_memory)
            .saturating_mul(RINGS_PER_SHARD)
            .max(GLOMMIO_MIN_MEMLOCK)
    };
    if have < needed {
        return Err(PreflightError::MemLock {
            have_kib: have / 1024,
            need_kib: needed.div_ceil(1024),
            shards,
            io_kib: io_memory / 1024,
            rings: RINGS_PER_SHARD,
        });
    }
    Ok(())
}

fn has_cap_ipc_lock() -> bool {
    const CAP_IPC_LOCK: u32 = 14;
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return false;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << CAP_IPC_LOCK) != 0)
}

/// Checks that the listen addresses and WebRTC ports are free, and resolves port 0 to the
/// port every shard will then share. Returns the HTTP and RTMP addresses.
pub fn probe_listeners(settings: &Settings) -> Result<(SocketAddr, SocketAddr), PreflightError> {
    let cfg = &settings.config;
    let http = probe_tcp("http.listen", cfg.http.listen)?;
    let rtmp = probe_tcp("rtmp.listen", cfg.rtmp.listen)?;
    if http == rtmp {
        return Err(ConfigError::new("rtmp.listen", format!("{rtmp} is also http.listen")).into());
    }
    if cfg.webrtc.udp_port != 0 {
        for i in 0..settings.shards {
            let port = cfg.webrtc.udp_port + i as u16;
            let addr = SocketAddr::new(cfg.webrtc.bind, port);
            UdpSocket::bind(addr).map_err(|e| {
                ConfigError::new(
                    "webrtc.udp_port",
                    format!("UDP {addr} (shard {i}) cannot be bound: {}", describe(&e)),
                )
            })?;
        }
    }
    Ok((http, rtmp))
}

fn probe_tcp(key: &str, addr: SocketAddr) -> Result<SocketAddr, PreflightError> {
    // A plain bind (no SO_REUSEPORT) fails if anyone holds the port, including another
    // corecast whose shards share it.
    let l = TcpListener::bind(addr)
        .map_err(|e| ConfigError::new(key, format!("{addr} cannot be bound: {}", describe(&e))))?;
    let resolved = l
        .local_addr()
        .map_err(|e| ConfigError::new(key, e.to_string()))?;
    Ok(resolved)
}

fn describe(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::AddrInUse => {
            "address already in use (another server on this port?)".into()
        }
        std::io::ErrorKind::AddrNotAvailable => "address not available on this machine".into(),
        std::io::ErrorKind::PermissionDenied => {
            "permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)".into()
        }
        _ => e.to_string(),
    }
}
