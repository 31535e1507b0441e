//! The README's tool table is the one the router generates (`mlops-mcp --list-tools --markdown`),
//! so a tool added, renamed or redescribed without updating the README fails here.

mod common;

#[test]
fn readme_tool_table_is_current() {
    let home = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(common::BIN)
        .args(["--list-tools", "--markdown"])
        .env_clear()
        .env("MLOPS_HOME", home.path())
        .env("LOG_LEVEL", "WARN")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let generated = String::from_utf8(out.stdout).unwrap();
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let start = readme
        .find("<!-- tools:start -->\n")
        .expect("README has the tools:start marker")
        + 21;
    let end = readme
        .find("<!-- tools:end -->")
        .expect("README has the tools:end marker");
    assert_eq!(
        readme[start..end].trim(),
        generated.trim(),
        "the README's tool table is stale: replace it with the output of `mlops-mcp --list-tools --markdown`"
    );
}
