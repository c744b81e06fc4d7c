//! What the WHEP load tool knows about its viewers, shared by the I/O loops
//! (`whep_io`) that update it and the report (`whep`) that reads it: each viewer's
//! state and counters, and the board of all of them.

use corecast_client::ClientError;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering::Relaxed};

/// Viewer states, in order of progress.
pub mod state {
    /// Not started yet.
    pub const PENDING: u8 = 0;
    /// POSTing the offer.
    pub const SIGNALING: u8 = 1;
    /// Answer applied; ICE and DTLS under way.
    pub const CONNECTING: u8 = 2;
    /// ICE and DTLS up, no video frame yet.
    pub const CONNECTED: u8 = 3;
    /// Got a video frame.
    pub const PLAYING: u8 = 4;
    /// Never got to play.
    pub const FAILED: u8 = 5;
    /// Was playing, then stopped.
    pub const ENDED: u8 = 6;
}

/// Why a viewer failed or ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Reason {
    /// No failure.
    None = 0,
    /// The server answered 503 (at its session limit, or no media yet).
    Busy,
    /// The server answered another non-201 status.
    HttpStatus,
    /// The HTTP exchange failed (connect, time-out).
    HttpError,
    /// The answer was unusable, or the peer could not be set up.
    Setup,
    /// ICE and DTLS did not come up within the connect time-out.
    ConnectTimeout,
    /// Connected, but no video frame within the connect time-out.
    NoMedia,
    /// The server closed the session (DTLS close).
    ServerClosed,
    /// str0m failed.
    RtcError,
    /// A socket call failed.
    Io,
}

impl Reason {
    pub(crate) const ALL: [Reason; 9] = [
        Reason::Busy,
        Reason::HttpStatus,
        Reason::HttpError,
        Reason::Setup,
        Reason::ConnectTimeout,
        Reason::NoMedia,
        Reason::ServerClosed,
        Reason::RtcError,
        Reason::Io,
    ];

    /// The reason's name in the summary.
    pub fn name(self) -> &'static str {
        match self {
            Reason::None => "none",
            Reason::Busy => "http_503",
            Reason::HttpStatus => "http_status",
            Reason::HttpError => "http_error",
            Reason::Setup => "setup_error",
            Reason::ConnectTimeout => "connect_timeout",
            Reason::NoMedia => "no_media",
            Reason::ServerClosed => "server_closed",
            Reason::RtcError => "rtc_error",
            Reason::Io => "io_error",
        }
    }

    pub(crate) fn from_u8(v: u8) -> Reason {
        Reason::ALL
            .into_iter()
            .find(|r| *r as u8 == v)
            .unwrap_or(Reason::None)
    }

    pub(crate) fn of(e: &ClientError) -> Reason {
        match e {
            ClientError::Status { status: 503, .. } => Reason::Busy,
            ClientError::Status { .. } => Reason::HttpStatus,
            ClientError::Http(_) => Reason::HttpError,
            ClientError::Io(_) => Reason::Io,
            _ => Reason::Setup,
        }
    }
}

/// Counters of one viewer, written by its loop and read by the main thread. Times are
/// microseconds (`u64::MAX`: not yet).
#[derive(Debug)]
pub struct ViewerStat {
    /// A [`state`] value.
    pub state: AtomicU8,
    /// A [`Reason`] once failed or ended.
    pub reason: AtomicU8,
    /// Unique RTP packets.
    pub packets: AtomicU64,
    /// Of those, audio packets.
    pub audio_packets: AtomicU64,
    /// Their bytes (whole datagrams: RTP header, payload, SRTP tag).
    pub bytes: AtomicU64,
    /// Packets missing from the sequence ranges.
    pub lost: AtomicU64,
    /// Video frames (marker bits).
    pub frames: AtomicU64,
    /// Video frames their RTP timestamps span (at the stream's frame rate).
    pub expected_frames: AtomicU64,
    /// The WHEP POST's round trip.
    pub signal_us: AtomicU64,
    /// Answer to ICE and DTLS up.
    pub connect_us: AtomicU64,
    /// Answer to the first video frame (first packet with the marker bit).
    pub ttff_us: AtomicU64,
    /// When a packet last arrived (since the run started).
    pub last_rx_us: AtomicU64,
}

impl Default for ViewerStat {
    fn default() -> Self {
        ViewerStat {
            state: AtomicU8::new(state::PENDING),
            reason: AtomicU8::new(Reason::None as u8),
            packets: AtomicU64::new(0),
            audio_packets: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            lost: AtomicU64::new(0),
            frames: AtomicU64::new(0),
            expected_frames: AtomicU64::new(0),
            signal_us: AtomicU64::new(u64::MAX),
            connect_us: AtomicU64::new(u64::MAX),
            ttff_us: AtomicU64::new(u64::MAX),
            last_rx_us: AtomicU64::new(0),
        }
    }
}

impl ViewerStat {
    /// Records the end: failed if it never played, ended otherwise.
    pub fn finish(&self, reason: Reason) {
        let s = if self.state.load(Relaxed) == state::PLAYING {
            state::ENDED
        } else {
            state::FAILED
        };
        self.reason.store(reason as u8, Relaxed);
        self.state.store(s, Relaxed);
    }

    /// Plays, or has given up.
    pub fn resolved(&self) -> bool {
        self.state.load(Relaxed) >= state::PLAYING
    }
}

/// Every viewer's counters and the first error texts.
#[derive(Debug)]
pub struct Board {
    /// Indexed by viewer number.
    pub viewers: Vec<ViewerStat>,
    pub(crate) errors: Mutex<Vec<String>>,
}

impl Board {
    pub(crate) const MAX_ERRORS: usize = 5;

    pub(crate) fn new(n: usize) -> Self {
        Board {
            viewers: (0..n).map(|_| ViewerStat::default()).collect(),
            errors: Mutex::new(Vec::new()),
        }
    }

    /// Keeps `text` if fewer than a few were kept.
    pub fn note_error(&self, text: String) {
        if let Ok(mut e) = self.errors.lock()
            && e.len() < Self::MAX_ERRORS
        {
            e.push(text);
        }
    }
}
