//! Every tool's name, description, annotations and input schema, as `tools/list` sends them,
//! against the committed snapshot `tests/snapshots/tools.json`: a schema change fails here until
//! the snapshot is updated (`UPDATE_SNAPSHOTS=1 cargo test -p mlops-mcp --test tool_schemas`), so
//! it is reviewed with the change.

mod common;

use common::Server;

const SNAPSHOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/snapshots/tools.json");

/// The most `tools/list` may weigh with every tool (compact JSON, as sent), read by a model on
/// every session. A ratchet: lower it as descriptions are cut (the goal is 45 KB), never raise it
/// without cutting elsewhere.
const TOOLS_LIST_BUDGET: usize = 95_000;

#[tokio::test]
async fn tool_schemas_match_the_snapshot() {
    let s = Server::start().await;
    let tools = s.client.list_all_tools().await.unwrap();
    let current = serde_json::to_string_pretty(&tools).unwrap() + "\n";
    let size = serde_json::to_string(&serde_json::json!({ "tools": tools }))
        .unwrap()
        .len();
    eprintln!("tools/list: {} tools, {size} bytes", tools.len());
    assert!(
        size <= TOOLS_LIST_BUDGET,
        "tools/list is {size} bytes, over its budget of {TOOLS_LIST_BUDGET}: shorten descriptions (say once what the schema already says) before adding"
    );
    if std::env::var("UPDATE_SNAPSHOTS").as_deref() == Ok("1") {
        std::fs::create_dir_all(std::path::Path::new(SNAPSHOT).parent().unwrap()).unwrap();
        std::fs::write(SNAPSHOT, &current).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(SNAPSHOT).unwrap_or_default();
    if committed != current {
        let before: Vec<serde_json::Value> = serde_json::from_str(&committed).unwrap_or_default();
        let changed: Vec<String> = tools
            .iter()
            .filter(|t| {
                let now = serde_json::to_value(t).unwrap();
                !before.contains(&now)
            })
            .map(|t| t.name.to_string())
            .collect();
        panic!(
            "tool schemas changed ({} tools differ: {changed:?}); review, then run UPDATE_SNAPSHOTS=1 cargo test -p mlops-mcp --test tool_schemas and commit tests/snapshots/tools.json",
            changed.len()
        );
    }
}

#[tokio::test]
async fn toolsets_and_read_only_mode_narrow_the_list() {
    let home = tempfile::tempdir().unwrap();
    let all = Server::connect(home.path())
        .await
        .list_all_tools()
        .await
        .unwrap();
    let data = Server::connect_with(home.path(), &[("MLOPS_TOOLSETS", "data, registry")])
        .await
        .list_all_tools()
        .await
        .unwrap();
    assert!(data.len() < all.len());
    assert!(data.iter().any(|t| t.name == "load_dataset"));
    assert!(data.iter().any(|t| t.name == "register_model"));
    assert!(!data.iter().any(|t| t.name == "train_supervised_classifier"));
    let read_only = Server::connect_with(home.path(), &[("MLOPS_READ_ONLY", "1")])
        .await
        .list_all_tools()
        .await
        .unwrap();
    assert!(!read_only.is_empty());
    assert!(read_only.iter().all(|t| {
        t.annotations
            .as_ref()
            .and_then(|a| a.read_only_hint)
            .unwrap_or(false)
    }));
    assert!(!read_only.iter().any(|t| t.name == "register_model"));
    let size = |tools: &Vec<rmcp::model::Tool>| serde_json::to_string(tools).unwrap().len();
    eprintln!(
        "tools/list: all {} tools {} bytes; data+registry {} tools {} bytes; read-only {} tools {} bytes",
        all.len(),
        size(&all),
        data.len(),
        size(&data),
        read_only.len(),
        size(&read_only)
    );
    let refused = std::process::Command::new(common::BIN)
        .arg("serve")
        .env("MLOPS_HOME", home.path())
        .env("MLOPS_TOOLSETS", "data,magic")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("unknown toolset `magic`"));
}
