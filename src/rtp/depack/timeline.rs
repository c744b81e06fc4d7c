//! Media time: wrapping 32-bit RTP timestamps to continuous `i64` track-clock time.

use super::DepackStats;
use crate::media::MediaKind;
use crate::media::timeline::{FrameInterval, JumpLimits};

/// Where time continues from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Anchor {
    /// No timestamp seen (since the start or a restart): the next one maps here.
    Start(i64),
    /// The latest timestamp mapped and its time.
    At {
        /// The RTP timestamp.
        rtp: u32,
        /// Its time.
        time: i64,
    },
}

/// Unwraps the RTP timestamps of one track.
///
/// Each timestamp is read relative to the previous one as a signed 32-bit step, so the
/// 32-bit wrap is invisible and small backward steps (B-frames sent in decode order,
/// packets reordered) map backwards. A step more than 10 s forward or more than 1 s back
/// (a camera reset, a new SSRC) is a discontinuity: time continues just after the latest
/// frame instead ([`Timeline::next_time`]). The rule and the frame interval are
/// `media::timeline`'s, shared with the continuity of pushed streams.
#[derive(Debug, Clone)]
pub(super) struct Timeline {
    /// What is a discontinuity.
    limits: JumpLimits,
    anchor: Anchor,
    /// The latest frame duration: from the payload format, else the latest positive step
    /// of at most 1 s.
    duration: FrameInterval,
    /// Latest frame time plus its duration.
    end: Option<i64>,
}

impl Timeline {
    /// A timeline starting at 0.
    pub fn new(clock_rate: u32, kind: MediaKind) -> Timeline {
        Timeline {
            // A step is read as a signed 32-bit number: it cannot exceed i32::MAX.
            limits: JumpLimits::new(clock_rate).capped(i64::from(i32::MAX)),
            anchor: Anchor::Start(0),
            duration: FrameInterval::new(clock_rate, kind),
            end: None,
        }
    }

    /// The next timestamp maps to `resume_at`.
    pub fn restart(&mut self, resume_at: i64) {
        self.anchor = Anchor::Start(resume_at);
        self.end = None;
    }

    /// The time of an RTP timestamp; counts discontinuities in `stats`.
    pub fn map(&mut self, rtp: u32, stats: &mut DepackStats) -> i64 {
        let time = match self.anchor {
            Anchor::Start(time) => time,
            Anchor::At { rtp: prev, time } => {
                let step = i64::from(rtp.wrapping_sub(prev) as i32);
                if self.limits.is_jump(step) {
                    stats.discontinuities += 1;
                    self.end
                        .unwrap_or_else(|| time.saturating_add(self.duration.get()))
                } else {
                    // A frame interval, not a pause in the stream.
                    self.duration.observe(step);
                    time.saturating_add(step)
                }
            }
        };
        self.anchor = Anchor::At { rtp, time };
        time
    }

    /// Records a frame at `pts` (mapped, plus any offset within its packet) lasting
    /// `duration` ticks if the payload format tells.
    pub fn frame(&mut self, pts: i64, duration: Option<i64>) {
        if let Some(d) = duration {
            self.duration.set(d);
        }
        let end = pts.saturating_add(self.duration.get());
        self.end = Some(self.end.map_or(end, |e| e.max(end)));
    }

    /// Time just after the latest frame.
    pub fn next_time(&self) -> Option<i64> {
        self.end
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn video() -> Timeline {
        Timeline::new(90_000, MediaKind::Video)
    }

    /// Maps each timestamp as a frame; returns the times.
    fn run(t: &mut Timeline, ts: &[u32], st: &mut DepackStats) -> Vec<i64> {
        ts.iter()
            .map(|&r| {
                let time = t.map(r, st);
                t.frame(time, None);
                time
            })
            .collect()
    }

    #[test]
    fn starts_at_zero_and_unwraps_the_32_bit_wrap() {
        let mut t = video();
        let mut st = DepackStats::default();
        let got = run(
            &mut t,
            &[0xFFFF_E890, 0xFFFF_F448, 0x0000_0000, 0x0000_0BB8],
            &mut st,
        );
        assert_eq!(got, [0, 3000, 6000, 9000]);
        assert_eq!(t.next_time(), Some(12_000));
        assert_eq!(st.discontinuities, 0);
    }

    #[test]
    fn small_backward_steps_are_normal() {
        // B-frames in decode order: I0 P3 B1 B2 (pts in frames of 3000 ticks).
        let mut t = video();
        let mut st = DepackStats::default();
        let got = run(&mut t, &[1000, 10_000, 4000, 7000, 19_000], &mut st);
        assert_eq!(got, [0, 9000, 3000, 6000, 18_000]);
        assert_eq!(st.discontinuities, 0);
    }

    #[test]
    fn jumps_are_discontinuities() {
        let mut t = video();
        let mut st = DepackStats::default();
        // 11 s forward: continue one frame (the last interval) after the latest frame.
        let got = run(&mut t, &[0, 3000, 3000 + 990_000, 3000 + 993_000], &mut st);
        assert_eq!(got, [0, 3000, 6000, 9000]);
        assert_eq!(st.discontinuities, 1);
        // 10 s exactly is still continuous.
        let got = run(&mut t, &[3000 + 993_000 + 900_000], &mut st);
        assert_eq!(got, [909_000]);
        // 1.5 s back: a discontinuity; 0.5 s back is not.
        let base = 3000 + 993_000 + 900_000;
        let got = run(&mut t, &[base - 135_000, base - 135_000 - 45_000], &mut st);
        assert_eq!(got, [912_000, 912_000 - 45_000]);
        assert_eq!(st.discontinuities, 2);
    }

    #[test]
    fn default_duration_before_any_interval() {
        let mut st = DepackStats::default();
        let mut t = video();
        assert_eq!(run(&mut t, &[5, 5 + 2_000_000], &mut st), [0, 3000]);
        let mut t = Timeline::new(48_000, MediaKind::Audio);
        assert_eq!(run(&mut t, &[5, 5 + 2_000_000], &mut st), [0, 960]);
        // A duration from the payload format wins over the interval.
        let mut t = Timeline::new(48_000, MediaKind::Audio);
        let a = t.map(0, &mut st);
        t.frame(a, Some(1024));
        t.frame(a + 1024, Some(1024));
        assert_eq!(t.map(3_000_000, &mut st), 2048);
    }

    #[test]
    fn restart_resumes_at_the_given_time() {
        let mut t = video();
        let mut st = DepackStats::default();
        run(&mut t, &[100, 3100, 6100], &mut st);
        let resume = t.next_time().unwrap();
        assert_eq!(resume, 9000);
        t.restart(resume);
        // The new session's timestamps are unrelated: no discontinuity is counted.
        let got = run(&mut t, &[0x8000_0000, 0x8000_0BB8], &mut st);
        assert_eq!(got, [9000, 12_000]);
        assert_eq!(st.discontinuities, 0);
    }
}
