//! The Monitoring tools: `detect_drift` and the record of checks.

use std::sync::{Arc, OnceLock};

use mlops_core::{
    Annotations, ArtifactStore, Capability, ToolDef, ToolError, ToolResponse, ToolRouter,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sqlx::AnyPool;

use crate::checks::{Checks, DriftCheck};
use crate::detect::{DetectDriftInput, detect_drift};

/// Capability 8: Monitoring.
pub struct MonitoringCapability {
    shared: Arc<Shared>,
}

struct Shared {
    store: ArtifactStore,
    checks: Checks,
    /// The registry is asked through its tool, once the router exists.
    router: OnceLock<ToolRouter>,
}

impl MonitoringCapability {
    /// Opens the record of checks on `db`.
    pub async fn open(store: ArtifactStore, db: AnyPool) -> Result<Arc<Self>, sqlx::Error> {
        Ok(Arc::new(Self {
            shared: Arc::new(Shared {
                store,
                checks: Checks::open(db).await?,
                router: OnceLock::new(),
            }),
        }))
    }

    /// Lets the tools find registered models through the registry's own tool.
    pub fn attach(&self, router: ToolRouter) {
        let _ = self.shared.router.set(router);
    }
}

impl Capability for MonitoringCapability {
    fn name(&self) -> &'static str {
        "monitoring"
    }

    fn tools(&self) -> Vec<ToolDef> {
        let s = self.shared.clone();
        vec![
            ToolDef::with(
                s.clone(),
                "detect_drift",
                "Detect data drift",
                "Compare current data with what a model was trained on. Reference: the model's training profile (`model_name` — its Production version unless version/stage/alias says otherwise — or `model_uri`), or any table (`reference_data_uri`). Current: a table of raw columns (`data_uri`), or the model's prediction log between `since` and `until` (default: the last day). Per feature: PSI, Kolmogorov–Smirnov (numbers), chi-square and Jensen–Shannon (categories), missing-rate change, new categories; the model's prediction drift; with labels in the table, its accuracy or R² now vs at training. Verdicts ok/warn/drift per feature by `thresholds` (defaults PSI 0.1/0.25, KS 0.1/0.2, JS 0.1/0.2, missing 0.05/0.1, p 0.05), worst first. Writes monitoring/<model>/<time>-<id>/report.md, report.html and result.json, and records the check (list_drift_checks). Example: {\"model_name\":\"churn\",\"data_uri\":\"datasets/customers-2026-12.csv\"}",
                Annotations::WRITES,
                |s, i: DetectDriftInput, _ctx| async move {
                    detect_drift(&s.store, s.router.get(), &s.checks, i).await
                },
            ),
            ToolDef::with(
                s,
                "list_drift_checks",
                "List drift checks",
                "The latest drift checks, newest first (all models, or `model_name`'s): when, which version, the verdict, the drifted features and the report.",
                Annotations::READ_ONLY,
                |s, i: ListChecksInput, _ctx| async move {
                    let limit = i.limit.clamp(1, 500);
                    let checks = s.checks.list(i.model_name.as_deref(), limit).await?;
                    Ok::<_, ToolError>(CheckList { checks })
                },
            ),
        ]
    }
}

/// Input of `list_drift_checks`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListChecksInput {
    pub model_name: Option<String>,
    /// At most this many (1 to 500, default 20).
    #[serde(default = "twenty")]
    pub limit: i64,
}

fn twenty() -> i64 {
    20
}

/// What `list_drift_checks` returns.
#[derive(Debug, Serialize, JsonSchema)]
pub struct CheckList {
    pub checks: Vec<DriftCheck>,
}

impl ToolResponse for CheckList {
    fn summary(&self) -> String {
        let drifted = self
            .checks
            .iter()
            .filter(|c| c.verdict.as_deref() == Some("drift"))
            .count();
        format!("{} drift checks ({drifted} found drift)", self.checks.len())
    }
}
