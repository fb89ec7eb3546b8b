//! The layout keeps its rules: no cycle between the crate's top-level modules (so `model`
//! stays below both `app` and `ui`, `certs` below `relay`, `mqtt` below `checks`), network and
//! domain code never names egui, and the UI never owns a socket.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("src is readable").flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The file's code without comments (a doc link is not a dependency) and without its unit
/// tests (test code may borrow a fixture from anywhere, as the relay's tests use the dev CA).
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines()
        .map(|l| match l.find("//") {
            // A `//` inside a string literal ("https://…") is rare in paths; good enough.
            Some(i) if !l[..i].contains('"') => &l[..i],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Top-level module → the top-level modules its code names through `crate::`.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(&src).expect("under src");
        let first = rel.components().next().expect("a component");
        let module = first
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_owned();
        if module == "lib" || module == "main" {
            continue;
        }
        let text = code(&std::fs::read_to_string(&f).expect("readable"));
        let deps = g.entry(module.clone()).or_default();
        let mut rest = text.as_str();
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + 7..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() && name != module {
                deps.insert(name);
            }
        }
    }
    g
}

/// A cycle through `start`, if there is one.
fn cycle_from(
    g: &BTreeMap<String, BTreeSet<String>>,
    start: &str,
    at: &str,
    path: &mut Vec<String>,
) -> Option<Vec<String>> {
    for next in g.get(at).into_iter().flatten() {
        if next == start {
            let mut c = path.clone();
            c.push(start.to_owned());
            return Some(c);
        }
        if path.contains(next) {
            continue;
        }
        path.push(next.clone());
        if let Some(c) = cycle_from(g, start, next, path) {
            return Some(c);
        }
        path.pop();
    }
    None
}

#[test]
fn no_module_cycle_anywhere() {
    let g = graph();
    assert!(g.contains_key("app") && g.contains_key("model") && g.contains_key("ui"));
    let mut cycles = Vec::new();
    for m in g.keys() {
        if let Some(c) = cycle_from(&g, m, m, &mut vec![m.clone()]) {
            cycles.push(c.join(" → "));
        }
    }
    assert!(cycles.is_empty(), "module cycles:\n{}", cycles.join("\n"));
}

#[test]
fn the_model_sits_below_the_app_and_the_panels() {
    let g = graph();
    let model = &g["model"];
    for above in ["app", "ui", "cli", "bench"] {
        assert!(!model.contains(above), "model names {above}: {model:?}");
    }
    assert!(!g["ui"].contains("app"), "ui names app: {:?}", g["ui"]);
}

#[test]
fn egui_stays_in_the_ui_and_sockets_out_of_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let gui = ["app", "ui", "bench", "cli", "lib.rs", "main.rs"];
    for f in files {
        let rel = f.strip_prefix(&src).expect("under src");
        let top = rel.components().next().expect("a component");
        let top = top.as_os_str().to_string_lossy().into_owned();
        let text = code(&std::fs::read_to_string(&f).expect("readable"));
        if !gui.contains(&top.as_str()) {
            assert!(
                !text.contains("egui::") && !text.contains("use egui"),
                "{} names egui",
                rel.display()
            );
        }
        if top == "ui" {
            for socket in ["TcpStream", "TcpListener", "UdpSocket", "TcpSocket"] {
                assert!(
                    !text.contains(socket),
                    "{} owns a socket ({socket})",
                    rel.display()
                );
            }
        }
    }
}
