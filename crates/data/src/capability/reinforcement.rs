//! `preprocess_reinforcement`: a replay table from logged transitions, or a checked built-in
//! environment.

use mlops_core::{Annotations, ArtifactStore, ToolDef, ToolResponse};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{output_name, put_json};
use crate::error::DataError;
use crate::io::{TableFormat, read_table, write_table};
use crate::replay::{
    EnvironmentConfig, EnvironmentSpec, ReplaySummary, TransitionColumns, check_environment,
    to_replay,
};

pub(super) fn tool(store: &ArtifactStore) -> ToolDef {
    ToolDef::with(
        store.clone(),
        "preprocess_reinforcement",
        "Prepare reinforcement-learning data",
        "Either turn logged transitions (state, action, reward, next state, done columns) into a validated replay table at `processed/<name>/replay/` for offline training, or check a built-in environment's configuration (CartPole-v1, MountainCar-v0, Acrobot-v1). Give `dataset_uri` with `transitions`, or `environment`.",
        Annotations::WRITES,
        |s, i: PreprocessReinforcementInput, _ctx| async move { preprocess_reinforcement(&s, i).await },
    )
}

/// Input of `preprocess_reinforcement`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PreprocessReinforcementInput {
    /// A table of logged transitions (with `transitions`).
    #[serde(alias = "dataset_s3_uri")]
    pub dataset_uri: Option<String>,
    pub transitions: Option<TransitionColumns>,
    /// A built-in environment to check instead.
    pub environment: Option<EnvironmentConfig>,
    pub output_name: Option<String>,
}

/// What `preprocess_reinforcement` produced.
#[derive(Debug, Serialize, JsonSchema)]
pub struct PreprocessReinforcementOutput {
    /// The replay table (for transitions).
    pub replay_uri: Option<String>,
    pub replay: Option<ReplaySummary>,
    /// The checked environment (for an environment).
    pub environment: Option<EnvironmentSpec>,
}

impl ToolResponse for PreprocessReinforcementOutput {
    fn summary(&self) -> String {
        match (&self.replay, &self.environment) {
            (Some(r), _) => format!(
                "Replay table of {} transitions in {} episodes (state size {}, actions {:?}, mean reward {:.3}) at {}",
                r.transitions,
                r.episodes,
                r.state_size,
                r.actions,
                r.reward_mean,
                self.replay_uri.as_deref().unwrap_or("")
            ),
            (None, Some(e)) => format!(
                "{}: observations of {} values, {} actions, episodes of at most {} steps",
                e.name, e.observation_size, e.actions, e.max_episode_steps
            ),
            _ => String::new(),
        }
    }
}

async fn preprocess_reinforcement(
    store: &ArtifactStore,
    i: PreprocessReinforcementInput,
) -> Result<PreprocessReinforcementOutput, DataError> {
    match (i.dataset_uri, i.transitions, i.environment) {
        (Some(uri), Some(cols), None) => {
            let (r, df) = read_table(store, &uri).await?;
            let name = output_name(i.output_name, &r)?;
            let (replay, summary) = to_replay(&df, &cols)?;
            let folder = format!("processed/{name}/replay");
            let out = write_table(
                store,
                &format!("{folder}/replay.parquet"),
                replay,
                TableFormat::Parquet,
            )
            .await?;
            put_json(store, &format!("{folder}/replay.json"), &summary).await?;
            Ok(PreprocessReinforcementOutput {
                replay_uri: Some(out.uri().into()),
                replay: Some(summary),
                environment: None,
            })
        }
        (None, None, Some(env)) => Ok(PreprocessReinforcementOutput {
            replay_uri: None,
            replay: None,
            environment: Some(check_environment(&env)?),
        }),
        _ => Err(DataError::invalid(
            "give either dataset_uri with transitions (logged data), or environment (a built-in environment), not both",
        )),
    }
}
