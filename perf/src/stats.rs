//! Per-player counters shared between the executors (which write them) and the
//! coordinating main thread (which snapshots them), and the summary maths.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering::Relaxed};

/// Not started yet.
pub const STATE_PENDING: u8 = 0;
/// Connecting, handshaking or negotiating `play`.
pub const STATE_SETUP: u8 = 1;
/// Receiving media.
pub const STATE_PLAYING: u8 = 2;
/// Never got to play.
pub const STATE_FAILED: u8 = 3;
/// Was playing, then the connection ended.
pub const STATE_ENDED: u8 = 4;

/// Why a player failed or ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Reason {
    /// No failure.
    None = 0,
    /// TCP connect did not finish in time.
    ConnectTimeout,
    /// TCP connect failed.
    ConnectError,
    /// Handshake/connect/createStream/play did not finish in time.
    SetupTimeout,
    /// The server closed the connection.
    ServerClosed,
    /// A read or write failed.
    Io,
    /// The server refused (`_error`, error `onStatus`).
    Refused,
    /// The server's bytes made no sense.
    Protocol,
}

impl Reason {
    /// Every failure reason, for the summary.
    pub const ALL: [Reason; 7] = [
        Reason::ConnectTimeout,
        Reason::ConnectError,
        Reason::SetupTimeout,
        Reason::ServerClosed,
        Reason::Io,
        Reason::Refused,
        Reason::Protocol,
    ];

    /// The reason's name in the summary.
    pub fn name(self) -> &'static str {
        match self {
            Reason::None => "none",
            Reason::ConnectTimeout => "connect_timeout",
            Reason::ConnectError => "connect_error",
            Reason::SetupTimeout => "setup_timeout",
            Reason::ServerClosed => "server_closed",
            Reason::Io => "io_error",
            Reason::Refused => "refused",
            Reason::Protocol => "protocol_error",
        }
    }

    fn from_u8(v: u8) -> Reason {
        Reason::ALL
            .iter()
            .copied()
            .find(|r| *r as u8 == v)
            .unwrap_or(Reason::None)
    }
}

/// Counters of one player. Times are microseconds since the run started.
#[derive(Debug)]
pub struct PlayerStat {
    /// `STATE_*`.
    pub state: AtomicU8,
    /// [`Reason`] of a failed or ended player.
    pub reason: AtomicU8,
    /// Bytes received (handshake included).
    pub bytes: AtomicU64,
    /// Audio messages received.
    pub audio: AtomicU64,
    /// Video messages received.
    pub video: AtomicU64,
    /// Time from the start of TCP connect to the first video message (`u64::MAX`: none).
    pub ttff_us: AtomicU64,
    /// When bytes last arrived.
    pub last_rx_us: AtomicU64,
    /// Acknowledgements sent to the server.
    pub acks: AtomicU64,
}

impl Default for PlayerStat {
    fn default() -> Self {
        PlayerStat {
            state: AtomicU8::new(STATE_PENDING),
            reason: AtomicU8::new(Reason::None as u8),
            bytes: AtomicU64::new(0),
            audio: AtomicU64::new(0),
            video: AtomicU64::new(0),
            ttff_us: AtomicU64::new(u64::MAX),
            last_rx_us: AtomicU64::new(0),
            acks: AtomicU64::new(0),
        }
    }
}

impl PlayerStat {
    /// Records the end of the player: failed if it never played, ended otherwise.
    pub fn finish(&self, reason: Reason) {
        let state = if self.state.load(Relaxed) == STATE_PLAYING {
            STATE_ENDED
        } else {
            STATE_FAILED
        };
        self.reason.store(reason as u8, Relaxed);
        self.state.store(state, Relaxed);
    }

    /// Whether the player has played or given up (it will not change state by itself).
    pub fn resolved(&self) -> bool {
        self.state.load(Relaxed) >= STATE_PLAYING
    }

    /// The failure reason.
    pub fn reason(&self) -> Reason {
        Reason::from_u8(self.reason.load(Relaxed))
    }
}

/// Shared by all executors: one [`PlayerStat`] per player and a few error texts.
#[derive(Debug)]
pub struct Board {
    /// Indexed by player number.
    pub players: Vec<PlayerStat>,
    /// The first error messages, for the summary (at most [`Board::MAX_ERRORS`]).
    pub errors: Mutex<Vec<String>>,
}

impl Board {
    /// Most error texts kept.
    pub const MAX_ERRORS: usize = 5;

    /// A board for `n` players.
    pub fn new(n: usize) -> Self {
        Board {
            players: (0..n).map(|_| PlayerStat::default()).collect(),
            errors: Mutex::new(Vec::new()),
        }
    }

    /// Keeps `text` if fewer than [`Board::MAX_ERRORS`] were kept.
    pub fn note_error(&self, text: String) {
        if let Ok(mut errors) = self.errors.lock()
            && errors.len() < Self::MAX_ERRORS
        {
            errors.push(text);
        }
    }
}

/// A copy of one player's counters at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snap {
    /// `STATE_*`.
    pub state: u8,
    /// Bytes received.
    pub bytes: u64,
    /// Audio messages received.
    pub audio: u64,
    /// Video messages received.
    pub video: u64,
    /// When bytes last arrived (µs since start).
    pub last_rx_us: u64,
}

impl Snap {
    /// Reads the counters of `p`.
    pub fn of(p: &PlayerStat) -> Snap {
        Snap {
            state: p.state.load(Relaxed),
            bytes: p.bytes.load(Relaxed),
            audio: p.audio.load(Relaxed),
            video: p.video.load(Relaxed),
            last_rx_us: p.last_rx_us.load(Relaxed),
        }
    }
}

/// Nearest-rank percentile (`q` in 0..=100) of sorted values; 0 for none.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Sorts floats (NaN-free input) ascending.
pub fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

/// Utime + stime of a process in clock ticks, from `/proc/PID/stat` (`self` for this one).
pub fn cpu_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Clock ticks per second.
pub fn clock_ticks_per_sec() -> f64 {
    // SAFETY: sysconf only reads a configuration value.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let v = sorted((1..=100).rev().map(f64::from).collect());
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 5.0), 5.0);
        assert_eq!(percentile(&v, 95.0), 95.0);
        assert_eq!(percentile(&v, 100.0), 100.0);
        assert_eq!(percentile(&v, 0.0), 1.0);
        assert_eq!(percentile(&[7.0], 5.0), 7.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }

    #[test]
    fn reads_own_cpu_time() {
        assert!(cpu_ticks("self").is_some());
        assert!(cpu_ticks("nonexistent-pid").is_none());
        assert!(clock_ticks_per_sec() >= 1.0);
    }

    #[test]
    fn finish_tells_failed_from_ended() {
        let p = PlayerStat::default();
        p.state.store(STATE_SETUP, Relaxed);
        assert!(!p.resolved());
        p.finish(Reason::SetupTimeout);
        assert_eq!(p.state.load(Relaxed), STATE_FAILED);
        assert_eq!(p.reason(), Reason::SetupTimeout);
        let p = PlayerStat::default();
        p.state.store(STATE_PLAYING, Relaxed);
        p.finish(Reason::ServerClosed);
        assert_eq!(p.state.load(Relaxed), STATE_ENDED);
        assert!(p.resolved());
    }
}
