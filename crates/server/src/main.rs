//! `mlops-mcp`: one MCP server for the whole MLOps pipeline.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use mlops_aws::{AwsConfig, LogShipper, LogShipperOptions};
use mlops_core::Config;
use mlops_core::logging::LogSink;
use mlops_data::{SyntheticKind, generate_dataset};
use mlops_data::{TableFormat, encode};
use mlops_mcp::{App, DemoOptions, DriftDemoOptions, HttpOptions, McpServer};
use rmcp::ServiceExt;

#[derive(Parser)]
#[command(
    name = "mlops-mcp",
    version,
    about = "One MCP server for the whole MLOps pipeline"
)]
struct Cli {
    /// Print every tool with its capability and description, then exit.
    #[arg(long)]
    list_tools: bool,
    /// With --list-tools: print the README's Markdown table instead.
    #[arg(long, requires = "list_tools")]
    markdown: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve MCP over stdio (the default transport), or over streamable HTTP with --http.
    Serve {
        /// Serve MCP over streamable HTTP at http://ADDR/mcp instead of stdio (ADDR: IP:PORT,
        /// e.g. 127.0.0.1:8080 or 0.0.0.0:8080), beside GET /healthz, GET /readyz and, when
        /// GITHUB_WEBHOOK_SECRET is set, POST /webhooks/github. Bearer tokens: MLOPS_HTTP_TOKENS.
        /// Port 0 picks a free port; the URL is printed on stdout once listening.
        #[arg(long, value_name = "ADDR", value_parser = mlops_mcp::parse_listen_addr)]
        http: Option<std::net::SocketAddr>,
        /// With --http and no MLOPS_HTTP_TOKENS: serve on a non-loopback address anyway (only
        /// behind a proxy that authenticates).
        #[arg(long, requires = "http")]
        allow_unauthenticated: bool,
    },
    /// Run the whole pipeline on generated data through the MCP tools and print the results.
    Demo {
        /// Rows of sample data to generate.
        #[arg(long, default_value_t = 5000)]
        rows: usize,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Name to register the model under.
        #[arg(long, default_value = "demo-classifier")]
        model_name: String,
    },
    /// The monitoring loop on generated data: the workflow trains v1, drifted requests reach it,
    /// a monitor finds the drift and opens a retraining issue, the workflow trains and promotes
    /// v2, and the endpoint answers with it.
    DriftDemo {
        /// Rows of training data, and of new (drifted) data.
        #[arg(long, default_value_t = 3000)]
        rows: usize,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Name to register the model under.
        #[arg(long, default_value = "drift-demo")]
        model_name: String,
    },
    /// Sample data sets.
    Datasets {
        #[command(subcommand)]
        command: DatasetsCommand,
    },
    /// Run the training workflow for an issue written in a Markdown file (title on the first
    /// line, parameters in a YAML block or `key: value` lines), on this machine, and print the
    /// result. The issue is filed in the local history repository (or on GitHub when configured).
    RunIssue {
        /// The issue file, e.g. examples/train-issue.md.
        file: PathBuf,
        /// Approve every retry the workflow asks for (otherwise it stops and prints the token).
        #[arg(long)]
        auto_approve: bool,
    },
    /// The workflow's state machine.
    Workflow {
        #[command(subcommand)]
        command: WorkflowCommand,
    },
    /// Run one training job from its spec in the artifact store and write its result beside it:
    /// what a Ray or SageMaker training job runs (MLOPS_TRAINING_BACKEND). Exits non-zero when
    /// the training failed.
    TrainWorker {
        /// The job's spec, e.g. s3://bucket/jobs/<job>/spec.json.
        #[arg(long)]
        spec: String,
    },
}

#[derive(Subcommand)]
enum WorkflowCommand {
    /// Print the state machine as Amazon States Language JSON (for AWS Step Functions).
    ExportAsl {
        /// Prefix of the Lambda function names the Task states invoke.
        #[arg(long, default_value = "mlops-mcp-")]
        function_prefix: String,
    },
}

#[derive(Subcommand)]
enum DatasetsCommand {
    /// Write a deterministic sample data set (classification, regression or clustering) as CSV or Parquet.
    Generate {
        kind: SyntheticKind,
        #[arg(long, default_value_t = 1000)]
        rows: usize,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Output file; .csv or .parquet.
        #[arg(long)]
        out: PathBuf,
    },
}

/// How long the last log lines and metrics may take to leave when the server stops.
const FLUSH_AT_EXIT: Duration = Duration::from_secs(10);

fn main() -> anyhow::Result<()> {
    settle_compute_threads();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(start())
}

/// candle looks up its thread count on every matrix product; with `RAYON_NUM_THREADS` unset that
/// reads the CPU list from /proc (about 30 µs, more than a small network's product). Setting it to
/// the count rayon picks anyway makes the lookup an environment read and leaves our own pools as
/// they were. candle's element-wise pool spins while it waits, taking cores from the trees and the
/// server, and our networks are small: it gets one thread. Either variable, when set, is kept.
fn settle_compute_threads() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    for (name, value) in [
        ("RAYON_NUM_THREADS", cores.to_string()),
        ("CANDLE_NUM_THREADS", "1".to_string()),
    ] {
        if std::env::var_os(name).is_none() {
            // SAFETY: called first thing in `main`, before any other thread exists.
            unsafe { std::env::set_var(name, value) };
        }
    }
}

async fn start() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = Config::from_env()?;
    // A command run by a person prints its own summary: its logs default to warnings.
    let quiet = matches!(cli.command, Some(Command::RunIssue { .. }))
        && std::env::var_os("LOG_LEVEL").is_none();
    let level = if quiet { "WARN" } else { &config.log_level };
    let shipper = match &config.cloudwatch_log_group {
        Some(group) => {
            let aws = AwsConfig::from_env().context("CLOUDWATCH_LOG_GROUP is set")?;
            let stream = config
                .cloudwatch_log_stream
                .as_deref()
                .unwrap_or("mlops-mcp");
            let mut options = LogShipperOptions::new(group, stream);
            options.flush_interval = config.cloudwatch_flush_interval;
            let shipper = LogShipper::start(&aws, options);
            let sink: LogSink = Arc::new(Mutex::new(Box::new(
                shipper.writer(Box::new(std::io::stderr())),
            )));
            mlops_core::logging::init_with_sink("mlops-mcp", level, sink);
            Some(shipper)
        }
        None => {
            mlops_core::logging::init("mlops-mcp", level);
            None
        }
    };
    let result = run(cli, config).await;
    if let Some(shipper) = shipper {
        if let Err(e) = &result {
            // Also in CloudWatch: a server that stops should say why where it is watched.
            tracing::error!(error = format!("{e:#}"), "mlops-mcp stopped with an error");
        }
        shipper.shutdown(FLUSH_AT_EXIT).await;
    }
    result
}

async fn run(cli: Cli, config: Config) -> anyhow::Result<()> {
    if cli.list_tools {
        let app = App::build(config).await?;
        let mut text = String::new();
        if cli.markdown {
            text.push_str("| tool | capability | what it does |\n|---|---|---|\n");
        }
        for (capability, spec) in app.router.list() {
            let first_sentence = first_sentence(spec.description);
            if cli.markdown {
                let cell = first_sentence.replace('|', "\\|");
                text.push_str(&format!("| `{}` | {capability} | {cell} |\n", spec.name));
            } else {
                text.push_str(&format!(
                    "{:<36} {:<18} {first_sentence}.\n",
                    spec.name, capability
                ));
            }
        }
        // A closed pipe (`--list-tools | head`) is the reader's choice, not an error.
        if let Err(e) = std::io::Write::write_all(&mut std::io::stdout().lock(), text.as_bytes())
            && e.kind() != std::io::ErrorKind::BrokenPipe
        {
            return Err(e.into());
        }
        return Ok(());
    }
    match cli.command.unwrap_or(Command::Serve {
        http: None,
        allow_unauthenticated: false,
    }) {
        Command::Serve {
            http: Some(addr),
            allow_unauthenticated,
        } => {
            // Checked before anything opens: a refused setting fails fast.
            let options = HttpOptions::from_env(addr, allow_unauthenticated)?;
            let app = App::build(config).await?;
            let metrics = app.start_metrics_publisher()?;
            mlops_mcp::serve_http(app, options, mlops_mcp::shutdown_signal()).await?;
            if let Some(m) = metrics {
                m.shutdown(FLUSH_AT_EXIT).await;
            }
        }
        Command::Serve { http: None, .. } => {
            let app = App::build(config).await?;
            tracing::info!(
                tools = app.router.list().count(),
                root = app.store.root_display(),
                "serving MCP over stdio"
            );
            let output_schemas = app.config.tool_output_schemas;
            let notify_worker = app.notifier.start_worker();
            let workflow_worker = app.workflows.start_worker();
            let monitor_scheduler = app.monitoring.start_scheduler();
            let tuning_resumer = app.tuning.start_resumer();
            let metrics = app.start_metrics_publisher()?;
            let service = McpServer::new(app.exposed.clone(), output_schemas)
                .with_resources(app.store.clone())
                .with_history(app.repository.clone())
                .serve(rmcp::transport::stdio())
                .await?;
            service.waiting().await?;
            workflow_worker.stop().await;
            monitor_scheduler.stop().await;
            tuning_resumer.stop().await;
            notify_worker.stop().await;
            if let Some(m) = metrics {
                m.shutdown(FLUSH_AT_EXIT).await;
            }
        }
        Command::Demo {
            rows,
            seed,
            model_name,
        } => {
            mlops_mcp::run_demo(
                &config,
                DemoOptions {
                    rows,
                    seed,
                    model_name,
                },
            )
            .await?
        }
        Command::DriftDemo {
            rows,
            seed,
            model_name,
        } => {
            mlops_mcp::run_drift_demo(
                &config,
                DriftDemoOptions {
                    rows,
                    seed,
                    model_name,
                },
            )
            .await?
        }
        Command::RunIssue { file, auto_approve } => {
            let app = App::build(config).await?;
            mlops_mcp::run_issue(&app, &file, auto_approve).await?;
        }
        Command::TrainWorker { spec } => mlops_mcp::run_train_worker(&config, &spec).await?,
        Command::Workflow {
            command: WorkflowCommand::ExportAsl { function_prefix },
        } => {
            let asl = mlops_workflow::to_asl(&function_prefix);
            println!("{}", serde_json::to_string_pretty(&asl)?);
        }
        Command::Datasets {
            command:
                DatasetsCommand::Generate {
                    kind,
                    rows,
                    seed,
                    out,
                },
        } => {
            let format = match out.extension().and_then(|e| e.to_str()) {
                Some("parquet") => TableFormat::Parquet,
                Some("csv") => TableFormat::Csv,
                _ => anyhow::bail!("--out must end in .csv or .parquet"),
            };
            let mut df = generate_dataset(kind, rows, seed)?;
            let bytes = encode(&mut df, format)?;
            if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
            }
            // Write beside the target, then rename: a reader never sees half a file.
            let tmp = out.with_extension("tmp");
            std::fs::write(&tmp, &bytes).with_context(|| format!("writing {}", tmp.display()))?;
            std::fs::rename(&tmp, &out).with_context(|| format!("writing {}", out.display()))?;
            println!("wrote {rows} rows to {}", out.display());
        }
    }
    Ok(())
}

/// A description's first sentence, without its full stop ("e.g." does not end a sentence).
fn first_sentence(text: &str) -> &str {
    let mut from = 0;
    while let Some(i) = text[from..].find(". ").map(|i| i + from) {
        if !(text[..i].ends_with("e.g") || text[..i].ends_with("i.e")) {
            return &text[..i];
        }
        from = i + 2;
    }
    text.trim_end_matches('.')
}
