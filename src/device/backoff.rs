//! Exponential back-off for failing devices: a camera unplugged or busy, a
//! GPIO chip not yet accessible. The loop logs one line and tries again
//! later instead of crashing.

use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
pub struct BackoffPolicy {
    pub initial: Duration,
    pub max: Duration,
    /// Consecutive failures before giving up; None = keep trying.
    pub max_failures: Option<u32>,
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        BackoffPolicy {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(30),
            max_failures: None,
        }
    }
}

/// Back-off state of one device.
#[derive(Debug, Clone)]
pub struct Backoff {
    pub policy: BackoffPolicy,
    pub failures: u32,
    until: Option<Instant>,
}

impl Backoff {
    pub fn new(policy: BackoffPolicy) -> Self {
        Backoff {
            policy,
            failures: 0,
            until: None,
        }
    }

    /// Delay before retry number `n` (1-based): initial · 2^(n-1), capped.
    pub fn delay(&self, n: u32) -> Duration {
        let f = 2f64.powi(n.saturating_sub(1).min(30) as i32);
        self.policy.initial.mul_f64(f).min(self.policy.max)
    }

    /// Records a failure and logs it; returns the delay, or None when the
    /// policy says to give up.
    pub fn fail(&mut self, what: &str, err: &anyhow::Error, now: Instant) -> Option<Duration> {
        self.failures += 1;
        if self.policy.max_failures.is_some_and(|m| self.failures >= m) {
            eprintln!(
                "edgetune: {what}: {err:#} (failure {}, giving up)",
                self.failures
            );
            return None;
        }
        let d = self.delay(self.failures);
        eprintln!(
            "edgetune: {what}: {err:#} (failure {}, retrying in {} ms)",
            self.failures,
            d.as_millis()
        );
        self.until = Some(now + d);
        Some(d)
    }

    pub fn ok(&mut self) {
        if self.failures > 0 {
            self.failures = 0;
            self.until = None;
        }
    }

    /// Still waiting before the next attempt?
    pub fn waiting(&self, now: Instant) -> bool {
        self.until.is_some_and(|u| now < u)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_and_caps() {
        let b = Backoff::new(BackoffPolicy {
            initial: Duration::from_millis(10),
            max: Duration::from_millis(50),
            max_failures: None,
        });
        let d: Vec<u128> = (1..=5).map(|n| b.delay(n).as_millis()).collect();
        assert_eq!(d, vec![10, 20, 40, 50, 50]);
    }

    #[test]
    fn gives_up_after_max_failures() {
        let mut b = Backoff::new(BackoffPolicy {
            max_failures: Some(2),
            ..Default::default()
        });
        let e = anyhow::anyhow!("boom");
        let now = Instant::now();
        assert!(b.fail("cam", &e, now).is_some());
        assert!(b.waiting(now));
        assert!(b.fail("cam", &e, now).is_none());
    }
}
