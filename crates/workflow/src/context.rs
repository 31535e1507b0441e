//! An execution's context: the request, what each step produced, the judgement and the
//! operator's answer. It is stored as JSON with the execution and handed to every step.

use std::collections::BTreeMap;
use std::time::Duration;

use mlops_request::TrainingRequest;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::definition::{State, StateName};
use crate::error::WorkflowError;

/// Timing of an execution. Production uses the state table's values; tests shrink them.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Timing {
    /// Per-state timeouts in milliseconds, by state name, replacing the table's.
    #[serde(default)]
    pub(crate) timeouts_ms: BTreeMap<String, u64>,
    /// First backoff between attempts in milliseconds (default 2000; doubles each retry).
    pub(crate) backoff_ms: Option<u64>,
}

/// The execution's context: the request and what each step produced.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Context {
    pub(crate) execution_id: String,
    pub(crate) request: TrainingRequest,
    pub(crate) model_name: String,
    pub(crate) issue_number: Option<u64>,
    pub(crate) retry_count: u32,
    #[serde(default)]
    pub(crate) timing: Timing,
    /// Outputs by state name (the latest attempt that succeeded).
    #[serde(default)]
    pub(crate) outputs: Map<String, Value>,
    /// The judgement: pass, fail or error, and why.
    pub(crate) verdict: Option<String>,
    pub(crate) reason: Option<String>,
    /// The error that sent the execution to the failure path.
    pub(crate) error: Option<Value>,
    /// Set when an operator answered (cleared when used).
    pub(crate) decision: Option<Value>,
    pub(crate) task_token: Option<String>,
    /// Versions this execution promoted to Production (rolled back on a later failure).
    #[serde(default)]
    pub(crate) promoted_version: Option<i64>,
}

impl Context {
    /// A field of a state's output.
    pub(crate) fn output(&self, state: StateName, field: &str) -> Option<&Value> {
        self.outputs.get(state.as_str()).and_then(|o| o.get(field))
    }

    /// A text field of a state's output, which later steps cannot do without.
    pub(crate) fn text(&self, state: StateName, field: &str) -> Result<String, WorkflowError> {
        self.output(state, field)
            .and_then(Value::as_str)
            .map(String::from)
            .ok_or_else(|| {
                WorkflowError::Invalid(format!("the {state} step produced no `{field}`"))
            })
    }

    /// The state's timeout: the execution's override, else the table's.
    pub(crate) fn timeout(&self, s: &State) -> Duration {
        self.timing
            .timeouts_ms
            .get(s.name.as_str())
            .map(|ms| Duration::from_millis(*ms))
            .unwrap_or(s.timeout)
    }

    pub(crate) fn classification(&self) -> bool {
        self.request.task_type.as_str() == "classification"
    }

    /// The facts notification templates are given.
    pub(crate) fn notification_context(&self) -> Map<String, Value> {
        let mut c = Map::new();
        c.insert("model_name".into(), json!(self.model_name));
        c.insert("execution_id".into(), json!(self.execution_id));
        c.insert("metric".into(), json!(self.request.metric));
        c.insert("threshold".into(), json!(self.request.threshold));
        c.insert("retry_count".into(), json!(self.retry_count));
        c.insert("max_retry".into(), json!(self.request.max_retry));
        if let Some(n) = self.issue_number {
            c.insert("issue_number".into(), json!(n));
        }
        if let Some(r) = &self.reason {
            c.insert("reason".into(), json!(r));
        }
        if let Some(m) = self.output(StateName::EvaluateModel, "metrics") {
            c.insert("metrics".into(), m.clone());
        }
        c
    }
}
