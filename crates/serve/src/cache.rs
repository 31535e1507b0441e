//! Loaded models, bounded by size: the least recently used model is dropped when the budget is
//! passed (requests still holding it finish on it). Two requests for a model not yet loaded load
//! it once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use mlops_core::{ArtifactStore, ToolError};
use tokio::sync::OnceCell;

use crate::loaded::LoadedModel;

/// The default budget: `MLOPS_SERVING_CACHE_MB`.
pub const DEFAULT_CACHE_MB: u64 = 512;

struct Entry {
    cell: Arc<OnceCell<Arc<LoadedModel>>>,
    last_used: u64,
}

/// Loaded models by folder.
pub struct ModelCache {
    store: ArtifactStore,
    budget_bytes: u64,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    entries: HashMap<String, Entry>,
    clock: u64,
    evicted: u64,
}

impl ModelCache {
    pub fn new(store: ArtifactStore, budget_mb: u64) -> Self {
        Self {
            store,
            budget_bytes: budget_mb.saturating_mul(1024 * 1024),
            state: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The model in folder `uri`, loading and verifying it if needed.
    pub async fn get(&self, uri: &str) -> Result<Arc<LoadedModel>, ToolError> {
        let cell = {
            let mut state = self.lock();
            state.clock += 1;
            let clock = state.clock;
            let entry = state
                .entries
                .entry(uri.to_string())
                .or_insert_with(|| Entry {
                    cell: Arc::new(OnceCell::new()),
                    last_used: clock,
                });
            entry.last_used = clock;
            entry.cell.clone()
        };
        let loaded = cell
            .get_or_try_init(|| async {
                Ok::<_, ToolError>(Arc::new(LoadedModel::load(&self.store, uri).await?))
            })
            .await
            .cloned();
        match loaded {
            Ok(model) => {
                self.evict();
                Ok(model)
            }
            Err(e) => {
                // A failed load is not cached: the next request tries again.
                self.lock().entries.remove(uri);
                Err(e)
            }
        }
    }

    /// Drops least recently used models until the loaded ones fit the budget (the newest always
    /// stays, however large).
    fn evict(&self) {
        let mut state = self.lock();
        loop {
            let loaded: Vec<(&String, u64, u64)> = state
                .entries
                .iter()
                .filter_map(|(k, e)| e.cell.get().map(|m| (k, m.size_bytes, e.last_used)))
                .collect();
            let total: u64 = loaded.iter().map(|(_, size, _)| size).sum();
            if total <= self.budget_bytes || loaded.len() <= 1 {
                return;
            }
            let Some(oldest) = loaded
                .iter()
                .min_by_key(|(_, _, used)| *used)
                .map(|(k, _, _)| (*k).clone())
            else {
                return;
            };
            state.entries.remove(&oldest);
            state.evicted += 1;
        }
    }

    /// Models loaded now, and how many were dropped to fit the budget.
    pub fn stats(&self) -> (usize, u64) {
        let state = self.lock();
        let loaded = state
            .entries
            .values()
            .filter(|e| e.cell.get().is_some())
            .count();
        (loaded, state.evicted)
    }
}
