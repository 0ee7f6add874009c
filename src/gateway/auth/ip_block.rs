//! The IP block: failed authentications per address inside a window, and the addresses blocked
//! for them. Bounded in size, and the same cost per failure however many addresses fail.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::config::Security;

/// Failed authentications per address, and the addresses blocked for them. At most
/// [`MAX_TRACKED`] addresses are tracked, and counting a failure costs the same however many
/// there are: a new address forgets the oldest tracked one when that one is idle or the map is
/// full (under an attack from more addresses than that, the oldest blocks lapse first).
#[derive(Debug)]
pub(crate) struct IpBlock {
    after: usize,
    window: Duration,
    duration: Duration,
    tracked: Mutex<Tracked>,
}

#[derive(Debug, Default)]
struct Tracked {
    by_ip: HashMap<IpAddr, Failures>,
    /// The keys of `by_ip`, oldest first.
    order: VecDeque<IpAddr>,
}

#[derive(Debug, Default)]
struct Failures {
    /// Times of the latest failures inside the window, at most `after` of them.
    recent: VecDeque<Instant>,
    blocked_until: Option<Instant>,
}

/// Addresses tracked at most.
const MAX_TRACKED: usize = 10_000;

impl IpBlock {
    /// `[security]`; `ip_block_after_failures = 0` turns the block off.
    pub(crate) fn new(security: &Security) -> Self {
        Self {
            after: usize::try_from(security.ip_block_after_failures).unwrap_or(usize::MAX),
            window: Duration::from_secs(security.ip_block_window_s),
            duration: Duration::from_secs(security.ip_block_duration_s),
            tracked: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tracked> {
        self.tracked.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How much longer `ip` stays blocked, if it is.
    pub(crate) fn blocked(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let tracked = self.lock();
        let until = tracked.by_ip.get(&ip)?.blocked_until?;
        (until > now).then(|| until - now)
    }

    /// Counts a failed authentication from `ip`, blocking it when it reaches the limit.
    pub(crate) fn failed(&self, ip: IpAddr, now: Instant) {
        if self.after == 0 {
            return;
        }
        let mut tracked = self.lock();
        let Tracked { by_ip, order } = &mut *tracked;
        if !by_ip.contains_key(&ip) {
            // Up to two of the oldest go for each new one, so idle addresses do not pile up.
            for _ in 0..2 {
                let forget = order.front().is_some_and(|oldest| {
                    by_ip.len() >= MAX_TRACKED
                        || by_ip.get(oldest).is_none_or(|f| self.idle(f, now))
                });
                if forget && let Some(oldest) = order.pop_front() {
                    by_ip.remove(&oldest);
                }
            }
            order.push_back(ip);
        }
        let failures = by_ip.entry(ip).or_default();
        while failures
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.window)
        {
            failures.recent.pop_front();
        }
        failures.recent.push_back(now);
        if failures.recent.len() >= self.after {
            failures.recent.clear();
            failures.blocked_until = Some(now + self.duration);
            tracing::warn!(%ip, seconds = self.duration.as_secs(), "blocking an address after repeated failed authentications");
        }
    }

    /// Whether `failures` no longer matter: no block in force, no failure inside the window.
    fn idle(&self, failures: &Failures, now: Instant) -> bool {
        failures.blocked_until.is_none_or(|u| u <= now)
            && failures
                .recent
                .back()
                .is_none_or(|t| now.duration_since(*t) >= self.window)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// `[security]` blocking after `after` failures in a minute, for fifteen minutes.
    pub(in crate::gateway::auth) fn security(after: u32) -> Security {
        Security {
            ip_block_after_failures: after,
            ip_block_window_s: 60,
            ip_block_duration_s: 900,
            accept_stored_key: true,
        }
    }

    /// A block after `after` failures in 10 s, for 100 s.
    fn brief(after: u32) -> IpBlock {
        IpBlock::new(&Security {
            ip_block_window_s: 10,
            ip_block_duration_s: 100,
            ..security(after)
        })
    }

    #[test]
    fn failures_in_the_window_block_for_the_duration() {
        let block = brief(3);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        block.failed(ip, at(0));
        block.failed(ip, at(1_000));
        // The first failure has left the window when the third arrives.
        block.failed(ip, at(10_000));
        assert_eq!(block.blocked(ip, at(10_000)), None);
        block.failed(ip, at(10_500));
        assert_eq!(
            block.blocked(ip, at(10_500)),
            Some(Duration::from_secs(100))
        );
        assert_eq!(block.blocked(other, at(10_500)), None);
        assert_eq!(block.blocked(ip, at(110_500)), None);
    }

    #[test]
    fn zero_failures_turns_the_block_off() {
        let block = brief(0);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let now = Instant::now();
        for _ in 0..100 {
            block.failed(ip, now);
        }
        assert_eq!(block.blocked(ip, now), None);
    }

    /// However many addresses fail, the block tracks at most `MAX_TRACKED` of them, each
    /// failure costs the same, and an address blocked lately stays blocked.
    #[test]
    fn the_block_map_is_bounded_under_many_addresses() {
        let block = IpBlock::new(&security(2));
        let now = Instant::now();
        let ip = |i: u32| IpAddr::from((0x0a00_0000 + i).to_be_bytes());
        let many = 3 * u32::try_from(MAX_TRACKED).unwrap();
        let started = Instant::now();
        for i in 0..many {
            block.failed(ip(i), now);
        }
        let spent = started.elapsed();
        assert_eq!(block.lock().by_ip.len(), MAX_TRACKED);
        assert_eq!(block.lock().order.len(), MAX_TRACKED);
        let last = ip(many - 1);
        block.failed(last, now);
        assert!(block.blocked(last, now).is_some());
        // Some milliseconds; a scan of the whole map on each failure took minutes in debug builds.
        assert!(spent < Duration::from_secs(5), "{spent:?}");
        // Idle addresses are forgotten as new ones come, so the map shrinks back.
        let later = now + Duration::from_secs(3_600);
        block.failed(ip(many), later);
        block.failed(ip(many + 1), later);
        assert_eq!(block.lock().by_ip.len(), MAX_TRACKED - 2);
    }
}
