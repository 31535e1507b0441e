//! The MCP face of the tool router (rmcp): `tools/list` and `tools/call` with progress
//! notifications and cancellation.

use std::sync::Arc;

use base64::Engine;

use mlops_core::ArtifactStore;
use mlops_core::{ToolContext, ToolError, ToolOutput, ToolRouter};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, GetPromptRequestParams,
    GetPromptResponse, Implementation, InitializeResult, ListPromptsResult,
    ListResourceTemplatesResult, ListResourcesResult, ListToolsResult, PaginatedRequestParams,
    ProgressNotificationParam, ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult,
    ServerCapabilities, ServerConfig, Tool, ToolAnnotations,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};

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
}

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
        }
    }

    /// Offers the artifact store's model cards, evaluation reports, plots and per-row results as
    /// MCP resources (see [`crate::surface`]).
    pub fn with_resources(mut self, store: ArtifactStore) -> Self {
        self.store = Some(store);
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
    tool.with_annotations(
        ToolAnnotations::with_title(spec.title)
            .read_only(a.read_only)
            .destructive(a.destructive)
            .idempotent(a.idempotent)
            .open_world(a.open_world),
    )
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
    let mut result = CallToolResult::success(content);
    result.structured_content = Some(out.structured);
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
            .enable_prompts();
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
        let (items, next) = crate::surface::list(self.resource_store()?, cursor.as_deref()).await?;
        let mut page = ListResourcesResult::with_all_items(items);
        page.next_cursor = next;
        Ok(page)
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let contents = crate::surface::read(self.resource_store()?, &request.uri).await?;
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
        let progress = context.meta.get_progress_token().map(|token| {
            // Progress may be reported from worker threads; a channel hands it to the async peer.
            let (tx, mut rx) =
                tokio::sync::mpsc::unbounded_channel::<(f64, Option<f64>, Option<String>)>();
            let peer = context.peer.clone();
            tokio::spawn(async move {
                while let Some((done, total, message)) = rx.recv().await {
                    let mut p = ProgressNotificationParam::new(token.clone(), done);
                    p.total = total;
                    p.message = message;
                    if peer.notify_progress(p).await.is_err() {
                        break;
                    }
                }
            });
            Arc::new(
                move |done: f64, total: Option<f64>, message: Option<String>| {
                    let _ = tx.send((done, total, message));
                },
            ) as mlops_core::ProgressFn
        });
        let ctx = ToolContext::new(context.ct.clone(), progress);
        let arguments = request
            .arguments
            .map(serde_json::Value::Object)
            .unwrap_or(serde_json::Value::Null);
        let result = match self.router.call(&name, arguments, ctx).await {
            Ok(out) => to_call_result(out),
            Err(e) => to_error_result(&e),
        };
        Ok(result.into())
    }
}
