//! Failed attempts per address: after `limit` failures within a window an address is
//! refused outright for `block`, whatever it sends. Pure: every call takes `now`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Most addresses tracked at once; when full, entries whose window and block have
/// passed are dropped first, and if none has, the new address is not tracked (an
/// attacker with that many addresses is not stopped by a per-address counter anyway).
pub const MAX_TRACKED: usize = 16 * 1024;

#[derive(Debug, Clone, Copy)]
struct Entry {
    window_start: Instant,
    failures: u32,
    blocked_until: Option<Instant>,
}

/// Counts failed attempts per address.
#[derive(Debug)]
pub struct FailLimiter {
    limit: u32,
    window: Duration,
    block: Duration,
    entries: HashMap<IpAddr, Entry>,
}

impl FailLimiter {
    /// At most `limit` failures (0 = no limit) per `window`; past it refused for `block`.
    pub fn new(limit: u32, window: Duration, block: Duration) -> Self {
        FailLimiter {
            limit,
            window,
            block,
            entries: HashMap::new(),
        }
    }

    /// Whether `ip` is refused at `now`.
    pub fn is_blocked(&self, ip: IpAddr, now: Instant) -> bool {
        self.entries
            .get(&ip)
            .and_then(|e| e.blocked_until)
            .is_some_and(|until| now < until)
    }

    /// Records a failed attempt from `ip`. True when this failure blocks the address (the
    /// caller logs that, once).
    pub fn fail(&mut self, ip: IpAddr, now: Instant) -> bool {
        if self.limit == 0 {
            return false;
        }
        if !self.entries.contains_key(&ip) && self.entries.len() >= MAX_TRACKED {
            self.prune(now);
            if self.entries.len() >= MAX_TRACKED {
                return false;
            }
        }
        let e = self.entries.entry(ip).or_insert(Entry {
            window_start: now,
            failures: 0,
            blocked_until: None,
        });
        if e.blocked_until.is_some_and(|until| now < until) {
            return false;
        }
        if e.blocked_until.is_some() || now.saturating_duration_since(e.window_start) >= self.window
        {
            *e = Entry {
                window_start: now,
                failures: 0,
                blocked_until: None,
            };
        }
        e.failures += 1;
        if e.failures >= self.limit {
            e.blocked_until = Some(now + self.block);
            return true;
        }
        false
    }

    /// Addresses tracked now.
    pub fn tracked(&self) -> usize {
        self.entries.len()
    }

    fn prune(&mut self, now: Instant) {
        let (window, _) = (self.window, self.block);
        self.entries.retain(|_, e| match e.blocked_until {
            Some(until) => now < until,
            None => now.saturating_duration_since(e.window_start) < window,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    #[allow(clippy::disallowed_methods)] // Tests need an origin; time then moves by hand.
    fn origin() -> Instant {
        Instant::now()
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, last])
    }

    #[test]
    fn ten_failures_block_for_a_minute() {
        let t0 = origin();
        let mut l = FailLimiter::new(10, MIN, MIN);
        for i in 0..9 {
            assert!(!l.fail(ip(1), t0 + Duration::from_secs(i)));
            assert!(!l.is_blocked(ip(1), t0 + Duration::from_secs(i)));
        }
        assert!(
            l.fail(ip(1), t0 + Duration::from_secs(9)),
            "the 10th blocks"
        );
        assert!(l.is_blocked(ip(1), t0 + Duration::from_secs(10)));
        assert!(
            !l.is_blocked(ip(2), t0 + Duration::from_secs(10)),
            "others go on"
        );
        // Failures while blocked neither extend the block nor report again.
        assert!(!l.fail(ip(1), t0 + Duration::from_secs(30)));
        assert!(l.is_blocked(ip(1), t0 + Duration::from_secs(68)));
        assert!(!l.is_blocked(ip(1), t0 + Duration::from_secs(69)));
        // A fresh window after the block.
        assert!(!l.fail(ip(1), t0 + Duration::from_secs(70)));
        assert!(!l.is_blocked(ip(1), t0 + Duration::from_secs(70)));
    }

    #[test]
    fn failures_spread_over_windows_do_not_block() {
        let t0 = origin();
        let mut l = FailLimiter::new(3, MIN, MIN);
        for i in 0..20u64 {
            assert!(!l.fail(ip(1), t0 + Duration::from_secs(i * 31)));
        }
        assert!(!l.is_blocked(ip(1), t0 + Duration::from_secs(20 * 31)));
    }

    #[test]
    fn zero_is_no_limit() {
        let t0 = origin();
        let mut l = FailLimiter::new(0, MIN, MIN);
        for _ in 0..100 {
            assert!(!l.fail(ip(1), t0));
        }
        assert!(!l.is_blocked(ip(1), t0));
        assert_eq!(l.tracked(), 0);
    }

    #[test]
    fn the_table_is_bounded() {
        let t0 = origin();
        let mut l = FailLimiter::new(5, MIN, MIN);
        for i in 0..(MAX_TRACKED as u32 + 100) {
            l.fail(IpAddr::from(i.to_be_bytes()), t0);
        }
        assert_eq!(l.tracked(), MAX_TRACKED);
        // Once the windows passed, new addresses are tracked again.
        l.fail(ip(9), t0 + MIN);
        assert_eq!(l.tracked(), 1);
    }
}
