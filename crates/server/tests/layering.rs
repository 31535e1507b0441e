//! The crate layers, checked: `cargo metadata` lists every workspace crate's dependencies, and
//! each must be one the table below allows. The table is the README's Layout table.
//!
//! Foundation crates (core, db, nn, aws, data's library face, ml, request, jobs, plot) depend only on
//! foundation crates below them. Capability crates stand beside each other and depend only on
//! foundation crates: a capability never reaches into a sibling (the workflow calls sibling
//! tools through the `ToolRouter`, not their crates). The server binary on top wires them all.
//! `mlops-testkit` is for tests only.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layer {
    Foundation,
    Capability,
    Server,
    TestSupport,
}
use Layer::*;

/// Every workspace crate: its layer and the workspace crates it may depend on (normal and build
/// dependencies). Dev-dependencies may add foundation crates and `mlops-testkit`.
const CRATES: &[(&str, Layer, &[&str])] = &[
    ("mlops-core", Foundation, &[]),
    ("mlops-db", Foundation, &[]),
    ("mlops-nn", Foundation, &[]),
    ("mlops-aws", Foundation, &["mlops-core"]),
    ("mlops-data", Foundation, &["mlops-core"]),
    (
        "mlops-ml",
        Foundation,
        &["mlops-core", "mlops-data", "mlops-nn"],
    ),
    ("mlops-request", Foundation, &["mlops-core"]),
    ("mlops-plot", Foundation, &[]),
    (
        "mlops-jobs",
        Foundation,
        &["mlops-core", "mlops-db", "mlops-ml"],
    ),
    (
        "mlops-train",
        Capability,
        &[
            "mlops-core",
            "mlops-db",
            "mlops-aws",
            "mlops-data",
            "mlops-ml",
            "mlops-nn",
            "mlops-jobs",
            "mlops-plot",
        ],
    ),
    (
        "mlops-eval",
        Capability,
        &[
            "mlops-core",
            "mlops-data",
            "mlops-ml",
            "mlops-nn",
            "mlops-plot",
        ],
    ),
    (
        "mlops-registry",
        Capability,
        &["mlops-core", "mlops-db", "mlops-aws"],
    ),
    ("mlops-notify", Capability, &["mlops-core", "mlops-db"]),
    ("mlops-github", Capability, &["mlops-core", "mlops-request"]),
    (
        "mlops-serve",
        Capability,
        &[
            "mlops-core",
            "mlops-db",
            "mlops-data",
            "mlops-ml",
            "mlops-jobs",
        ],
    ),
    (
        "mlops-monitor",
        Capability,
        &["mlops-core", "mlops-db", "mlops-data", "mlops-ml"],
    ),
    (
        "mlops-workflow",
        Capability,
        &["mlops-core", "mlops-db", "mlops-request"],
    ),
    ("mlops-mcp", Server, &["*"]),
    ("mlops-testkit", TestSupport, &[]),
];

/// A workspace crate's dependencies on other workspace crates: (name, kind) with kind `normal`,
/// `dev` or `build`.
type Edges = BTreeMap<String, Vec<(String, String)>>;

fn workspace_edges() -> Edges {
    let out = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .output()
        .expect("running cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).unwrap();
    let packages = meta["packages"].as_array().unwrap();
    let members: BTreeSet<&str> = packages.iter().filter_map(|p| p["name"].as_str()).collect();
    packages
        .iter()
        .map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| members.contains(d["name"].as_str().unwrap_or_default()))
                .map(|d| {
                    let kind = d["kind"].as_str().unwrap_or("normal").to_string();
                    (d["name"].as_str().unwrap().to_string(), kind)
                })
                .collect();
            (p["name"].as_str().unwrap().to_string(), deps)
        })
        .collect()
}

/// Every way `edges` breaks the table, in words.
fn violations(edges: &Edges) -> Vec<String> {
    let layer_of = |name: &str| CRATES.iter().find(|c| c.0 == name).map(|c| c.1);
    let mut found = Vec::new();
    for (name, layer, allowed) in CRATES {
        // The table itself keeps the rule: foundations stand on foundations, capabilities on
        // foundations only.
        for a in allowed.iter().filter(|a| **a != "*") {
            let ok = match layer {
                Foundation | Capability => layer_of(a) == Some(Foundation),
                Server => true,
                TestSupport => false,
            };
            if !ok {
                found.push(format!("the table lets {name} ({layer:?}) use {a}"));
            }
        }
        if !edges.contains_key(*name) {
            found.push(format!("{name} is in the table but not in the workspace"));
        }
    }
    for (name, deps) in edges {
        let Some(&(_, layer, allowed)) = CRATES.iter().find(|c| c.0 == name) else {
            found.push(format!(
                "{name} is not in the layer table: place it in crates/server/tests/layering.rs and the README's Layout"
            ));
            continue;
        };
        // A crate may dev-depend on itself, to turn on a test feature for its own tests.
        for (dep, kind) in deps.iter().filter(|(dep, _)| dep != name) {
            let ok = match kind.as_str() {
                "dev" => {
                    layer == Server
                        || allowed.contains(&dep.as_str())
                        || matches!(layer_of(dep), Some(Foundation | TestSupport))
                }
                _ => allowed.contains(&"*") || allowed.contains(&dep.as_str()),
            };
            if !ok {
                let what = match layer_of(dep) {
                    Some(Capability) if layer == Capability => {
                        " (a capability never depends on another; call its tools through the ToolRouter, or move what both need into a foundation crate)"
                    }
                    _ => "",
                };
                found.push(format!(
                    "{name} ({layer:?}) depends on {dep} ({kind}){what}"
                ));
            }
        }
    }
    found
}

#[test]
fn every_crate_depends_only_on_what_its_layer_allows() {
    let found = violations(&workspace_edges());
    assert!(
        found.is_empty(),
        "layering broken:\n  {}",
        found.join("\n  ")
    );
}

#[test]
fn a_forbidden_edge_is_caught() {
    let mut edges = workspace_edges();
    edges
        .get_mut("mlops-eval")
        .unwrap()
        .push(("mlops-train".into(), "normal".into()));
    edges
        .get_mut("mlops-ml")
        .unwrap()
        .push(("mlops-registry".into(), "normal".into()));
    edges.insert("mlops-new".into(), Vec::new());
    let found = violations(&edges);
    assert_eq!(found.len(), 3, "{found:#?}");
    assert!(
        found
            .iter()
            .any(|f| f.starts_with("mlops-new is not in the layer table")),
        "{found:#?}"
    );
    assert!(
        found.iter().any(|f| f.starts_with("mlops-eval (Capability) depends on mlops-train (normal) (a capability never depends on another")),
        "{found:#?}"
    );
    assert!(
        found
            .iter()
            .any(|f| f.starts_with("mlops-ml (Foundation) depends on mlops-registry")),
        "{found:#?}"
    );
}

#[test]
fn the_readme_layout_table_lists_the_same_layers() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let start = readme
        .find("## Layout")
        .expect("README has a Layout section");
    let layout = &readme[start..];
    let layout = &layout[..layout[3..].find("\n## ").map_or(layout.len(), |e| e + 3)];
    for (name, layer, _) in CRATES {
        let word = match layer {
            Foundation => "foundation",
            Capability => "capability",
            Server => "server",
            TestSupport => "tests only",
        };
        let row = layout
            .lines()
            .find(|l| l.contains(&format!("(`{name}`)")))
            .unwrap_or_else(|| panic!("README's Layout has no row for `{name}`"));
        assert!(
            row.contains(word),
            "README row of {name} should say {word}: {row}"
        );
    }
}
