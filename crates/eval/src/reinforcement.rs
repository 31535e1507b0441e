//! `evaluate_reinforcement`: greedy episodes of a saved policy on its environment, their return
//! statistics, and the reward curve (training returns and evaluations, from the model's saved
//! metrics history, with these evaluation episodes).

use bytes::Bytes;
use mlops_core::{ArtifactStore, ModelArtifact, ToolError, ToolImage, ToolResponse};
use mlops_ml::{TrainedModel, saved_history};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use mlops_plot as plots;

fn default_episodes() -> usize {
    100
}

/// Input of `evaluate_reinforcement`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EvaluateReinforcementInput {
    /// The policy's model folder (`models/<training_job_name>`).
    #[serde(alias = "model_s3_uri")]
    pub model_uri: String,
    /// The environment to play (default: the one the policy was trained on).
    #[serde(alias = "env")]
    pub environment: Option<String>,
    /// Greedy episodes to play (1 to 10000).
    #[serde(
        default = "default_episodes",
        alias = "episodes",
        alias = "n_eval_episodes"
    )]
    #[schemars(range(min = 1, max = 10000))]
    pub n_episodes: usize,
    /// Episode i starts from `reset(seed + i)`, so the same seed replays the same episodes.
    #[serde(default)]
    pub seed: u64,
    /// Cut episodes shorter than the environment's own limit.
    pub max_episode_steps: Option<usize>,
    /// Folder name under `evaluations/` (default: the model's name).
    pub evaluation_name: Option<String>,
}

/// Return statistics of the evaluation episodes.
#[derive(Debug, Serialize, JsonSchema)]
pub struct EvaluateReinforcementOutput {
    pub model_uri: String,
    pub algorithm: String,
    pub environment: String,
    pub n_episodes: usize,
    pub seed: u64,
    pub mean_return: f64,
    pub std_return: f64,
    pub min_return: f64,
    pub max_return: f64,
    pub mean_episode_length: f64,
    /// The environment's solved return (Gymnasium's reward threshold), when it has one.
    pub solved_return: Option<f64>,
    pub solved: Option<bool>,
    /// Each episode's return, in order.
    pub returns: Vec<f64>,
    /// `results.json` and `reward_curve.png` under `evaluations/<name>/`.
    pub files: Vec<String>,
    #[serde(skip)]
    plot: Vec<u8>,
}

impl ToolResponse for EvaluateReinforcementOutput {
    fn summary(&self) -> String {
        let solved = match (self.solved, self.solved_return) {
            (Some(true), Some(t)) => format!(" (solved: at least {t})"),
            (Some(false), Some(t)) => format!(" (not solved: below {t})"),
            _ => String::new(),
        };
        format!(
            "{} policy {} on {}: mean return {:.2} ± {:.2} over {} episodes (min {:.1}, max {:.1}){solved}. Wrote {}",
            self.algorithm,
            self.model_uri,
            self.environment,
            self.mean_return,
            self.std_return,
            self.n_episodes,
            self.min_return,
            self.max_return,
            self.files.join(", ")
        )
    }

    fn images(&self) -> Vec<ToolImage> {
        vec![ToolImage {
            mime_type: "image/png".into(),
            data: Bytes::from(self.plot.clone()),
        }]
    }
}

/// Mean of each `window` returns ending at each point, for a readable training curve.
fn moving_average(points: &[(f64, f64)], window: usize) -> Vec<(f64, f64)> {
    let mut sum = 0.0;
    points
        .iter()
        .enumerate()
        .map(|(i, &(x, y))| {
            sum += y;
            if i >= window {
                sum -= points[i - window].1;
            }
            (x, sum / (i + 1).min(window) as f64)
        })
        .collect()
}

pub async fn evaluate_reinforcement(
    store: &ArtifactStore,
    i: EvaluateReinforcementInput,
) -> Result<EvaluateReinforcementOutput, ToolError> {
    if let Some(name) = &i.evaluation_name {
        mlops_core::check_folder_name("evaluation_name", name).map_err(ToolError::validation)?;
    }
    let artifact = ModelArtifact::load(store, &i.model_uri).await?;
    if artifact.manifest.task != "reinforcement" {
        return Err(ToolError::validation(format!(
            "`{}` is a {} model; evaluate_reinforcement plays policies trained by train_reinforcement",
            i.model_uri, artifact.manifest.task
        )));
    }
    let TrainedModel::Policy(policy) = TrainedModel::from_artifact(&artifact)? else {
        return Err(ToolError::validation(format!(
            "`{}` holds no policy",
            i.model_uri
        )));
    };
    let environment = i
        .environment
        .clone()
        .unwrap_or_else(|| policy.environment().to_string());
    let history = saved_history(&artifact);
    let (episodes, seed, limit) = (i.n_episodes, i.seed, i.max_episode_steps);
    let env = environment.clone();
    let (stats, plot) = tokio::task::spawn_blocking(move || {
        let stats = mlops_nn::rl::evaluate(&policy, &env, episodes, seed, limit)
            .map_err(|e| ToolError::validation(e.to_string()))?;
        let series_of = |metric: &str| -> Vec<(f64, f64)> {
            history
                .iter()
                .filter(|p| p.metric == metric)
                .map(|p| (p.step as f64, p.value))
                .collect()
        };
        let training = series_of("episode_return");
        let plot = if training.is_empty() {
            let points = stats
                .returns
                .iter()
                .enumerate()
                .map(|(e, r)| ((e + 1) as f64, *r))
                .collect();
            plots::reward_curve(&[("evaluation episode".into(), points)], "Episode")
        } else {
            let mut series = vec![
                ("training episode".into(), training.clone()),
                ("training, mean of 20".into(), moving_average(&training, 20)),
            ];
            let evaluations = series_of("eval_mean_return");
            if !evaluations.is_empty() {
                series.push(("greedy evaluation".into(), evaluations));
            }
            plots::reward_curve(&series, "Timestep")
        }
        .map_err(|e| ToolError::Execution(e.to_string()))?;
        Ok::<_, ToolError>((stats, plot))
    })
    .await
    .map_err(|e| ToolError::Execution(format!("the evaluation stopped: {e}")))??;

    let folder = format!(
        "evaluations/{}",
        i.evaluation_name
            .clone()
            .unwrap_or_else(|| artifact.manifest.name.clone())
    );
    let solved_return = mlops_nn::rl::solved_return(&environment);
    let mut out = EvaluateReinforcementOutput {
        model_uri: artifact.folder_uri(),
        algorithm: artifact.manifest.algorithm.clone(),
        environment,
        n_episodes: episodes,
        seed,
        mean_return: stats.mean,
        std_return: stats.std,
        min_return: stats.min,
        max_return: stats.max,
        mean_episode_length: stats.lengths.iter().sum::<usize>() as f64
            / stats.lengths.len().max(1) as f64,
        solved_return,
        solved: solved_return.map(|t| stats.mean >= t),
        returns: stats.returns,
        files: Vec::new(),
        plot,
    };
    let png = store.key(&format!("{folder}/reward_curve.png"))?;
    store.put(&png, Bytes::from(out.plot.clone())).await?;
    let results = store.key(&format!("{folder}/results.json"))?;
    out.files = vec![results.uri().to_string(), png.uri().to_string()];
    let json = serde_json::to_vec_pretty(&out)
        .map_err(|e| ToolError::Execution(format!("could not encode the results: {e}")))?;
    store.put(&results, Bytes::from(json)).await?;
    Ok(out)
}
