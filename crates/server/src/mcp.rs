//! The MCP face of the tool router (rmcp): `tools/list` and `tools/call` with progress
//! notifications and cancellation, results bounded in size ([`crate::bound`]), and long-running
//! tools as MCP tasks for clients that declare the tasks extension (SEP-2663). Clients without
//! tasks get the plain call (or `wait: false` and polling with `get_training_metrics`).

use std::sync::Arc;

use base64::Engine;

use mlops_core::ArtifactStore;
use mlops_core::{ToolContext, ToolError, ToolOutput, ToolRouter};

use crate::bound::bound;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, CancelTaskParams, ContentBlock,
    CreateTaskResult, GetPromptRequestParams, GetPromptResponse, GetTaskParams, GetTaskResult,
    Implementation, InitializeResult, ListPromptsResult, ListResourceTemplatesResult,
    ListResourcesResult, ListToolsResult, PaginatedRequestParams, ProgressNotificationParam,
    ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult, Resource,
    ServerCapabilities, ServerConfig, Tool, ToolAnnotations, UpdateTaskParams,
};
use rmcp::service::RequestContext;
use rmcp::task_manager::{TaskContext, TaskExit, TaskManager, TaskOptions};
use rmcp::{ErrorData, Peer, RoleServer, ServerHandler};
use tokio_util::sync::CancellationToken;

/// The name clients see in `initialize`.
pub const SERVER_NAME: &str = "unified-mlops-mcp-server";

const INSTRUCTIONS: &str = "MLOps pipeline tools. A typical run: load_dataset (learn the columns) → split_dataset (stratify by the label) → preprocess_supervised (fit on train, apply_to validation and test) → train_supervised_classifier → evaluate_classifier (on the test split) → register_model. Locations are keys under the artifact root (datasets/…, processed/…, models/…), file:// paths, or s3:// URIs.";

/// Serves a [`ToolRouter`] over MCP.
#[derive(Clone)]
pub struct McpServer {
    router: ToolRouter,
    tools: Arc<Vec<Tool>>,
    /// Where resources are read from; without it the server offers no resources.
    store: Option<ArtifactStore>,
    /// Where the training-history resources are read from.
    history: Option<Arc<dyn mlops_github::Repository>>,
    /// Long-running calls made by clients that support tasks.
    tasks: TaskManager,
}

/// How long a finished task's result stays readable, and how long a task may run: a training
/// job has its own wall-clock limit well inside this.
const TASK_TTL_MS: u64 = 24 * 60 * 60 * 1000;

impl McpServer {
    /// Serves `router`; `output_schemas` publishes each tool's output schema in `tools/list`.
    pub fn new(router: ToolRouter, output_schemas: bool) -> Self {
        let tools = router
            .list()
            .map(|(_, spec)| to_mcp_tool(spec, output_schemas))
            .collect();
        Self {
            router,
            tools: Arc::new(tools),
            store: None,
            history: None,
            tasks: TaskManager::new(),
        }
    }

    /// Offers the artifact store's model cards, evaluation reports, plots and per-row results as
    /// MCP resources (see the `surface` module).
    pub fn with_resources(mut self, store: ArtifactStore) -> Self {
        self.store = Some(store);
        self
    }

    /// Also offers the training-history files of `repository` as `mlops://history/...`.
    pub fn with_history(mut self, repository: Arc<dyn mlops_github::Repository>) -> Self {
        self.history = Some(repository);
        self
    }

    fn resource_store(&self) -> Result<&ArtifactStore, ErrorData> {
        self.store
            .as_ref()
            .ok_or_else(|| ErrorData::resource_not_found("this server offers no resources", None))
    }
}

fn to_mcp_tool(spec: &mlops_core::ToolSpec, output_schema: bool) -> Tool {
    let a = spec.annotations;
    let tool =
        Tool::new(spec.name, spec.description, spec.input_schema.clone()).with_title(spec.title);
    let tool = if output_schema {
        tool.with_raw_output_schema(spec.output_schema.clone())
    } else {
        tool
    };
    tool.with_annotations(compact_annotations(a))
}

/// The hints that differ from what the MCP specification assumes when one is absent
/// (`readOnlyHint` false, `destructiveHint` true, `idempotentHint` false, `openWorldHint` true;
/// the destructive and idempotent hints mean nothing for a read-only tool). The title is the
/// tool's own, not repeated here. Every `tools/list` carries them, for every tool.
fn compact_annotations(a: mlops_core::Annotations) -> ToolAnnotations {
    let mut hints = ToolAnnotations::new();
    if a.read_only {
        hints.read_only_hint = Some(true);
    } else {
        hints.destructive_hint = (!a.destructive).then_some(false);
        hints.idempotent_hint = a.idempotent.then_some(true);
    }
    hints.open_world_hint = (!a.open_world).then_some(false);
    hints
}

/// A tool's result as MCP content: the summary as text, the data as structured content (and as
/// JSON text for clients that read only text), and any images.
pub fn to_call_result(out: ToolOutput) -> CallToolResult {
    let mut content = vec![ContentBlock::text(out.text)];
    content.push(ContentBlock::text(out.structured.to_string()));
    for image in out.images {
        content.push(ContentBlock::image(
            base64::engine::general_purpose::STANDARD.encode(&image.data),
            image.mime_type,
        ));
    }
    if let Some(uri) = out.structured["truncated"]["full_result_uri"].as_str() {
        let mut link = Resource::new(uri, "full result");
        link.mime_type = Some("application/json".into());
        content.push(ContentBlock::resource_link(link));
    }
    let mut result = CallToolResult::success(content);
    result.structured_content = Some(out.structured);
    result
}

/// A successful call's reply: bounded in size, with links to the artifacts it names.
async fn finish(store: Option<&ArtifactStore>, tool: &str, out: ToolOutput) -> CallToolResult {
    let out = bound(store, tool, out).await;
    let links = store.map_or_else(Vec::new, |s| crate::surface::links(s, &out.structured));
    let mut result = to_call_result(out);
    result
        .content
        .extend(links.into_iter().map(ContentBlock::resource_link));
    result
}

/// A failed call as an MCP tool error the caller can read and act on.
pub fn to_error_result(e: &ToolError) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(mlops_core::logging::mask_str(
        &e.to_string(),
    ))])
}

impl ServerHandler for McpServer {
    fn get_info(&self) -> ServerConfig {
        let capabilities = ServerCapabilities::builder()
            .enable_tools()
            .enable_prompts()
            .enable_tasks();
        let capabilities = if self.store.is_some() {
            capabilities.enable_resources().build()
        } else {
            capabilities.build()
        };
        InitializeResult::new(capabilities)
            .with_server_info(Implementation::new(SERVER_NAME, env!("CARGO_PKG_VERSION")))
            .with_instructions(INSTRUCTIONS)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(self.tools.as_ref().clone()))
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        Ok(ListPromptsResult::with_all_items(crate::surface::prompts()))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        crate::surface::prompt(&request.name, request.arguments.as_ref()).map(Into::into)
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        self.resource_store()?;
        Ok(ListResourceTemplatesResult::with_all_items(
            crate::surface::templates(),
        ))
    }

    async fn list_resources(
        &self,
        request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let cursor = request.and_then(|r| r.cursor);
        let (items, next) = crate::surface::list(
            self.resource_store()?,
            self.history.as_ref(),
            cursor.as_deref(),
        )
        .await?;
        let mut page = ListResourcesResult::with_all_items(items);
        page.next_cursor = next;
        Ok(page)
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let contents =
            crate::surface::read(self.resource_store()?, self.history.as_ref(), &request.uri)
                .await?;
        Ok(ReadResourceResult::new(vec![contents]).into())
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let name = request.name.to_string();
        if self.router.get(&name).is_none() {
            // An unknown tool is a protocol error (MCP: invalid params), with a suggestion.
            let e = self
                .router
                .call(&name, serde_json::Value::Null, ToolContext::default())
                .await
                .err();
            return Err(ErrorData::invalid_params(
                e.map(|e| e.to_string())
                    .unwrap_or_else(|| format!("unknown tool `{name}`")),
                None,
            ));
        }
        let arguments = request
            .arguments
            .map(serde_json::Value::Object)
            .unwrap_or(serde_json::Value::Null);
        let progress_token = context.meta.get_progress_token();
        let as_task = self.router.get(&name).is_some_and(|t| t.long_running)
            && context
                .client_capabilities()
                .is_some_and(|c| c.supports_tasks());
        if as_task {
            let (router, store, peer) = (self.router.clone(), self.store.clone(), context.peer);
            let options = TaskOptions::new()
                .with_ttl_ms(TASK_TTL_MS)
                .with_status_message(format!("{name} started"));
            let task = self.tasks.spawn(options, move |task: TaskContext| {
                Box::pin(async move {
                    let cancel = CancellationToken::new();
                    let progress = progress_reporter(progress_token, peer, Some(task.clone()));
                    let ctx = ToolContext::new(cancel.clone(), Some(progress));
                    let call = router.call(&name, arguments, ctx);
                    tokio::pin!(call);
                    let result = tokio::select! {
                        r = &mut call => r,
                        _ = task.cancelled() => {
                            // Let the tool stop cleanly (a training job records itself cancelled).
                            cancel.cancel();
                            let _ = call.await;
                            return Err(TaskExit::Cancelled);
                        }
                    };
                    Ok(match result {
                        Ok(out) => finish(store.as_ref(), &name, out).await,
                        Err(e) => to_error_result(&e),
                    })
                })
            });
            return Ok(CallToolResponse::Task(CreateTaskResult::new(task)));
        }
        let progress =
            progress_token.map(|token| progress_reporter(Some(token), context.peer.clone(), None));
        let ctx = ToolContext::new(context.ct.clone(), progress);
        let result = match self.router.call(&name, arguments, ctx).await {
            Ok(out) => finish(self.store.as_ref(), &name, out).await,
            Err(e) => to_error_result(&e),
        };
        Ok(result.into())
    }

    async fn get_task(
        &self,
        request: GetTaskParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetTaskResult, ErrorData> {
        self.tasks
            .get_task(&request.task_id)
            .map(GetTaskResult::new)
    }

    async fn update_task(
        &self,
        request: UpdateTaskParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        // No tool asks for input mid-task; this only checks the task exists.
        self.tasks.update_task(&request.task_id, std::iter::empty())
    }

    async fn cancel_task(
        &self,
        request: CancelTaskParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.tasks.cancel_task(&request.task_id)
    }
}

/// Reports a tool's progress as MCP progress notifications (when the caller gave a progress
/// token) and, for a task, as its status message, which `tasks/get` pollers see.
fn progress_reporter(
    token: Option<rmcp::model::ProgressToken>,
    peer: Peer<RoleServer>,
    task: Option<TaskContext>,
) -> mlops_core::ProgressFn {
    // Progress may be reported from worker threads; a channel hands it to the async peer.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(f64, Option<f64>, Option<String>)>();
    tokio::spawn(async move {
        while let Some((done, total, message)) = rx.recv().await {
            if let Some(task) = &task {
                let of = total.map(|t| format!("/{t}")).unwrap_or_default();
                let text = message.clone().unwrap_or_default();
                task.set_status_message(format!("{done}{of} {text}").trim_end());
            }
            if let Some(token) = &token {
                let mut p = ProgressNotificationParam::new(token.clone(), done);
                p.total = total;
                p.message = message;
                if peer.notify_progress(p).await.is_err() && task.is_none() {
                    break;
                }
            }
        }
    });
    Arc::new(
        move |done: f64, total: Option<f64>, message: Option<String>| {
            let _ = tx.send((done, total, message));
        },
    )
}
