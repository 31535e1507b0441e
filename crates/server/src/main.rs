//! `mlops-mcp`: one MCP server for the whole MLOps pipeline.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use mlops_core::Config;
use mlops_data::io::{TableFormat, encode};
use mlops_data::synthetic::{SyntheticKind, generate};
use mlops_mcp::app::App;
use mlops_mcp::demo::{self, DemoOptions};
use mlops_mcp::mcp::McpServer;
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
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve MCP over stdio (the default transport).
    Serve,
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
    /// Sample data sets.
    Datasets {
        #[command(subcommand)]
        command: DatasetsCommand,
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = Config::from_env()?;
    mlops_core::logging::init("mlops-mcp", &config.log_level);

    if cli.list_tools {
        let app = App::build(config).await?;
        for (capability, spec) in app.router.list() {
            let first_sentence = spec
                .description
                .split(". ")
                .next()
                .unwrap_or(spec.description)
                .trim_end_matches('.');
            println!("{:<36} {:<18} {first_sentence}.", spec.name, capability);
        }
        return Ok(());
    }
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let app = App::build(config).await?;
            tracing::info!(
                tools = app.router.list().count(),
                root = app.store.root_display(),
                "serving MCP over stdio"
            );
            let output_schemas = app.config.tool_output_schemas;
            let notify_worker = app.notifier.start_worker();
            let service = McpServer::new(app.router, output_schemas)
                .serve(rmcp::transport::stdio())
                .await?;
            service.waiting().await?;
            notify_worker.stop().await;
        }
        Command::Demo {
            rows,
            seed,
            model_name,
        } => {
            demo::run(
                &config,
                DemoOptions {
                    rows,
                    seed,
                    model_name,
                },
            )
            .await?
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
            let mut df = generate(kind, rows, seed)?;
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
