//! The remote job's life (submit, poll, result, cancel, limit) against an in-process backend that
//! runs the worker itself, and the backend settings.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use mlops_core::{ArtifactStore, Capability, ToolContext, ToolError, ToolRouter};
use mlops_data::{SyntheticKind, generate_dataset};
use mlops_data::{TableFormat, write_table};
use serde_json::{Value, json};

use super::*;
use crate::TrainingCapability;
use crate::worker::run_spec;
use mlops_jobs::JobManager;

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// Runs the worker on the spec, as Ray would.
    Run,
    /// Accepts the job and never starts it.
    Hold,
    /// Reports the job failed at once, without a result.
    Fail,
}

struct Fake {
    store: ArtifactStore,
    mode: Mode,
    jobs: Arc<Mutex<HashMap<String, RemoteStatus>>>,
    stopped: Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl TrainingBackend for Fake {
    fn name(&self) -> &'static str {
        "fake"
    }

    fn check(&self, _spec: &TrainingSpec) -> Result<(), TrainError> {
        Ok(())
    }

    async fn submit(&self, spec_uri: &str, spec: &TrainingSpec) -> Result<String, TrainError> {
        let id = remote_job_id(&spec.training_job_name);
        let state = match self.mode {
            Mode::Fail => RemoteStatus::Failed("exit code 3".into()),
            Mode::Run | Mode::Hold => RemoteStatus::Running("RUNNING".into()),
        };
        self.jobs.lock().unwrap().insert(id.clone(), state);
        if self.mode == Mode::Run {
            let (store, jobs, id, uri) = (
                self.store.clone(),
                self.jobs.clone(),
                id.clone(),
                spec_uri.to_string(),
            );
            tokio::spawn(async move {
                let end = match run_spec(&store, &uri).await {
                    Ok(r) if r.status == JobStatus::Completed => RemoteStatus::Succeeded,
                    Ok(_) => RemoteStatus::Failed("exit code 1".into()),
                    Err(e) => RemoteStatus::Failed(e.to_string()),
                };
                jobs.lock().unwrap().insert(id, end);
            });
        }
        Ok(id)
    }

    async fn status(&self, id: &str) -> Result<RemoteStatus, TrainError> {
        Ok(self.jobs.lock().unwrap()[id].clone())
    }

    async fn stop(&self, id: &str) -> Result<(), TrainError> {
        self.stopped.lock().unwrap().push(id.into());
        self.jobs
            .lock()
            .unwrap()
            .insert(id.into(), RemoteStatus::Stopped);
        Ok(())
    }
}

struct Setup {
    _dir: tempfile::TempDir,
    store: ArtifactStore,
    fake: Arc<Fake>,
    router: ToolRouter,
}

async fn setup(mode: Mode) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let store = ArtifactStore::open(dir.path().to_str().unwrap(), &[], "us-east-1", None).unwrap();
    let df = generate_dataset(SyntheticKind::Classification, 300, 1).unwrap();
    write_table(&store, "datasets/d.csv", df, TableFormat::Csv)
        .await
        .unwrap();
    let fake = Arc::new(Fake {
        store: store.clone(),
        mode,
        jobs: Arc::default(),
        stopped: Mutex::default(),
    });
    let remote = RemoteTraining::new(fake.clone(), Duration::from_millis(20));
    let capability =
        TrainingCapability::with_backend(store.clone(), JobManager::new(), Backend::Remote(remote));
    Setup {
        _dir: dir,
        store,
        fake,
        router: ToolRouter::new(&[capability as Arc<dyn Capability>]).unwrap(),
    }
}

impl Setup {
    async fn call(&self, tool: &str, args: Value) -> Result<Value, ToolError> {
        self.router
            .call(tool, args, ToolContext::default())
            .await
            .map(|o| o.structured)
    }

    async fn wait_for(&self, job: &str, status: &str) -> Value {
        for _ in 0..500 {
            let s = self
                .call("get_training_metrics", json!({"training_job_name": job}))
                .await
                .unwrap();
            if s["status"] == status {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("job {job} never became {status}");
    }
}

fn train(job: &str, extra: Value) -> Value {
    let mut args = json!({
        "algorithm": "random_forest", "train_data_uri": "datasets/d.csv", "target_column": "label",
        "training_job_name": job, "hyperparameters": {"n_estimators": 10}
    });
    args.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    args
}

#[tokio::test(flavor = "multi_thread")]
async fn remote_jobs_report_as_local_ones_do() {
    let s = setup(Mode::Run).await;
    let remote = s
        .call("train_supervised_classifier", train("remote", json!({})))
        .await
        .unwrap();
    assert_eq!(remote["status"], "completed", "{remote}");
    let root = s.store.root_display();
    assert_eq!(remote["model_uri"], format!("file://{root}/models/remote"));
    assert!(!remote["metrics_history"].as_array().unwrap().is_empty());
    // The same spec trained in this process gives the same model: the worker runs the same code.
    let local_router = ToolRouter::new(&[
        TrainingCapability::new(s.store.clone(), JobManager::new()) as Arc<dyn Capability>,
    ])
    .unwrap();
    let local = local_router
        .call(
            "train_supervised_classifier",
            train("local", json!({})),
            ToolContext::default(),
        )
        .await
        .unwrap()
        .structured;
    for metric in ["train_accuracy", "oob_accuracy", "feature_importances"] {
        assert_eq!(
            remote["metrics"][metric], local["metrics"][metric],
            "{metric}"
        );
    }
    let card = s
        .call("load_model", json!({"model_uri": "models/remote"}))
        .await
        .unwrap();
    assert_eq!(card["verified"], true);
    let spec: Value = serde_json::from_slice(
        &s.store
            .get(&s.store.key("jobs/remote/spec.json").unwrap())
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(spec["tool"], "train_supervised_classifier");
    assert_eq!(spec["data_uri"], format!("file://{root}/datasets/d.csv"));

    // Without waiting: the job runs on and is reported by get_training_metrics.
    let started = s
        .call(
            "train_supervised_classifier",
            train("later", json!({"wait": false})),
        )
        .await
        .unwrap();
    assert_eq!(started["status"], "running");
    let done = s.wait_for("later", "completed").await;
    assert_eq!(
        done["metrics"]["train_accuracy"],
        remote["metrics"]["train_accuracy"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_worker_fails_the_job_with_its_own_error() {
    let s = setup(Mode::Run).await;
    let e = s
        .call(
            "train_supervised_classifier",
            train("bad", json!({"target_column": "no_such_column"})),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("no_such_column"), "{e}");
    let report = s.wait_for("bad", "failed").await;
    assert!(report["error"].as_str().unwrap().contains("no_such_column"));
}

#[tokio::test]
async fn a_remote_failure_without_a_result_gives_the_backends_reason() {
    let s = setup(Mode::Fail).await;
    let e = s
        .call("train_supervised_classifier", train("gone", json!({})))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("the fake job `mlops-gone-") && e.contains("failed: exit code 3"),
        "{e}"
    );
}

#[tokio::test]
async fn cancelling_stops_the_remote_job() {
    let s = setup(Mode::Hold).await;
    s.call(
        "train_supervised_classifier",
        train("held", json!({"wait": false})),
    )
    .await
    .unwrap();
    s.call("cancel_training_job", json!({"training_job_name": "held"}))
        .await
        .unwrap();
    let cancelled = s.wait_for("held", "cancelled").await;
    let stopped = s.fake.stopped.lock().unwrap().clone();
    assert_eq!(stopped.len(), 1);
    assert!(stopped[0].starts_with("mlops-held-"), "{stopped:?}");
    assert!(
        cancelled["message"].as_str().unwrap().contains(&stopped[0]),
        "{cancelled}"
    );
}

#[tokio::test]
async fn the_wall_clock_limit_stops_the_remote_job() {
    let s = setup(Mode::Hold).await;
    let e = s
        .call(
            "train_supervised_classifier",
            train("slow", json!({"max_runtime_seconds": 1})),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("ran past its limit of 1 s"), "{e}");
    assert_eq!(s.fake.stopped.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_worker_refuses_what_is_not_a_spec() {
    let dir = tempfile::tempdir().unwrap();
    let store = ArtifactStore::open(dir.path().to_str().unwrap(), &[], "us-east-1", None).unwrap();
    let e = run_spec(&store, "jobs/x/other.json")
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("jobs/<job>/spec.json"), "{e}");
    let e = run_spec(&store, "jobs/x/spec.json")
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("does not exist"), "{e}");
}

fn settings(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn backends_are_chosen_and_checked_by_their_settings() {
    let dir = tempfile::tempdir().unwrap();
    let store = ArtifactStore::open(dir.path().to_str().unwrap(), &[], "us-east-1", None).unwrap();
    let backend = |pairs: &[(&str, &str)]| Backend::from_map(&settings(pairs), &store);
    let err = |pairs: &[(&str, &str)]| backend(pairs).err().unwrap().to_string();
    assert_eq!(backend(&[]).unwrap().name(), "local");
    assert_eq!(
        backend(&[
            ("MLOPS_TRAINING_BACKEND", "ray"),
            ("RAY_ADDRESS", "http://127.0.0.1:8265")
        ])
        .unwrap()
        .name(),
        "ray"
    );
    assert!(err(&[("MLOPS_TRAINING_BACKEND", "slurm")]).contains("local, ray or sagemaker"));
    assert!(err(&[("MLOPS_TRAINING_BACKEND", "ray")]).contains("MLOPS_RAY_DASHBOARD_URL"));
    let e = err(&[
        ("MLOPS_TRAINING_BACKEND", "ray"),
        ("RAY_ADDRESS", "ray://head:10001"),
    ]);
    assert!(
        e.contains("RAY_ADDRESS must be the Ray dashboard's http(s) address"),
        "{e}"
    );
    let e = err(&[
        ("MLOPS_TRAINING_BACKEND", "ray"),
        ("MLOPS_RAY_DASHBOARD_URL", "http://h:8265"),
        ("MLOPS_TRAINING_POLL_SECONDS", "0"),
    ]);
    assert!(e.contains("MLOPS_TRAINING_POLL_SECONDS"), "{e}");
    let e = err(&[("MLOPS_TRAINING_BACKEND", "sagemaker")]);
    assert!(e.contains("artifact root on S3"), "{e}");
}

#[test]
fn remote_ids_and_commands_are_safe() {
    let id = remote_job_id("my_job.v2");
    assert!(id.starts_with("mlops-my-job-v2-") && id.len() == 24, "{id}");
    let long = remote_job_id(&"x".repeat(63));
    assert_eq!(long.len(), 63);
    assert_ne!(remote_job_id("a"), remote_job_id("a"));
    assert_eq!(shell_quote("/usr/bin/mlops-mcp"), "/usr/bin/mlops-mcp");
    assert_eq!(
        shell_quote("file:///tmp/a b/it's.json"),
        r"'file:///tmp/a b/it'\''s.json'"
    );
}
