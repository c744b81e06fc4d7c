//! Pure bookkeeping behind the connection limits: how many connections each peer address
//! holds ([`AddrCounts`]) and how often a repeated warning may reach the log
//! ([`LogLimiter`]). No clock, no socket: the drivers pass `now` and the addresses.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Open connections per peer address. An address is in the table only while it holds at
/// least one connection, so the table never grows with peers that have gone.
#[derive(Debug, Default)]
pub struct AddrCounts {
    counts: HashMap<IpAddr, u32>,
}

impl AddrCounts {
    /// Counts one more connection from `ip` unless it already holds `max`; on refusal
    /// returns the number it holds.
    pub fn try_add(&mut self, ip: IpAddr, max: u32) -> Result<(), u32> {
        let n = self.counts.entry(canonical(ip)).or_insert(0);
        if *n >= max {
            let held = *n;
            if held == 0 {
                self.counts.remove(&canonical(ip));
            }
            return Err(held);
        }
        *n += 1;
        Ok(())
    }

    /// Forgets one connection from `ip` (the entry goes at zero).
    pub fn remove(&mut self, ip: IpAddr) {
        let ip = canonical(ip);
        if let Some(n) = self.counts.get_mut(&ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.counts.remove(&ip);
            }
        }
    }

    /// Connections `ip` holds.
    pub fn count(&self, ip: IpAddr) -> u32 {
        self.counts.get(&canonical(ip)).copied().unwrap_or(0)
    }

    /// Addresses holding at least one connection.
    pub fn addresses(&self) -> usize {
        self.counts.len()
    }
}

/// An IPv4 peer seen on a dual-stack socket (`::ffff:a.b.c.d`) counts as `a.b.c.d`.
fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

/// Events counted since the last log line, as [`LogLimiter`] reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Burst {
    /// Events counted (at least one).
    pub count: u64,
    /// Time from the first of them to the report.
    pub over: Duration,
}

/// At most one log line per interval for an event that can repeat thousands of times a
/// second (a refused connection, a failing accept): the first event is reported at once,
/// the ones after it within the interval are counted and reported together by the next
/// event or [`LogLimiter::flush`] once the interval has passed.
#[derive(Debug)]
pub struct LogLimiter {
    interval: Duration,
    /// When the last line was allowed.
    last_line: Option<Instant>,
    /// Events not reported yet, and when the first of them happened.
    pending: u64,
    first: Option<Instant>,
}

impl LogLimiter {
    /// A limiter allowing one line per `interval`.
    pub fn new(interval: Duration) -> Self {
        LogLimiter {
            interval,
            last_line: None,
            pending: 0,
            first: None,
        }
    }

    /// Counts one event at `now`; returns what to log if a line is due.
    pub fn hit(&mut self, now: Instant) -> Option<Burst> {
        self.pending += 1;
        self.first.get_or_insert(now);
        self.flush(now)
    }

    /// When the events counted so far are due to be reported, if any are pending.
    pub fn deadline(&self) -> Option<Instant> {
        if self.pending == 0 {
            return None;
        }
        // Never logged before: due at once (at the first event).
        self.last_line.map(|t| t + self.interval).or(self.first)
    }

    /// Reports the events counted so far if the interval since the last line has passed.
    pub fn flush(&mut self, now: Instant) -> Option<Burst> {
        let due = self.deadline()?;
        if now < due {
            return None;
        }
        let first = self.first.take().unwrap_or(now);
        let burst = Burst {
            count: std::mem::take(&mut self.pending),
            over: now.saturating_duration_since(first),
        };
        self.last_line = Some(now);
        Some(burst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(clippy::disallowed_methods)] // Tests need an origin; time then moves by hand.
    fn origin() -> Instant {
        Instant::now()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn an_address_at_its_limit_is_refused_and_others_are_not() {
        let mut c = AddrCounts::default();
        assert_eq!(c.try_add(ip("127.0.0.1"), 2), Ok(()));
        assert_eq!(c.try_add(ip("127.0.0.1"), 2), Ok(()));
        assert_eq!(c.try_add(ip("127.0.0.1"), 2), Err(2));
        assert_eq!(c.try_add(ip("127.0.0.2"), 2), Ok(()));
        c.remove(ip("127.0.0.1"));
        assert_eq!(c.try_add(ip("127.0.0.1"), 2), Ok(()));
        assert_eq!(c.count(ip("127.0.0.1")), 2);
    }

    #[test]
    fn addresses_leave_the_table_at_zero() {
        let mut c = AddrCounts::default();
        for i in 0..1000u32 {
            let a = IpAddr::from(i.to_be_bytes());
            assert_eq!(c.try_add(a, 4), Ok(()));
            c.remove(a);
        }
        assert_eq!(c.addresses(), 0);
        // A refusal at a limit of 0 leaves nothing behind either; a stray remove is harmless.
        assert_eq!(c.try_add(ip("10.0.0.1"), 0), Err(0));
        c.remove(ip("10.0.0.1"));
        assert_eq!(c.addresses(), 0);
    }

    #[test]
    fn a_mapped_ipv4_peer_counts_as_its_ipv4_address() {
        let mut c = AddrCounts::default();
        assert_eq!(c.try_add(ip("::ffff:192.0.2.7"), 1), Ok(()));
        assert_eq!(c.try_add(ip("192.0.2.7"), 1), Err(1));
        c.remove(ip("192.0.2.7"));
        assert_eq!(c.addresses(), 0);
    }

    #[test]
    fn a_flood_gives_one_line_per_interval_with_counts_that_add_up() {
        let t0 = origin();
        let mut l = LogLimiter::new(Duration::from_secs(1));
        let mut lines = Vec::new();
        // 1000 events over 2.5 s of virtual time, one every 2.5 ms.
        for i in 0..1000u64 {
            let now = t0 + Duration::from_micros(2500 * i);
            if let Some(f) = l.flush(now) {
                lines.push((now, f));
            }
            if let Some(b) = l.hit(now) {
                lines.push((now, b));
            }
        }
        let end = t0 + Duration::from_secs(10);
        assert!(l.deadline().is_some_and(|d| d <= end));
        if let Some(b) = l.flush(end) {
            lines.push((end, b));
        }
        assert_eq!(l.deadline(), None);
        assert_eq!(lines.iter().map(|(_, b)| b.count).sum::<u64>(), 1000);
        // The first event at once, then one line per second.
        assert_eq!(
            lines[0],
            (
                t0,
                Burst {
                    count: 1,
                    over: Duration::ZERO
                }
            )
        );
        assert!(lines.len() <= 4, "{lines:?}");
        for w in lines.windows(2) {
            assert!(w[1].0 - w[0].0 >= Duration::from_secs(1), "{lines:?}");
        }
    }

    #[test]
    fn a_lone_event_after_a_quiet_spell_is_reported_at_once() {
        let t0 = origin();
        let mut l = LogLimiter::new(Duration::from_secs(1));
        assert!(l.hit(t0).is_some());
        assert_eq!(l.flush(t0 + Duration::from_secs(5)), None);
        let later = t0 + Duration::from_secs(5);
        assert_eq!(
            l.hit(later),
            Some(Burst {
                count: 1,
                over: Duration::ZERO
            })
        );
        // One within the interval waits for the flush.
        assert_eq!(l.hit(later + Duration::from_millis(10)), None);
        assert_eq!(l.flush(later + Duration::from_millis(500)), None);
        assert_eq!(
            l.flush(later + Duration::from_secs(1)),
            Some(Burst {
                count: 1,
                over: Duration::from_millis(990)
            })
        );
    }
}
