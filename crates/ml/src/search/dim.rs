//! A parameter as the samplers see it: a number on a (possibly log, possibly stepped) scale, or
//! one of a list of choices, with the conversions between its JSON value, the value itself and
//! the sampler's internal coordinate.

use serde_json::{Number, Value};

use super::space::Distribution;

/// The grid sampler tries every step of a parameter with at most this many.
const GRID_ALL_STEPS: usize = 10;
/// Values the grid sampler tries for an int with more steps than that.
const GRID_INT_POINTS: usize = 10;
/// Values the grid sampler tries for a float without a step, or with too many steps.
const GRID_FLOAT_POINTS: usize = 5;

/// A numeric parameter.
#[derive(Debug, Clone, Copy)]
pub(super) struct Numeric {
    pub low: f64,
    /// The highest value a sampler returns: `high`, or with a step the last step at or below it
    /// (Optuna likewise lowers `high` onto the step grid).
    pub high: f64,
    /// Every int is on a grid (step 1 by default); a float only when it has a step.
    pub step: Option<f64>,
    pub log: bool,
    pub int: bool,
}

/// One parameter, for sampling.
#[derive(Debug, Clone, Copy)]
pub(super) enum Dim<'a> {
    Numeric(Numeric),
    Choice(&'a [Value]),
}

impl Numeric {
    /// The numeric view of an int or float range; `None` for a categorical.
    pub fn of(distribution: &Distribution) -> Option<Numeric> {
        match *distribution {
            Distribution::Int {
                low,
                high,
                log,
                step,
            } => {
                // An unchecked space may hold a step of 0; a step of 1 keeps every value an int.
                let step = step.max(1);
                let steps = (i128::from(high) - i128::from(low)).max(0) / i128::from(step);
                let top = i128::from(low) + steps * i128::from(step);
                Some(Numeric {
                    low: low as f64,
                    high: top as f64,
                    step: Some(step as f64),
                    log,
                    int: true,
                })
            }
            Distribution::Float {
                low,
                high,
                log,
                step,
            } => {
                let step = step.filter(|s| s.is_finite() && *s > 0.0);
                let high = match step {
                    // The tolerance keeps 0.3 on the grid of 0.1 despite 0.3 / 0.1 = 2.999….
                    Some(s) => (low + ((high - low) / s + 1e-9).floor() * s).min(high),
                    None => high,
                };
                Some(Numeric {
                    low,
                    high,
                    step,
                    log,
                    int: false,
                })
            }
            Distribution::Categorical { .. } => None,
        }
    }

    /// A single value (an int range with low == high); also true of NaN bounds, which only a
    /// space built in code and never checked can hold.
    pub fn is_constant(&self) -> bool {
        self.low.partial_cmp(&self.high) != Some(std::cmp::Ordering::Less)
    }

    /// The bounds of the internal coordinate: widened by half a step each way on a grid, so that
    /// rounding gives the end points a full step's share, and log-transformed on a log scale.
    /// Optuna's `adapted_low` / `adapted_high`.
    pub fn internal_bounds(&self) -> (f64, f64) {
        let half = self.step.unwrap_or(0.0) / 2.0;
        (
            self.to_internal(self.low - half),
            self.to_internal(self.high + half),
        )
    }

    pub fn to_internal(self, value: f64) -> f64 {
        if self.log { value.ln() } else { value }
    }

    /// The value at an internal coordinate, on the grid and within bounds.
    pub fn value_at(self, internal: f64) -> f64 {
        self.snap(if self.log { internal.exp() } else { internal })
    }

    /// Rounds onto the grid and clips to [low, high] (exp∘ln can overshoot `high` by an ulp).
    pub fn snap(&self, value: f64) -> f64 {
        let value = match self.step {
            Some(step) => self.low + ((value - self.low) / step).round() * step,
            None => value,
        };
        clip(value, self.low, self.high)
    }

    /// The value as JSON: an integer for an int parameter.
    pub fn to_json(self, value: f64) -> Value {
        if self.int {
            Value::from(value.round() as i64)
        } else {
            Number::from_f64(value).map_or(Value::Null, Value::Number)
        }
    }

    /// A trial's value of this parameter, if it is a number in range. A float may be off by a
    /// hair, so that one that lost its last digit on a trip through storage still counts.
    pub fn read(&self, value: &Value) -> Option<f64> {
        let x = value.as_f64()?;
        let tolerance = if self.int {
            0.0
        } else {
            (self.high - self.low).abs() * 1e-9
        };
        (x >= self.low - tolerance && x <= self.high + tolerance)
            .then(|| clip(x, self.low, self.high))
    }

    /// The grid sampler's values: every step if there are at most ten; otherwise ten (int) or
    /// five (float) evenly spaced values, log-spaced on a log scale, put on the grid, repeats
    /// dropped.
    pub fn grid_values(&self) -> Vec<f64> {
        if self.is_constant() {
            return vec![self.low];
        }
        if let Some(step) = self.step {
            let points = ((self.high - self.low) / step).round() + 1.0;
            if points <= GRID_ALL_STEPS as f64 {
                return (0..points as usize)
                    .map(|i| self.snap(self.low + i as f64 * step))
                    .collect();
            }
        }
        let points = if self.int {
            GRID_INT_POINTS
        } else {
            GRID_FLOAT_POINTS
        };
        let (lo, hi) = (self.to_internal(self.low), self.to_internal(self.high));
        let mut values: Vec<f64> = (0..points)
            .map(|i| match i {
                0 => self.low,
                _ if i == points - 1 => self.high,
                _ => self.value_at(lo + (hi - lo) * i as f64 / (points - 1) as f64),
            })
            .collect();
        values.dedup();
        values
    }
}

impl<'a> Dim<'a> {
    /// `None` for a categorical without choices (only in a space never checked).
    pub fn of(distribution: &'a Distribution) -> Option<Dim<'a>> {
        match distribution {
            Distribution::Categorical { choices } if choices.is_empty() => None,
            Distribution::Categorical { choices } => Some(Dim::Choice(choices)),
            numeric => Numeric::of(numeric).map(Dim::Numeric),
        }
    }

    /// A single possible value: nothing to sample.
    pub fn is_constant(&self) -> bool {
        match self {
            Dim::Numeric(numeric) => numeric.is_constant(),
            Dim::Choice(choices) => choices.len() == 1,
        }
    }

    /// A trial's JSON value as the sampler's number: the value of a numeric parameter, the index
    /// of a choice. `None` if the trial has no valid value for it (say, the space has changed).
    pub fn read(&self, value: &Value) -> Option<f64> {
        match self {
            Dim::Numeric(numeric) => numeric.read(value),
            Dim::Choice(choices) => choices.iter().position(|c| c == value).map(|i| i as f64),
        }
    }

    /// The inverse of [`Dim::read`].
    pub fn to_json(self, x: f64) -> Value {
        match self {
            Dim::Numeric(numeric) => numeric.to_json(x),
            Dim::Choice(choices) => {
                let last = choices.len().saturating_sub(1);
                choices
                    .get((x.max(0.0) as usize).min(last))
                    .cloned()
                    .unwrap_or(Value::Null)
            }
        }
    }
}

/// `x` within [low, high]. Unlike `f64::clamp`, never panics (on NaN or inverted bounds).
pub(super) fn clip(x: f64, low: f64, high: f64) -> f64 {
    x.max(low).min(high)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric(value: serde_json::Value) -> Numeric {
        Numeric::of(&serde_json::from_value(value).unwrap()).unwrap()
    }

    #[test]
    fn a_step_that_misses_high_stops_at_the_last_step() {
        let n = numeric(serde_json::json!({"type": "int", "low": 0, "high": 10, "step": 3}));
        assert_eq!(n.high, 9.0);
        let f = numeric(serde_json::json!({"type": "float", "low": 0.0, "high": 0.3, "step": 0.1}));
        assert!((f.high - 0.3).abs() < 1e-12, "{}", f.high);
        assert_eq!(n.snap(10.4), 9.0);
        assert_eq!(n.snap(4.4), 3.0);
        assert_eq!(n.snap(4.6), 6.0);
    }

    #[test]
    fn grid_values_follow_the_documented_rule() {
        let grid = |v| numeric(v).grid_values();
        use serde_json::json;
        assert_eq!(
            grid(json!({"type": "int", "low": 1, "high": 10})),
            (1..=10).map(f64::from).collect::<Vec<_>>()
        );
        assert_eq!(
            grid(json!({"type": "int", "low": 0, "high": 90})),
            (0..10).map(|i| f64::from(i * 10)).collect::<Vec<_>>()
        );
        assert_eq!(
            grid(json!({"type": "int", "low": 0, "high": 20, "step": 5})),
            [0.0, 5.0, 10.0, 15.0, 20.0]
        );
        assert_eq!(grid(json!({"type": "int", "low": 4, "high": 4})), [4.0]);
        // Log-spaced: 1, 2.15, 4.64, ... 1000 rounded; all distinct here.
        assert_eq!(
            grid(json!({"type": "int", "low": 1, "high": 1000, "log": true})),
            [1.0, 2.0, 5.0, 10.0, 22.0, 46.0, 100.0, 215.0, 464.0, 1000.0]
        );
        // Log-spaced over a short range: repeats dropped.
        assert_eq!(
            grid(json!({"type": "int", "low": 1, "high": 12, "log": true})),
            [1.0, 2.0, 3.0, 4.0, 5.0, 7.0, 9.0, 12.0]
        );
        assert_eq!(
            grid(json!({"type": "float", "low": 0, "high": 1})),
            [0.0, 0.25, 0.5, 0.75, 1.0]
        );
        let log = grid(json!({"type": "float", "low": 1e-4, "high": 1, "log": true}));
        let expected = [1e-4, 1e-3, 1e-2, 1e-1, 1.0];
        assert!(
            log.iter()
                .zip(expected)
                .all(|(a, b)| (a / b - 1.0).abs() < 1e-12),
            "{log:?}"
        );
        let stepped = grid(json!({"type": "float", "low": 0, "high": 0.5, "step": 0.1}));
        assert_eq!(stepped.len(), 6);
        // More than ten steps: five spaced values, each on the grid.
        let coarse = grid(json!({"type": "float", "low": 0, "high": 2, "step": 0.1}));
        assert_eq!(coarse.len(), 5);
        assert!(
            coarse
                .iter()
                .all(|v| ((v / 0.1).round() * 0.1 - v).abs() < 1e-9),
            "{coarse:?}"
        );
    }

    #[test]
    fn reads_values_in_range_and_refuses_the_rest() {
        let n = numeric(serde_json::json!({"type": "float", "low": 0.1, "high": 0.3}));
        assert_eq!(n.read(&serde_json::json!(0.2)), Some(0.2));
        assert_eq!(n.read(&serde_json::json!(0.30000000000000004)), Some(0.3));
        assert_eq!(n.read(&serde_json::json!(0.5)), None);
        assert_eq!(n.read(&serde_json::json!("0.2")), None);
        let choices = [serde_json::json!("a"), serde_json::json!(null)];
        let c = Dim::Choice(&choices);
        assert_eq!(c.read(&serde_json::Value::Null), Some(1.0));
        assert_eq!(c.read(&serde_json::json!("b")), None);
        assert_eq!(c.to_json(1.0), serde_json::Value::Null);
        assert_eq!(c.to_json(0.0), serde_json::json!("a"));
    }
}
