//! The shape of the code, checked: imports point one way through the
//! library's layers, no source file outgrows one idea, and the README's
//! layout table names every module.
//!
//! Layers, from the top down (a module may use the ones below it, never one
//! above; data flows the other way): `report` → `detect` → `pipeline` →
//! `stats` → `source` → `decode`, with payload inspection (`inspect`) and the
//! helpers nothing depends on (`services`, `hint`, `output`) at the bottom.
//! The binary's own modules (`app`, `cli`) sit above the library.
mod support;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use support::root;

/// The library's top-level modules, lowest first: each may use only those
/// before it in this list.
const LIBRARY: &[&str] = &[
    "services", "hint", "output", "inspect", "decode", "source", "stats", "pipeline", "detect",
    "report",
];
/// The same for the binary's modules (`crate::` there means the binary).
const BINARY: &[&str] = &["cli", "app"];
/// Modules that may use each other although neither is above the other.
const SIDE_BY_SIDE: &[[&str; 2]] = &[
    ["services", "hint"],
    ["services", "output"],
    ["hint", "output"],
];

/// Lines of code a source file may have before its tests.
const MOST_LINES: usize = 600;

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let p = e.expect("a folder entry").path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The top-level module a file of `src/` belongs to (`None` for the crate
/// roots).
fn module_of(file: &Path) -> Option<String> {
    let rel = file.strip_prefix(root().join("src")).expect("under src");
    let first = rel.components().next()?.as_os_str().to_string_lossy();
    match first.strip_suffix(".rs") {
        Some("lib" | "main") => None,
        Some(m) => Some(m.to_string()),
        None => Some(first.to_string()),
    }
}

/// The code of a file without its comments (doc links are not imports).
fn code(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) if !l[..i].contains('"') => &l[..i],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level modules `crate::` paths in `code` name, `use crate::{a, b}`
/// groups included.
fn crate_modules(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // The first segment of each path in the group, at depth one.
            let (mut depth, mut start) = (0, 0);
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        out.push(first_segment(&group[start..j]));
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        out.push(first_segment(&group[start..j]));
                        start = j + 1;
                    }
                    _ => {}
                }
            }
        } else {
            out.push(first_segment(rest));
        }
    }
    out.retain(|m| !m.is_empty() && m != "self");
    out
}

fn first_segment(path: &str) -> String {
    path.trim_start()
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

/// Whether module `from`, in `order` (lowest first), may use module `to`.
fn may_use(order: &[&str], from: &str, to: &str) -> bool {
    let rank = |m: &str| order.iter().position(|x| *x == m);
    if from == to
        || SIDE_BY_SIDE
            .iter()
            .any(|p| p.contains(&from) && p.contains(&to))
    {
        return true;
    }
    match (rank(from), rank(to)) {
        (Some(f), Some(t)) => t < f,
        _ => false,
    }
}

#[test]
fn imports_point_down_the_layers() {
    let mut wrong = Vec::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for file in rust_files(&root().join("src")) {
        let Some(module) = module_of(&file) else {
            continue;
        };
        let order = if BINARY.contains(&module.as_str()) {
            BINARY
        } else {
            LIBRARY
        };
        assert!(
            order.contains(&module.as_str()),
            "{}: module `{module}` has no place in the layers (tests/architecture.rs)",
            file.display()
        );
        let text = std::fs::read_to_string(&file).expect("readable source");
        for used in crate_modules(&code(&text)) {
            *seen.entry(format!("{module} -> {used}")).or_default() += 1;
            if !may_use(order, &module, &used) {
                wrong.push(format!(
                    "{}: `{module}` uses `crate::{used}`, which is above it",
                    file.display()
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // The check sees real imports (so an empty scan cannot pass).
    for edge in ["pipeline -> stats", "report -> detect", "stats -> inspect"] {
        assert!(
            seen.contains_key(edge),
            "no `{edge}` import found: {seen:?}"
        );
    }
}

#[test]
fn the_layer_check_catches_an_import_from_above() {
    let uses = crate_modules(&code(
        "use crate::{decode::Addr, report::time};\n// crate::app in a comment\nlet x = crate::detect::sort;",
    ));
    assert_eq!(uses, ["decode", "report", "detect"]);
    assert!(may_use(LIBRARY, "stats", "decode"));
    assert!(!may_use(LIBRARY, "stats", "report"));
    assert!(!may_use(LIBRARY, "inspect", "stats"));
    assert!(!may_use(BINARY, "cli", "app"));
}

#[test]
fn no_source_file_outgrows_one_idea() {
    let mut long = Vec::new();
    for dir in ["src", "synth/src"] {
        for file in rust_files(&root().join(dir)) {
            let text = std::fs::read_to_string(&file).expect("readable source");
            let lines = text
                .lines()
                .take_while(|l| !l.starts_with("#[cfg(test)]"))
                .count();
            if lines > MOST_LINES && !file.ends_with("tests.rs") {
                long.push(format!(
                    "{}: {lines} lines before its tests",
                    file.display()
                ));
            }
        }
    }
    assert!(
        long.is_empty(),
        "files over {MOST_LINES} lines: split them by idea\n{}",
        long.join("\n")
    );
}

#[test]
fn the_readme_layout_names_every_module() {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let mut missing = Vec::new();
    for m in LIBRARY.iter().chain(BINARY) {
        let dir = format!("`src/{m}/`");
        let file = format!("`src/{m}.rs`");
        if !readme.contains(&dir) && !readme.contains(&file) {
            missing.push(*m);
        }
    }
    assert!(
        missing.is_empty(),
        "README.md's layout table does not name: {missing:?}"
    );
}

/// `rust-version = "X.Y"` from the workspace manifest.
fn rust_version() -> (u32, u32) {
    let manifest = std::fs::read_to_string(root().join("Cargo.toml")).expect("Cargo.toml");
    let line = manifest
        .lines()
        .find(|l| l.starts_with("rust-version = \""))
        .expect("a rust-version in Cargo.toml");
    parse_version(line.split('"').nth(1).expect("quoted"))
}

fn parse_version(v: &str) -> (u32, u32) {
    let mut parts = v.split('.').map(|p| p.parse::<u32>().expect("a number"));
    (parts.next().expect("major"), parts.next().unwrap_or(0))
}

/// The highest `rust-version` among the locked dependencies built for this
/// machine (`cargo metadata`, which reads Cargo.lock and the sources already
/// fetched), with the package that states it.
fn locked_dependencies_need() -> ((u32, u32), String) {
    let host = std::process::Command::new("rustc")
        .arg("-vV")
        .output()
        .expect("rustc");
    let host = String::from_utf8_lossy(&host.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
        .expect("rustc -vV names the host");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let o = std::process::Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked", "--offline"])
        .args(["--filter-platform", &host])
        .current_dir(root())
        .output()
        .expect("cargo metadata");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let m: serde_json::Value = serde_json::from_slice(&o.stdout).expect("metadata JSON");
    m["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .filter(|p| !p["source"].is_null())
        .filter_map(|p| {
            let v = p["rust_version"].as_str()?;
            Some((parse_version(v), format!("{} {}", p["name"], p["version"])))
        })
        .max()
        .expect("some dependency states a rust-version")
}

#[test]
fn one_rust_version_true_for_the_locked_dependencies() {
    let (major, minor) = rust_version();
    let stated = format!("{major}.{minor}");
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    assert!(
        readme.contains(&format!("Rust {stated} or newer")),
        "README.md does not say `Rust {stated} or newer` (Cargo.toml's rust-version)"
    );
    let setup = std::fs::read_to_string(root().join("scripts/setup-debian.sh")).expect("setup");
    assert!(
        setup.contains("rust-version"),
        "scripts/setup-debian.sh does not check the Rust version against Cargo.toml"
    );
    let (need, who) = locked_dependencies_need();
    assert!(
        need <= (major, minor),
        "{who} needs Rust {}.{}, above Cargo.toml's rust-version {stated}",
        need.0,
        need.1
    );
}
