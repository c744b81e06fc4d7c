//! Timeline continuity: what counts as a jump in a source's clock, and how time continues
//! across one.
//!
//! A source's clock may jump: an encoder whose clock leaps, a publisher that restarts its
//! clock at 0, a camera reset. Viewers must see time go on as if nothing happened, or
//! their players freeze until the media time catches up (forward) or drop frames as
//! late (backward). The rule, one for every source:
//!
//! - a step of more than [`MAX_FORWARD_SECS`] forward, or more than [`MAX_BACKWARD_SECS`]
//!   back (beyond what reordering and B-frames explain), is a jump ([`JumpLimits`]);
//! - after a jump, time continues one frame interval after the latest frame
//!   ([`FrameInterval`]: the latest interval seen, else 1/30 s for video and 20 ms for
//!   audio).
//!
//! The RTP depacketizer (`rtp::depack`) applies it to each track's 32-bit RTP time;
//! [`Continuity`] applies it to the frames a publisher pushes, keeping the tracks of a
//! stream in sync: one jump moves every track by the same wall-time offset.
//!
//! Pure: no clock, no I/O. Times are `i64` ticks of a track's clock; the stream-level
//! offset is in microseconds, the one unit every track converts to.

use super::{Frame, MediaKind, TrackId};

/// A forward step beyond this many seconds is a jump.
pub const MAX_FORWARD_SECS: i64 = 10;
/// A backward step beyond this many seconds is a jump (less is reordering).
pub const MAX_BACKWARD_SECS: i64 = 1;
/// Assumed video frame rate while no frame interval is known.
const DEFAULT_VIDEO_FPS: i64 = 30;
/// Assumed audio frames per second (20 ms) while no frame interval is known.
const DEFAULT_AUDIO_FPS: i64 = 50;
const MICROS: i64 = 1_000_000;

/// The largest steps of a clock that are not jumps, in its ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JumpLimits {
    /// Largest forward step.
    pub forward: i64,
    /// Largest backward step (positive).
    pub backward: i64,
}

impl JumpLimits {
    /// The limits for a clock of `clock_rate` Hz.
    pub fn new(clock_rate: u32) -> JumpLimits {
        let rate = i64::from(clock_rate.max(1));
        JumpLimits {
            forward: rate * MAX_FORWARD_SECS,
            backward: rate * MAX_BACKWARD_SECS,
        }
    }

    /// Both limits at most `max` (a 32-bit RTP step cannot exceed `i32::MAX`).
    pub fn capped(self, max: i64) -> JumpLimits {
        JumpLimits {
            forward: self.forward.min(max),
            backward: self.backward.min(max),
        }
    }

    /// Whether a step of `step` ticks is a jump.
    pub fn is_jump(&self, step: i64) -> bool {
        step > self.forward || step < -self.backward
    }
}

/// The typical frame interval of a track, in its ticks: where time continues after a
/// jump.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameInterval {
    latest: Option<i64>,
    default: i64,
    /// Steps up to this long are frame intervals, not pauses (1 s).
    max: i64,
}

impl FrameInterval {
    /// No interval known yet: 1/30 s for video, 20 ms for audio.
    pub fn new(clock_rate: u32, kind: MediaKind) -> FrameInterval {
        let rate = i64::from(clock_rate.max(1));
        let per_second = match kind {
            MediaKind::Video => DEFAULT_VIDEO_FPS,
            MediaKind::Audio => DEFAULT_AUDIO_FPS,
        };
        FrameInterval {
            latest: None,
            default: (rate / per_second).max(1),
            max: rate * MAX_BACKWARD_SECS,
        }
    }

    /// A step between two consecutive frames: a positive one of at most 1 s is the
    /// interval now; others (a pause, reordering) leave it.
    pub fn observe(&mut self, step: i64) {
        if step > 0 && step <= self.max {
            self.latest = Some(step);
        }
    }

    /// A frame's duration as the payload format tells it.
    pub fn set(&mut self, duration: i64) {
        if duration > 0 {
            self.latest = Some(duration);
        }
    }

    /// The interval: the latest one, else the default.
    pub fn get(&self) -> i64 {
        self.latest.unwrap_or(self.default)
    }
}

/// A jump [`Continuity`] absorbed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Jump {
    /// The track it was seen on.
    pub track: TrackId,
    /// How far the source's clock jumped, in microseconds (negative: back).
    pub by_micros: i64,
}

impl Jump {
    /// The jump in seconds.
    pub fn secs(&self) -> f64 {
        self.by_micros as f64 / MICROS as f64
    }
}

/// One track's state.
#[derive(Debug, Clone)]
struct Line {
    id: TrackId,
    clock: u32,
    limits: JumpLimits,
    interval: FrameInterval,
    /// The stream offset in this track's ticks, valid for `generation`.
    offset: i64,
    generation: u64,
    /// Largest output dts so far.
    last: Option<i64>,
}

/// Continues the timeline of a pushed stream across jumps of the source's clock.
///
/// Each frame's dts (in its track's clock) plus the stream's offset is its output dts.
/// A frame whose output dts lies more than 10 s beyond the latest output of the stream
/// (any track: a track that was silent for a while is no jump), or more than 1 s before
/// the latest output of its own track, is a jump: its output continues one frame
/// interval after its track's latest frame, and the stream's offset changes by the same
/// wall time for every track, so audio and video stay in sync. Smaller backward steps
/// (reordering) are kept as they are. `pts - dts` (B-frames) is kept. After
/// [`restart`](Self::restart) (a new publisher) the next frame continues the timeline
/// whatever its time.
#[derive(Debug, Clone, Default)]
pub struct Continuity {
    lines: Vec<Line>,
    /// Added to every track's time, in microseconds.
    offset_micros: i64,
    /// Bumped when `offset_micros` changes.
    generation: u64,
    /// Latest output time of any track, in microseconds.
    latest_micros: Option<i64>,
    /// A new source starts: its first frame continues the timeline.
    restarting: bool,
}

impl Continuity {
    /// A timeline that passes times through until the first jump.
    pub fn new() -> Continuity {
        Continuity::default()
    }

    /// A new source (a publisher's new session) takes over the stream: its clock is
    /// unrelated, so its first frame continues one frame interval after the latest
    /// output (without counting as a jump), and every track follows.
    pub fn restart(&mut self) {
        self.restarting = true;
    }

    /// Rebases `frame`, of a track whose clock runs at `clock_rate` Hz. Returns the jump
    /// it absorbed, if any.
    pub fn rebase(&mut self, frame: &mut Frame, clock_rate: u32) -> Option<Jump> {
        let generation = self.generation;
        let offset_micros = self.offset_micros;
        let latest_micros = self.latest_micros;
        let restart = std::mem::take(&mut self.restarting);
        let line = self.line(frame.track, frame.kind, clock_rate);
        if line.generation != generation {
            line.offset = micros_to_ticks(offset_micros, line.clock);
            line.generation = generation;
        }
        let out = frame.dts.saturating_add(line.offset);
        let ahead = latest_micros.is_some_and(|l| {
            ticks_to_micros(out, line.clock).saturating_sub(l) > MAX_FORWARD_SECS * MICROS
        });
        let behind = line
            .last
            .is_some_and(|l| l.saturating_sub(out) > line.limits.backward);
        let mut jump = None;
        let dts = if ahead || behind || restart {
            let interval = line.interval.get();
            let resume = match (line.last, latest_micros) {
                (Some(l), _) => l.saturating_add(interval),
                (None, Some(l)) => micros_to_ticks(l, line.clock).saturating_add(interval),
                // The stream's first frame.
                (None, None) => out,
            };
            line.offset = resume.saturating_sub(frame.dts);
            line.generation = generation.wrapping_add(1);
            jump = Some(Jump {
                track: line.id,
                by_micros: ticks_to_micros(out.saturating_sub(resume), line.clock),
            });
            resume
        } else {
            if let Some(l) = line.last {
                line.interval.observe(out.saturating_sub(l));
            }
            out
        };
        line.last = Some(line.last.map_or(dts, |l| l.max(dts)));
        let dts_micros = ticks_to_micros(dts, line.clock);
        if jump.is_some() {
            // Every other track takes the new offset at its next frame.
            self.offset_micros = ticks_to_micros(line.offset, line.clock);
            self.generation = generation.wrapping_add(1);
        }
        self.latest_micros = Some(latest_micros.map_or(dts_micros, |l| l.max(dts_micros)));
        frame.pts = frame.pts.saturating_add(dts.saturating_sub(frame.dts));
        frame.dts = dts;
        jump.filter(|_| !restart)
    }

    /// Notes `frame`'s time as output without rebasing it (a source that keeps its own
    /// timeline continuous), so that after [`restart`](Self::restart) the next source
    /// continues from it.
    pub fn observe(&mut self, frame: &Frame, clock_rate: u32) {
        let at = ticks_to_micros(frame.dts, clock_rate);
        self.latest_micros = Some(self.latest_micros.map_or(at, |l| l.max(at)));
    }

    /// The latest output time of any track, in microseconds.
    pub fn latest_micros(&self) -> Option<i64> {
        self.latest_micros
    }

    /// The state of `track`, created (or reset, if its clock changed) as needed.
    fn line(&mut self, track: TrackId, kind: MediaKind, clock_rate: u32) -> &mut Line {
        let clock = clock_rate.max(1);
        let pos = match self.lines.iter().position(|l| l.id == track) {
            Some(p) => p,
            None => {
                self.lines.push(Line::new(track, kind, clock));
                self.lines.len() - 1
            }
        };
        let line = &mut self.lines[pos];
        if line.clock != clock {
            *line = Line::new(track, kind, clock);
        }
        line
    }
}

impl Line {
    fn new(id: TrackId, kind: MediaKind, clock: u32) -> Line {
        Line {
            id,
            clock,
            limits: JumpLimits::new(clock),
            interval: FrameInterval::new(clock, kind),
            offset: 0,
            // Never equal to a stream generation's first use: the offset is computed.
            generation: u64::MAX,
            last: None,
        }
    }
}

/// Rate-limits the reports of absorbed jumps: at most one per [`REPORT_EVERY_SECS`] of
/// stream time (the one clock a pure core has; a live stream's time runs with the wall
/// clock), so a publisher whose clock jumps on every frame does not flood the log.
#[derive(Debug, Clone, Default)]
pub struct JumpReports {
    /// Stream time of the latest report.
    last: Option<i64>,
    /// Jumps since the latest report that were not reported.
    held: u64,
}

/// Seconds of stream time between two reports of jumps.
pub const REPORT_EVERY_SECS: i64 = 10;

impl JumpReports {
    /// No report yet.
    pub fn new() -> JumpReports {
        JumpReports::default()
    }

    /// A jump at stream time `at_micros`: `Some(jumps held back since the latest report)`
    /// if it should be reported now.
    pub fn report(&mut self, at_micros: i64) -> Option<u64> {
        let due = self
            .last
            .is_none_or(|l| at_micros.saturating_sub(l) >= REPORT_EVERY_SECS * MICROS);
        if !due {
            self.held = self.held.saturating_add(1);
            return None;
        }
        self.last = Some(at_micros);
        Some(std::mem::take(&mut self.held))
    }
}

/// `ticks` of a `clock` Hz clock in microseconds, rounded to the nearest.
fn ticks_to_micros(ticks: i64, clock: u32) -> i64 {
    rescale(ticks, i128::from(MICROS), i128::from(clock.max(1)))
}

/// `micros` in ticks of a `clock` Hz clock, rounded to the nearest.
fn micros_to_ticks(micros: i64, clock: u32) -> i64 {
    rescale(micros, i128::from(clock.max(1)), i128::from(MICROS))
}

/// `v * num / den` rounded half away from zero, saturating at the `i64` range.
fn rescale(v: i64, num: i128, den: i128) -> i64 {
    let p = i128::from(v) * num;
    let half = den / 2;
    let q = if p >= 0 {
        (p + half) / den
    } else {
        (p - half) / den
    };
    q.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

#[cfg(test)]
mod tests;
