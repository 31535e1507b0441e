//! Reinforcement-learning data: logged transitions (state, action, reward, next state, done) turned
//! into a validated replay table, or a built-in environment's configuration checked.

use polars::prelude::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::DataError;
use crate::io::require_column;
use crate::profile::is_numeric;

/// The environments the trainers know, with their observation size, action count and episode limit.
pub const ENVIRONMENTS: [(&str, usize, usize, usize); 3] = [
    ("CartPole-v1", 4, 2, 500),
    ("MountainCar-v0", 2, 3, 200),
    ("Acrobot-v1", 6, 3, 500),
];

/// Where the transitions are in a logged table.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TransitionColumns {
    /// State columns, in order (e.g. `["s0","s1","s2","s3"]`).
    pub state_columns: Vec<String>,
    /// Next-state columns, in the same order.
    pub next_state_columns: Vec<String>,
    pub action_column: String,
    pub reward_column: String,
    /// 1/true where the episode ended after this step.
    pub done_column: String,
}

/// An environment to check.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentConfig {
    /// One of CartPole-v1, MountainCar-v0, Acrobot-v1.
    pub name: String,
    /// Shorter episodes than the environment's own limit.
    pub max_episode_steps: Option<usize>,
}

/// A checked environment.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct EnvironmentSpec {
    pub name: String,
    pub observation_size: usize,
    pub actions: usize,
    pub max_episode_steps: usize,
}

/// Checks an environment configuration.
pub fn check_environment(c: &EnvironmentConfig) -> Result<EnvironmentSpec, DataError> {
    let Some((name, obs, actions, limit)) = ENVIRONMENTS.iter().find(|e| e.0 == c.name) else {
        let known: Vec<&str> = ENVIRONMENTS.iter().map(|e| e.0).collect();
        return Err(DataError::invalid(format!(
            "unknown environment `{}`; known: {}",
            c.name,
            known.join(", ")
        )));
    };
    let steps = c.max_episode_steps.unwrap_or(*limit);
    if steps == 0 || steps > *limit {
        return Err(DataError::invalid(format!(
            "max_episode_steps for {name} must be between 1 and {limit}"
        )));
    }
    Ok(EnvironmentSpec {
        name: name.to_string(),
        observation_size: *obs,
        actions: *actions,
        max_episode_steps: steps,
    })
}

/// What a replay table holds.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ReplaySummary {
    pub transitions: usize,
    /// Episodes that ended (a done flag), plus a trailing unfinished one if any.
    pub episodes: usize,
    pub state_size: usize,
    /// The distinct actions, in ascending order (actions must be whole numbers from 0).
    pub actions: Vec<i64>,
    pub reward_mean: f64,
    pub reward_min: f64,
    pub reward_max: f64,
}

/// Validates logged transitions and returns the replay table in canonical column order
/// (`s_0…`, `action`, `reward`, `ns_0…`, `done`) with its summary.
pub fn to_replay(
    df: &DataFrame,
    cols: &TransitionColumns,
) -> Result<(DataFrame, ReplaySummary), DataError> {
    if cols.state_columns.is_empty() {
        return Err(DataError::invalid(
            "state_columns must name at least one column",
        ));
    }
    if cols.state_columns.len() != cols.next_state_columns.len() {
        return Err(DataError::invalid(format!(
            "state_columns has {} columns but next_state_columns has {}; they must match one to one",
            cols.state_columns.len(),
            cols.next_state_columns.len()
        )));
    }
    if df.height() == 0 {
        return Err(DataError::invalid("the table holds no transitions"));
    }
    let numbers = |name: &str| -> Result<Vec<f64>, DataError> {
        require_column(df, name)?;
        let c = df.column(name)?;
        if !is_numeric(c.dtype()) {
            return Err(DataError::invalid(format!(
                "`{name}` must be numeric (it holds {})",
                c.dtype()
            )));
        }
        let s = c.as_materialized_series().cast(&DataType::Float64)?;
        let v: Vec<f64> = s.f64()?.iter().map(|v| v.unwrap_or(f64::NAN)).collect();
        if let Some(row) = v.iter().position(|x| !x.is_finite()) {
            return Err(DataError::invalid(format!(
                "`{name}` has a missing or non-finite value at row {row}"
            )));
        }
        Ok(v)
    };
    let mut out: Vec<Column> = Vec::new();
    for (i, c) in cols.state_columns.iter().enumerate() {
        out.push(Column::new(format!("s_{i}").into(), numbers(c)?));
    }
    let actions = numbers(&cols.action_column)?;
    if let Some(a) = actions.iter().find(|a| a.fract() != 0.0 || **a < 0.0) {
        return Err(DataError::invalid(format!(
            "actions must be whole numbers from 0 (found {a}) in `{}`",
            cols.action_column
        )));
    }
    let actions: Vec<i64> = actions.iter().map(|a| *a as i64).collect();
    let rewards = numbers(&cols.reward_column)?;
    let done = numbers(&cols.done_column)?;
    if let Some(d) = done.iter().find(|d| **d != 0.0 && **d != 1.0) {
        return Err(DataError::invalid(format!(
            "`{}` must hold 0/1 or true/false (found {d})",
            cols.done_column
        )));
    }
    let mut distinct = actions.clone();
    distinct.sort_unstable();
    distinct.dedup();
    let ended = done.iter().filter(|d| **d == 1.0).count();
    let episodes = ended + usize::from(done.last() == Some(&0.0));
    let summary = ReplaySummary {
        transitions: df.height(),
        episodes,
        state_size: cols.state_columns.len(),
        actions: distinct,
        reward_mean: rewards.iter().sum::<f64>() / rewards.len() as f64,
        reward_min: rewards.iter().copied().fold(f64::INFINITY, f64::min),
        reward_max: rewards.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    };
    out.push(Column::new("action".into(), actions));
    out.push(Column::new("reward".into(), rewards));
    for (i, c) in cols.next_state_columns.iter().enumerate() {
        out.push(Column::new(format!("ns_{i}").into(), numbers(c)?));
    }
    out.push(Column::new(
        "done".into(),
        done.iter().map(|d| *d == 1.0).collect::<Vec<bool>>(),
    ));
    Ok((DataFrame::new_infer_height(out)?, summary))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols() -> TransitionColumns {
        TransitionColumns {
            state_columns: vec!["x".into(), "v".into()],
            next_state_columns: vec!["x2".into(), "v2".into()],
            action_column: "a".into(),
            reward_column: "r".into(),
            done_column: "d".into(),
        }
    }

    #[test]
    fn transitions_become_a_canonical_replay_table() {
        let df = df! {"x" => [0.0, 0.1, 0.2], "v" => [1.0, 1.0, 0.9], "a" => [0, 1, 1], "r" => [1.0, 1.0, 0.0], "x2" => [0.1, 0.2, 0.3], "v2" => [1.0, 0.9, 0.8], "d" => [false, true, false]}.unwrap();
        let (replay, s) = to_replay(&df, &cols()).unwrap();
        let names: Vec<&str> = replay
            .get_column_names()
            .into_iter()
            .map(|s| s.as_str())
            .collect();
        assert_eq!(
            names,
            vec!["s_0", "s_1", "action", "reward", "ns_0", "ns_1", "done"]
        );
        assert_eq!((s.transitions, s.episodes, s.state_size), (3, 2, 2));
        assert_eq!(s.actions, vec![0, 1]);
    }

    #[test]
    fn bad_transitions_and_environments_are_explained() {
        let df = df! {"x" => [0.0], "v" => [1.0], "a" => [0.5], "r" => [1.0], "x2" => [0.1], "v2" => [1.0], "d" => [0]}.unwrap();
        assert!(
            to_replay(&df, &cols())
                .unwrap_err()
                .to_string()
                .contains("whole numbers")
        );
        let mut c = cols();
        c.next_state_columns.pop();
        assert!(
            to_replay(&df, &c)
                .unwrap_err()
                .to_string()
                .contains("must match one to one")
        );
        assert!(
            check_environment(&EnvironmentConfig {
                name: "Pong".into(),
                max_episode_steps: None
            })
            .unwrap_err()
            .to_string()
            .contains("CartPole-v1")
        );
        let spec = check_environment(&EnvironmentConfig {
            name: "CartPole-v1".into(),
            max_episode_steps: Some(200),
        })
        .unwrap();
        assert_eq!(
            (spec.observation_size, spec.actions, spec.max_episode_steps),
            (4, 2, 200)
        );
    }
}
