//! The artifact store: one place for datasets, processed data, models and evaluations, on a local
//! folder or on S3 (through `object_store`), with the same key layout on both
//! (`datasets/`, `processed/`, `models/`, `evaluations/`).
//!
//! Every location a client names is resolved here, and resolution is where safety lives: a relative
//! key may not climb out of the root, and a local path must lie (after following symlinks) under the
//! artifact root or one of the configured data folders. Writes are atomic: the local backend writes a
//! temporary file and renames it; an S3 PUT is atomic by nature.

use std::collections::HashMap;
use std::path::{Component, Path as FsPath, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::config::Config;

/// What went wrong while resolving, reading or writing an artifact.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("`{uri}` is not a valid location: {reason}")]
    InvalidUri { uri: String, reason: String },
    #[error(
        "`{uri}` is outside the artifact root ({root}); put the file under the root or add its folder to MLOPS_DATA_DIRS"
    )]
    OutsideRoot { uri: String, root: String },
    #[error("`{uri}` does not exist")]
    NotFound { uri: String },
    #[error("cannot access `{uri}`: {message}")]
    Backend { uri: String, message: String },
    #[error(
        "`{uri}` is {size} bytes, more than the {limit} bytes a tool reads into memory (MLOPS_MAX_TABLE_BYTES); split the file or raise the limit"
    )]
    TooLarge { uri: String, size: u64, limit: u64 },
    #[error("local file system: {0}")]
    Io(#[from] std::io::Error),
    #[error(
        "artifact `{uri}` failed its checksum: expected sha256 {expected}, found {actual}; it was modified or corrupted"
    )]
    Checksum {
        uri: String,
        expected: String,
        actual: String,
    },
    #[error("artifact `{uri}` is malformed: {reason}")]
    Corrupt { uri: String, reason: String },
}

/// A resolved location: the backend that holds it and the key inside that backend.
#[derive(Clone)]
pub struct ArtifactRef {
    store: Arc<dyn ObjectStore>,
    path: ObjectPath,
    uri: String,
    local_path: Option<PathBuf>,
}

impl ArtifactRef {
    /// The canonical URI (`file:///...` or `s3://bucket/key`), as tools report it.
    pub fn uri(&self) -> &str {
        &self.uri
    }
    /// The file on disk when the artifact is local (lets readers memory-map or stream it).
    pub fn local_path(&self) -> Option<&FsPath> {
        self.local_path.as_deref()
    }
    /// The last path segment, e.g. `train.parquet`.
    pub fn file_name(&self) -> &str {
        self.path.filename().unwrap_or("")
    }
    /// The extension in lower case, e.g. `csv`.
    pub fn extension(&self) -> Option<String> {
        self.path.extension().map(str::to_ascii_lowercase)
    }
}

impl std::fmt::Debug for ArtifactRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.uri)
    }
}

enum Root {
    Local {
        dir: PathBuf,
        store: Arc<dyn ObjectStore>,
    },
    S3 {
        bucket: String,
        prefix: String,
    },
}

/// The artifact store. Cheap to clone; share one per server.
#[derive(Clone)]
pub struct ArtifactStore {
    inner: Arc<Inner>,
}

struct Inner {
    root: Root,
    root_display: String,
    data_dirs: Vec<PathBuf>,
    region: String,
    kms_key_id: Option<String>,
    max_read_bytes: std::sync::atomic::AtomicU64,
    buckets: Mutex<HashMap<String, Arc<dyn ObjectStore>>>,
}

impl ArtifactStore {
    /// Opens the store described by the configuration, creating the local root folder if needed.
    pub fn from_config(config: &Config) -> Result<Self, StoreError> {
        let store = Self::open(
            &config.artifact_root,
            &config.data_dirs,
            &config.aws_region,
            config.kms_key_id.clone(),
        )?;
        Ok(store.with_max_read_bytes(config.max_table_bytes))
    }

    /// Opens a store rooted at `root`: a local folder, `file://` URI, or `s3://bucket[/prefix]`.
    pub fn open(
        root: &str,
        data_dirs: &[PathBuf],
        region: &str,
        kms_key_id: Option<String>,
    ) -> Result<Self, StoreError> {
        let (root, root_display) = if let Some(rest) = root.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(StoreError::InvalidUri {
                    uri: root.into(),
                    reason: "no bucket name".into(),
                });
            }
            let prefix = prefix.trim_matches('/').to_string();
            (
                Root::S3 {
                    bucket: bucket.into(),
                    prefix,
                },
                root.trim_end_matches('/').to_string(),
            )
        } else {
            let dir = PathBuf::from(root.strip_prefix("file://").unwrap_or(root));
            std::fs::create_dir_all(&dir)?;
            let dir = dir.canonicalize()?;
            let store = LocalFileSystem::new_with_prefix(&dir)
                .map_err(|e| backend_error(root, e))?
                .with_automatic_cleanup(true);
            let display = dir.display().to_string();
            (
                Root::Local {
                    dir,
                    store: Arc::new(store),
                },
                display,
            )
        };
        let data_dirs = data_dirs
            .iter()
            .filter_map(|d| d.canonicalize().ok())
            .collect();
        Ok(Self {
            inner: Arc::new(Inner {
                root,
                root_display,
                data_dirs,
                region: region.into(),
                kms_key_id,
                max_read_bytes: std::sync::atomic::AtomicU64::new(u64::MAX),
                buckets: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// Limits how large a file [`ArtifactStore::check_size`] lets through (for every clone).
    pub fn with_max_read_bytes(self, limit: u64) -> Self {
        self.inner
            .max_read_bytes
            .store(limit, std::sync::atomic::Ordering::Relaxed);
        self
    }

    /// Fails, naming the limit, when an artifact is larger than a tool may read into memory.
    pub async fn check_size(&self, r: &ArtifactRef) -> Result<u64, StoreError> {
        let size = match r.local_path() {
            Some(p) => tokio::fs::metadata(p)
                .await
                .map_err(|_| StoreError::NotFound { uri: r.uri.clone() })?
                .len(),
            None => {
                r.store
                    .head(&r.path)
                    .await
                    .map_err(|e| map_error(r, e))?
                    .size
            }
        };
        let limit = self
            .inner
            .max_read_bytes
            .load(std::sync::atomic::Ordering::Relaxed);
        if size > limit {
            return Err(StoreError::TooLarge {
                uri: r.uri.clone(),
                size,
                limit,
            });
        }
        Ok(size)
    }

    /// The root, for messages: a folder or `s3://bucket/prefix`.
    pub fn root_display(&self) -> &str {
        &self.inner.root_display
    }

    /// The local root folder, when the store is local.
    pub fn local_root(&self) -> Option<&FsPath> {
        match &self.inner.root {
            Root::Local { dir, .. } => Some(dir),
            Root::S3 { .. } => None,
        }
    }

    /// Resolves a location a client gave: a key relative to the root (`datasets/iris.csv`), an
    /// absolute local path or `file://` URI under the root or a data folder, or `s3://bucket/key`.
    pub fn resolve(&self, uri: &str) -> Result<ArtifactRef, StoreError> {
        let uri = uri.trim();
        if uri.is_empty() {
            return Err(invalid(uri, "it is empty"));
        }
        if let Some(rest) = uri.strip_prefix("s3://") {
            let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
            let key = clean_key(uri, key)?;
            if key.is_empty() || bucket.is_empty() {
                return Err(invalid(uri, "expected s3://bucket/key"));
            }
            let store = self.bucket_store(bucket)?;
            return Ok(ArtifactRef {
                store,
                uri: format!("s3://{bucket}/{key}"),
                path: ObjectPath::from(key),
                local_path: None,
            });
        }
        if let Some(scheme) = uri
            .split_once("://")
            .map(|(s, _)| s)
            .filter(|s| *s != "file")
        {
            return Err(invalid(
                uri,
                &format!(
                    "the scheme `{scheme}://` is not supported (use a path, file:// or s3://)"
                ),
            ));
        }
        let path_text = uri.strip_prefix("file://").unwrap_or(uri);
        let path = FsPath::new(path_text);
        if path.is_absolute() {
            return self.resolve_local_absolute(uri, path);
        }
        let key = clean_key(uri, path_text)?;
        self.key(&key)
    }

    /// A location inside the root by key (`models/job-1/manifest.json`), for artifacts the server names.
    pub fn key(&self, key: &str) -> Result<ArtifactRef, StoreError> {
        let key = clean_key(key, key)?;
        if key.is_empty() {
            return Err(invalid(&key, "the key is empty"));
        }
        match &self.inner.root {
            Root::Local { dir, store } => {
                let local = dir.join(&key);
                // A symlink inside the root must not lead out of it.
                if let Ok(real) = local.canonicalize()
                    && !real.starts_with(dir)
                {
                    return Err(StoreError::OutsideRoot {
                        uri: key,
                        root: self.root_display().into(),
                    });
                }
                Ok(ArtifactRef {
                    store: store.clone(),
                    uri: format!("file://{}", local.display()),
                    path: ObjectPath::from(key.as_str()),
                    local_path: Some(local),
                })
            }
            Root::S3 { bucket, prefix } => {
                let full = if prefix.is_empty() {
                    key
                } else {
                    format!("{prefix}/{key}")
                };
                Ok(ArtifactRef {
                    store: self.bucket_store(bucket)?,
                    uri: format!("s3://{bucket}/{full}"),
                    path: ObjectPath::from(full.as_str()),
                    local_path: None,
                })
            }
        }
    }

    fn resolve_local_absolute(&self, uri: &str, path: &FsPath) -> Result<ArtifactRef, StoreError> {
        if path.components().any(|c| matches!(c, Component::ParentDir)) {
            return Err(invalid(uri, "`..` is not allowed in a path"));
        }
        // Follow symlinks on the longest part that exists, so a link cannot smuggle a path out.
        let real = canonicalize_existing_prefix(path)?;
        if let Root::Local { dir, .. } = &self.inner.root
            && let Ok(rel) = real.strip_prefix(dir)
        {
            let key = rel.to_string_lossy().replace('\\', "/");
            return self.key(&key);
        }
        if self.inner.data_dirs.iter().any(|d| real.starts_with(d)) {
            let store: Arc<dyn ObjectStore> = Arc::new(LocalFileSystem::new());
            let object_path =
                ObjectPath::from_absolute_path(&real).map_err(|e| invalid(uri, &e.to_string()))?;
            return Ok(ArtifactRef {
                store,
                uri: format!("file://{}", real.display()),
                path: object_path,
                local_path: Some(real),
            });
        }
        Err(StoreError::OutsideRoot {
            uri: uri.into(),
            root: self.root_display().into(),
        })
    }

    fn bucket_store(&self, bucket: &str) -> Result<Arc<dyn ObjectStore>, StoreError> {
        let mut buckets = self.inner.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = buckets.get(bucket) {
            return Ok(s.clone());
        }
        // Credentials, endpoint (AWS_ENDPOINT_URL for a local stand-in) and the rest come from the
        // standard AWS environment variables.
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_region(&self.inner.region);
        if let Ok(endpoint) = std::env::var("AWS_ENDPOINT_URL") {
            builder = builder
                .with_endpoint(&endpoint)
                .with_allow_http(endpoint.starts_with("http://"));
        }
        if let Some(key_id) = &self.inner.kms_key_id {
            builder = builder.with_sse_kms_encryption(key_id);
        }
        let store: Arc<dyn ObjectStore> = Arc::new(
            builder
                .build()
                .map_err(|e| backend_error(&format!("s3://{bucket}"), e))?,
        );
        buckets.insert(bucket.into(), store.clone());
        Ok(store)
    }

    /// Reads a whole artifact.
    pub async fn get(&self, r: &ArtifactRef) -> Result<Bytes, StoreError> {
        let result = r.store.get(&r.path).await.map_err(|e| map_error(r, e))?;
        result.bytes().await.map_err(|e| map_error(r, e))
    }

    /// Writes a whole artifact atomically (readers see the old content or the new, never a part).
    pub async fn put(&self, r: &ArtifactRef, data: Bytes) -> Result<(), StoreError> {
        if let Some(parent) = r.local_path.as_deref().and_then(FsPath::parent) {
            tokio::fs::create_dir_all(parent).await?;
        }
        r.store
            .put(&r.path, PutPayload::from_bytes(data))
            .await
            .map_err(|e| map_error(r, e))?;
        Ok(())
    }

    /// True when the artifact exists.
    pub async fn exists(&self, r: &ArtifactRef) -> Result<bool, StoreError> {
        match r.store.head(&r.path).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(map_error(r, e)),
        }
    }

    /// Keys (relative to the root, sorted) of the artifacts under the folder `prefix`, at most
    /// `limit` of them.
    pub async fn list(&self, prefix: &str, limit: usize) -> Result<Vec<String>, StoreError> {
        use futures::TryStreamExt;
        // A key inside the folder resolves the folder with the usual escape checks.
        let folder = self.key(&format!("{}/.list", prefix.trim_end_matches('/')))?;
        let dir: ObjectPath = folder
            .path
            .as_ref()
            .rsplit_once('/')
            .map(|(d, _)| ObjectPath::from(d))
            .unwrap_or_default();
        let root_prefix = match &self.inner.root {
            Root::S3 { prefix, .. } if !prefix.is_empty() => format!("{prefix}/"),
            _ => String::new(),
        };
        let mut keys: Vec<String> = folder
            .store
            .list(Some(&dir))
            .map_ok(|meta| {
                let key = meta.location.to_string();
                key.strip_prefix(&root_prefix).unwrap_or(&key).to_string()
            })
            .try_collect()
            .await
            .map_err(|e| map_error(&folder, e))?;
        keys.sort();
        keys.truncate(limit);
        Ok(keys)
    }

    /// Moves an artifact to `to` (a rename on a local folder; a copy then a delete on S3), so a
    /// result written under a temporary name appears whole under its own.
    pub async fn rename(&self, from: &ArtifactRef, to: &ArtifactRef) -> Result<(), StoreError> {
        if let Some(parent) = to.local_path.as_deref().and_then(FsPath::parent) {
            tokio::fs::create_dir_all(parent).await?;
        }
        from.store
            .rename(&from.path, &to.path)
            .await
            .map_err(|e| map_error(from, e))
    }

    /// Copies an artifact to a local file chunk by chunk (never holding it whole), for readers
    /// that stream a table larger than memory.
    pub async fn download_to(&self, r: &ArtifactRef, path: &FsPath) -> Result<(), StoreError> {
        use futures::StreamExt;
        use tokio::io::AsyncWriteExt;
        let result = r.store.get(&r.path).await.map_err(|e| map_error(r, e))?;
        let mut stream = result.into_stream();
        let mut file = tokio::fs::File::create(path).await?;
        while let Some(chunk) = stream.next().await {
            file.write_all(&chunk.map_err(|e| map_error(r, e))?).await?;
        }
        file.flush().await?;
        Ok(())
    }

    /// Deletes every artifact under the folder `prefix`, and on a local root the folder itself.
    pub async fn delete_folder(&self, prefix: &str) -> Result<(), StoreError> {
        for key in self.list(prefix, usize::MAX).await? {
            self.delete(&self.key(&key)?).await?;
        }
        let folder = self.key(&format!("{}/.folder", prefix.trim_end_matches('/')))?;
        if let Some(dir) = folder.local_path().and_then(FsPath::parent) {
            match tokio::fs::remove_dir_all(dir).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Deletes an artifact; a missing one is not an error.
    pub async fn delete(&self, r: &ArtifactRef) -> Result<(), StoreError> {
        match r.store.delete(&r.path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(map_error(r, e)),
        }
    }
}

fn invalid(uri: &str, reason: &str) -> StoreError {
    StoreError::InvalidUri {
        uri: uri.into(),
        reason: reason.into(),
    }
}

fn backend_error(uri: &str, e: object_store::Error) -> StoreError {
    StoreError::Backend {
        uri: uri.into(),
        message: crate::logging::mask_str(&e.to_string()),
    }
}

fn map_error(r: &ArtifactRef, e: object_store::Error) -> StoreError {
    match e {
        object_store::Error::NotFound { .. } => StoreError::NotFound { uri: r.uri.clone() },
        e => backend_error(&r.uri, e),
    }
}

/// Normalises a relative key: forward slashes, no empty or `.` segments, and never `..`.
fn clean_key(uri: &str, key: &str) -> Result<String, StoreError> {
    let mut parts = Vec::new();
    for seg in key.split(['/', '\\']) {
        match seg {
            "" | "." => continue,
            ".." => {
                return Err(invalid(
                    uri,
                    "`..` is not allowed: locations must stay inside the artifact root",
                ));
            }
            s if s.chars().any(char::is_control) => {
                return Err(invalid(uri, "control characters are not allowed"));
            }
            s => parts.push(s),
        }
    }
    Ok(parts.join("/"))
}

fn canonicalize_existing_prefix(path: &FsPath) -> Result<PathBuf, StoreError> {
    let mut existing = path.to_path_buf();
    let mut rest = Vec::new();
    loop {
        match existing.canonicalize() {
            Ok(real) => {
                let mut out = real;
                for seg in rest.iter().rev() {
                    out.push(seg);
                }
                return Ok(out);
            }
            Err(_) => match (
                existing.file_name().map(|s| s.to_os_string()),
                existing.parent(),
            ) {
                (Some(name), Some(parent)) => {
                    rest.push(name);
                    existing = parent.to_path_buf();
                }
                _ => return Ok(path.to_path_buf()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local() -> (tempfile::TempDir, ArtifactStore) {
        let dir = tempfile::tempdir().unwrap();
        let store =
            ArtifactStore::open(dir.path().to_str().unwrap(), &[], "us-east-1", None).unwrap();
        (dir, store)
    }

    #[tokio::test]
    async fn list_returns_the_keys_under_a_folder() {
        let (_d, store) = local();
        for key in [
            "models/a/manifest.json",
            "models/b/manifest.json",
            "datasets/x.csv",
        ] {
            store
                .put(&store.key(key).unwrap(), Bytes::from_static(b"{}"))
                .await
                .unwrap();
        }
        assert_eq!(
            store.list("models", 10).await.unwrap(),
            ["models/a/manifest.json", "models/b/manifest.json"]
        );
        assert_eq!(store.list("models/", 1).await.unwrap().len(), 1);
        assert!(store.list("nothing-here", 10).await.unwrap().is_empty());
        assert!(store.list("../outside", 10).await.is_err());
    }

    #[tokio::test]
    async fn put_then_get_round_trips_and_creates_folders() {
        let (_d, store) = local();
        let r = store.resolve("datasets/a/b.csv").unwrap();
        store
            .put(&r, Bytes::from_static(b"x,y\n1,2\n"))
            .await
            .unwrap();
        assert_eq!(
            store.get(&r).await.unwrap(),
            Bytes::from_static(b"x,y\n1,2\n")
        );
        assert!(store.exists(&r).await.unwrap());
        assert!(r.uri().starts_with("file://") && r.uri().ends_with("datasets/a/b.csv"));
        // The same file by absolute path and by file:// URI resolves to the same key.
        let abs = store
            .resolve(r.local_path().unwrap().to_str().unwrap())
            .unwrap();
        assert_eq!(abs.uri(), r.uri());
        assert_eq!(store.resolve(r.uri()).unwrap().uri(), r.uri());
    }

    #[test]
    fn escapes_are_rejected() {
        let (_d, store) = local();
        for bad in [
            "../../etc/passwd",
            "datasets/../../x",
            "/etc/passwd",
            "file:///etc/passwd",
            "s3://b/../x",
            "ftp://h/x",
            "",
        ] {
            let err = store.resolve(bad).expect_err(bad);
            assert!(
                matches!(
                    err,
                    StoreError::InvalidUri { .. } | StoreError::OutsideRoot { .. }
                ),
                "{bad}: {err}"
            );
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_symlink_cannot_lead_out_of_the_root() {
        let (d, store) = local();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret.csv"), "a\n1\n").unwrap();
        std::os::unix::fs::symlink(outside.path(), d.path().join("link")).unwrap();
        assert!(matches!(
            store.resolve("link/secret.csv"),
            Err(StoreError::OutsideRoot { .. })
        ));
    }

    #[test]
    fn data_dirs_widen_what_can_be_read() {
        let data = tempfile::tempdir().unwrap();
        std::fs::write(data.path().join("d.csv"), "a\n1\n").unwrap();
        let root = tempfile::tempdir().unwrap();
        let store = ArtifactStore::open(
            root.path().to_str().unwrap(),
            &[data.path().to_path_buf()],
            "us-east-1",
            None,
        )
        .unwrap();
        let r = store
            .resolve(data.path().join("d.csv").to_str().unwrap())
            .unwrap();
        assert!(r.local_path().unwrap().ends_with("d.csv"));
    }

    #[tokio::test]
    async fn missing_file_is_not_found() {
        let (_d, store) = local();
        let r = store.resolve("datasets/none.csv").unwrap();
        assert!(matches!(
            store.get(&r).await,
            Err(StoreError::NotFound { .. })
        ));
    }
}
