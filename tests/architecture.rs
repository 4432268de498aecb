//! The layout promise of docs/ARCHITECTURE.md: no module imports one that
//! imports it back. Read from the `crate::` and `super::` paths in `src/`
//! (test modules left out), resolved to the module files they name.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Module path (`render::warm`) → its file's text, without its tests.
fn modules() -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let rel = path.strip_prefix(&src).unwrap().with_extension("");
            let mut parts: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if parts.last().is_some_and(|p| p == "mod") {
                parts.pop();
            }
            if parts == ["lib"] || parts == ["main"] {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let code = match text.find("#[cfg(test)]\nmod tests") {
                Some(i) => text[..i].to_string(),
                None => text,
            };
            let code: String = code
                .lines()
                .map(|l| l.split("//").next().unwrap_or(""))
                .collect::<Vec<_>>()
                .join("\n");
            out.insert(parts.join("::"), code);
        }
    }
    out
}

/// The modules `name`'s code refers to (not its own submodules).
fn deps(name: &str, code: &str, all: &BTreeMap<String, String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let parent: Vec<&str> = name.split("::").collect();
    for (prefix, base) in [
        ("crate::", Vec::new()),
        ("super::", parent[..parent.len() - 1].to_vec()),
    ] {
        for (i, _) in code.match_indices(prefix) {
            let rest = &code[i + prefix.len()..];
            let path: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            let mut parts: Vec<&str> = base.clone();
            parts.extend(path.split("::").filter(|p| !p.is_empty()));
            while !parts.is_empty() {
                let candidate = parts.join("::");
                if all.contains_key(&candidate) {
                    if candidate != name && !candidate.starts_with(&format!("{name}::")) {
                        out.insert(candidate);
                    }
                    break;
                }
                parts.pop();
            }
        }
    }
    out
}

/// A cycle through `start`, if there is one (depth-first search).
fn cycle_from(start: &str, graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    let mut stack = vec![(start.to_string(), vec![start.to_string()])];
    let mut seen = BTreeSet::new();
    while let Some((node, path)) = stack.pop() {
        for next in &graph[&node] {
            if next == start {
                let mut cycle = path.clone();
                cycle.push(next.clone());
                return Some(cycle);
            }
            if seen.insert(next.clone()) {
                let mut p = path.clone();
                p.push(next.clone());
                stack.push((next.clone(), p));
            }
        }
    }
    None
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let all = modules();
    assert!(all.len() > 30, "read only {} modules", all.len());
    let graph: BTreeMap<String, BTreeSet<String>> = all
        .iter()
        .map(|(name, code)| (name.clone(), deps(name, code, &all)))
        .collect();
    // The reading itself works: known edges are seen.
    assert!(graph["commands::build"].contains("render::warm"));
    assert!(graph["render::warm"].contains("render::driver"));
    let cycles: Vec<String> = all
        .keys()
        .filter_map(|m| cycle_from(m, &graph))
        .map(|c| c.join(" -> "))
        .collect();
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}
