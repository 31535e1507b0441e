//! Structured JSON logs on stderr (stdout belongs to the MCP protocol), with secrets masked.
//!
//! One JSON object per line with the specification's fields: `timestamp, level, service,
//! execution_id, issue_number, training_job_name, message, duration_ms, status`, plus `tool` and its
//! `arguments`. Fields set on enclosing spans are inherited by every event inside them. Any field
//! whose name looks sensitive is replaced by `***`, and any registered secret value is cut out of
//! every string, wherever it appears.

use std::io::Write;
use std::sync::{Arc, Mutex, RwLock};

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Id, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;
use tracing_subscriber::registry::LookupSpan;

/// Substrings that mark a field or argument name as secret.
const SENSITIVE_KEYS: [&str; 8] = [
    "token",
    "password",
    "secret",
    "api_key",
    "apikey",
    "webhook_url",
    "authorization",
    "private_key",
];
const MASK: &str = "***";
/// Values shorter than this are not masked by value: they would blank out ordinary words.
const MIN_SECRET_LEN: usize = 6;

static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Registers a secret value so that it never appears in a log line or an error message.
pub fn register_secret(value: &str) {
    let value = value.trim();
    if value.len() < MIN_SECRET_LEN {
        return;
    }
    let mut secrets = SECRETS.write().unwrap_or_else(|e| e.into_inner());
    if !secrets.iter().any(|s| s == value) {
        secrets.push(value.to_string());
        // Longest first, so a secret that contains another is masked whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }
}

/// True when a field name says its value is a secret.
pub fn is_sensitive_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    SENSITIVE_KEYS.iter().any(|s| key.contains(s))
}

/// Replaces every registered secret inside `text` with `***`.
pub fn mask_str(text: &str) -> String {
    let secrets = SECRETS.read().unwrap_or_else(|e| e.into_inner());
    let mut out = text.to_string();
    for s in secrets.iter() {
        if out.contains(s.as_str()) {
            out = out.replace(s.as_str(), MASK);
        }
    }
    out
}

/// Masks a JSON value: sensitive keys lose their value, strings lose registered secrets.
pub fn mask_json(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let v = if is_sensitive_key(k) && !v.is_null() {
                        Value::String(MASK.into())
                    } else {
                        mask_json(v)
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(mask_json).collect()),
        Value::String(s) => Value::String(mask_str(s)),
        other => other.clone(),
    }
}

/// Where log lines go.
pub type LogSink = Arc<Mutex<Box<dyn Write + Send>>>;

/// A `tracing` layer that writes one masked JSON object per event.
pub struct JsonLayer {
    service: String,
    sink: LogSink,
}

impl JsonLayer {
    pub fn new(service: impl Into<String>, sink: LogSink) -> Self {
        Self {
            service: service.into(),
            sink,
        }
    }
}

/// Fields recorded on a span, kept in its extensions.
struct SpanFields(Map<String, Value>);

struct JsonVisitor<'a>(&'a mut Map<String, Value>);

impl Visit for JsonVisitor<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.record_str(field, &format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        // `arguments` and `result` carry JSON text; keep them as JSON in the log line.
        let parsed = matches!(field.name(), "arguments" | "result")
            .then(|| serde_json::from_str::<Value>(value).ok())
            .flatten();
        self.0.insert(
            field.name().into(),
            parsed.unwrap_or_else(|| Value::String(value.into())),
        );
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
}

impl<S> Layer<S> for JsonLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &tracing::span::Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Map::new();
        attrs.record(&mut JsonVisitor(&mut fields));
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(SpanFields(fields));
        }
    }

    fn on_record(&self, id: &Id, values: &tracing::span::Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            let mut ext = span.extensions_mut();
            if let Some(SpanFields(fields)) = ext.get_mut::<SpanFields>() {
                values.record(&mut JsonVisitor(fields));
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut line = Map::new();
        line.insert(
            "timestamp".into(),
            chrono::Utc::now()
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                .into(),
        );
        line.insert("level".into(), event.metadata().level().as_str().into());
        line.insert("service".into(), self.service.clone().into());
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(SpanFields(fields)) = span.extensions().get::<SpanFields>() {
                    line.extend(fields.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
            }
        }
        event.record(&mut JsonVisitor(&mut line));
        line.entry("target")
            .or_insert_with(|| event.metadata().target().into());
        let masked = mask_json(&Value::Object(line));
        let mut sink = self.sink.lock().unwrap_or_else(|e| e.into_inner());
        // A log line that cannot be written must not fail the tool call.
        let _ = writeln!(sink, "{masked}");
        let _ = sink.flush();
    }
}

/// Installs the JSON layer on stderr as the global subscriber. `level` is the specification's
/// `LOG_LEVEL` (ERROR, WARN, INFO, DEBUG, TRACE); `RUST_LOG`, when set, takes precedence.
pub fn init(service: &str, level: &str) {
    init_with_sink(
        service,
        level,
        Arc::new(Mutex::new(Box::new(std::io::stderr()))),
    );
}

/// As [`init`], writing the lines to `sink` (e.g. one that copies them to CloudWatch Logs too).
pub fn init_with_sink(service: &str, level: &str, sink: LogSink) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        let level = level.to_ascii_lowercase();
        EnvFilter::new(format!(
            "{level},rmcp=warn,sqlx=warn,hyper=warn,reqwest=warn,polars=warn"
        ))
    });
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(JsonLayer::new(service, sink))
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);
    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn capture(f: impl FnOnce()) -> Vec<Value> {
        let buf = Buffer::default();
        let sink: LogSink = Arc::new(Mutex::new(Box::new(buf.clone())));
        let subscriber = tracing_subscriber::registry().with(JsonLayer::new("test-svc", sink));
        tracing::subscriber::with_default(subscriber, f);
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn lines_carry_the_spec_fields_from_spans_and_events() {
        let lines = capture(|| {
            let span = tracing::info_span!(
                "tool_call",
                execution_id = "exec-1",
                issue_number = 123_u64,
                training_job_name = "train-20251227-001"
            );
            let _g = span.enter();
            tracing::info!(
                duration_ms = 1234_u64,
                status = "success",
                "Training job started"
            );
        });
        assert_eq!(lines.len(), 1);
        let l = &lines[0];
        assert_eq!(l["level"], "INFO");
        assert_eq!(l["service"], "test-svc");
        assert_eq!(l["execution_id"], "exec-1");
        assert_eq!(l["issue_number"], 123);
        assert_eq!(l["training_job_name"], "train-20251227-001");
        assert_eq!(l["message"], "Training job started");
        assert_eq!(l["duration_ms"], 1234);
        assert_eq!(l["status"], "success");
        assert!(l["timestamp"].as_str().unwrap().ends_with('Z'));
    }

    #[test]
    fn sensitive_keys_and_registered_values_are_masked() {
        register_secret("ghp_canary_value_123456");
        let args = serde_json::json!({
            "github_token": "anything",
            "nested": {"smtp_password": "pw", "note": "uses ghp_canary_value_123456 inside"},
            "list": ["ghp_canary_value_123456"],
            "dataset_uri": "datasets/x.csv"
        });
        let lines = capture(|| {
            tracing::info!(
                arguments = %mask_json(&args),
                "call failed with ghp_canary_value_123456 in the message"
            );
        });
        let text = lines[0].to_string();
        assert!(!text.contains("ghp_canary_value_123456"), "{text}");
        assert!(!text.contains("anything"), "{text}");
        assert_eq!(lines[0]["arguments"]["github_token"], "***");
        assert_eq!(lines[0]["arguments"]["nested"]["smtp_password"], "***");
        assert_eq!(lines[0]["arguments"]["nested"]["note"], "uses *** inside");
        assert_eq!(lines[0]["arguments"]["dataset_uri"], "datasets/x.csv");
        assert_eq!(lines[0]["message"], "call failed with *** in the message");
    }

    #[test]
    fn short_values_are_not_treated_as_secrets() {
        register_secret("abc");
        assert_eq!(mask_str("abc def"), "abc def");
    }
}
