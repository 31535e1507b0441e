//! The search space: each parameter's range, parsed from JSON and checked before any trial runs,
//! so a mistake in a range is reported once, up front, rather than as a failed trial later.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::dim::Numeric;
use super::parse::{check_distribution, json_kind, parse_distribution};

/// One parameter's range.
///
/// JSON form (tag "type"): `{"type":"int","low":10,"high":300,"log":false,"step":1}` (log and step
/// optional, step 1 by default), `{"type":"float","low":1e-3,"high":0.3,"log":true}` (log and step
/// optional), `{"type":"categorical","choices":["gini","entropy"]}` (strings, numbers, booleans or
/// null). With a step, the values are `low, low + step, …` up to `high`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Distribution {
    Int {
        low: i64,
        high: i64,
        #[serde(default)]
        log: bool,
        #[serde(default = "unit_step")]
        step: i64,
    },
    Float {
        low: f64,
        high: f64,
        #[serde(default)]
        log: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        step: Option<f64>,
    },
    Categorical {
        choices: Vec<Value>,
    },
}

fn unit_step() -> i64 {
    1
}

/// A search space that cannot be searched, with what is wrong in words a person can act on.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SearchError {
    #[error(
        "the search space is empty: give at least one parameter, e.g. {{\"max_depth\": {{\"type\": \"int\", \"low\": 2, \"high\": 12}}}}"
    )]
    Empty,
    #[error("the search space must be a JSON object of parameter names to ranges, got {0}")]
    NotAnObject(&'static str),
    #[error("parameter \"{param}\": {reason}")]
    Invalid { param: String, reason: String },
}

/// Parameters in a fixed (name-sorted) order, which is the order samplers draw them in: the same
/// space always consumes its random numbers the same way.
///
/// Its serde form is the flat JSON object that [`SearchSpace::from_json`] reads, and deserializing
/// checks it the same way.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Value", into = "Value")]
pub struct SearchSpace {
    pub params: BTreeMap<String, Distribution>,
}

impl SearchSpace {
    /// Parses and checks `{"name": {distribution}, ...}`. Short forms: a JSON array is a
    /// categorical's choices; `{"low": .., "high": ..}` without a type is an int range if both
    /// bounds are integers, else a float range.
    pub fn from_json(value: &Value) -> Result<Self, SearchError> {
        let Value::Object(entries) = value else {
            return Err(SearchError::NotAnObject(json_kind(value)));
        };
        let mut params = BTreeMap::new();
        for (name, spec) in entries {
            let distribution = parse_distribution(spec).map_err(|reason| SearchError::Invalid {
                param: name.clone(),
                reason,
            })?;
            params.insert(name.clone(), distribution);
        }
        let space = SearchSpace { params };
        space.check()?;
        Ok(space)
    }

    /// Checks every range, as [`SearchSpace::from_json`] does; for a space built in code.
    pub fn check(&self) -> Result<(), SearchError> {
        if self.params.is_empty() {
            return Err(SearchError::Empty);
        }
        for (name, distribution) in &self.params {
            check_distribution(distribution).map_err(|reason| SearchError::Invalid {
                param: name.clone(),
                reason,
            })?;
        }
        Ok(())
    }

    /// The space in its full JSON form ("type" on every parameter, defaults written out), which
    /// `from_json` reads back.
    pub fn to_json(&self) -> Value {
        Value::Object(
            self.params
                .iter()
                .map(|(name, distribution)| {
                    let json = serde_json::to_value(distribution).unwrap_or(Value::Null);
                    (name.clone(), json)
                })
                .collect(),
        )
    }

    /// The space's corners, for checking each bound against an algorithm's accepted settings
    /// before a study starts rather than failing trials one by one: for every parameter, a point
    /// with that parameter at its low, then its high (the highest value a sampler can draw, i.e.
    /// the last step at or below `high`), then each categorical choice, and every other parameter
    /// at its low or first choice. Returns (parameter name, parameters).
    pub fn corners(&self) -> Vec<(String, Map<String, Value>)> {
        let base: Map<String, Value> = self
            .params
            .iter()
            .filter_map(|(name, d)| Some((name.clone(), corner_values(d).into_iter().next()?)))
            .collect();
        let mut corners = Vec::new();
        for (name, distribution) in &self.params {
            for value in corner_values(distribution) {
                let mut point = base.clone();
                point.insert(name.clone(), value);
                corners.push((name.clone(), point));
            }
        }
        corners
    }
}

impl TryFrom<Value> for SearchSpace {
    type Error = SearchError;

    fn try_from(value: Value) -> Result<Self, SearchError> {
        SearchSpace::from_json(&value)
    }
}

impl From<SearchSpace> for Value {
    fn from(space: SearchSpace) -> Value {
        space.to_json()
    }
}

/// A parameter's extreme values: low and high for a number (once if they coincide), every
/// choice for a categorical.
fn corner_values(distribution: &Distribution) -> Vec<Value> {
    match (distribution, Numeric::of(distribution)) {
        (Distribution::Categorical { choices }, _) => choices.clone(),
        (_, Some(numeric)) if numeric.is_constant() => vec![numeric.to_json(numeric.low)],
        (_, Some(numeric)) => vec![numeric.to_json(numeric.low), numeric.to_json(numeric.high)],
        (_, None) => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn parses_the_full_and_short_forms() {
        let space = SearchSpace::from_json(&json!({
            "n_estimators": {"type": "int", "low": 10, "high": 300},
            "learning_rate": {"type": "float", "low": 1e-3, "high": 0.3, "log": true},
            "criterion": {"type": "categorical", "choices": ["gini", "entropy"]},
            "max_depth": [3, 5, null],
            "min_samples_leaf": {"low": 1, "high": 20, "step": 2},
            "subsample": {"low": 0.5, "high": 1},
        }))
        .unwrap();
        assert_eq!(
            space.to_json(),
            json!({
                "n_estimators": {"type": "int", "low": 10, "high": 300, "log": false, "step": 1},
                "learning_rate": {"type": "float", "low": 1e-3, "high": 0.3, "log": true},
                "criterion": {"type": "categorical", "choices": ["gini", "entropy"]},
                "max_depth": {"type": "categorical", "choices": [3, 5, null]},
                "min_samples_leaf": {"type": "int", "low": 1, "high": 20, "log": false, "step": 2},
                "subsample": {"type": "float", "low": 0.5, "high": 1.0, "log": false},
            })
        );
        // The full form reads back to the same space, directly and through serde.
        assert_eq!(SearchSpace::from_json(&space.to_json()).unwrap(), space);
        let text = serde_json::to_string(&space).unwrap();
        assert_eq!(serde_json::from_str::<SearchSpace>(&text).unwrap(), space);
        assert_eq!(serde_json::to_value(&space).unwrap(), space.to_json());
    }

    #[test]
    fn corners_put_one_parameter_at_each_extreme_and_the_rest_at_their_low() {
        let space = SearchSpace::from_json(&json!({
            "depth": {"type": "int", "low": 2, "high": 10, "step": 4},
            "kernel": ["rbf", "linear"],
            "lr": {"type": "float", "low": 0.01, "high": 0.1, "log": true},
        }))
        .unwrap();
        let corners = space.corners();
        let point = |d: i64, k: &str, lr: f64| {
            json!({"depth": d, "kernel": k, "lr": lr})
                .as_object()
                .unwrap()
                .clone()
        };
        assert_eq!(
            corners,
            vec![
                ("depth".to_string(), point(2, "rbf", 0.01)),
                ("depth".to_string(), point(10, "rbf", 0.01)),
                ("kernel".to_string(), point(2, "rbf", 0.01)),
                ("kernel".to_string(), point(2, "linear", 0.01)),
                ("lr".to_string(), point(2, "rbf", 0.01)),
                ("lr".to_string(), point(2, "rbf", 0.1)),
            ]
        );
        // A step that misses high: the high corner is the last reachable step.
        let space =
            SearchSpace::from_json(&json!({"n": {"low": 0, "high": 10, "step": 3}})).unwrap();
        let values: Vec<Value> = space
            .corners()
            .into_iter()
            .map(|(_, p)| p["n"].clone())
            .collect();
        assert_eq!(values, [json!(0), json!(9)]);
    }
}
