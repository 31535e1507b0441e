//! The local outbox file: the default channel when nothing else is configured. Appends one JSON
//! line per notification to `<MLOPS_HOME>/notifications/outbox.jsonl` and logs it on stderr.

use std::path::PathBuf;

use serde_json::json;
use tokio::io::AsyncWriteExt;

use super::{Channel, ChannelError, Message};

pub struct OutboxFileChannel {
    path: PathBuf,
}

impl OutboxFileChannel {
    pub fn new(path: PathBuf) -> Self {
        Self { path }
    }
}

#[async_trait::async_trait]
impl Channel for OutboxFileChannel {
    fn name(&self) -> &'static str {
        "outbox_file"
    }
    async fn send(&self, m: &Message) -> Result<(), ChannelError> {
        let r = &m.rendered;
        let line = json!({
            "notification_id": m.notification_id,
            "at": crate::now_text(),
            "template": r.template,
            "level": r.level,
            "title": r.title,
            "summary": r.summary,
            "body": r.body,
            "metrics": r.metrics,
            "links": r.links,
            "issue_number": m.issue_number,
        });
        let io = |e: std::io::Error| {
            ChannelError::retryable(format!("cannot write {}: {e}", self.path.display()))
        };
        if let Some(dir) = self.path.parent() {
            tokio::fs::create_dir_all(dir).await.map_err(io)?;
        }
        let mut text = line.to_string();
        text.push('\n');
        let mut f = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .await
            .map_err(io)?;
        // One write of the whole line, so concurrent writers never interleave inside a line.
        f.write_all(text.as_bytes()).await.map_err(io)?;
        f.flush().await.map_err(io)?;
        tracing::info!(
            notification_id = %m.notification_id,
            template = %r.template,
            status = "delivered",
            "notification: {}",
            r.title
        );
        Ok(())
    }
}
