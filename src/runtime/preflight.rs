//! Checks made before any shard starts, so that a bad environment or a taken port gives
//! one clear line instead of a failure deep inside a shard.

use crate::config::{ConfigError, HttpConfig, RtmpConfig, Settings, SourceUrl};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use tracing::{info, warn};

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
    /// The connection caps need more file descriptors than the open-file limit allows.
    #[error(
        "{shards} shards x (http.max_connections {http} + rtmp.max_connections {rtmp}) + {fixed} \
         for listeners, WebRTC sockets, sources and a margin = {need} open files, more than \
         RLIMIT_NOFILE allows ({limit}; hard limit {hard}). Fix: lower http.max_connections or \
         rtmp.max_connections (or runtime.shards), or raise the limit (`ulimit -Hn` as root, \
         LimitNOFILE= in a systemd unit, --ulimit nofile= for docker)"
    )]
    NoFile {
        /// Shards.
        shards: usize,
        /// `http.max_connections`.
        http: usize,
        /// `rtmp.max_connections`.
        rtmp: usize,
        /// Descriptors needed besides the connections.
        fixed: u64,
        /// Descriptors needed in all.
        need: u64,
        /// The soft limit after raising it.
        limit: u64,
        /// The hard limit.
        hard: u64,
    },
}

/// Descriptors of the process itself: standard streams, log, signal thread, config,
/// the pre-flight probes, and a margin for refused connections being answered.
const PROCESS_FDS: u64 = 64;
/// Descriptors of each shard besides its connections: two listeners (four with HTTPS and
/// RTMPS), the WebRTC UDP
/// socket, three io_uring rings, eventfds of the mesh and timers, with room to spare.
const SHARD_FDS: u64 = 32;
/// Descriptors of each RTSP camera: its TCP connection and an RTP/RTCP UDP pair per
/// track, up to three tracks.
const RTSP_SOURCE_FDS: u64 = 8;
/// Descriptors of each file source (the file it loops, and one spare).
const FILE_SOURCE_FDS: u64 = 2;
/// A default connection cap is never lowered below this to fit the open-file limit; a
/// limit that leaves less is an error.
const MIN_LOWERED_CAP: usize = 64;

/// The open-file limit as [`check_nofile`] left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoFile {
    /// The soft limit the process started with.
    pub before: u64,
    /// The soft limit now (the hard limit, unless raising it failed).
    pub soft: u64,
    /// The hard limit (`u64::MAX` for unlimited).
    pub hard: u64,
    /// Descriptors the configured caps need at most.
    pub need: u64,
    /// `http.max_connections` and `rtmp.max_connections` when their defaults were
    /// lowered to fit.
    pub lowered: Option<(usize, usize)>,
}

impl NoFile {
    /// Logs the limit (info) and any lowered default (warning). Called once logging is up.
    pub fn log(&self) {
        let hard = if self.hard == u64::MAX {
            "unlimited".to_string()
        } else {
            self.hard.to_string()
        };
        if self.soft > self.before {
            info!(
                "RLIMIT_NOFILE: soft limit raised from {} to {} (hard {hard}); the connection caps need up to {}",
                self.before, self.soft, self.need
            );
        } else {
            info!(
                "RLIMIT_NOFILE: {} (hard {hard}); the connection caps need up to {}",
                self.soft, self.need
            );
        }
        if let Some((http, rtmp)) = self.lowered {
            warn!(
                "RLIMIT_NOFILE {} is too low for the default connection caps: http.max_connections \
                 lowered to {http} and rtmp.max_connections to {rtmp} per shard. Set them in the \
                 config, or raise the limit (LimitNOFILE= in a systemd unit, `ulimit -Hn`)",
                self.soft
            );
        }
    }
}

/// Raises the soft RLIMIT_NOFILE to the hard limit, then checks that the connection caps
/// of `settings` fit: shards x (http.max_connections + rtmp.max_connections) + what the
/// process, the shards and the sources hold. Caps still at their defaults are lowered to
/// fit (reported by [`NoFile::log`]); configured caps that do not fit are an error.
pub fn check_nofile(settings: &mut Settings) -> Result<NoFile, PreflightError> {
    let (before, hard) = nofile_limits().unwrap_or((u64::MAX, u64::MAX));
    let soft = if before < hard {
        raise_nofile(hard);
        nofile_limits().map_or(before, |(soft, _)| soft)
    } else {
        before
    };
    let shards = settings.shards;
    let fixed = fixed_fds(settings);
    let cfg = &mut settings.config;
    let caps = Caps {
        http: cfg.http.max_connections,
        rtmp: cfg.rtmp.max_connections,
        http_default: cfg.http.max_connections == HttpConfig::default().max_connections,
        rtmp_default: cfg.rtmp.max_connections == RtmpConfig::default().max_connections,
    };
    let fit = fit_caps(soft, shards, fixed, caps).map_err(|need| PreflightError::NoFile {
        shards,
        http: caps.http,
        rtmp: caps.rtmp,
        fixed,
        need,
        limit: soft,
        hard,
    })?;
    let lowered = (fit != (caps.http, caps.rtmp)).then_some(fit);
    (cfg.http.max_connections, cfg.rtmp.max_connections) = fit;
    Ok(NoFile {
        before,
        soft,
        hard,
        need: need(shards, fixed, fit.0, fit.1),
        lowered,
    })
}

/// The connection caps per shard, and which are still the built-in defaults.
#[derive(Debug, Clone, Copy)]
struct Caps {
    http: usize,
    rtmp: usize,
    http_default: bool,
    rtmp_default: bool,
}

fn need(shards: usize, fixed: u64, http: usize, rtmp: usize) -> u64 {
    (shards as u64)
        .saturating_mul(http as u64 + rtmp as u64)
        .saturating_add(fixed)
}

/// The caps that fit in `limit` descriptors: the configured ones if they fit, else with
/// the defaults among them lowered (shared equally); `Err(need)` if nothing fits.
fn fit_caps(limit: u64, shards: usize, fixed: u64, caps: Caps) -> Result<(usize, usize), u64> {
    let wanted = need(shards, fixed, caps.http, caps.rtmp);
    if wanted <= limit {
        return Ok((caps.http, caps.rtmp));
    }
    let lowerable = u64::from(caps.http_default) + u64::from(caps.rtmp_default);
    if lowerable == 0 {
        return Err(wanted);
    }
    let per_shard = limit.saturating_sub(fixed) / (shards.max(1) as u64);
    let kept = if caps.http_default {
        0
    } else {
        caps.http as u64
    } + if caps.rtmp_default {
        0
    } else {
        caps.rtmp as u64
    };
    let each = per_shard.saturating_sub(kept) / lowerable;
    let each = usize::try_from(each).unwrap_or(usize::MAX);
    if each < MIN_LOWERED_CAP {
        return Err(wanted);
    }
    let pick = |default: bool, v: usize| if default { each.min(v) } else { v };
    Ok((
        pick(caps.http_default, caps.http),
        pick(caps.rtmp_default, caps.rtmp),
    ))
}

/// Descriptors held besides the connections: the process, each shard, each source.
fn fixed_fds(settings: &Settings) -> u64 {
    let sources: u64 = settings
        .table
        .plans
        .iter()
        .map(|s| match s.source {
            SourceUrl::Rtsp(_) => RTSP_SOURCE_FDS,
            _ => FILE_SOURCE_FDS,
        })
        .sum();
    PROCESS_FDS + settings.shards as u64 * SHARD_FDS + sources
}

/// The soft and hard RLIMIT_NOFILE (`u64::MAX` for unlimited).
fn nofile_limits() -> Option<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit for getrlimit to fill.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    let value = |v: libc::rlim_t| {
        if v == libc::RLIM_INFINITY {
            u64::MAX
        } else {
            v
        }
    };
    (rc == 0).then(|| (value(lim.rlim_cur), value(lim.rlim_max)))
}

/// Sets the soft RLIMIT_NOFILE to `hard`, or, for an unlimited hard limit, to the most
/// the kernel allows a process (`fs.nr_open`). A failure leaves the limit as it was.
fn raise_nofile(hard: u64) {
    let target = if hard == u64::MAX {
        std::fs::read_to_string("/proc/sys/fs/nr_open")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(1 << 20)
    } else {
        hard
    };
    let lim = libc::rlimit {
        rlim_cur: target,
        rlim_max: if hard == u64::MAX {
            libc::RLIM_INFINITY
        } else {
            hard
        },
    };
    // SAFETY: `lim` is a valid rlimit; setrlimit only reads it.
    let _ = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
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

/// Checks that the TLS listen addresses (`http.tls_listen`, `rtmp.tls_listen`) are free
/// and differ from `taken` (the plain listeners), and resolves their port 0.
pub fn probe_tls_listeners(
    settings: &mut Settings,
    taken: &[SocketAddr],
) -> Result<(), PreflightError> {
    let mut taken = taken.to_vec();
    let tls = &mut settings.tls;
    for (key, l) in [
        ("http.tls_listen", &mut tls.http),
        ("rtmp.tls_listen", &mut tls.rtmp),
    ] {
        let Some(l) = l else { continue };
        let addr = probe_tcp(key, l.listen)?;
        if taken.contains(&addr) {
            let why = format!("{addr} is also used by another listener");
            return Err(ConfigError::new(key, why).into());
        }
        l.listen = addr;
        taken.push(addr);
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULTS: Caps = Caps {
        http: 4096,
        rtmp: 4096,
        http_default: true,
        rtmp_default: true,
    };

    #[test]
    fn caps_that_fit_are_kept() {
        // 2 shards x 8192 + 200 = 16584 fit in this machine's 20000 and in systemd's 524288.
        assert_eq!(fit_caps(20_000, 2, 200, DEFAULTS), Ok((4096, 4096)));
        assert_eq!(fit_caps(524_288, 16, 600, DEFAULTS), Ok((4096, 4096)));
    }

    #[test]
    fn default_caps_are_lowered_to_fit_a_hard_limit_of_4096() {
        // (4096 - 200) / 2 shards = 1948 per shard, 974 each.
        assert_eq!(fit_caps(4096, 2, 200, DEFAULTS), Ok((974, 974)));
        let (h, r) = fit_caps(4096, 2, 200, DEFAULTS).expect("fits");
        assert!(need(2, 200, h, r) <= 4096);
    }

    #[test]
    fn a_configured_cap_is_kept_and_only_the_default_one_lowered() {
        let caps = Caps {
            http: 500,
            http_default: false,
            ..DEFAULTS
        };
        // 1948 per shard - 500 = 1448 for RTMP.
        assert_eq!(fit_caps(4096, 2, 200, caps), Ok((500, 1448)));
    }

    #[test]
    fn configured_caps_that_do_not_fit_are_an_error_with_what_they_need() {
        let caps = Caps {
            http: 8000,
            rtmp: 100,
            http_default: false,
            rtmp_default: false,
        };
        assert_eq!(fit_caps(4096, 2, 200, caps), Err(16_400));
        // Nor is a default lowered to almost nothing.
        let caps = Caps {
            http: 2000,
            http_default: false,
            ..DEFAULTS
        };
        assert_eq!(fit_caps(4096, 2, 200, caps), Err(12_392));
    }

    #[test]
    fn the_error_names_the_keys_the_limit_and_the_fix() {
        let e = PreflightError::NoFile {
            shards: 2,
            http: 8000,
            rtmp: 100,
            fixed: 200,
            need: 16_400,
            limit: 1024,
            hard: 1024,
        }
        .to_string();
        for part in [
            "http.max_connections 8000",
            "rtmp.max_connections 100",
            "= 16400 open files",
            "RLIMIT_NOFILE allows (1024; hard limit 1024)",
            "LimitNOFILE=",
        ] {
            assert!(e.contains(part), "{e}");
        }
    }
}
