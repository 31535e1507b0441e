//! The workflow's state machine as data (SPEC §3): every state, its kind, timeout, retries and
//! where it goes next. The engine interprets this table; `export-asl` prints it as Amazon States
//! Language, so the local engine and Step Functions run the same machine.
//!
//! States are named by [`StateName`], so a transition cannot name a state that does not exist, the
//! table has exactly one row per state (checked when compiling), and the engine's dispatch to the
//! step functions is an exhaustive `match` on it: a state without a step does not compile.

use std::fmt;
use std::time::Duration;

use serde::{Serialize, Serializer};
use serde_json::{Map, Value, json};

use self::StateName::*;

/// What a state does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Calls a tool (or a built-in step) and moves on when it succeeds.
    Task,
    /// Waits for an operator's decision, identified by a task token.
    WaitForToken,
    /// Picks the next state from the execution's context.
    Choice,
    /// Changes the context and moves on.
    Pass,
    /// Ends the execution successfully.
    Succeed,
    /// Ends the execution as failed.
    Fail,
}

/// Declares [`StateName`] with [`StateName::ALL`] and [`StateName::as_str`] from one list, so
/// neither can miss a state nor spell one differently.
macro_rules! state_names {
    ($($name:ident),+ $(,)?) => {
        /// A state of the machine.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum StateName {
            $($name),+
        }

        impl StateName {
            /// Every state, in declaration order: the order of [`STATES`].
            pub const ALL: &'static [StateName] = &[$(StateName::$name),+];

            /// The name in the database, the step records, timing overrides and the ASL document.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(StateName::$name => stringify!($name)),+
                }
            }
        }
    };
}

state_names!(
    PrepareData,
    TuneHyperparameters,
    TrainModel,
    EvaluateModel,
    JudgeResults,
    CheckRetryLimit,
    NotifyOperator,
    WaitForOperatorInput,
    IncrementRetry,
    RegisterModel,
    WriteHistory,
    NotifySuccess,
    RollbackModel,
    NotifyFailure,
    Succeeded,
    Failed,
);

impl StateName {
    /// The state a stored name stands for.
    pub fn parse(name: &str) -> Option<StateName> {
        StateName::ALL.iter().copied().find(|s| s.as_str() == name)
    }
}

impl fmt::Display for StateName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// As its name: the ASL document and the stored context hold names.
impl Serialize for StateName {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// One state of the machine.
#[derive(Debug, Clone, Copy)]
pub struct State {
    pub name: StateName,
    pub kind: Kind,
    pub comment: &'static str,
    pub timeout: Duration,
    /// Retries after the first attempt.
    pub retries: u32,
    /// The next state on success (for a Choice: the state when the condition holds).
    pub next: Option<StateName>,
    /// A Choice's other branch; a token wait's branch on rejection or timeout.
    pub otherwise: Option<StateName>,
    /// Where an error goes once the retries are spent (the ErrorHandler catch).
    pub catch: Option<StateName>,
}

/// First wait between attempts; it doubles each retry.
pub const BACKOFF: Duration = Duration::from_secs(2);
pub const BACKOFF_RATE: f64 = 2.0;

const MIN: u64 = 60;

const fn task(
    name: StateName,
    comment: &'static str,
    timeout_s: u64,
    retries: u32,
    next: StateName,
    catch: StateName,
) -> State {
    State {
        name,
        kind: Kind::Task,
        comment,
        timeout: Duration::from_secs(timeout_s),
        retries,
        next: Some(next),
        otherwise: None,
        catch: Some(catch),
    }
}

const fn end(name: StateName, kind: Kind, comment: &'static str) -> State {
    State {
        name,
        kind,
        comment,
        timeout: Duration::ZERO,
        retries: 0,
        next: None,
        otherwise: None,
        catch: None,
    }
}

pub const START: StateName = PrepareData;

/// The machine. Errors in PrepareData, TuneHyperparameters, TrainModel and EvaluateModel go through the ErrorHandler
/// catch to NotifyFailure; a failure after the model was promoted goes to RollbackModel first.
pub const STATES: &[State] = &[
    task(
        PrepareData,
        "Split and preprocess the issue's dataset (preprocess_supervised).",
        15 * MIN,
        3,
        TuneHyperparameters,
        NotifyFailure,
    ),
    task(
        TuneHyperparameters,
        "With the issue's tune: block, search the settings on the training split and keep the best (tune_hyperparameters); without one, nothing.",
        120 * MIN,
        1,
        TrainModel,
        NotifyFailure,
    ),
    task(
        TrainModel,
        "Train the model and wait for the job (train_supervised_*).",
        60 * MIN,
        1,
        EvaluateModel,
        NotifyFailure,
    ),
    task(
        EvaluateModel,
        "Score the model on the held-out test split (evaluate_*).",
        15 * MIN,
        3,
        JudgeResults,
        NotifyFailure,
    ),
    State {
        name: JudgeResults,
        kind: Kind::Task,
        comment: "Compare the chosen metric with the threshold: pass, fail or error.",
        timeout: Duration::from_secs(5 * MIN),
        retries: 0,
        next: Some(RegisterModel),
        otherwise: Some(CheckRetryLimit),
        catch: Some(RollbackModel),
    },
    State {
        name: CheckRetryLimit,
        kind: Kind::Choice,
        comment: "retry_count < max_retry ?",
        timeout: Duration::ZERO,
        retries: 0,
        next: Some(NotifyOperator),
        otherwise: Some(RollbackModel),
        catch: None,
    },
    task(
        NotifyOperator,
        "Ask the operator to approve a retry (send_notification, task token).",
        5 * MIN,
        3,
        WaitForOperatorInput,
        RollbackModel,
    ),
    State {
        name: WaitForOperatorInput,
        kind: Kind::WaitForToken,
        comment: "Wait for /approve or /reject (issue comment or approve_workflow_step).",
        timeout: Duration::from_secs(24 * 60 * MIN),
        retries: 0,
        next: Some(IncrementRetry),
        otherwise: Some(RollbackModel),
        catch: None,
    },
    State {
        name: IncrementRetry,
        kind: Kind::Pass,
        comment: "retry_count + 1, apply the operator's changed parameters.",
        timeout: Duration::ZERO,
        retries: 0,
        next: Some(PrepareData),
        otherwise: None,
        catch: None,
    },
    task(
        RegisterModel,
        "Register the version, approve it and make it Production (register_model).",
        10 * MIN,
        3,
        WriteHistory,
        RollbackModel,
    ),
    task(
        WriteHistory,
        "Commit training_history/train-YYYYMMDD-NNN.md (commit_training_history).",
        5 * MIN,
        3,
        NotifySuccess,
        RollbackModel,
    ),
    task(
        NotifySuccess,
        "Notify success (send_notification).",
        5 * MIN,
        3,
        Succeeded,
        Succeeded,
    ),
    task(
        RollbackModel,
        "Undo this execution's promotion, if any (rollback_model).",
        10 * MIN,
        3,
        NotifyFailure,
        NotifyFailure,
    ),
    task(
        NotifyFailure,
        "Notify failure (send_notification).",
        5 * MIN,
        3,
        Failed,
        Failed,
    ),
    end(
        Succeeded,
        Kind::Succeed,
        "The model passed and was registered.",
    ),
    end(
        Failed,
        Kind::Fail,
        "The model did not pass, or a step failed.",
    ),
];

// One row per state, in the order of `StateName::ALL`, so `state` can index the table.
const _: () = {
    assert!(STATES.len() == StateName::ALL.len());
    let mut i = 0;
    while i < STATES.len() {
        assert!(
            STATES[i].name as usize == i,
            "STATES must list every state once, in the order StateName declares them"
        );
        i += 1;
    }
};

/// The state's row of the table.
pub fn state(name: StateName) -> &'static State {
    &STATES[name as usize]
}

/// The backoff before attempt `attempt` (2 is the first retry).
pub fn backoff(base: Duration, attempt: u32) -> Duration {
    base.mul_f64(BACKOFF_RATE.powi(attempt.saturating_sub(2) as i32))
}

/// The machine in Amazon States Language. Task states invoke `resource_prefix` + the state name
/// (e.g. a Lambda running `mlops-mcp` in one-shot mode); the operator wait uses
/// `.waitForTaskToken`.
pub fn to_asl(resource_prefix: &str) -> Value {
    let mut states = Map::new();
    for s in STATES {
        let v = match s.kind {
            Kind::Task => {
                let mut t = json!({
                    "Type": "Task",
                    "Comment": s.comment,
                    "Resource": "arn:aws:states:::lambda:invoke",
                    "Parameters": {
                        "FunctionName": format!("{resource_prefix}{}", s.name),
                        "Payload.$": "$"
                    },
                    "OutputPath": "$.Payload",
                    "TimeoutSeconds": s.timeout.as_secs(),
                });
                if s.retries > 0 {
                    t["Retry"] = json!([{
                        "ErrorEquals": ["States.TaskFailed", "States.Timeout"],
                        "IntervalSeconds": BACKOFF.as_secs(),
                        "MaxAttempts": s.retries,
                        "BackoffRate": BACKOFF_RATE
                    }]);
                }
                if let Some(c) = s.catch.filter(|c| Some(*c) != s.next) {
                    t["Catch"] = json!([{
                        "ErrorEquals": ["States.ALL"],
                        "ResultPath": "$.error",
                        "Next": c
                    }]);
                }
                if s.name == JudgeResults {
                    // The judgement's verdict picks the branch: a Choice right after the task.
                    t["Next"] = json!("RouteVerdict");
                } else {
                    t["Next"] = json!(s.next);
                }
                t
            }
            Kind::WaitForToken => json!({
                "Type": "Task",
                "Comment": s.comment,
                "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
                "Parameters": {
                    "FunctionName": format!("{resource_prefix}{}", s.name),
                    "Payload": { "execution.$": "$", "task_token.$": "$$.Task.Token" }
                },
                "TimeoutSeconds": s.timeout.as_secs(),
                "Catch": [{ "ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": s.otherwise }],
                "Next": s.next,
            }),
            Kind::Choice => json!({
                "Type": "Choice",
                "Comment": s.comment,
                "Choices": [{
                    "Variable": "$.retry_count",
                    "NumericLessThanPath": "$.request.max_retry",
                    "Next": s.next
                }],
                "Default": s.otherwise,
            }),
            Kind::Pass => json!({ "Type": "Pass", "Comment": s.comment, "Next": s.next }),
            Kind::Succeed => json!({ "Type": "Succeed", "Comment": s.comment }),
            Kind::Fail => {
                json!({ "Type": "Fail", "Comment": s.comment, "Error": "TrainingFailed" })
            }
        };
        states.insert(s.name.as_str().into(), v);
    }
    states.insert(
        "RouteVerdict".into(),
        json!({
            "Type": "Choice",
            "Comment": "pass → RegisterModel, fail → CheckRetryLimit, error → RollbackModel",
            "Choices": [
                { "Variable": "$.verdict", "StringEquals": "pass", "Next": RegisterModel },
                { "Variable": "$.verdict", "StringEquals": "fail", "Next": CheckRetryLimit }
            ],
            "Default": RollbackModel
        }),
    );
    json!({
        "Comment": "mlops-mcp: issue-driven training (SPEC §3)",
        "StartAt": START,
        "States": states,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_finds_its_own_row() {
        for name in StateName::ALL {
            assert_eq!(state(*name).name, *name);
            assert_eq!(StateName::parse(name.as_str()), Some(*name));
        }
        assert_eq!(StateName::parse("NoSuchState"), None);
        assert_eq!(state(START).name, PrepareData);
    }

    #[test]
    fn asl_has_the_spec_shapes() {
        let asl = to_asl("mlops-");
        let states = asl["States"].as_object().unwrap();
        assert_eq!(states["TrainModel"]["TimeoutSeconds"], 3600);
        assert_eq!(states["PrepareData"]["Next"], "TuneHyperparameters");
        assert_eq!(states["TuneHyperparameters"]["TimeoutSeconds"], 7200);
        assert_eq!(states["TuneHyperparameters"]["Retry"][0]["MaxAttempts"], 1);
        assert_eq!(states["TuneHyperparameters"]["Next"], "TrainModel");
        assert_eq!(states["PrepareData"]["Retry"][0]["MaxAttempts"], 3);
        assert_eq!(states["PrepareData"]["Catch"][0]["Next"], "NotifyFailure");
        assert!(
            states["WaitForOperatorInput"]["Resource"]
                .as_str()
                .unwrap()
                .ends_with(".waitForTaskToken")
        );
        assert_eq!(states["WaitForOperatorInput"]["TimeoutSeconds"], 86400);
        assert_eq!(states["CheckRetryLimit"]["Type"], "Choice");
        // Every Next/Default in the document names a state of the document.
        let text = asl.to_string();
        for (name, _) in states {
            assert!(text.contains(&format!("\"{name}\"")));
        }
    }
}
