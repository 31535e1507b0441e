//! Per-caller limits on `/mcp`: a request rate (token bucket, `governor`) and a number of
//! requests in flight. A caller is a bearer token (by its position in `MLOPS_HTTP_TOKENS`, never
//! by its value) or, without tokens, everyone at once. Over a limit the answer is 429 with
//! `Retry-After`, so one runaway client cannot starve the others.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::HashMapStateStore;
use governor::{Quota, RateLimiter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Defaults: generous for agents (a few calls a second), firm for a runaway loop.
pub const DEFAULT_RATE_PER_SECOND: u32 = 100;
pub const DEFAULT_MAX_CONCURRENT: usize = 32;

/// The limits as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitSettings {
    /// Sustained requests a second per caller; `None`: no rate limit.
    pub rate_per_second: Option<NonZeroU32>,
    /// Requests that may arrive at once above the sustained rate.
    pub burst: NonZeroU32,
    /// Requests in flight per caller (event streams excepted).
    pub max_concurrent: usize,
}

impl Default for LimitSettings {
    fn default() -> Self {
        let rate = NonZeroU32::new(DEFAULT_RATE_PER_SECOND).unwrap_or(NonZeroU32::MIN);
        Self {
            rate_per_second: Some(rate),
            burst: rate.saturating_mul(NonZeroU32::new(2).unwrap_or(NonZeroU32::MIN)),
            max_concurrent: DEFAULT_MAX_CONCURRENT,
        }
    }
}

/// Why a request was refused.
#[derive(Debug, PartialEq)]
pub enum Refusal {
    /// Over the rate; try again after this long.
    Rate(Duration),
    /// Too many requests of this caller in flight.
    Concurrency(usize),
}

/// The limiter shared by every `/mcp` request.
pub struct CallerLimits {
    settings: LimitSettings,
    rate: Option<RateLimiter<String, HashMapStateStore<String>, DefaultClock>>,
    slots: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl CallerLimits {
    pub fn new(settings: LimitSettings) -> Self {
        let rate = settings
            .rate_per_second
            .map(|r| RateLimiter::hashmap(Quota::per_second(r).allow_burst(settings.burst)));
        Self {
            settings,
            rate,
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// Admits one request of `caller`, or says why not. The permit holds its place in flight
    /// until dropped; `counted: false` (event streams, open for a whole session) skips that.
    pub fn admit(
        &self,
        caller: &str,
        counted: bool,
    ) -> Result<Option<OwnedSemaphorePermit>, Refusal> {
        if let Some(rate) = &self.rate
            && let Err(not_until) = rate.check_key(&caller.to_string())
        {
            return Err(Refusal::Rate(
                not_until.wait_time_from(DefaultClock::default().now()),
            ));
        }
        if !counted {
            return Ok(None);
        }
        let slot = self
            .slots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(caller.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(self.settings.max_concurrent)))
            .clone();
        slot.try_acquire_owned()
            .map(Some)
            .map_err(|_| Refusal::Concurrency(self.settings.max_concurrent))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(rate: u32, burst: u32, max_concurrent: usize) -> LimitSettings {
        LimitSettings {
            rate_per_second: NonZeroU32::new(rate),
            burst: NonZeroU32::new(burst).unwrap(),
            max_concurrent,
        }
    }

    #[test]
    fn the_rate_is_per_caller_with_a_burst() {
        let limits = CallerLimits::new(settings(1, 3, 100));
        for _ in 0..3 {
            limits.admit("token-0", true).unwrap();
        }
        match limits.admit("token-0", true) {
            Err(Refusal::Rate(wait)) => assert!(wait <= Duration::from_secs(1), "{wait:?}"),
            other => panic!("the fourth request at once should be refused: {other:?}"),
        }
        // Another caller has its own bucket.
        limits.admit("token-1", true).unwrap();
    }

    #[test]
    fn requests_in_flight_are_bounded_until_their_permits_drop() {
        let limits = CallerLimits::new(settings(0, 1, 2));
        let a = limits.admit("token-0", true).unwrap();
        let _b = limits.admit("token-0", true).unwrap();
        assert_eq!(
            limits.admit("token-0", true).unwrap_err(),
            Refusal::Concurrency(2)
        );
        // Event streams are not counted; other callers are not affected.
        assert!(limits.admit("token-0", false).unwrap().is_none());
        limits.admit("token-1", true).unwrap();
        drop(a);
        limits.admit("token-0", true).unwrap();
    }
}
