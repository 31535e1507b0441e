//! How a trainer reports progress and metrics and learns that it should stop.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::NnError;

/// Progress: (done, total, message).
pub type ProgressHook<'a> = &'a (dyn Fn(usize, usize, String) + Sync);
/// A metric at a step: (step, name, value).
pub type MetricHook<'a> = &'a (dyn Fn(usize, &str, f64) + Sync);

/// The caller's view into a running fit.
#[derive(Clone, Copy)]
pub struct Hooks<'a> {
    pub cancelled: &'a AtomicBool,
    pub progress: ProgressHook<'a>,
    pub metric: MetricHook<'a>,
}

impl Hooks<'_> {
    /// Returns `Err(Cancelled)` once cancellation was asked for.
    pub fn check(&self) -> Result<(), NnError> {
        if self.cancelled.load(Ordering::Relaxed) {
            Err(NnError::Cancelled)
        } else {
            Ok(())
        }
    }
}

/// A never-set cancel flag with progress and metric hooks that discard everything.
pub type Silent = (AtomicBool, fn(usize, usize, String), fn(usize, &str, f64));

/// Hooks that report nowhere and never cancel (tests, benchmarks).
pub fn silent() -> Silent {
    (AtomicBool::new(false), |_, _, _| {}, |_, _, _| {})
}
