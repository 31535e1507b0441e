//! The Monitoring tools: `detect_drift`, the record of checks, and monitors that run checks on a
//! schedule and act on drift.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::Utc;
use mlops_core::{
    Annotations, ArtifactStore, Capability, ToolDef, ToolError, ToolResponse, ToolRouter,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sqlx::AnyPool;

use crate::checks::{Checks, DriftCheck, Gauge};
use crate::detect::{DetectDriftInput, detect_drift};
use crate::monitors::{Monitor, MonitorRun, MonitorSpec, Monitors};
use crate::runner::{self, SchedulerHandle};

/// How long a server may hold a monitor run before another may take it over.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(60);

/// Capability 8: Monitoring.
pub struct MonitoringCapability {
    shared: Arc<Shared>,
}

pub(crate) struct Shared {
    pub store: ArtifactStore,
    pub checks: Checks,
    pub monitors: Monitors,
    /// The registry, GitHub, notification and workflow tools are called through the router.
    router: OnceLock<ToolRouter>,
    /// This server's name in leases.
    pub owner: String,
    pub lease: Duration,
}

impl Shared {
    pub fn router(&self) -> Result<&ToolRouter, ToolError> {
        self.router.get().ok_or_else(|| {
            ToolError::Execution("the monitoring tools are not attached to a router".into())
        })
    }
}

impl MonitoringCapability {
    /// Opens the check and monitor tables on `db`; `lease` bounds how long a dead server keeps a
    /// monitor run from being taken over.
    pub async fn open(
        store: ArtifactStore,
        db: AnyPool,
        lease: Duration,
    ) -> Result<Arc<Self>, sqlx::Error> {
        Ok(Arc::new(Self {
            shared: Arc::new(Shared {
                store,
                checks: Checks::open(db.clone()).await?,
                monitors: Monitors::open(db).await?,
                router: OnceLock::new(),
                owner: format!("monitor-{}", uuid::Uuid::new_v4().simple()),
                lease,
            }),
        }))
    }

    /// Lets the tools reach the registry, GitHub, notifications and the workflow through their
    /// own tools.
    pub fn attach(&self, router: ToolRouter) {
        let _ = self.shared.router.set(router);
    }

    /// What `/metrics` and CloudWatch report of monitoring, from the shared database (so every
    /// server reports the fleet): per model the latest check's worst severity and drifted
    /// features, and per monitor its runs by outcome.
    pub async fn gauges(&self) -> Result<Vec<Gauge>, ToolError> {
        let mut out = self.shared.checks.latest_by_model().await?;
        for (monitor, outcome, n) in self.shared.monitors.outcome_counts().await? {
            out.push(Gauge {
                metric: "mlops_monitor_runs",
                help: "Monitor runs by outcome.",
                labels: vec![("monitor", monitor), ("outcome", outcome)],
                value: n as f64,
            });
        }
        Ok(out)
    }

    /// Starts running due monitors in the background (every serving process does; leases keep
    /// each tick to one server).
    pub fn start_scheduler(&self) -> SchedulerHandle {
        runner::start(self.shared.clone())
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
                s.clone(),
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
            ToolDef::with(
                s.clone(),
                "create_monitor",
                "Watch a model for drift",
                "Create a monitor that runs detect_drift on a registered model's Production version on a schedule (`every_seconds`, or `cron` such as `0 6 * * *`, UTC), against a table re-read at each run (`data_uri`) or the prediction log of the window before each tick. On drift it acts: `actions.notify` (the `drift` notification, default on), `actions.open_retraining_issue` (an issue labelled mlops:train that retrains the model on `retrain.data_uri` with the Production version's algorithm and hyperparameters, opened once per tick), `actions.start_workflow` (start the training workflow on that issue at once). Monitors live in the database: with several servers each tick runs once, and a restarted server runs missed ticks once. Example: {\"name\":\"churn-daily\",\"model_name\":\"churn\",\"cron\":\"0 6 * * *\",\"actions\":{\"open_retraining_issue\":true},\"retrain\":{\"data_uri\":\"datasets/churn-latest.csv\"}}",
                Annotations::WRITES,
                |s, spec: MonitorSpec, _ctx| async move {
                    let schedule = spec.validate()?;
                    let first = schedule.next_after(Utc::now())?;
                    s.monitors.create(&spec, first).await?;
                    Ok::<_, ToolError>(MonitorView::of(
                        s.monitors.require(&spec.name).await?,
                        Vec::new(),
                    ))
                },
            ),
            ToolDef::with(
                s.clone(),
                "list_monitors",
                "List monitors",
                "Every monitor: its model, schedule, source, actions, whether paused, and its next run.",
                Annotations::READ_ONLY,
                |s, _i: NoInput, _ctx| async move {
                    Ok::<_, ToolError>(MonitorList {
                        monitors: s.monitors.list().await?,
                    })
                },
            ),
            ToolDef::with(
                s.clone(),
                "get_monitor",
                "Get a monitor",
                "A monitor with its latest runs (verdict, drifted features, the retraining issue and workflow it started, errors).",
                Annotations::READ_ONLY,
                |s, i: MonitorName, _ctx| async move {
                    let m = s.monitors.require(&i.name).await?;
                    let runs = s.monitors.runs(&i.name, 10).await?;
                    Ok::<_, ToolError>(MonitorView::of(m, runs))
                },
            ),
            ToolDef::with(
                s.clone(),
                "list_monitor_runs",
                "List a monitor's runs",
                "A monitor's runs, newest first: the tick, the verdict, the drifted features, the check (see list_drift_checks), the issue opened and the workflow started, how many tries it took, and any error.",
                Annotations::READ_ONLY,
                |s, i: RunsInput, _ctx| async move {
                    s.monitors.require(&i.name).await?;
                    let runs = s.monitors.runs(&i.name, i.limit.clamp(1, 500)).await?;
                    Ok::<_, ToolError>(RunList { runs })
                },
            ),
            ToolDef::with(
                s.clone(),
                "pause_monitor",
                "Pause a monitor",
                "Stop a monitor's scheduled runs until resume_monitor; its runs so far are kept.",
                Annotations {
                    read_only: false,
                    destructive: false,
                    idempotent: true,
                    open_world: false,
                },
                |s, i: MonitorName, _ctx| async move {
                    s.monitors.set_paused(&i.name, true, None).await?;
                    Ok::<_, ToolError>(MonitorView::of(
                        s.monitors.require(&i.name).await?,
                        Vec::new(),
                    ))
                },
            ),
            ToolDef::with(
                s.clone(),
                "resume_monitor",
                "Resume a monitor",
                "Restart a paused monitor's schedule from now (ticks missed while paused are not run).",
                Annotations {
                    read_only: false,
                    destructive: false,
                    idempotent: true,
                    open_world: false,
                },
                |s, i: MonitorName, _ctx| async move {
                    let m = s.monitors.require(&i.name).await?;
                    let next = m.spec.validate()?.next_after(Utc::now())?;
                    s.monitors.set_paused(&i.name, false, Some(next)).await?;
                    Ok::<_, ToolError>(MonitorView::of(
                        s.monitors.require(&i.name).await?,
                        Vec::new(),
                    ))
                },
            ),
            ToolDef::with(
                s,
                "delete_monitor",
                "Delete a monitor",
                "Delete a monitor and the record of its runs (the drift checks and reports stay).",
                Annotations {
                    read_only: false,
                    destructive: true,
                    idempotent: true,
                    open_world: false,
                },
                |s, i: MonitorName, _ctx| async move {
                    s.monitors.require(&i.name).await?;
                    s.monitors.delete(&i.name).await?;
                    Ok::<_, ToolError>(Deleted { name: i.name })
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

/// No input.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoInput {}

/// A monitor by name.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MonitorName {
    pub name: String,
}

/// Input of `list_monitor_runs`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunsInput {
    pub name: String,
    /// At most this many (1 to 500, default 20).
    #[serde(default = "twenty")]
    pub limit: i64,
}

/// A monitor with its latest runs.
#[derive(Debug, Serialize, JsonSchema)]
pub struct MonitorView {
    #[serde(flatten)]
    pub monitor: Monitor,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub recent_runs: Vec<MonitorRun>,
}

impl MonitorView {
    fn of(monitor: Monitor, recent_runs: Vec<MonitorRun>) -> Self {
        Self {
            monitor,
            recent_runs,
        }
    }
}

impl ToolResponse for MonitorView {
    fn summary(&self) -> String {
        let m = &self.monitor;
        let schedule = match (m.spec.every_seconds, &m.spec.cron) {
            (Some(s), _) => format!("every {s} s"),
            (_, Some(c)) => format!("on `{c}`"),
            _ => String::new(),
        };
        format!(
            "Monitor `{}` watches `{}` {schedule}{}; next run {}{}",
            m.spec.name,
            m.spec.model_name,
            if m.paused { " (paused)" } else { "" },
            m.next_run_at,
            if self.recent_runs.is_empty() {
                String::new()
            } else {
                format!("; {} recent runs", self.recent_runs.len())
            }
        )
    }
}

/// What `list_monitors` returns.
#[derive(Debug, Serialize, JsonSchema)]
pub struct MonitorList {
    pub monitors: Vec<Monitor>,
}

impl ToolResponse for MonitorList {
    fn summary(&self) -> String {
        format!("{} monitors", self.monitors.len())
    }
}

/// What `list_monitor_runs` returns.
#[derive(Debug, Serialize, JsonSchema)]
pub struct RunList {
    pub runs: Vec<MonitorRun>,
}

impl ToolResponse for RunList {
    fn summary(&self) -> String {
        let drift = self
            .runs
            .iter()
            .filter(|r| r.verdict.as_deref() == Some("drift"))
            .count();
        format!("{} runs ({drift} found drift)", self.runs.len())
    }
}

/// What `delete_monitor` returns.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Deleted {
    pub name: String,
}

impl ToolResponse for Deleted {
    fn summary(&self) -> String {
        format!("Deleted monitor `{}`", self.name)
    }
}
