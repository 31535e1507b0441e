//! Ships the server's JSON log lines to CloudWatch Logs, beside stderr.
//!
//! [`LogShipper::writer`] wraps the stderr writer of the JSON log layer: each complete line goes to
//! stderr at once and into a bounded in-memory queue, without waiting on anything but a short lock
//! (a tool call never waits on CloudWatch). A background task sends the queue with `PutLogEvents`
//! in batches bounded by count, bytes and time, creating the group and stream when missing. When
//! CloudWatch is unreachable the lines stay queued and are retried; when the queue is full new lines
//! are dropped and counted, and the count is reported as a warning line on stderr and in the next
//! batch. Lines arrive masked from the log layer; they are masked again before they leave.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mlops_core::logging::mask_str;
use serde_json::json;
use tokio::sync::Notify;

use crate::client::{AwsClient, AwsConfig, AwsError, Service};

/// `PutLogEvents` limits: events per call, bytes per call, bytes counted per event on top of its
/// message, and the time a batch may span (24 hours; a margin kept).
const MAX_BATCH_EVENTS: usize = 10_000;
const MAX_BATCH_BYTES: usize = 1_048_576;
const EVENT_OVERHEAD: usize = 26;
const MAX_EVENT_BYTES: usize = 256 * 1024 - EVENT_OVERHEAD;
const MAX_BATCH_SPAN_MS: i64 = 23 * 3600 * 1000;

/// Where and how often to ship.
#[derive(Debug, Clone)]
pub struct LogShipperOptions {
    pub group: String,
    pub stream: String,
    /// The `service` field of the shipper's own warning lines.
    pub service: String,
    /// How often queued lines are sent (sooner when many are waiting).
    pub flush_interval: Duration,
    /// Lines kept while CloudWatch is slow or unreachable; beyond that, new lines are dropped.
    pub buffer_lines: usize,
}

impl LogShipperOptions {
    pub fn new(group: &str, stream: &str) -> Self {
        Self {
            group: group.to_string(),
            stream: stream.to_string(),
            service: "mlops-mcp".into(),
            flush_interval: Duration::from_secs(5),
            buffer_lines: 10_000,
        }
    }
}

struct Event {
    timestamp: i64,
    message: String,
}

struct Queue {
    events: Mutex<VecDeque<Event>>,
    capacity: usize,
    /// Dropped since the last report.
    dropped: AtomicU64,
    dropped_total: AtomicU64,
    closing: AtomicBool,
    wake: Notify,
}

impl Queue {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Event>> {
        self.events.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, mut message: String) {
        if message.len() > MAX_EVENT_BYTES {
            let mut cut = MAX_EVENT_BYTES - 16;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push_str("...[truncated]");
        }
        let mut events = self.lock();
        if events.len() >= self.capacity {
            drop(events);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            self.dropped_total.fetch_add(1, Ordering::Relaxed);
            return;
        }
        // CloudWatch wants each batch in time order: never step back, even if the clock does.
        let timestamp = events
            .back()
            .map_or(now_ms(), |last| last.timestamp.max(now_ms()));
        events.push_back(Event { timestamp, message });
        if events.len() == (self.capacity / 2).clamp(1, MAX_BATCH_EVENTS) {
            self.wake.notify_one();
        }
    }

    /// The next batch within the limits, masked, with a report of dropped lines at its end.
    fn take_batch(&self, service: &str) -> Vec<Event> {
        let dropped = self.dropped.swap(0, Ordering::Relaxed);
        let report = (dropped > 0).then(|| {
            json!({
                "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "level": "WARN",
                "service": service,
                "message": format!("{dropped} log lines were not sent to CloudWatch Logs: its buffer of {} lines was full", self.capacity),
                "dropped_lines": dropped,
            })
            .to_string()
        });
        let (max_events, mut bytes) = match &report {
            Some(r) => (MAX_BATCH_EVENTS - 1, r.len() + EVENT_OVERHEAD),
            None => (MAX_BATCH_EVENTS, 0),
        };
        let mut batch: Vec<Event> = Vec::new();
        {
            let mut events = self.lock();
            while let Some(e) = events.front() {
                let size = e.message.len() + EVENT_OVERHEAD;
                let span = batch.first().map_or(0, |f| e.timestamp - f.timestamp);
                if batch.len() >= max_events
                    || bytes + size > MAX_BATCH_BYTES
                    || span > MAX_BATCH_SPAN_MS
                {
                    break;
                }
                bytes += size;
                batch.extend(events.pop_front());
            }
        }
        for e in &mut batch {
            e.message = mask_str(&e.message);
        }
        if let Some(message) = report {
            // Straight to stderr as well: the line must be seen even if CloudWatch never is.
            eprintln!("{message}");
            let timestamp = batch.last().map_or(now_ms(), |l| l.timestamp.max(now_ms()));
            batch.push(Event { timestamp, message });
        }
        batch
    }

    /// Puts an unsent batch back at the front, as far as there is room.
    fn requeue(&self, batch: Vec<Event>) {
        let mut events = self.lock();
        let room = self.capacity.saturating_sub(events.len());
        let lost = batch.len().saturating_sub(room) as u64;
        // Keep the newest of the batch: the oldest are the likeliest to be refused as too old.
        for e in batch.into_iter().rev().take(room) {
            events.push_front(e);
        }
        drop(events);
        self.dropped.fetch_add(lost, Ordering::Relaxed);
        self.dropped_total.fetch_add(lost, Ordering::Relaxed);
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The writer the log layer writes to: stderr (or any writer) plus the CloudWatch queue.
pub struct LogWriter {
    inner: Box<dyn Write + Send>,
    queue: Arc<Queue>,
    partial: Vec<u8>,
}

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.partial.extend_from_slice(buf);
        // Whole lines only, each in one write: lines from elsewhere never interleave with a part.
        while let Some(i) = self.partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=i).collect();
            let written = self.inner.write_all(&line);
            self.queue
                .push(String::from_utf8_lossy(&line[..line.len() - 1]).into_owned());
            written?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            self.inner.write_all(&line)?;
            self.queue.push(String::from_utf8_lossy(&line).into_owned());
        }
        self.inner.flush()
    }
}

/// The running shipper. Call [`LogShipper::shutdown`] before the process exits to send what is
/// still queued.
pub struct LogShipper {
    queue: Arc<Queue>,
    task: tokio::task::JoinHandle<()>,
}

impl LogShipper {
    /// Starts the background task (on the current tokio runtime). Nothing is contacted until the
    /// first batch.
    pub fn start(config: &AwsConfig, options: LogShipperOptions) -> Self {
        let queue = Arc::new(Queue {
            events: Mutex::new(VecDeque::new()),
            capacity: options.buffer_lines.max(1),
            dropped: AtomicU64::new(0),
            dropped_total: AtomicU64::new(0),
            closing: AtomicBool::new(false),
            wake: Notify::new(),
        });
        let worker = Worker {
            client: AwsClient::json(config, Service::CLOUDWATCH_LOGS, "Logs_20140328"),
            options,
            queue: queue.clone(),
            ready: false,
            failing: false,
        };
        Self {
            queue,
            task: tokio::spawn(worker.run()),
        }
    }

    /// A writer that writes every line to `inner` and queues it for CloudWatch.
    pub fn writer(&self, inner: Box<dyn Write + Send>) -> LogWriter {
        LogWriter {
            inner,
            queue: self.queue.clone(),
            partial: Vec::new(),
        }
    }

    /// Lines dropped so far because the queue was full.
    pub fn dropped_lines(&self) -> u64 {
        self.queue.dropped_total.load(Ordering::Relaxed)
    }

    /// Sends what is queued (one last try) and stops, waiting at most `timeout`. Returns false when
    /// lines were left unsent.
    pub async fn shutdown(self, timeout: Duration) -> bool {
        self.queue.closing.store(true, Ordering::Relaxed);
        self.queue.wake.notify_one();
        let abort = self.task.abort_handle();
        // Cut short, a batch in flight may be lost: only a finished task with nothing left counts.
        let finished = tokio::time::timeout(timeout, self.task).await.is_ok();
        if !finished {
            abort.abort();
        }
        finished && self.queue.lock().is_empty()
    }
}

struct Worker {
    client: AwsClient,
    options: LogShipperOptions,
    queue: Arc<Queue>,
    /// The group and stream are known to exist.
    ready: bool,
    /// The last batch failed: warn once per outage, not once per batch.
    failing: bool,
}

impl Worker {
    async fn run(mut self) {
        loop {
            if !self.queue.closing.load(Ordering::Relaxed) {
                tokio::select! {
                    _ = tokio::time::sleep(self.options.flush_interval) => {}
                    _ = self.queue.wake.notified() => {}
                }
            }
            let closing = self.queue.closing.load(Ordering::Relaxed);
            self.ship_queued().await;
            if closing {
                return;
            }
        }
    }

    async fn ship_queued(&mut self) {
        loop {
            let batch = self.queue.take_batch(&self.options.service);
            if batch.is_empty() {
                return;
            }
            match self.put(&batch).await {
                Ok(()) if self.failing => {
                    self.failing = false;
                    tracing::info!(
                        log_group = %self.options.group,
                        "shipping log lines to CloudWatch Logs again"
                    );
                }
                Ok(()) => {}
                Err(e) => {
                    self.queue.requeue(batch);
                    if !self.failing {
                        self.failing = true;
                        tracing::warn!(
                            log_group = %self.options.group,
                            error = %e,
                            "cannot ship log lines to CloudWatch Logs; they stay on stderr and are retried"
                        );
                    }
                    return;
                }
            }
        }
    }

    async fn put(&mut self, batch: &[Event]) -> Result<(), AwsError> {
        if !self.ready {
            self.create_destination().await?;
            self.ready = true;
        }
        let input = json!({
            "logGroupName": self.options.group,
            "logStreamName": self.options.stream,
            "logEvents": batch
                .iter()
                .map(|e| json!({"timestamp": e.timestamp, "message": e.message}))
                .collect::<Vec<_>>(),
        });
        let out = match self.client.call("PutLogEvents", input.clone()).await {
            Err(e) if e.code() == Some("ResourceNotFoundException") => {
                // Deleted while we ran: create it again once.
                self.create_destination().await?;
                self.client.call("PutLogEvents", input).await?
            }
            other => other?,
        };
        if let Some(rejected) = out.get("rejectedLogEventsInfo") {
            tracing::warn!(rejected = %rejected, "CloudWatch Logs refused some log lines (too old or too new)");
        }
        Ok(())
    }

    /// Creates the group and the stream; either may exist already. A role allowed to write a
    /// stream but not to create groups is fine when the group exists.
    async fn create_destination(&self) -> Result<(), AwsError> {
        let group = json!({"logGroupName": self.options.group});
        match self.client.call("CreateLogGroup", group).await {
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.code(),
                    Some("ResourceAlreadyExistsException" | "AccessDeniedException")
                ) => {}
            Err(e) => return Err(e),
        }
        let stream =
            json!({"logGroupName": self.options.group, "logStreamName": self.options.stream});
        match self.client.call("CreateLogStream", stream).await {
            Err(e) if e.code() != Some("ResourceAlreadyExistsException") => Err(e),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(capacity: usize) -> Queue {
        Queue {
            events: Mutex::new(VecDeque::new()),
            capacity,
            dropped: AtomicU64::new(0),
            dropped_total: AtomicU64::new(0),
            closing: AtomicBool::new(false),
            wake: Notify::new(),
        }
    }

    #[test]
    fn batches_respect_the_count_and_byte_limits() {
        let q = queue(30_000);
        for _ in 0..12_000 {
            q.push("x".repeat(10));
        }
        assert_eq!(q.take_batch("s").len(), MAX_BATCH_EVENTS);
        assert_eq!(q.take_batch("s").len(), 2_000);
        assert!(q.take_batch("s").is_empty());

        let big = "y".repeat(200_000);
        for _ in 0..6 {
            q.push(big.clone());
        }
        // 5 × (200,000 + 26) fits in 1 MiB, 6 do not.
        assert_eq!(q.take_batch("s").len(), 5);
        assert_eq!(q.take_batch("s").len(), 1);
    }

    #[test]
    fn oversized_lines_are_truncated_on_a_char_boundary() {
        let q = queue(10);
        q.push("é".repeat(200_000));
        let batch = q.take_batch("s");
        assert!(batch[0].message.len() <= MAX_EVENT_BYTES);
        assert!(batch[0].message.ends_with("...[truncated]"));
    }

    #[test]
    fn overflow_is_counted_and_reported_at_the_end_of_the_next_batch() {
        let q = queue(3);
        for i in 0..10 {
            q.push(format!("line {i}"));
        }
        let batch = q.take_batch("svc");
        assert_eq!(batch.len(), 4);
        assert_eq!(batch[0].message, "line 0");
        let report: serde_json::Value = serde_json::from_str(&batch[3].message).unwrap();
        assert_eq!(report["dropped_lines"], 7);
        assert_eq!(report["level"], "WARN");
        assert_eq!(report["service"], "svc");
        assert!(batch.windows(2).all(|w| w[0].timestamp <= w[1].timestamp));
        assert_eq!(q.dropped_total.load(Ordering::Relaxed), 7);
        assert!(q.take_batch("svc").is_empty(), "reported once");
    }

    #[test]
    fn an_unsent_batch_goes_back_to_the_front_as_far_as_there_is_room() {
        let q = queue(4);
        for i in 0..3 {
            q.push(format!("old {i}"));
        }
        let batch = q.take_batch("s");
        q.push("new".into());
        q.push("newer".into());
        q.requeue(batch);
        let again: Vec<String> = q.take_batch("s").into_iter().map(|e| e.message).collect();
        assert_eq!(again[..4], ["old 1", "old 2", "new", "newer"]);
        let report: serde_json::Value = serde_json::from_str(&again[4]).unwrap();
        assert_eq!(report["dropped_lines"], 1);
    }

    #[test]
    fn the_writer_passes_whole_lines_through_and_queues_them_masked() {
        mlops_core::logging::register_secret("writer-secret-value-1");
        let q = Arc::new(queue(10));
        let out = Arc::new(Mutex::new(Vec::new()));
        struct Shared(Arc<Mutex<Vec<u8>>>);
        impl Write for Shared {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut w = LogWriter {
            inner: Box::new(Shared(out.clone())),
            queue: q.clone(),
            partial: Vec::new(),
        };
        write!(w, "{{\"a\":").unwrap();
        assert!(out.lock().unwrap().is_empty(), "half a line is held back");
        writeln!(w, "1}}\n{{\"b\":2}}").unwrap();
        assert_eq!(
            String::from_utf8(out.lock().unwrap().clone()).unwrap(),
            "{\"a\":1}\n{\"b\":2}\n"
        );
        // The log layer masks before writing; a line it missed is masked before it leaves.
        writeln!(w, "{{\"c\":\"writer-secret-value-1\"}}").unwrap();
        let batch: Vec<String> = q.take_batch("s").into_iter().map(|e| e.message).collect();
        assert_eq!(batch, ["{\"a\":1}", "{\"b\":2}", "{\"c\":\"***\"}"]);
    }
}
