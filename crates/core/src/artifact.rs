//! The model artifact format: a JSON manifest plus named blobs, each blob listed in the manifest with
//! its SHA-256. Loading verifies every checksum before anything is decoded, and every blob is plain
//! data (JSON or raw tensors); nothing executable is ever deserialized.
//!
//! Layout under the artifact root: `models/<name>/manifest.json` and `models/<name>/<blob>`. The
//! manifest is written last, so a model whose manifest exists is complete.

use std::collections::BTreeMap;

use bytes::Bytes;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::store::{ArtifactRef, ArtifactStore, StoreError};

/// Longest name of a folder a client names (a training job, an evaluation): it names a folder
/// under the artifact root and, on SageMaker, a job.
pub const MAX_FOLDER_NAME: usize = 63;

/// Checks a client-chosen folder name such as a `training_job_name`: 1 to 63 letters, digits,
/// `-`, `_` or `.`, not starting with `.`, so it can never climb out of its parent folder. The
/// error names `field`.
pub fn check_folder_name(field: &str, name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_FOLDER_NAME
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && !name.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{field} `{name}` must be 1 to {MAX_FOLDER_NAME} letters, digits, `-`, `_` or `.`, not starting with `.`"
        ))
    }
}

/// The manifest format this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
const MANIFEST: &str = "manifest.json";

/// One blob as recorded in the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BlobInfo {
    pub sha256: String,
    pub size: u64,
    pub media_type: String,
}

/// What a model is: enough to load it, apply its preprocessing and explain it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ModelManifest {
    pub format_version: u32,
    /// The model's name: its training job name.
    pub name: String,
    /// e.g. `random_forest`.
    pub algorithm: String,
    /// `classification`, `regression`, `clustering`, ...
    pub task: String,
    /// The model's input columns, in order (after preprocessing).
    pub feature_names: Vec<String>,
    pub target: Option<String>,
    /// Class labels in the order of the model's outputs (classification only).
    #[serde(default)]
    pub classes: Vec<String>,
    pub hyperparameters: Value,
    /// Metrics measured during training.
    #[serde(default)]
    pub metrics: Value,
    /// The fitted preprocessing pipeline, applied to raw data before the model sees it.
    pub pipeline: Option<Value>,
    pub training_data_uri: Option<String>,
    pub created_at: String,
    /// Every blob of the model with its checksum.
    pub blobs: BTreeMap<String, BlobInfo>,
}

/// A manifest and its verified blobs.
#[derive(Debug, Clone)]
pub struct ModelArtifact {
    pub manifest: ModelManifest,
    pub blobs: BTreeMap<String, Bytes>,
    /// Where it was loaded from or saved to (the manifest's URI).
    pub uri: Option<String>,
}

impl ModelArtifact {
    /// Builds an artifact, recording the checksum of every blob in the manifest.
    pub fn new(mut manifest: ModelManifest, blobs: Vec<(&str, &str, Bytes)>) -> Self {
        manifest.format_version = FORMAT_VERSION;
        manifest.blobs.clear();
        let mut stored = BTreeMap::new();
        for (name, media_type, data) in blobs {
            manifest.blobs.insert(
                name.to_string(),
                BlobInfo {
                    sha256: sha256_hex(&data),
                    size: data.len() as u64,
                    media_type: media_type.into(),
                },
            );
            stored.insert(name.to_string(), data);
        }
        Self {
            manifest,
            blobs: stored,
            uri: None,
        }
    }

    /// The blob of that name, or a clear error when the manifest lacks it.
    pub fn blob(&self, name: &str) -> Result<&Bytes, StoreError> {
        self.blobs.get(name).ok_or_else(|| StoreError::Corrupt {
            uri: self.uri.clone().unwrap_or_default(),
            reason: format!("it has no `{name}` blob"),
        })
    }

    /// The model's folder URI (where it was loaded from or saved to), as tools report it.
    pub fn folder_uri(&self) -> String {
        self.uri
            .as_deref()
            .map(folder_of)
            .unwrap_or_default()
            .to_string()
    }

    /// The folder key of a model name: `models/<name>`.
    pub fn folder_key(name: &str) -> String {
        format!("models/{name}")
    }

    /// Saves blobs, then the manifest, under `models/<name>/`; returns the manifest's location.
    pub async fn save(&mut self, store: &ArtifactStore) -> Result<ArtifactRef, StoreError> {
        let folder = Self::folder_key(&self.manifest.name);
        for (name, data) in &self.blobs {
            store
                .put(&store.key(&format!("{folder}/{name}"))?, data.clone())
                .await?;
        }
        let manifest_ref = store.key(&format!("{folder}/{MANIFEST}"))?;
        let json = serde_json::to_vec_pretty(&self.manifest).map_err(|e| StoreError::Corrupt {
            uri: manifest_ref.uri().into(),
            reason: e.to_string(),
        })?;
        store.put(&manifest_ref, Bytes::from(json)).await?;
        self.uri = Some(manifest_ref.uri().to_string());
        Ok(manifest_ref)
    }

    /// Resolves a model location: a model folder (`models/job-1`) or its `manifest.json`.
    pub fn manifest_ref(store: &ArtifactStore, uri: &str) -> Result<ArtifactRef, StoreError> {
        let uri = uri.trim().trim_end_matches('/');
        if uri.ends_with(MANIFEST) {
            store.resolve(uri)
        } else {
            store.resolve(&format!("{uri}/{MANIFEST}"))
        }
    }

    /// Reads only the manifest (no blobs, no checksum work): for listings and validation.
    pub async fn load_manifest(
        store: &ArtifactStore,
        uri: &str,
    ) -> Result<(ArtifactRef, ModelManifest), StoreError> {
        let manifest_ref = Self::manifest_ref(store, uri)?;
        let raw = store.get(&manifest_ref).await?;
        let manifest: ModelManifest =
            serde_json::from_slice(&raw).map_err(|e| StoreError::Corrupt {
                uri: manifest_ref.uri().into(),
                reason: format!("the manifest is not valid: {e}"),
            })?;
        if manifest.format_version != FORMAT_VERSION {
            return Err(StoreError::Corrupt {
                uri: manifest_ref.uri().into(),
                reason: format!(
                    "format version {} is not supported by this server (it reads version {FORMAT_VERSION})",
                    manifest.format_version
                ),
            });
        }
        Ok((manifest_ref, manifest))
    }

    /// Loads a model and verifies every blob against the manifest's checksum.
    pub async fn load(store: &ArtifactStore, uri: &str) -> Result<Self, StoreError> {
        let (manifest_ref, manifest) = Self::load_manifest(store, uri).await?;
        let folder = manifest_ref.uri().trim_end_matches(MANIFEST).to_string();
        let mut blobs = BTreeMap::new();
        for (name, info) in &manifest.blobs {
            if name.contains('/') || name.contains('\\') || name == ".." {
                return Err(StoreError::Corrupt {
                    uri: manifest_ref.uri().into(),
                    reason: format!("blob name `{name}` is not a plain file name"),
                });
            }
            let blob_ref = store.resolve(&format!("{folder}{name}"))?;
            let data = store.get(&blob_ref).await?;
            let actual = sha256_hex(&data);
            if actual != info.sha256 {
                return Err(StoreError::Checksum {
                    uri: blob_ref.uri().into(),
                    expected: info.sha256.clone(),
                    actual,
                });
            }
            blobs.insert(name.clone(), data);
        }
        Ok(Self {
            manifest,
            blobs,
            uri: Some(manifest_ref.uri().to_string()),
        })
    }
}

/// The model folder of a manifest URI (`…/models/x/manifest.json` → `…/models/x`).
pub fn folder_of(manifest_uri: &str) -> &str {
    manifest_uri.trim_end_matches("/manifest.json")
}

/// Lower-case hex SHA-256 of some bytes.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(name: &str) -> ModelManifest {
        ModelManifest {
            format_version: 0,
            name: name.into(),
            algorithm: "random_forest".into(),
            task: "classification".into(),
            feature_names: vec!["a".into()],
            target: Some("y".into()),
            classes: vec!["0".into(), "1".into()],
            hyperparameters: serde_json::json!({"n_estimators": 3}),
            metrics: Value::Null,
            pipeline: None,
            training_data_uri: None,
            created_at: "2026-11-25T00:00:00Z".into(),
            blobs: BTreeMap::new(),
        }
    }

    #[tokio::test]
    async fn saved_artifact_loads_and_tampering_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            ArtifactStore::open(dir.path().to_str().unwrap(), &[], "us-east-1", None).unwrap();
        let mut a = ModelArtifact::new(
            manifest("m1"),
            vec![(
                "model.json",
                "application/json",
                Bytes::from_static(b"{\"w\":[1,2]}"),
            )],
        );
        a.save(&store).await.unwrap();
        let loaded = ModelArtifact::load(&store, "models/m1").await.unwrap();
        assert_eq!(
            loaded.blob("model.json").unwrap().as_ref(),
            b"{\"w\":[1,2]}"
        );
        assert_eq!(loaded.manifest.format_version, FORMAT_VERSION);

        std::fs::write(dir.path().join("models/m1/model.json"), b"{\"w\":[1,3]}").unwrap();
        let err = ModelArtifact::load(&store, "models/m1/manifest.json")
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Checksum { .. }), "{err}");
        assert!(err.to_string().contains("modified or corrupted"));
    }

    #[tokio::test]
    async fn a_manifest_naming_a_path_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            ArtifactStore::open(dir.path().to_str().unwrap(), &[], "us-east-1", None).unwrap();
        let mut m = manifest("m2");
        m.format_version = FORMAT_VERSION;
        m.blobs.insert(
            "../../escape".into(),
            BlobInfo {
                sha256: String::new(),
                size: 0,
                media_type: "x".into(),
            },
        );
        std::fs::create_dir_all(dir.path().join("models/m2")).unwrap();
        std::fs::write(
            dir.path().join("models/m2/manifest.json"),
            serde_json::to_vec(&m).unwrap(),
        )
        .unwrap();
        assert!(matches!(
            ModelArtifact::load(&store, "models/m2").await,
            Err(StoreError::Corrupt { .. })
        ));
    }
}
