//! What answers predictions: registered models followed through the registry (every served
//! name is resolved again every half second, so a promotion, rollback or alias move on any
//! server sharing the database is answered within a second or so, with no restart), models
//! loaded once into a bounded cache, per-model metrics and the prediction log. The `predict`
//! tool, batch jobs and the HTTP inference routes all score through here.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};
use std::time::{Duration, Instant};

use mlops_core::{ArtifactStore, ToolError, ToolRouter};
use serde_json::{Map, Value};

use crate::cache::ModelCache;
use crate::loaded::{Origin, Scored, Served};
use crate::log::{LogEntry, PredictionLog};
use crate::metrics::ServingMetrics;
use crate::resolve::{Selector, resolve};

/// How often served names are resolved again.
const REFRESH: Duration = Duration::from_millis(500);
/// How often the prediction log settings are read again.
const SETTINGS_REFRESH: Duration = Duration::from_secs(2);
/// A served name nobody asked for this long is no longer followed (its model may be evicted).
const IDLE: Duration = Duration::from_secs(600);

/// A registered model being served: what answers now, and when it was last asked for.
struct Live {
    current: RwLock<Served>,
    used_ms: AtomicI64,
}

/// The serving core shared by the tools and the HTTP routes.
pub struct Endpoint {
    cache: ModelCache,
    router: OnceLock<ToolRouter>,
    live: Mutex<HashMap<(String, Selector), Arc<Live>>>,
    refreshing: AtomicBool,
    pub metrics: Arc<ServingMetrics>,
    pub log: Arc<PredictionLog>,
}

impl Endpoint {
    pub fn new(store: ArtifactStore, cache_mb: u64, log: Arc<PredictionLog>) -> Arc<Self> {
        Arc::new(Self {
            cache: ModelCache::new(store, cache_mb),
            router: OnceLock::new(),
            live: Mutex::default(),
            refreshing: AtomicBool::new(false),
            metrics: log_metrics(&log),
            log,
        })
    }

    /// Gives the endpoint the router through which it asks the registry, and starts following
    /// the registry and the log settings.
    pub fn attach(self: &Arc<Self>, router: ToolRouter) {
        let _ = self.router.set(router);
        self.start_refresher();
    }

    fn router(&self) -> Result<&ToolRouter, ToolError> {
        self.router
            .get()
            .ok_or_else(|| ToolError::Execution("serving is not attached to the tools yet".into()))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, Selector), Arc<Live>>> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The model `selector` names for `model_name` now. The first request resolves and loads it;
    /// later ones take what the refresher keeps current.
    pub async fn current(
        self: &Arc<Self>,
        model_name: &str,
        selector: &Selector,
    ) -> Result<Served, ToolError> {
        let key = (model_name.to_string(), selector.clone());
        let live = self.lock().get(&key).cloned();
        if let Some(live) = live {
            live.used_ms.store(now_ms(), Ordering::Relaxed);
            return Ok(live
                .current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone());
        }
        let origin = resolve(self.router()?, model_name, selector).await?;
        let served = self.load(origin).await?;
        self.lock().entry(key).or_insert_with(|| {
            Arc::new(Live {
                current: RwLock::new(served.clone()),
                used_ms: AtomicI64::new(now_ms()),
            })
        });
        Ok(served)
    }

    /// A model folder given directly (no registry).
    pub async fn by_uri(&self, uri: &str) -> Result<Served, ToolError> {
        self.load(Origin {
            model_name: None,
            version: None,
            artifact_uri: uri.to_string(),
        })
        .await
    }

    async fn load(&self, origin: Origin) -> Result<Served, ToolError> {
        let model = self.cache.get(&origin.artifact_uri).await?;
        Ok(Served { origin, model })
    }

    /// Scores `records` with `served`, counting the request and offering it to the log.
    pub fn predict(
        &self,
        served: &Served,
        records: &[Map<String, Value>],
    ) -> Result<Scored, ToolError> {
        let started = Instant::now();
        let scored = served.model.score_records(records);
        let name = metric_name(&served.origin);
        self.metrics.observe(
            &name,
            records.len(),
            started.elapsed().as_secs_f64(),
            scored.is_ok(),
        );
        if let Ok(scored) = &scored {
            self.log.offer(
                || LogEntry {
                    model: name.clone(),
                    version: served.origin.version,
                    at: chrono::Utc::now(),
                    request_id: uuid::Uuid::new_v4().simple().to_string(),
                    inputs: records.to_vec(),
                    outputs: (0..scored.rows)
                        .map(|r| served.model.row(scored, r))
                        .collect(),
                },
                &name,
            );
        }
        scored
    }

    /// Counts a request to `served` that failed before scoring (rows that do not fit the model).
    pub fn count_failure(&self, served: &Served) {
        self.metrics
            .observe(&metric_name(&served.origin), 0, 0.0, false);
    }

    /// Models held now, and how many were dropped to fit the cache's budget.
    pub fn cache_stats(&self) -> (usize, u64) {
        self.cache.stats()
    }

    /// Every served name with the version answering for it.
    pub fn served(&self) -> Vec<(String, Selector, Origin)> {
        let mut out: Vec<_> = self
            .lock()
            .iter()
            .map(|((name, selector), live)| {
                let current = live.current.read().unwrap_or_else(|e| e.into_inner());
                (name.clone(), selector.clone(), current.origin.clone())
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0).then(a.2.version.cmp(&b.2.version)));
        out
    }

    /// Starts, once, the task that follows the registry and the log settings. It holds the
    /// endpoint weakly, so it ends with it.
    fn start_refresher(self: &Arc<Self>) {
        if self.refreshing.swap(true, Ordering::SeqCst) {
            return;
        }
        let endpoint: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut settings_due = Instant::now();
            loop {
                tokio::time::sleep(REFRESH).await;
                let Some(endpoint) = endpoint.upgrade() else {
                    return;
                };
                endpoint.refresh().await;
                if Instant::now() >= settings_due {
                    endpoint.log.refresh().await;
                    settings_due = Instant::now() + SETTINGS_REFRESH;
                }
            }
        });
    }

    /// Resolves every followed name again and swaps in a new version once it is loaded; requests
    /// already holding the old one finish on it. A registry that cannot be reached leaves the
    /// current version answering.
    async fn refresh(&self) {
        let Ok(router) = self.router() else { return };
        let followed: Vec<((String, Selector), Arc<Live>)> = {
            let mut live = self.lock();
            let idle_since = now_ms() - IDLE.as_millis() as i64;
            live.retain(|_, l| l.used_ms.load(Ordering::Relaxed) >= idle_since);
            live.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
        };
        for ((name, selector), live) in followed {
            let origin = match resolve(router, &name, &selector).await {
                Ok(origin) => origin,
                Err(e) => {
                    tracing::warn!(model = %name, error = %e, "could not resolve a served model; the current version keeps answering");
                    continue;
                }
            };
            let unchanged = {
                let current = live.current.read().unwrap_or_else(|e| e.into_inner());
                current.origin == origin
            };
            if unchanged {
                continue;
            }
            match self.load(origin).await {
                Ok(served) => {
                    tracing::info!(model = %name, version = ?served.origin.version, "serving a new version");
                    *live.current.write().unwrap_or_else(|e| e.into_inner()) = served;
                }
                Err(e) => {
                    tracing::warn!(model = %name, error = %e, "could not load the new version; the current one keeps answering")
                }
            }
        }
    }
}

/// The name a request is counted and logged under: the registered name, else the folder's last
/// part.
pub fn metric_name(origin: &Origin) -> String {
    origin.model_name.clone().unwrap_or_else(|| {
        origin
            .artifact_uri
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_string()
    })
}

fn log_metrics(log: &PredictionLog) -> Arc<ServingMetrics> {
    log.metrics()
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
