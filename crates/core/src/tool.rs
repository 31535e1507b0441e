//! Tools, capabilities and the router.
//!
//! A capability (Data Preparation, ML Training, ...) offers tools. Each tool has a typed input
//! (deserialized with serde, described by a JSON Schema from schemars), a typed output (returned as
//! structured content plus a readable summary), and annotations. The [`ToolRouter`] is built once at
//! start-up from every capability: a name offered twice is an error naming both capabilities. The MCP
//! server, the CLI and the workflow all call tools through the same router, so each operation has one
//! implementation.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use futures::future::BoxFuture;
use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::error::ToolError;
use crate::logging::mask_json;
use crate::words::edit_distance;

/// Hints for clients about what a tool does (MCP tool annotations).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Annotations {
    /// Only reads; never changes state.
    pub read_only: bool,
    /// May delete or overwrite existing data.
    pub destructive: bool,
    /// Calling it twice with the same input has no further effect.
    pub idempotent: bool,
    /// Reaches outside the server (network services).
    pub open_world: bool,
}

impl Annotations {
    pub const READ_ONLY: Self = Self {
        read_only: true,
        destructive: false,
        idempotent: true,
        open_world: false,
    };
    /// Writes new artifacts or records, never destroys existing ones unless asked to overwrite.
    pub const WRITES: Self = Self {
        read_only: false,
        destructive: false,
        idempotent: false,
        open_world: false,
    };
}

/// A tool as clients see it.
#[derive(Debug, Clone)]
pub struct ToolSpec {
    pub name: &'static str,
    pub title: &'static str,
    pub description: &'static str,
    pub input_schema: Arc<Map<String, Value>>,
    pub output_schema: Arc<Map<String, Value>>,
    pub annotations: Annotations,
    /// Runs long enough (training, reports over many models) that an MCP client supporting tasks
    /// gets a task handle instead of waiting on the call.
    pub long_running: bool,
}

/// An image returned by a tool (e.g. a plot).
#[derive(Debug, Clone)]
pub struct ToolImage {
    pub mime_type: String,
    pub data: bytes::Bytes,
}

/// What a tool returns: structured data, a readable summary, and optional images.
#[derive(Debug, Clone)]
pub struct ToolOutput {
    pub structured: Value,
    pub text: String,
    pub images: Vec<ToolImage>,
}

/// A typed tool result: serialized as structured content, summarized as text.
pub trait ToolResponse: Serialize + JsonSchema {
    /// A short readable summary for people and models (the structured content carries the detail).
    fn summary(&self) -> String;
    /// Images to return beside the data.
    fn images(&self) -> Vec<ToolImage> {
        Vec::new()
    }
}

/// The JSON size of one page of a paginated result: with its summary it stays well inside the
/// server's 20 KB bound on a reply, so the server never has to cut a page (which would make its
/// next offset wrong).
pub const PAGE_BYTES: usize = 12_000;

/// Cuts `items` to the longest prefix whose JSON fits in [`PAGE_BYTES`], keeping at least one item
/// so that paging always moves on. Call it before computing the next offset.
pub fn fit_page<T: Serialize>(items: &mut Vec<T>) {
    let mut used = 0;
    let fits = items
        .iter()
        .position(|item| {
            used += serde_json::to_string(item).map_or(0, |s| s.len()) + 1;
            used > PAGE_BYTES
        })
        .unwrap_or(items.len());
    items.truncate(fits.max(1));
}

/// Reports progress of a long call: (progress, total, message).
pub type ProgressFn = Arc<dyn Fn(f64, Option<f64>, Option<String>) + Send + Sync>;

/// What a running tool may use besides its input: cancellation and progress reporting.
#[derive(Clone, Default)]
pub struct ToolContext {
    pub cancel: CancellationToken,
    progress: Option<ProgressFn>,
}

impl ToolContext {
    pub fn new(cancel: CancellationToken, progress: Option<ProgressFn>) -> Self {
        Self { cancel, progress }
    }
    /// Reports progress to the caller, if it asked for progress.
    pub fn progress(&self, done: f64, total: Option<f64>, message: Option<String>) {
        if let Some(p) = &self.progress {
            p(done, total, message);
        }
    }
    /// A progress reporter that can move into a blocking thread.
    pub fn progress_fn(&self) -> Option<ProgressFn> {
        self.progress.clone()
    }
}

type Handler = Arc<
    dyn Fn(Value, ToolContext) -> BoxFuture<'static, Result<ToolOutput, ToolError>> + Send + Sync,
>;

/// A tool: its spec and its handler.
#[derive(Clone)]
pub struct ToolDef {
    pub spec: ToolSpec,
    handler: Handler,
}

impl ToolDef {
    /// Defines a typed tool. The input schema comes from `I`, the output schema from `O`; the
    /// arguments are deserialized strictly (unknown fields are errors, so typos are caught).
    pub fn new<I, O, E, F, Fut>(
        name: &'static str,
        title: &'static str,
        description: &'static str,
        annotations: Annotations,
        handler: F,
    ) -> Self
    where
        I: DeserializeOwned + JsonSchema + Send + 'static,
        O: ToolResponse + 'static,
        E: Into<ToolError>,
        F: Fn(I, ToolContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, E>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        let erased: Handler = Arc::new(move |args: Value, ctx: ToolContext| {
            let handler = handler.clone();
            Box::pin(async move {
                let input: I = serde_json::from_value(args)
                    .map_err(|e| ToolError::Validation(format!("arguments for `{name}`: {e}")))?;
                let out = handler(input, ctx).await.map_err(Into::into)?;
                let structured = serde_json::to_value(&out).map_err(|e| {
                    ToolError::Execution(format!("could not encode the result: {e}"))
                })?;
                Ok(ToolOutput {
                    text: out.summary(),
                    images: out.images(),
                    structured,
                })
            }) as BoxFuture<'static, _>
        });
        Self {
            spec: ToolSpec {
                name,
                title,
                description,
                input_schema: Arc::new(input_schema::<I>()),
                output_schema: Arc::new(schema_object::<O>()),
                annotations,
                long_running: false,
            },
            handler: erased,
        }
    }
}

impl ToolDef {
    /// Marks the tool as long-running (see [`ToolSpec::long_running`]).
    pub fn long_running(mut self) -> Self {
        self.spec.long_running = true;
        self
    }

    /// As [`ToolDef::new`], for a handler that needs shared state (a store, a registry): each call
    /// gets its own clone of `state`.
    pub fn with<S, I, O, E, F, Fut>(
        state: S,
        name: &'static str,
        title: &'static str,
        description: &'static str,
        annotations: Annotations,
        handler: F,
    ) -> Self
    where
        S: Clone + Send + Sync + 'static,
        I: DeserializeOwned + JsonSchema + Send + 'static,
        O: ToolResponse + 'static,
        E: Into<ToolError>,
        F: Fn(S, I, ToolContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, E>> + Send + 'static,
    {
        Self::new(name, title, description, annotations, move |i, ctx| {
            handler(state.clone(), i, ctx)
        })
    }
}

#[cfg(test)]
mod page_tests {
    #[test]
    fn a_page_keeps_the_items_that_fit_and_at_least_one() {
        let mut small: Vec<u32> = (0..10).collect();
        super::fit_page(&mut small);
        assert_eq!(small.len(), 10);
        let mut rows: Vec<String> = (0..100).map(|i| format!("{i:0>500}")).collect();
        super::fit_page(&mut rows);
        assert_eq!(rows.len(), super::PAGE_BYTES / 503);
        assert_eq!(
            rows[0],
            format!("{:0>500}", 0),
            "the first items are kept, in order"
        );
        let mut huge = vec!["x".repeat(50_000), "y".into()];
        super::fit_page(&mut huge);
        assert_eq!(huge.len(), 1);
    }
}

fn schema_object<T: JsonSchema>() -> Map<String, Value> {
    let schema = schemars::generate::SchemaSettings::draft2020_12()
        .into_generator()
        .into_root_schema_for::<T>();
    match serde_json::to_value(schema) {
        Ok(Value::Object(mut map)) => {
            map.remove("$schema");
            inline_root_ref(&mut map);
            // Every schema is read by a model on every `tools/list`: the Rust type's name and doc
            // comment at the root, and number formats (`uint64`, implied by `integer` and its
            // minimum), only cost context.
            map.remove("title");
            map.remove("description");
            let mut schema = Value::Object(map);
            strip_formats(&mut schema);
            match schema {
                Value::Object(map) => map,
                _ => Map::new(),
            }
        }
        _ => Map::new(),
    }
}

/// An input schema, compacted (see [`compact`]). Output schemas stay as they are: a reply may
/// hold `null` where an input may only leave a field out.
fn input_schema<T: JsonSchema>() -> Map<String, Value> {
    let mut schema = Value::Object(schema_object::<T>());
    compact(&mut schema);
    match schema {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// Says each thing once in an input schema: an optional field's type is its type (`required`
/// already says it may be left out, so `["string", "null"]` is `"string"` and an
/// `anyOf [X, null]` is X), and a `null`, empty-list or object default is dropped (an object's
/// fields carry their own defaults; every object default here is its type's `Default`).
/// Only schema keywords are followed, never the values of `default`, `enum` or `const`.
fn compact(schema: &mut Value) {
    let Value::Object(map) = schema else { return };
    let required: Vec<String> = map
        .get("required")
        .and_then(Value::as_array)
        .map(|r| {
            r.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    if matches!(map.get("default"), Some(Value::Null | Value::Object(_)))
        || map
            .get("default")
            .and_then(Value::as_array)
            .is_some_and(Vec::is_empty)
    {
        map.remove("default");
    }
    for (key, sub) in map.iter_mut() {
        match key.as_str() {
            "properties" | "$defs" => {
                if let Value::Object(named) = sub {
                    for (name, prop) in named.iter_mut() {
                        if key == "properties" && !required.contains(name) {
                            drop_null_type(prop);
                        }
                        compact(prop);
                    }
                }
            }
            "items" | "additionalProperties" | "not" => compact(sub),
            "anyOf" | "oneOf" | "allOf" | "prefixItems" => {
                if let Value::Array(options) = sub {
                    options.iter_mut().for_each(compact);
                }
            }
            _ => {}
        }
    }
}

/// `["T", "null"]` → `"T"`; `anyOf [X, {"type": "null"}]` → X (merged into the property).
fn drop_null_type(prop: &mut Value) {
    let Value::Object(map) = prop else { return };
    if let Some(Value::Array(types)) = map.get("type") {
        let kept: Vec<Value> = types.iter().filter(|t| *t != "null").cloned().collect();
        // A field that can only be null keeps its type.
        if kept.len() == 1 {
            map.insert("type".into(), kept[0].clone());
        } else if !kept.is_empty() && kept.len() < types.len() {
            map.insert("type".into(), Value::Array(kept));
        }
    }
    let single = match map.get("anyOf") {
        Some(Value::Array(options)) if options.len() == 2 => {
            let is_null = |o: &Value| o.get("type") == Some(&Value::String("null".into()));
            match (is_null(&options[0]), is_null(&options[1])) {
                (false, true) => Some(options[0].clone()),
                (true, false) => Some(options[1].clone()),
                _ => None,
            }
        }
        _ => None,
    };
    if let Some(Value::Object(inner)) = single {
        map.remove("anyOf");
        for (k, v) in inner {
            map.entry(k).or_insert(v);
        }
    }
    if let Some(Value::Array(values)) = map.get("enum") {
        let kept: Vec<Value> = values.iter().filter(|v| !v.is_null()).cloned().collect();
        if kept.len() < values.len() {
            map.insert("enum".into(), Value::Array(kept));
        }
    }
}

/// Removes the `format` keyword of numbers throughout a schema (string formats stay).
fn strip_formats(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            if matches!(map.get("format").and_then(Value::as_str), Some(f) if f.starts_with("int") || f.starts_with("uint") || f == "double" || f == "float")
            {
                map.remove("format");
            }
            for v in map.values_mut() {
                strip_formats(v);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(strip_formats),
        _ => {}
    }
}

/// A newtype's schema is a bare `$ref` to its inner type; MCP wants an object schema at the root,
/// so the referenced definition is moved up.
fn inline_root_ref(map: &mut Map<String, Value>) {
    let Some(Value::String(reference)) = map.get("$ref").cloned() else {
        return;
    };
    let Some(name) = reference.strip_prefix("#/$defs/") else {
        return;
    };
    let Some(Value::Object(defs)) = map.get_mut("$defs") else {
        return;
    };
    let Some(Value::Object(target)) = defs.remove(name) else {
        return;
    };
    let no_defs_left = defs.is_empty();
    map.remove("$ref");
    if no_defs_left {
        map.remove("$defs");
    }
    for (k, v) in target {
        map.entry(k).or_insert(v);
    }
}

/// A group of tools with one job (SPEC §2's six capabilities).
pub trait Capability: Send + Sync {
    /// Stable name, e.g. `data_preparation`.
    fn name(&self) -> &'static str;
    /// The tools it offers.
    fn tools(&self) -> Vec<ToolDef>;
}

/// A tool name offered by two capabilities.
#[derive(Debug, thiserror::Error)]
#[error("tool `{tool}` is defined by both the `{first}` and `{second}` capabilities")]
pub struct DuplicateTool {
    pub tool: String,
    pub first: &'static str,
    pub second: &'static str,
}

#[derive(Clone)]
struct Entry {
    capability: &'static str,
    tool: ToolDef,
}

/// Short names accepted for the capabilities in a toolset list.
const TOOLSET_ALIASES: &[(&str, &str)] = &[
    ("data", "data_preparation"),
    ("train", "ml_training"),
    ("eval", "ml_evaluation"),
    ("registry", "model_registry"),
    ("notify", "notification"),
    ("github", "github_integration"),
    ("workflow", "workflow"),
    ("serve", "serving"),
    ("monitor", "monitoring"),
    ("tune", "tuning"),
];

/// Maps each tool name to its capability and calls it. Built once; cheap to share.
#[derive(Clone)]
pub struct ToolRouter {
    tools: Arc<BTreeMap<&'static str, Entry>>,
    order: Arc<Vec<&'static str>>,
    /// Shared by every restricted view of the same router.
    metrics: Arc<crate::metrics::ToolMetrics>,
}

impl ToolRouter {
    /// Builds the router; fails on a name that two capabilities both offer.
    pub fn new(capabilities: &[Arc<dyn Capability>]) -> Result<Self, DuplicateTool> {
        let mut tools = BTreeMap::new();
        let mut order = Vec::new();
        for cap in capabilities {
            for tool in cap.tools() {
                let name = tool.spec.name;
                if let Some(existing) = tools.get(name) {
                    let existing: &Entry = existing;
                    return Err(DuplicateTool {
                        tool: name.into(),
                        first: existing.capability,
                        second: cap.name(),
                    });
                }
                order.push(name);
                tools.insert(
                    name,
                    Entry {
                        capability: cap.name(),
                        tool,
                    },
                );
            }
        }
        Ok(Self {
            tools: Arc::new(tools),
            order: Arc::new(order),
            metrics: Arc::default(),
        })
    }

    /// Call counts and latencies of every tool, for `/metrics`.
    pub fn metrics(&self) -> &crate::metrics::ToolMetrics {
        &self.metrics
    }

    /// The tools clients may see: only the capabilities in `toolsets` (names or their short forms
    /// data, train, eval, registry, notify, github, workflow), and only read-only tools when
    /// `read_only`. The server keeps the full router for its own use (the workflow).
    pub fn restricted(&self, toolsets: Option<&[String]>, read_only: bool) -> Result<Self, String> {
        let known: Vec<&str> = {
            let mut k: Vec<&str> = self.tools.values().map(|e| e.capability).collect();
            k.sort_unstable();
            k.dedup();
            k
        };
        let wanted: Option<Vec<&str>> = match toolsets {
            None => None,
            Some(names) => Some(
                names
                    .iter()
                    .map(|n| {
                        let n = n.trim();
                        let full = TOOLSET_ALIASES
                            .iter()
                            .find(|(short, _)| *short == n)
                            .map_or(n, |(_, full)| *full);
                        known.iter().copied().find(|k| *k == full).ok_or_else(|| {
                            format!(
                                "unknown toolset `{n}`; toolsets are {} (or {})",
                                known.join(", "),
                                TOOLSET_ALIASES
                                    .iter()
                                    .map(|(s, _)| *s)
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            )
                        })
                    })
                    .collect::<Result<_, _>>()?,
            ),
        };
        let keep = |e: &Entry| {
            wanted.as_ref().is_none_or(|w| w.contains(&e.capability))
                && (!read_only || e.tool.spec.annotations.read_only)
        };
        let tools: BTreeMap<&'static str, Entry> = self
            .tools
            .iter()
            .filter(|(_, e)| keep(e))
            .map(|(n, e)| (*n, e.clone()))
            .collect();
        let order = self
            .order
            .iter()
            .copied()
            .filter(|n| tools.contains_key(n))
            .collect();
        Ok(Self {
            tools: Arc::new(tools),
            order: Arc::new(order),
            metrics: self.metrics.clone(),
        })
    }

    /// Every tool with its capability, in registration order.
    pub fn list(&self) -> impl Iterator<Item = (&'static str, &ToolSpec)> + '_ {
        self.order.iter().map(|n| {
            let e = &self.tools[n];
            (e.capability, &e.tool.spec)
        })
    }

    pub fn get(&self, name: &str) -> Option<&ToolSpec> {
        self.tools.get(name).map(|e| &e.tool.spec)
    }

    /// Calls a tool by name. Logs the call (arguments masked), its duration and outcome.
    /// As [`ToolRouter::call`], without the log lines and the metrics: for a server's own
    /// frequent background reads (serving follows the registry twice a second), which would
    /// otherwise drown the calls people and agents make.
    pub async fn call_quietly(
        &self,
        name: &str,
        arguments: Value,
        ctx: ToolContext,
    ) -> Result<ToolOutput, ToolError> {
        let Some(entry) = self.tools.get(name) else {
            return Err(ToolError::NotFound {
                name: name.into(),
                suggestion: self.closest(name),
            });
        };
        (entry.tool.handler)(arguments, ctx).await
    }

    pub async fn call(
        &self,
        name: &str,
        arguments: Value,
        ctx: ToolContext,
    ) -> Result<ToolOutput, ToolError> {
        let Some(entry) = self.tools.get(name) else {
            return Err(ToolError::NotFound {
                name: name.into(),
                suggestion: self.closest(name),
            });
        };
        let arguments = match arguments {
            Value::Null => Value::Object(Map::new()),
            v => v,
        };
        let span = tracing::info_span!("tool_call", tool = name, capability = entry.capability);
        let started = Instant::now();
        let handler = entry.tool.handler.clone();
        async move {
            tracing::info!(arguments = %mask_json(&arguments), "tool call started");
            let result = handler(arguments, ctx).await;
            let took = started.elapsed();
            let duration_ms = took.as_millis() as u64;
            match &result {
                Ok(_) => tracing::info!(duration_ms, status = "success", "tool call succeeded"),
                Err(e) => tracing::warn!(duration_ms, status = "error", error_kind = e.kind(), error = %e, "tool call failed"),
            }
            let outcome = result.as_ref().map_or_else(ToolError::kind, |_| "success");
            self.metrics.record(name, outcome, took);
            result
        }
        .instrument(span)
        .await
    }

    /// The registered name closest to `name`, when one is close enough to be a likely typo.
    fn closest(&self, name: &str) -> Option<String> {
        self.order
            .iter()
            .map(|t| (edit_distance(name, t), *t))
            .filter(|(d, t)| *d <= 3.max(t.len() / 4))
            .min()
            .map(|(_, t)| t.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    struct EchoIn {
        /// Text to echo.
        text: String,
    }
    #[derive(Serialize, JsonSchema)]
    struct EchoOut {
        text: String,
    }
    impl ToolResponse for EchoOut {
        fn summary(&self) -> String {
            self.text.clone()
        }
    }

    struct Cap(&'static str, &'static str);
    impl Capability for Cap {
        fn name(&self) -> &'static str {
            self.0
        }
        fn tools(&self) -> Vec<ToolDef> {
            vec![ToolDef::new(
                self.1,
                "Echo",
                "Echoes text.",
                Annotations::READ_ONLY,
                |i: EchoIn, _ctx| async move { Ok::<_, ToolError>(EchoOut { text: i.text }) },
            )]
        }
    }

    #[tokio::test]
    async fn routes_by_name_with_typed_input_and_schema() {
        let router = ToolRouter::new(&[Arc::new(Cap("a", "echo")) as Arc<dyn Capability>]).unwrap();
        let spec = router.get("echo").unwrap();
        assert_eq!(spec.input_schema["required"], serde_json::json!(["text"]));
        assert_eq!(
            spec.input_schema["properties"]["text"]["description"],
            "Text to echo."
        );
        let echo = |arguments| router.call("echo", arguments, ToolContext::default());
        let out = echo(serde_json::json!({"text": "hi"})).await.unwrap();
        assert_eq!(out.structured["text"], "hi");
        assert_eq!(out.text, "hi");
        let err = echo(serde_json::json!({"txt": "hi"})).await.unwrap_err();
        assert!(
            matches!(err, ToolError::Validation(_)) && err.to_string().contains("txt"),
            "{err}"
        );
    }

    #[test]
    fn input_schemas_say_each_thing_once_and_output_schemas_keep_null() {
        #[derive(Default, Serialize, serde::Deserialize, JsonSchema)]
        struct Options {
            #[serde(default)]
            verbose: bool,
        }
        #[derive(Serialize, serde::Deserialize, JsonSchema)]
        #[allow(dead_code)]
        struct Input {
            name: String,
            /// How many.
            count: Option<u32>,
            #[serde(default)]
            options: Options,
            tags: Option<Vec<String>>,
            #[serde(default = "nothing")]
            default: Option<Options>,
        }
        fn nothing() -> Option<Options> {
            None
        }
        let s = Value::Object(input_schema::<Input>());
        let p = &s["properties"];
        assert_eq!(p["count"]["type"], "integer", "{s}");
        assert_eq!(p["count"]["description"], "How many.");
        assert_eq!(p["tags"]["type"], "array");
        assert_eq!(p["name"]["type"], "string");
        assert!(p["options"].get("default").is_none(), "{s}");
        assert!(
            p.get("default").is_some(),
            "a field named `default` stays: {s}"
        );
        assert_eq!(s["required"], serde_json::json!(["name"]));
        let out = Value::Object(schema_object::<Input>());
        assert_eq!(
            out["properties"]["count"]["type"],
            serde_json::json!(["integer", "null"]),
            "outputs may be null: {out}"
        );
    }

    #[test]
    fn newtype_outputs_get_an_object_schema_at_the_root() {
        #[derive(Serialize, JsonSchema)]
        struct Inner {
            a: u32,
        }
        #[derive(Serialize, JsonSchema)]
        #[serde(transparent)]
        struct Outer(Inner);
        let s = schema_object::<Outer>();
        assert_eq!(s["type"], "object", "{s:?}");
        assert!(s["properties"]["a"].is_object());
    }

    #[tokio::test]
    async fn unknown_tool_suggests_the_closest_name() {
        let router =
            ToolRouter::new(&[Arc::new(Cap("a", "load_dataset")) as Arc<dyn Capability>]).unwrap();
        let err = router
            .call("load_datset", Value::Null, ToolContext::default())
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown tool `load_datset`; did you mean `load_dataset`?"
        );
        let err = router
            .call("frobnicate", Value::Null, ToolContext::default())
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "unknown tool `frobnicate`");
    }

    #[test]
    fn duplicate_names_fail_naming_both_capabilities() {
        let caps: Vec<Arc<dyn Capability>> = vec![
            Arc::new(Cap("data_preparation", "x")),
            Arc::new(Cap("ml_training", "x")),
        ];
        let err = ToolRouter::new(&caps).err().unwrap().to_string();
        assert_eq!(
            err,
            "tool `x` is defined by both the `data_preparation` and `ml_training` capabilities"
        );
    }
}
