//! The work of each state: one step function per state of [`crate::definition`], dispatched by an
//! exhaustive `match` on [`StateName`]. A state added to the machine does not compile until it has
//! a step here (or is listed as one without work), and a step function no state dispatches to is
//! dead code, which the lints refuse.
//!
//! - [`training`]: PrepareData, TrainModel, EvaluateModel and JudgeResults.
//! - [`tuning`]: TuneHyperparameters, the search a `tune:` block asks for.
//! - [`approval`]: CheckRetryLimit, NotifyOperator, WaitForOperatorInput and IncrementRetry.
//! - [`success`]: RegisterModel, WriteHistory and NotifySuccess.
//! - [`failure`]: RollbackModel and NotifyFailure.
//! - [`effects`]: the issue labels and notifications those steps share.

mod approval;
pub(crate) mod effects;
mod failure;
mod success;
mod training;
mod tuning;

use std::time::Duration;

use serde_json::Value;

use crate::context::Context;
use crate::definition::{State, StateName};
use crate::engine::WorkflowEngine;
use crate::error::WorkflowError;

/// What a step did.
pub(crate) enum Outcome {
    /// Go to the state's `next` with this output.
    Next(Value),
    /// Go to the state's `otherwise` branch with this output.
    Otherwise(Value),
    /// Stop and wait for an operator until the deadline (ms since the epoch).
    Wait(i64),
}

impl Outcome {
    /// The output and the state to go to, or the deadline to wait until.
    pub(crate) fn branch(self, s: &State) -> Result<(Value, StateName), i64> {
        match self {
            Outcome::Next(v) => Ok((v, s.next.unwrap_or(StateName::Failed))),
            Outcome::Otherwise(v) => Ok((v, s.otherwise.unwrap_or(StateName::Failed))),
            Outcome::Wait(deadline) => Err(deadline),
        }
    }
}

/// What every step is given besides the context: the engine to call tools through, the
/// execution, and this attempt's limits.
pub(crate) struct Attempt<'a> {
    engine: &'a WorkflowEngine,
    /// The execution's id.
    id: &'a str,
    /// This state's timeout (the table's, or the execution's override).
    timeout: Duration,
    /// The name of this try's data split and training job, `<execution>-r<retry>`, so a retry
    /// trains afresh and a resumed attempt reuses its own.
    run_name: String,
}

/// Does one state's work.
pub(crate) async fn run(
    engine: &WorkflowEngine,
    s: &State,
    c: &mut Context,
    id: &str,
) -> Result<Outcome, WorkflowError> {
    let attempt = Attempt {
        engine,
        id,
        timeout: c.timeout(s),
        run_name: format!("{id}-r{}", c.retry_count),
    };
    use StateName::*;
    match s.name {
        PrepareData => training::prepare_data(&attempt, c).await,
        TuneHyperparameters => tuning::tune_hyperparameters(&attempt, c).await,
        TrainModel => training::train_model(&attempt, c).await,
        EvaluateModel => training::evaluate_model(&attempt, c).await,
        JudgeResults => training::judge_results(c),
        CheckRetryLimit => Ok(approval::check_retry_limit(c)),
        NotifyOperator => approval::notify_operator(&attempt, c).await,
        WaitForOperatorInput => approval::wait_for_operator_input(&attempt, c).await,
        IncrementRetry => Ok(approval::increment_retry(c)),
        RegisterModel => success::register_model(&attempt, c).await,
        WriteHistory => success::write_history(&attempt, c).await,
        NotifySuccess => success::notify_success(&attempt, c).await,
        RollbackModel => failure::rollback_model(&attempt, c).await,
        NotifyFailure => failure::notify_failure(&attempt, c).await,
        // The engine ends an execution on reaching these; they have no work.
        Succeeded | Failed => Err(WorkflowError::Step(format!(
            "state `{}` has no work",
            s.name
        ))),
    }
}
