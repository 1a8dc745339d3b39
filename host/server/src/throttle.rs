//! Rate limits by key (a user name, a client address, a tenant): a generic cell rate
//! algorithm, so many events per window of time, in bursts of up to as many.
//!
//! Unlike a limiter that admits and counts in one step, [`Throttle`] asks first
//! ([`Throttle::wait`]) and counts separately ([`Throttle::charge`]), so a caller can refuse
//! work that would be over the limit before doing any of it, and count only the work it does.
//! Keys idle past the burst window are dropped by [`Throttle::forget_idle`], so memory stays
//! bounded by the keys seen within one window.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Rate limits by key.
#[derive(Debug)]
pub struct Throttle<K> {
    /// The time one event costs.
    interval: Duration,
    /// How far ahead of now a key's schedule may run: the burst.
    tolerance: Duration,
    /// Per key, the moment its schedule reaches (GCRA's theoretical arrival time).
    schedule: Mutex<HashMap<K, Instant>>,
}

impl<K: Eq + Hash + Clone> Throttle<K> {
    /// `events` events per `window` per key, in bursts of up to as many.
    pub fn new(events: u32, window: Duration) -> Self {
        let interval = window / events.max(1);
        Throttle {
            interval,
            tolerance: interval * events.max(1),
            schedule: Mutex::default(),
        }
    }

    /// `events` events a minute per key.
    pub fn per_minute(events: u32) -> Self {
        Self::new(events, Duration::from_secs(60))
    }

    /// How long `key` must wait before its next event is within the limit; `None` when it
    /// may go now.
    pub fn wait(&self, key: &K) -> Option<Duration> {
        let now = Instant::now();
        let schedule = self.schedule.lock().unwrap_or_else(|e| e.into_inner());
        let reaches = *schedule.get(key)?;
        let ahead = reaches.checked_duration_since(now)?;
        (ahead + self.interval > self.tolerance).then(|| ahead + self.interval - self.tolerance)
    }

    /// Counts one event of `key`.
    pub fn charge(&self, key: &K) {
        let now = Instant::now();
        let mut schedule = self.schedule.lock().unwrap_or_else(|e| e.into_inner());
        let reaches = schedule.entry(key.clone()).or_insert(now);
        *reaches = (*reaches).max(now) + self.interval;
    }

    /// Drops the keys whose schedule has caught up with now: they are as if never seen.
    pub fn forget_idle(&self) {
        let now = Instant::now();
        self.schedule
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, reaches| *reaches > now);
    }
}

/// Whole seconds of a wait, rounded up, for `Retry-After`.
pub fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_the_rate_holds() {
        let throttle = Throttle::per_minute(3);
        for _ in 0..3 {
            assert_eq!(throttle.wait(&"ann"), None);
            throttle.charge(&"ann");
        }
        let wait = throttle.wait(&"ann").expect("the burst is spent");
        assert!(wait <= Duration::from_secs(20) && wait > Duration::from_secs(19));
        assert_eq!(throttle.wait(&"bob"), None, "keys are apart");
        throttle.forget_idle();
        assert!(throttle.wait(&"ann").is_some(), "a busy key is kept");
    }
}
