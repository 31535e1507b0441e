//! How failed calls are retried: one policy for the AWS client and for notification deliveries.

use std::hash::BuildHasher;
use std::time::Duration;

/// Up to `max_attempts` tries in all. The wait before retry `n` (0 for the first retry) grows as
/// `base_delay * 2^n`, capped at `max_delay`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    pub base_delay: Duration,
    /// Longest wait between attempts.
    pub max_delay: Duration,
}

impl RetryPolicy {
    /// The capped exponential wait before retry `retry` (0 for the first retry).
    pub fn backoff(&self, retry: u32) -> Duration {
        self.base_delay
            .saturating_mul(1u32 << retry.min(20))
            .min(self.max_delay)
    }

    /// A random wait up to [`RetryPolicy::backoff`] ("full jitter"), so that many clients
    /// failing together do not retry together.
    pub fn jittered(&self, retry: u32) -> Duration {
        // A fresh RandomState is randomly keyed: jitter without a random-number crate.
        let random = std::collections::hash_map::RandomState::new().hash_one(retry);
        self.backoff(retry).mul_f64((random % 1024) as f64 / 1023.0)
    }

    /// The wait after the `attempt`-th failed attempt (1-based): the backoff, or the server's
    /// `Retry-After` when it asked for longer, never more than `max_delay`.
    pub fn after_failure(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        self.backoff(attempt.saturating_sub(1))
            .max(retry_after.unwrap_or_default())
            .min(self.max_delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(2),
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_jitter_stays_under_it() {
        let p = policy();
        assert_eq!(p.backoff(0), Duration::from_millis(100));
        assert_eq!(p.backoff(2), Duration::from_millis(400));
        assert_eq!(p.backoff(40), Duration::from_secs(2));
        for retry in 0..8 {
            assert!(p.jittered(retry) <= p.backoff(retry));
        }
    }

    #[test]
    fn a_failure_waits_at_least_what_the_server_asked_within_the_cap() {
        let p = policy();
        assert_eq!(p.after_failure(1, None), Duration::from_millis(100));
        assert_eq!(p.after_failure(3, None), Duration::from_millis(400));
        assert_eq!(p.after_failure(10, None), Duration::from_secs(2));
        assert_eq!(
            p.after_failure(1, Some(Duration::from_secs(1))),
            Duration::from_secs(1)
        );
        assert_eq!(
            p.after_failure(1, Some(Duration::from_secs(60))),
            Duration::from_secs(2)
        );
    }
}
