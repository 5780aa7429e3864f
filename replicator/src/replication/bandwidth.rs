//! The site's replication bandwidth cap at work: one [`Limiter`] that every
//! sender of the site draws from, batch by batch, under the cap its
//! [`BandwidthSchedule`] gives at the moment.
//!
//! The limiter is a virtual clock: each `Blocks` frame, once written, books
//! the time its bytes take at the cap after the bookings before it, and its
//! sender waits until that time. Senders waiting at once are served in the
//! order they booked, one frame (about 1 MiB) each, so VMs replicating at
//! the same time share the cap evenly whatever their deltas' sizes.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ferry_api::Invalid;
use ferry_api::bandwidth::{BandwidthPolicy, BandwidthSchedule, CapInForce};

use ferry_api::now_ms;

/// How many whole seconds of sent bytes the rate is measured over.
const METER_SECONDS: u64 = 3;
/// How far behind now the clock may start a booking. A frame is booked
/// after it was written, so the time its sender spent reading and writing
/// it counts towards its slot; without this a sender would get one frame
/// per (work + slot), below the cap. An idle link earns no more than this.
const CREDIT: Duration = Duration::from_millis(50);

/// The cap shared by a site's senders; unlimited until given a policy.
#[derive(Debug)]
pub struct Limiter {
    /// The policy, the virtual clock and the rate meter: one lock, because a
    /// booking reads the cap, moves the clock and counts the bytes at once.
    state: Mutex<State>,
    /// Cycles sending now, for each VM's fair share of the cap.
    active: AtomicUsize,
}

#[derive(Debug)]
struct State {
    policy: BandwidthPolicy,
    schedule: BandwidthSchedule,
    /// When the bytes booked so far will have gone at the cap.
    next_free: Instant,
    /// The meter's zero.
    epoch: Instant,
    /// (second since `epoch`, bytes sent in it), the newest last.
    meter: VecDeque<(u64, u64)>,
}

impl Default for Limiter {
    fn default() -> Self {
        let now = Instant::now();
        Self {
            state: Mutex::new(State {
                policy: BandwidthPolicy::default(),
                schedule: BandwidthSchedule::default(),
                next_free: now,
                epoch: now,
                meter: VecDeque::new(),
            }),
            active: AtomicUsize::new(0),
        }
    }
}

/// Marks a cycle as sending for as long as it lives.
pub struct Sending<'a>(&'a Limiter);

impl Drop for Sending<'_> {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Limiter {
    /// A limiter under `policy`, refused (naming the field) when invalid.
    pub fn new(policy: BandwidthPolicy) -> Result<Self, Invalid> {
        let limiter = Self::default();
        limiter.set_policy(policy)?;
        Ok(limiter)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The state is consistent after every statement: a panic elsewhere
        // while holding it leaves nothing half-done.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Replaces the policy; an invalid one changes nothing.
    pub fn set_policy(&self, policy: BandwidthPolicy) -> Result<(), Invalid> {
        let schedule = policy.validate()?;
        let mut state = self.state();
        state.policy = policy;
        state.schedule = schedule;
        Ok(())
    }

    pub fn policy(&self) -> BandwidthPolicy {
        self.state().policy.clone()
    }

    /// The cap in force now.
    pub fn cap_now(&self) -> CapInForce {
        self.state().schedule.cap_at(now_ms())
    }

    /// What one VM gets now: the cap shared by the cycles sending (counting
    /// the VM itself), or `None` when unlimited.
    pub fn share_now(&self, sending_itself: bool) -> Option<u64> {
        let cap = self.cap_now().bytes_per_second()?;
        let others = self.active.load(Ordering::Relaxed);
        let sharing = if sending_itself { others } else { others + 1 };
        Some(cap / sharing.max(1) as u64)
    }

    /// Counts a cycle as sending until the guard drops.
    pub fn sending(&self) -> Sending<'_> {
        self.active.fetch_add(1, Ordering::Relaxed);
        Sending(self)
    }

    /// Books `bytes` just written and waits until the cap has room for
    /// them. Blocking: senders run on blocking threads.
    pub fn charge(&self, bytes: u64) {
        let cap = self.cap_now().bytes_per_second();
        let wait = self.state().book(bytes, Instant::now(), cap);
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
    }

    /// Replication bytes per second sent through this limiter, over the
    /// last few whole seconds.
    pub fn rate(&self) -> u64 {
        self.state().rate(Instant::now())
    }
}

impl State {
    /// Books `bytes` sent at `now` under `cap` (bytes/s, `None` unlimited)
    /// and says how long the sender must wait.
    fn book(&mut self, bytes: u64, now: Instant, cap: Option<u64>) -> Duration {
        let second = now.duration_since(self.epoch).as_secs();
        match self.meter.back_mut() {
            Some((s, b)) if *s == second => *b += bytes,
            _ => self.meter.push_back((second, bytes)),
        }
        while self
            .meter
            .front()
            .is_some_and(|&(s, _)| s + METER_SECONDS < second)
        {
            self.meter.pop_front();
        }
        let Some(cap) = cap else {
            self.next_free = now;
            return Duration::ZERO;
        };
        let start = self.next_free.max(now.checked_sub(CREDIT).unwrap_or(now));
        self.next_free = start + Duration::from_secs_f64(bytes as f64 / cap.max(1) as f64);
        self.next_free.saturating_duration_since(now)
    }

    fn rate(&self, now: Instant) -> u64 {
        let second = now.duration_since(self.epoch).as_secs();
        // Whole seconds only: the current one is still filling.
        let from = second.saturating_sub(METER_SECONDS);
        let bytes: u64 = self
            .meter
            .iter()
            .filter(|&&(s, _)| s >= from && s < second)
            .map(|&(_, b)| b)
            .sum();
        bytes / METER_SECONDS.min(second).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> State {
        let now = Instant::now();
        State {
            policy: BandwidthPolicy::default(),
            schedule: BandwidthSchedule::default(),
            next_free: now,
            epoch: now,
            meter: VecDeque::new(),
        }
    }

    #[test]
    fn bookings_queue_at_the_cap_in_order() {
        let mut s = state();
        let t0 = s.epoch;
        let mib = 1u64 << 20;
        // Three senders write 1 MiB each at once under 10 MiB/s: they wait
        // 0.1, 0.2 and 0.3 s, in the order they booked.
        let waits: Vec<_> = (0..3).map(|_| s.book(mib, t0, Some(10 * mib))).collect();
        let ms = |d: Duration| d.as_millis();
        assert_eq!(
            waits.iter().map(|&d| ms(d)).collect::<Vec<_>>(),
            [100, 200, 300]
        );
        // Later, once the link was idle, a booking waits only for itself,
        // less the credit for the time its frame took to write.
        let later = t0 + Duration::from_secs(5);
        assert_eq!(ms(s.book(mib, later, Some(10 * mib))), 50);
        // A small frame inside the credit does not wait at all.
        assert_eq!(
            s.book(1, later + Duration::from_millis(200), Some(10 * mib)),
            Duration::ZERO
        );
        // Unlimited: no wait, and the clock follows now.
        assert_eq!(s.book(mib, later, None), Duration::ZERO);
        assert_eq!(s.next_free, later);
    }

    #[test]
    fn a_sender_that_books_in_turn_gets_the_cap_over_time() {
        // One sender, 100 frames of 256 KiB under 8 MiB/s, each written
        // when its previous wait ends: 25 MiB take 3.125 s of clock.
        let mut s = state();
        let mut now = s.epoch;
        for _ in 0..100 {
            now += s.book(256 << 10, now, Some(8 << 20));
        }
        let took = now.duration_since(s.epoch).as_secs_f64();
        assert!((took - 3.125).abs() < 0.001, "{took}");
    }

    #[test]
    fn the_rate_counts_whole_seconds_only() {
        let mut s = state();
        let t0 = s.epoch;
        for i in 0..10 {
            s.book(1 << 20, t0 + Duration::from_millis(i * 500), None);
        }
        // Seconds 0..5 had 2 MiB each; at 5.2 s the last 3 whole seconds.
        assert_eq!(s.rate(t0 + Duration::from_millis(5_200)), 2 << 20);
        // Long after, nothing was sent.
        assert_eq!(s.rate(t0 + Duration::from_secs(60)), 0);
    }

    #[test]
    fn a_bad_policy_changes_nothing() {
        let limiter = Limiter::default();
        let bad = BandwidthPolicy {
            mib_per_second: Some(0),
            windows: Vec::new(),
        };
        let e = limiter.set_policy(bad).unwrap_err();
        assert_eq!(e.field, "mib_per_second");
        assert_eq!(limiter.policy(), BandwidthPolicy::default());
        assert_eq!(limiter.cap_now().mib_per_second, None);
        let good = BandwidthPolicy {
            mib_per_second: Some(40),
            windows: Vec::new(),
        };
        limiter.set_policy(good).unwrap();
        assert_eq!(limiter.share_now(false), Some(40 << 20));
        let _a = limiter.sending();
        let _b = limiter.sending();
        assert_eq!(limiter.share_now(true), Some(20 << 20));
        assert_eq!(limiter.share_now(false), Some((40 << 20) / 3));
    }
}
