//! A model's card: its manifest, verified checksums, and its reference profile in brief, as
//! `load_model` and `save_model` report them.

use mlops_core::{ArtifactStore, ModelArtifact, ModelManifest, ToolResponse};
use mlops_data::ReferenceProfile;
use mlops_data::drift::PROFILE_FILE;
use mlops_ml::TrainedModel;
use schemars::JsonSchema;
use serde::Serialize;

use crate::error::TrainError;

/// A model's card, as `load_model` and `save_model` report it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ModelCard {
    pub model_uri: String,
    pub verified: bool,
    #[serde(flatten)]
    pub manifest: ModelManifest,
    /// What the training rows looked like (`profile.json`), the reference of drift monitoring.
    pub reference_profile: ProfileCard,
}

/// A model's reference profile in brief.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ProfileCard {
    pub present: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows: Option<usize>,
    /// The raw features profiled, each with its kind and missing rate.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<ProfiledFeature>,
    pub has_target: bool,
    pub has_predictions: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// One profiled feature.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ProfiledFeature {
    pub name: String,
    /// `numeric` or `categorical`.
    pub kind: &'static str,
    pub missing_rate: f64,
}

impl ProfileCard {
    fn of(artifact: &ModelArtifact) -> Self {
        let profile = artifact
            .blobs
            .get(PROFILE_FILE)
            .and_then(|b| ReferenceProfile::from_json(b).ok());
        let Some(p) = profile else {
            return Self {
                present: false,
                rows: None,
                features: Vec::new(),
                has_target: false,
                has_predictions: false,
                note: Some(
                    "no reference profile: the model was trained before profiles were saved, or is a reinforcement policy; detect_drift can take a reference table instead (reference_data_uri)"
                        .into(),
                ),
            };
        };
        Self {
            present: true,
            rows: Some(p.rows),
            features: p
                .features
                .iter()
                .map(|f| ProfiledFeature {
                    name: f.name.clone(),
                    kind: if f.is_numeric() {
                        "numeric"
                    } else {
                        "categorical"
                    },
                    missing_rate: f.missing_rate(),
                })
                .collect(),
            has_target: p.target.is_some(),
            has_predictions: p.prediction.is_some(),
            note: None,
        }
    }
}

impl ToolResponse for ModelCard {
    fn summary(&self) -> String {
        let m = &self.manifest;
        format!(
            "Model `{}` at {}: {} {} on {} features{}{}; {} files, checksums verified",
            m.name,
            self.model_uri,
            m.task,
            m.algorithm,
            m.feature_names.len(),
            m.target
                .as_ref()
                .map(|t| format!(", target `{t}`"))
                .unwrap_or_default(),
            if m.classes.is_empty() {
                String::new()
            } else {
                format!(", classes {}", m.classes.join("/"))
            },
            m.blobs.len()
        ) + &match self.reference_profile.rows {
            Some(rows) => format!(
                "; reference profile of {rows} rows × {} features",
                self.reference_profile.features.len()
            ),
            None => "; no reference profile".into(),
        }
    }
}

/// Loads and verifies a model, and checks that this server can run it.
pub(crate) async fn load_model_card(
    store: &ArtifactStore,
    uri: &str,
) -> Result<ModelCard, TrainError> {
    let artifact = ModelArtifact::load(store, uri).await?;
    if artifact.manifest.algorithm != "tsne" {
        TrainedModel::from_artifact(&artifact)?;
    }
    Ok(ModelCard {
        model_uri: artifact.folder_uri(),
        verified: true,
        reference_profile: ProfileCard::of(&artifact),
        manifest: artifact.manifest,
    })
}
