//! Reading a parameter's range from JSON, short forms included, and checking it, with errors
//! that say what to change.

use serde_json::Value;

use super::space::Distribution;

/// A JSON value's kind as an error message names it.
pub(super) fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

const RANGE_EXAMPLE: &str = "a range such as {\"type\": \"float\", \"low\": 0.001, \"high\": 0.3, \"log\": true} or a list of choices such as [\"gini\", \"entropy\"]";

/// One parameter's range from its full or short JSON form. Mistakes serde catches (an int bound
/// written as 1.5, a misspelt field) come back in serde's words, which name the field.
pub(super) fn parse_distribution(spec: &Value) -> Result<Distribution, String> {
    let object = match spec {
        Value::Array(choices) => {
            return Ok(Distribution::Categorical {
                choices: choices.clone(),
            });
        }
        Value::Object(object) => object,
        other => {
            return Err(format!(
                "expected {RANGE_EXAMPLE}, got {}",
                json_kind(other)
            ));
        }
    };
    let mut object = object.clone();
    match object.get("type") {
        Some(Value::String(kind)) if ["int", "float", "categorical"].contains(&kind.as_str()) => {}
        Some(Value::String(kind)) => {
            return Err(format!(
                "unknown type \"{kind}\"; expected \"int\", \"float\" or \"categorical\""
            ));
        }
        Some(other) => {
            return Err(format!(
                "\"type\" must be \"int\", \"float\" or \"categorical\", got {}",
                json_kind(other)
            ));
        }
        None => {
            let (Some(low), Some(high)) = (object.get("low"), object.get("high")) else {
                return Err(format!(
                    "give a \"type\" or both \"low\" and \"high\": expected {RANGE_EXAMPLE}"
                ));
            };
            let integral = |v: &Value| v.is_i64() || v.is_u64();
            let kind = if integral(low) && integral(high) {
                "int"
            } else {
                "float"
            };
            object.insert("type".into(), Value::from(kind));
        }
    }
    serde_json::from_value(Value::Object(object)).map_err(|e| e.to_string())
}

/// Why a range cannot be searched, if it cannot: checked apart from parsing so that a space
/// built in code gets the same checks.
pub(super) fn check_distribution(distribution: &Distribution) -> Result<(), String> {
    match *distribution {
        Distribution::Int {
            low,
            high,
            log,
            step,
        } => {
            if low > high {
                return Err(format!("inverted range: low {low} is above high {high}"));
            }
            if log && low <= 0 {
                return Err(format!("a log scale needs low above 0, got low {low}"));
            }
            if step <= 0 {
                return Err(format!("step must be above 0, got step {step}"));
            }
            // Optuna refuses these too: a log scale has no evenly spaced steps.
            if log && step != 1 {
                return Err(format!(
                    "a log scale takes no step, got step {step}; drop \"step\" or \"log\""
                ));
            }
            if low < high && i128::from(step) > i128::from(high) - i128::from(low) {
                return Err(format!(
                    "step {step} is larger than the range {low} to {high}"
                ));
            }
            Ok(())
        }
        Distribution::Float {
            low,
            high,
            log,
            step,
        } => {
            if !low.is_finite() || !high.is_finite() {
                return Err(format!(
                    "bounds must be finite numbers, got low {low} and high {high}"
                ));
            }
            if low > high {
                return Err(format!("inverted range: low {low} is above high {high}"));
            }
            if low == high {
                return Err(format!(
                    "empty range: low and high are both {low}; to fix the value, use a categorical with one choice"
                ));
            }
            if log && low <= 0.0 {
                return Err(format!("a log scale needs low above 0, got low {low}"));
            }
            let Some(step) = step else { return Ok(()) };
            if !(step.is_finite() && step > 0.0) {
                return Err(format!("step must be above 0, got step {step}"));
            }
            if log {
                return Err(format!(
                    "a log scale takes no step, got step {step}; drop \"step\" or \"log\""
                ));
            }
            if step > high - low {
                return Err(format!(
                    "step {step} is larger than the range {low} to {high}"
                ));
            }
            Ok(())
        }
        Distribution::Categorical { ref choices } => {
            if choices.is_empty() {
                return Err("a categorical needs at least one choice, got none".into());
            }
            for (i, choice) in choices.iter().enumerate() {
                if matches!(choice, Value::Array(_) | Value::Object(_)) {
                    return Err(format!(
                        "choice {} is {}; choices must be strings, numbers, booleans or null",
                        i + 1,
                        json_kind(choice)
                    ));
                }
                if choices[..i].contains(choice) {
                    return Err(format!("choice {choice} is listed twice"));
                }
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;
    use crate::search::SearchSpace;

    fn error(value: Value) -> String {
        match SearchSpace::from_json(&value) {
            Ok(space) => panic!("{value} was accepted as {space:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn refuses_bad_spaces_with_a_sentence_naming_the_parameter() {
        let cases = [
            (json!({}), "the search space is empty"),
            (
                json!([1, 2]),
                "must be a JSON object of parameter names to ranges, got an array",
            ),
            (
                json!({"a": {"type": "normal", "low": 0, "high": 1}}),
                "parameter \"a\": unknown type \"normal\"",
            ),
            (
                json!({"a": {"type": "int", "low": 5, "high": 2}}),
                "parameter \"a\": inverted range: low 5 is above high 2",
            ),
            (
                json!({"a": {"type": "float", "low": 5.5, "high": 2}}),
                "inverted range: low 5.5 is above high 2",
            ),
            (
                json!({"a": {"type": "float", "low": 0.5, "high": 0.5}}),
                "parameter \"a\": empty range: low and high are both 0.5",
            ),
            (
                json!({"a": {"type": "float", "low": 0, "high": 1, "log": true}}),
                "a log scale needs low above 0, got low 0",
            ),
            (
                json!({"a": {"type": "int", "low": -1, "high": 10, "log": true}}),
                "a log scale needs low above 0, got low -1",
            ),
            (
                json!({"a": {"type": "int", "low": 0, "high": 10, "step": 0}}),
                "step must be above 0, got step 0",
            ),
            (
                json!({"a": {"type": "float", "low": 0, "high": 1, "step": -0.1}}),
                "step must be above 0, got step -0.1",
            ),
            (
                json!({"a": {"type": "int", "low": 0, "high": 10, "step": 11}}),
                "step 11 is larger than the range 0 to 10",
            ),
            (
                json!({"a": {"type": "float", "low": 0, "high": 1, "step": 2}}),
                "step 2 is larger than the range 0 to 1",
            ),
            (
                json!({"a": {"type": "int", "low": 1, "high": 64, "log": true, "step": 2}}),
                "a log scale takes no step",
            ),
            (
                json!({"a": {"type": "float", "low": 1, "high": 64, "log": true, "step": 2}}),
                "a log scale takes no step",
            ),
            (
                json!({"a": {"type": "categorical", "choices": []}}),
                "parameter \"a\": a categorical needs at least one choice",
            ),
            (json!({"a": []}), "a categorical needs at least one choice"),
            (
                json!({"a": ["x", [1, 2]]}),
                "choice 2 is an array; choices must be strings, numbers, booleans or null",
            ),
            (json!({"a": [{"k": 1}]}), "choice 1 is an object"),
            (json!({"a": ["x", "x"]}), "choice \"x\" is listed twice"),
            (
                json!({"a": "fast"}),
                "parameter \"a\": expected a range such as",
            ),
            (
                json!({"a": {"high": 3}}),
                "give a \"type\" or both \"low\" and \"high\"",
            ),
            (
                json!({"a": {"type": "int", "low": 1.5, "high": 3}}),
                "parameter \"a\": invalid type: floating point `1.5`, expected i64",
            ),
            (
                json!({"a": {"type": "int", "low": 1, "hihg": 3}}),
                "unknown field `hihg`",
            ),
        ];
        for (input, expected) in cases {
            let message = error(input.clone());
            assert!(message.contains(expected), "{input}: {message}");
        }
    }

    #[test]
    fn refuses_non_finite_bounds_in_a_space_built_in_code() {
        // JSON cannot carry NaN or infinity; a space built in code can.
        for (low, high) in [(f64::NAN, 1.0), (0.0, f64::INFINITY)] {
            let space = SearchSpace {
                params: BTreeMap::from([(
                    "a".to_string(),
                    Distribution::Float {
                        low,
                        high,
                        log: false,
                        step: None,
                    },
                )]),
            };
            let message = space.check().unwrap_err().to_string();
            assert!(
                message.contains("bounds must be finite numbers"),
                "{message}"
            );
        }
    }

    #[test]
    fn accepts_a_constant_int_and_a_step_that_does_not_land_on_high() {
        let space = SearchSpace::from_json(&json!({
            "a": {"type": "int", "low": 4, "high": 4},
            "b": {"type": "int", "low": 0, "high": 10, "step": 3},
        }))
        .unwrap();
        assert_eq!(space.params.len(), 2);
    }
}
