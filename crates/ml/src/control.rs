//! What a fit sees of whoever runs it (a training job, a tuning trial): a stop flag, and where
//! progress and intermediate metrics go. Fits check the flag between rounds and return `Ok(None)`
//! once it is set.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::MlError;

type ProgressSink = Box<dyn Fn(usize, usize, String) + Send + Sync>;
type MetricSink = Box<dyn Fn(usize, &str, f64) + Send + Sync>;

/// A running fit's controls.
pub struct FitControl {
    pub cancelled: Arc<AtomicBool>,
    on_progress: ProgressSink,
    on_metric: MetricSink,
}

impl FitControl {
    pub fn new(
        cancelled: Arc<AtomicBool>,
        on_progress: impl Fn(usize, usize, String) + Send + Sync + 'static,
        on_metric: impl Fn(usize, &str, f64) + Send + Sync + 'static,
    ) -> Self {
        Self {
            cancelled,
            on_progress: Box::new(on_progress),
            on_metric: Box::new(on_metric),
        }
    }

    /// Controls that report nowhere: a fit nobody watches (tests, a quick refit).
    pub fn silent(cancelled: Arc<AtomicBool>) -> Self {
        Self::new(cancelled, |_, _, _| {}, |_, _, _| {})
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }

    /// `done` of `total` steps, with a message such as `tree 20/100`.
    pub fn progress(&self, done: usize, total: usize, message: String) {
        (self.on_progress)(done, total, message);
    }

    /// One point of a metric's history (e.g. validation loss after epoch 3).
    pub fn metric(&self, step: usize, name: &str, value: f64) {
        (self.on_metric)(step, name, value);
    }

    /// Runs a neural-network or reinforcement-learning fit with these controls; a cancelled fit
    /// gives `Ok(None)`, as every other fit does.
    pub fn run_nn<T>(
        &self,
        fit: impl FnOnce(&mlops_nn::Hooks) -> Result<T, mlops_nn::NnError>,
    ) -> Result<Option<T>, MlError> {
        let progress =
            |done: usize, total: usize, message: String| self.progress(done, total, message);
        let metric = |step: usize, name: &str, value: f64| self.metric(step, name, value);
        let hooks = mlops_nn::Hooks {
            cancelled: &self.cancelled,
            progress: &progress,
            metric: &metric,
        };
        match fit(&hooks) {
            Ok(t) => Ok(Some(t)),
            Err(mlops_nn::NnError::Cancelled) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}
