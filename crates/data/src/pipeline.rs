//! The fitted preprocessing pipeline: imputation, scaling, categorical encoding and column drops,
//! learned from training data only and stored as plain data so it can be re-applied exactly.

use polars::prelude::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::DataError;
use crate::io::require_column;
use crate::profile::{finite_values, is_numeric, mean_std, value_counts};

/// Version of the pipeline format written by this build.
pub const PIPELINE_VERSION: u32 = 1;
/// More distinct values than this in a classification target suggests a regression problem.
const MAX_CLASSES: usize = 200;

/// The kind of supervised problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskType {
    Classification,
    Regression,
}

impl TaskType {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskType::Classification => "classification",
            TaskType::Regression => "regression",
        }
    }
}

/// How missing numbers are filled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NumericImputation {
    #[default]
    Mean,
    Median,
    Zero,
}

/// How numbers are scaled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Scaling {
    /// (x - mean) / std
    #[default]
    Standard,
    /// (x - min) / (max - min)
    MinMax,
    /// (x - median) / IQR; insensitive to outliers
    Robust,
    None,
}

/// How text columns become numbers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// One 0/1 column per category (`column=value`); an unseen category gets all zeros.
    #[default]
    OneHot,
    /// One column of category indices; an unseen category gets -1.
    Ordinal,
}

fn default_max_categories() -> usize {
    50
}

/// Choices for fitting a pipeline. Every field has a default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PreprocessOptions {
    /// How to fill missing numbers (text columns get their most frequent value).
    #[serde(default)]
    pub numeric_imputation: NumericImputation,
    #[serde(default)]
    pub scaling: Scaling,
    #[serde(default)]
    pub encoding: Encoding,
    /// Keep at most this many categories per text column (the most frequent); others count as unseen.
    #[serde(default = "default_max_categories")]
    #[schemars(range(min = 1, max = 1000))]
    pub max_categories: usize,
    /// Columns to leave out of the features (identifiers, leaks).
    #[serde(default)]
    pub drop_columns: Vec<String>,
}

impl Default for PreprocessOptions {
    fn default() -> Self {
        Self {
            numeric_imputation: NumericImputation::default(),
            scaling: Scaling::default(),
            encoding: Encoding::default(),
            max_categories: default_max_categories(),
            drop_columns: Vec::new(),
        }
    }
}

/// The target column and, for classification, its classes in model-output order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TargetSpec {
    pub name: String,
    pub task: TaskType,
    #[serde(default)]
    pub classes: Vec<String>,
}

/// A numeric column: fill, then (x - center) / scale.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NumericStep {
    pub column: String,
    pub fill: f64,
    pub center: f64,
    pub scale: f64,
}

/// A text column: fill, then encode against the categories seen in training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CategoricalStep {
    pub column: String,
    pub fill: String,
    pub categories: Vec<String>,
    pub encoding: Encoding,
}

/// A column left out, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DroppedColumn {
    pub column: String,
    pub reason: String,
}

/// Rows put through a pipeline by [`FittedPipeline::transform_records`].
#[derive(Debug, Clone, PartialEq)]
pub struct RecordsInput {
    pub rows: usize,
    /// Column-major features, in the pipeline's `feature_names` order.
    pub data: Vec<f64>,
    /// Per text column, the values training never saw.
    pub unseen: std::collections::BTreeMap<String, Vec<String>>,
}

/// A pipeline fitted on training data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FittedPipeline {
    pub format_version: u32,
    pub target: Option<TargetSpec>,
    pub numeric: Vec<NumericStep>,
    pub categorical: Vec<CategoricalStep>,
    pub dropped: Vec<DroppedColumn>,
    /// The output feature columns, in order.
    pub feature_names: Vec<String>,
    pub options: PreprocessOptions,
}

impl FittedPipeline {
    /// Learns the pipeline from `df` (the training rows only, to avoid leakage).
    pub fn fit(
        df: &DataFrame,
        target: Option<(&str, TaskType)>,
        options: &PreprocessOptions,
    ) -> Result<Self, DataError> {
        for c in &options.drop_columns {
            require_column(df, c)?;
        }
        let target = match target {
            Some((name, task)) => Some(fit_target(df, name, task)?),
            None => None,
        };
        let mut numeric = Vec::new();
        let mut categorical = Vec::new();
        let mut dropped = Vec::new();
        let mut drop = |column: &str, reason: &str| {
            dropped.push(DroppedColumn {
                column: column.into(),
                reason: reason.into(),
            })
        };
        for c in df.columns() {
            let name = c.name().as_str();
            if target.as_ref().is_some_and(|t| t.name == name) {
                continue;
            }
            if options.drop_columns.iter().any(|d| d == name) {
                drop(name, "asked to drop");
                continue;
            }
            if c.null_count() == c.len() {
                drop(name, "every value is missing");
                continue;
            }
            let dtype = c.dtype();
            if is_numeric(dtype) {
                let values = finite_values(c)?;
                let Some((mean, std)) = mean_std(&values) else {
                    drop(name, "no finite values");
                    continue;
                };
                let (min, max) = min_max(&values);
                if min == max {
                    drop(name, "constant: carries no information");
                    continue;
                }
                // Quantiles need a sorted copy: made only when a median or IQR is asked for.
                let needs_quantiles = options.numeric_imputation == NumericImputation::Median
                    || options.scaling == Scaling::Robust;
                let [q1, median, q3] = if needs_quantiles {
                    quantiles(&values, [0.25, 0.5, 0.75])
                } else {
                    [0.0; 3]
                };
                let fill = match options.numeric_imputation {
                    NumericImputation::Mean => mean,
                    NumericImputation::Median => median,
                    NumericImputation::Zero => 0.0,
                };
                let (center, scale) = match options.scaling {
                    Scaling::Standard => (mean, std),
                    Scaling::MinMax => (min, max - min),
                    Scaling::Robust => (median, q3 - q1),
                    Scaling::None => (0.0, 1.0),
                };
                let scale = if scale > 0.0 && scale.is_finite() {
                    scale
                } else {
                    1.0
                };
                numeric.push(NumericStep {
                    column: name.into(),
                    fill,
                    center,
                    scale,
                });
            } else if matches!(dtype, DataType::String) {
                let counts = value_counts(c)?;
                let non_null = c.len() - c.null_count();
                if counts.len() == non_null
                    && non_null > 20
                    && counts.len() > options.max_categories
                {
                    drop(name, "identifier: every value is different");
                    continue;
                }
                if counts.len() == 1 {
                    drop(name, "constant: carries no information");
                    continue;
                }
                let fill = counts[0].value.clone();
                let mut categories: Vec<String> = counts
                    .into_iter()
                    .take(options.max_categories)
                    .map(|v| v.value)
                    .collect();
                categories.sort();
                categorical.push(CategoricalStep {
                    column: name.into(),
                    fill,
                    categories,
                    encoding: options.encoding,
                });
            } else {
                drop(
                    name,
                    &format!(
                        "type {dtype} is not used directly; derive numeric features from it with feature_engineering"
                    ),
                );
            }
        }
        let mut feature_names: Vec<String> = numeric.iter().map(|n| n.column.clone()).collect();
        for c in &categorical {
            match c.encoding {
                Encoding::OneHot => {
                    feature_names.extend(c.categories.iter().map(|v| one_hot_name(&c.column, v)))
                }
                Encoding::Ordinal => feature_names.push(c.column.clone()),
            }
        }
        if feature_names.is_empty() {
            return Err(DataError::invalid(
                "no usable feature columns remain after preprocessing (see the dropped columns); check the data and drop_columns",
            ));
        }
        let mut seen = std::collections::HashSet::new();
        if let Some(dup) = feature_names.iter().find(|n| !seen.insert(n.as_str())) {
            return Err(DataError::invalid(format!(
                "two output features would both be named `{dup}`; rename the column"
            )));
        }
        Ok(Self {
            format_version: PIPELINE_VERSION,
            target,
            numeric,
            categorical,
            dropped,
            feature_names,
            options: options.clone(),
        })
    }

    /// The raw columns the pipeline needs (target excluded).
    pub fn input_columns(&self) -> Vec<&str> {
        self.numeric
            .iter()
            .map(|n| n.column.as_str())
            .chain(self.categorical.iter().map(|c| c.column.as_str()))
            .collect()
    }

    /// Applies the pipeline: the feature columns in order, then the target when `df` has it.
    /// Rows whose target is missing are removed.
    pub fn transform(&self, df: &DataFrame) -> Result<DataFrame, DataError> {
        let missing: Vec<&str> = self
            .input_columns()
            .into_iter()
            .filter(|c| !df.schema().contains(c))
            .collect();
        if !missing.is_empty() {
            return Err(DataError::invalid(format!(
                "the data lacks columns the pipeline was fitted on: {}",
                missing.join(", ")
            )));
        }
        let mut exprs: Vec<Expr> = Vec::with_capacity(self.feature_names.len() + 1);
        for n in &self.numeric {
            let x = col(n.column.as_str()).cast(DataType::Float64);
            exprs.push(
                ((x.clone().fill_nan(lit(n.fill)).fill_null(lit(n.fill)) - lit(n.center))
                    / lit(n.scale))
                .alias(n.column.as_str()),
            );
        }
        for c in &self.categorical {
            let x = col(c.column.as_str())
                .cast(DataType::String)
                .fill_null(lit(c.fill.clone()));
            match c.encoding {
                Encoding::OneHot => {
                    for v in &c.categories {
                        exprs.push(
                            x.clone()
                                .eq(lit(v.clone()))
                                .cast(DataType::Float64)
                                .alias(one_hot_name(&c.column, v)),
                        );
                    }
                }
                Encoding::Ordinal => {
                    let mut e: Expr = lit(-1.0);
                    for (i, v) in c.categories.iter().enumerate().rev() {
                        e = when(x.clone().eq(lit(v.clone())))
                            .then(lit(i as f64))
                            .otherwise(e);
                    }
                    exprs.push(e.alias(c.column.as_str()));
                }
            }
        }
        let mut lf = df.clone().lazy();
        if let Some(t) = self
            .target
            .as_ref()
            .filter(|t| df.schema().contains(&t.name))
        {
            let target = col(t.name.as_str());
            lf = lf.filter(target.clone().is_not_null());
            exprs.push(match t.task {
                TaskType::Classification => label_expr(target),
                TaskType::Regression => target.cast(DataType::Float64),
            });
        }
        Ok(lf.select(exprs).collect()?)
    }

    /// A stable fingerprint: data processed by one pipeline is recognised by another copy of it.
    /// The model input of rows given as JSON objects (raw columns by name), without building a
    /// data frame: the same arithmetic as [`FittedPipeline::transform`], so both give the same
    /// numbers. Returns the features column-major (`data[feature * rows + row]`) and, per text
    /// column, the values training never saw (encoded as the pipeline's rule says: all zeros for
    /// one-hot, -1 for ordinal). A column no row has is an error naming every such column; a
    /// column some rows lack, or `null`, is a missing value and gets the fitted fill.
    pub fn transform_records(
        &self,
        records: &[serde_json::Map<String, serde_json::Value>],
    ) -> Result<RecordsInput, DataError> {
        use serde_json::Value;
        let missing: Vec<&str> = self
            .input_columns()
            .into_iter()
            .filter(|c| !records.iter().any(|r| r.contains_key(*c)))
            .collect();
        if !missing.is_empty() {
            return Err(DataError::invalid(format!(
                "the rows lack columns the model's pipeline was fitted on: {}",
                missing.join(", ")
            )));
        }
        let rows = records.len();
        let mut data = Vec::with_capacity(rows * self.feature_names.len());
        for n in &self.numeric {
            for (i, r) in records.iter().enumerate() {
                let x = match r.get(&n.column).unwrap_or(&Value::Null) {
                    Value::Null => n.fill,
                    Value::Number(v) => v.as_f64().unwrap_or(n.fill),
                    Value::Bool(b) => f64::from(u8::from(*b)),
                    Value::String(t) => match t.trim().parse::<f64>() {
                        Ok(v) if v.is_finite() => v,
                        Ok(_) => n.fill,
                        Err(_) => {
                            return Err(DataError::invalid(format!(
                                "row {i}: column `{}` takes numbers, not `{t}`",
                                n.column
                            )));
                        }
                    },
                    other => {
                        return Err(DataError::invalid(format!(
                            "row {i}: column `{}` takes numbers, not {other}",
                            n.column
                        )));
                    }
                };
                // As polars divides a column by a number: by multiplying with its reciprocal, so
                // rows and tables give bit-identical features.
                data.push((x - n.center) * (1.0 / n.scale));
            }
        }
        let mut unseen: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> =
            Default::default();
        for c in &self.categorical {
            let values: Vec<String> = records
                .iter()
                .enumerate()
                .map(|(i, r)| match r.get(&c.column).unwrap_or(&Value::Null) {
                    Value::Null => Ok(c.fill.clone()),
                    Value::String(t) => Ok(t.clone()),
                    Value::Number(v) => Ok(v.to_string()),
                    Value::Bool(b) => Ok(b.to_string()),
                    other => Err(DataError::invalid(format!(
                        "row {i}: column `{}` takes text, not {other}",
                        c.column
                    ))),
                })
                .collect::<Result<_, _>>()?;
            let index = |v: &str| c.categories.iter().position(|c| c == v);
            for v in &values {
                if index(v).is_none() {
                    unseen
                        .entry(c.column.clone())
                        .or_default()
                        .insert(v.clone());
                }
            }
            match c.encoding {
                Encoding::OneHot => {
                    for (k, _) in c.categories.iter().enumerate() {
                        data.extend(values.iter().map(
                            |v| {
                                if index(v) == Some(k) { 1.0 } else { 0.0 }
                            },
                        ));
                    }
                }
                Encoding::Ordinal => {
                    data.extend(values.iter().map(|v| index(v).map_or(-1.0, |i| i as f64)));
                }
            }
        }
        Ok(RecordsInput {
            rows,
            data,
            unseen: unseen
                .into_iter()
                .map(|(k, v)| (k, v.into_iter().collect()))
                .collect(),
        })
    }

    /// Checks raw data before it is put through the pipeline: every input column present (all
    /// missing ones named at once), and text in a numeric column only where it reads as a number
    /// (the transform would otherwise turn it into a missing value without a word). Returns, per
    /// text column, the values training never saw (at most 20 each).
    pub fn inspect(
        &self,
        df: &DataFrame,
    ) -> Result<std::collections::BTreeMap<String, Vec<String>>, DataError> {
        let missing: Vec<&str> = self
            .input_columns()
            .into_iter()
            .filter(|c| !df.schema().contains(c))
            .collect();
        if !missing.is_empty() {
            return Err(DataError::invalid(format!(
                "the data lacks columns the model's pipeline was fitted on: {}",
                missing.join(", ")
            )));
        }
        for n in &self.numeric {
            let c = df.column(&n.column)?;
            if is_numeric(c.dtype()) || c.dtype() == &DataType::Boolean {
                continue;
            }
            let text = c.cast(&DataType::String)?;
            if let Some(bad) = text
                .str()?
                .iter()
                .flatten()
                .find(|v| v.trim().parse::<f64>().is_err())
            {
                return Err(DataError::invalid(format!(
                    "column `{}` takes numbers, but holds `{bad}`",
                    n.column
                )));
            }
        }
        let mut unseen = std::collections::BTreeMap::new();
        for c in &self.categorical {
            let values = df.column(&c.column)?.cast(&DataType::String)?;
            let mut new: Vec<String> = Vec::new();
            for v in values.str()?.iter().flatten() {
                if new.len() >= 20 {
                    break;
                }
                if !c.categories.iter().any(|k| k == v) && !new.iter().any(|n| n == v) {
                    new.push(v.to_string());
                }
            }
            if !new.is_empty() {
                unseen.insert(c.column.clone(), new);
            }
        }
        Ok(unseen)
    }

    /// How a text value training never saw is encoded, in words (for replies that mention it).
    pub fn unseen_rule(&self) -> &'static str {
        match self.options.encoding {
            Encoding::OneHot => "encoded as all zeros in the one-hot columns (the pipeline's rule)",
            Encoding::Ordinal => "encoded as -1 (the pipeline's rule)",
        }
    }

    pub fn fingerprint(&self) -> String {
        mlops_core::sha256_hex(&serde_json::to_vec(self).unwrap_or_default())
    }
}

/// Class labels are text, whatever the column's type, so `1`, `1.0` and `"1"` stay distinct
/// only when the data says so.
pub fn label_expr(e: Expr) -> Expr {
    e.cast(DataType::String)
}

fn fit_target(df: &DataFrame, name: &str, task: TaskType) -> Result<TargetSpec, DataError> {
    require_column(df, name)?;
    let c = df.column(name)?;
    if c.null_count() == c.len() {
        return Err(DataError::invalid(format!(
            "the target column `{name}` has no values"
        )));
    }
    match task {
        TaskType::Regression => {
            if !is_numeric(c.dtype()) {
                return Err(DataError::invalid(format!(
                    "the target column `{name}` is not numeric (it holds {}); regression needs numbers — use task_type `classification` or convert the column",
                    c.dtype()
                )));
            }
            Ok(TargetSpec {
                name: name.into(),
                task,
                classes: Vec::new(),
            })
        }
        TaskType::Classification => {
            let counts = value_counts(c)?;
            if counts.len() < 2 {
                return Err(DataError::invalid(format!(
                    "the target column `{name}` has only one class ({}); classification needs at least two",
                    counts.first().map(|v| v.value.as_str()).unwrap_or("")
                )));
            }
            if counts.len() > MAX_CLASSES {
                return Err(DataError::invalid(format!(
                    "the target column `{name}` has {} distinct values; for a continuous target use task_type `regression`",
                    counts.len()
                )));
            }
            let mut classes: Vec<String> = counts.into_iter().map(|v| v.value).collect();
            sort_labels(&mut classes);
            Ok(TargetSpec {
                name: name.into(),
                task,
                classes,
            })
        }
    }
}

/// Sorts labels numerically when they are all numbers, else as text.
pub fn sort_labels(labels: &mut [String]) {
    let numbers: Option<Vec<f64>> = labels.iter().map(|l| l.parse::<f64>().ok()).collect();
    if numbers.is_some() {
        labels.sort_by(|a, b| {
            a.parse::<f64>()
                .unwrap_or(0.0)
                .total_cmp(&b.parse::<f64>().unwrap_or(0.0))
        });
    } else {
        labels.sort();
    }
}

fn one_hot_name(column: &str, value: &str) -> String {
    format!("{column}={value}")
}

fn min_max(values: &[f64]) -> (f64, f64) {
    values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(*v), hi.max(*v))
        })
}

/// Linear-interpolated quantile (as numpy's default).
/// Linearly interpolated quantiles (numpy's default), from one sort.
fn quantiles<const N: usize>(values: &[f64], qs: [f64; N]) -> [f64; N] {
    let mut v = values.to_vec();
    v.sort_unstable_by(f64::total_cmp);
    qs.map(|q| {
        let pos = q * (v.len() - 1) as f64;
        let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
        v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame() -> DataFrame {
        df! {
            "age" => [Some(20.0), Some(30.0), None, Some(50.0)],
            "color" => [Some("red"), Some("blue"), Some("red"), None],
            "id" => ["a", "b", "c", "d"],
            "const" => [1, 1, 1, 1],
            "label" => [0, 1, 0, 1],
        }
        .unwrap()
    }

    #[test]
    fn fit_learns_from_training_rows_and_transform_reapplies_exactly() {
        let df = frame();
        let opts = PreprocessOptions {
            drop_columns: vec!["id".into()],
            ..Default::default()
        };
        let p = FittedPipeline::fit(&df, Some(("label", TaskType::Classification)), &opts).unwrap();
        assert_eq!(p.feature_names, vec!["age", "color=blue", "color=red"]);
        assert_eq!(p.target.as_ref().unwrap().classes, vec!["0", "1"]);
        assert!(p.dropped.iter().any(|d| d.column == "const"));
        let age = &p.numeric[0];
        assert!((age.fill - 100.0 / 3.0).abs() < 1e-12);
        let out = p.transform(&df).unwrap();
        let ages: Vec<f64> = out
            .column("age")
            .unwrap()
            .f64()
            .unwrap()
            .into_no_null_iter()
            .collect();
        assert!(
            (ages[2] - 0.0).abs() < 1e-12,
            "the imputed mean scales to zero"
        );
        assert!((ages[0] - (20.0 - age.center) / age.scale).abs() < 1e-12);
        // The missing color takes the most frequent one (red).
        let red: Vec<f64> = out
            .column("color=red")
            .unwrap()
            .f64()
            .unwrap()
            .into_no_null_iter()
            .collect();
        assert_eq!(red, vec![1.0, 0.0, 1.0, 1.0]);
        // Unseen categories encode as all zeros.
        let new = df! {"age" => [40.0], "color" => ["green"], "id" => ["z"], "const" => [1], "label" => [1]}.unwrap();
        let row = p.transform(&new).unwrap();
        assert_eq!(
            row.column("color=red").unwrap().f64().unwrap().get(0),
            Some(0.0)
        );
        assert_eq!(
            row.column("color=blue").unwrap().f64().unwrap().get(0),
            Some(0.0)
        );
        // A round trip through JSON gives the same transform.
        let again: FittedPipeline =
            serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert!(again.transform(&df).unwrap().equals(&out));
    }

    #[test]
    fn target_problems_are_explained() {
        let df = frame();
        let e = FittedPipeline::fit(
            &df,
            Some(("color", TaskType::Regression)),
            &Default::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("not numeric"), "{e}");
        let e = FittedPipeline::fit(
            &df,
            Some(("const", TaskType::Classification)),
            &Default::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("only one class"), "{e}");
        let e = FittedPipeline::fit(
            &df,
            Some(("nope", TaskType::Classification)),
            &Default::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("not found") && e.contains("label"), "{e}");
    }

    #[test]
    fn transform_names_missing_columns() {
        let df = frame();
        let p = FittedPipeline::fit(
            &df,
            Some(("label", TaskType::Classification)),
            &Default::default(),
        )
        .unwrap();
        let e = p
            .transform(&df.drop("age").unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("age"), "{e}");
    }

    #[test]
    fn records_give_the_frame_transform_numbers() {
        let df = frame();
        for encoding in [Encoding::OneHot, Encoding::Ordinal] {
            let options = PreprocessOptions {
                encoding,
                ..Default::default()
            };
            let p = FittedPipeline::fit(&df, Some(("label", TaskType::Classification)), &options)
                .unwrap();
            let rows = serde_json::json!([
                {"age": 20.0, "color": "red", "id": "a"},
                {"age": null, "color": "blue"},
                {"color": null, "age": "41.5"},
                {"age": 30, "color": "green"}
            ]);
            let records: Vec<_> = rows
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r.as_object().unwrap().clone())
                .collect();
            let out = p.transform_records(&records).unwrap();
            let frame = df! {
                "age" => [Some(20.0), None, Some(41.5), Some(30.0)],
                "color" => [Some("red"), Some("blue"), None, Some("green")],
                "id" => [Some("a"), None, None, None],
            }
            .unwrap();
            let expected = p.transform(&frame).unwrap();
            let mut want = Vec::new();
            for name in &p.feature_names {
                let c = expected
                    .column(name)
                    .unwrap()
                    .cast(&DataType::Float64)
                    .unwrap();
                want.extend(c.f64().unwrap().into_no_null_iter());
            }
            assert_eq!(out.data, want, "{encoding:?}");
            assert_eq!(out.unseen["color"], vec!["green".to_string()]);
        }
        let e = FittedPipeline::fit(&frame(), None, &PreprocessOptions::default())
            .unwrap()
            .transform_records(&[serde_json::Map::new()])
            .unwrap_err();
        assert!(e.to_string().contains("age, label, color, id"), "{e}");
    }
}
