//! What a scene depends on, read from Python source with a real parser
//! (tree-sitter-python): the local modules it imports, transitively, and the
//! project files it names as assets. Where the source leaves it open (an
//! import or an asset path computed at run time) the result says so, and
//! the fingerprint then errs toward re-rendering.
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use tree_sitter::{Node, Parser};

use crate::error::Error;
use crate::hashcache::HashCache;

/// What one Python file says about its dependencies.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FileFacts {
    /// `(level, dotted module, imported names)`: level 0 is absolute,
    /// 1 is `from .`, 2 is `from ..`.
    pub imports: Vec<(usize, String, Vec<String>)>,
    /// Plain string literals (candidate asset paths).
    pub strings: Vec<String>,
    /// Things that could not be resolved statically, with their line.
    pub uncertain: Vec<String>,
}

/// Calls whose first argument is a file the scene reads.
const ASSET_CALLS: &[&str] = &[
    "SVGMobject",
    "ImageMobject",
    "Code",
    "open",
    "Path",
    "loadtxt",
    "genfromtxt",
    "read_csv",
    "imread",
    "VideoMobject",
];

fn text<'a>(node: Node, src: &'a [u8]) -> &'a str {
    node.utf8_text(src).unwrap_or("")
}

/// The value of a plain string literal (no interpolation), if it is one.
fn literal(node: Node, src: &[u8]) -> Option<String> {
    if node.kind() != "string" {
        return None;
    }
    let mut out = String::new();
    let mut cursor = node.walk();
    for child in node.children(&mut cursor) {
        match child.kind() {
            "string_content" => out.push_str(text(child, src)),
            "interpolation" => return None,
            _ => {}
        }
    }
    Some(out)
}

fn last_name(func: Node, src: &[u8]) -> String {
    let t = text(func, src);
    t.rsplit('.').next().unwrap_or(t).to_string()
}

/// Parses one file. Unparseable regions are skipped, not fatal: Python
/// itself reports syntax errors when the scene is loaded.
pub fn facts(source: &[u8]) -> FileFacts {
    let mut parser = Parser::new();
    let mut out = FileFacts::default();
    if parser
        .set_language(&tree_sitter_python::LANGUAGE.into())
        .is_err()
    {
        out.uncertain
            .push("the Python parser could not be loaded".into());
        return out;
    }
    let Some(tree) = parser.parse(source, None) else {
        out.uncertain.push("the file could not be parsed".into());
        return out;
    };
    let mut stack = vec![tree.root_node()];
    while let Some(node) = stack.pop() {
        let line = node.start_position().row + 1;
        match node.kind() {
            "import_statement" => {
                let mut c = node.walk();
                for n in node.children_by_field_name("name", &mut c) {
                    let module = match n.kind() {
                        "aliased_import" => n
                            .child_by_field_name("name")
                            .map(|m| text(m, source).to_string()),
                        _ => Some(text(n, source).to_string()),
                    };
                    if let Some(m) = module {
                        out.imports.push((0, m, Vec::new()));
                    }
                }
            }
            "import_from_statement" => {
                let mut level = 0;
                let mut module = String::new();
                if let Some(m) = node.child_by_field_name("module_name") {
                    if m.kind() == "relative_import" {
                        let mut c = m.walk();
                        for part in m.children(&mut c) {
                            match part.kind() {
                                "import_prefix" => level = text(part, source).len(),
                                "dotted_name" => module = text(part, source).to_string(),
                                _ => {}
                            }
                        }
                    } else {
                        module = text(m, source).to_string();
                    }
                }
                let mut names = Vec::new();
                let mut c = node.walk();
                for n in node.children_by_field_name("name", &mut c) {
                    let name = match n.kind() {
                        "aliased_import" => n.child_by_field_name("name").map(|m| text(m, source)),
                        _ => Some(text(n, source)),
                    };
                    if let Some(name) = name {
                        names.push(name.to_string());
                    }
                }
                out.imports.push((level, module, names));
            }
            "call" => {
                if let Some(func) = node.child_by_field_name("function") {
                    let name = last_name(func, source);
                    let first = node
                        .child_by_field_name("arguments")
                        .and_then(|a| a.named_child(0));
                    let is_import =
                        name == "import_module" || name == "__import__" || name == "import_file";
                    if is_import {
                        match first.and_then(|a| literal(a, source)) {
                            Some(m) => {
                                let level = m.chars().take_while(|c| *c == '.').count();
                                out.imports
                                    .push((level, m[level..].to_string(), Vec::new()));
                            }
                            None => out.uncertain.push(format!(
                                "line {line}: `{}` imports a module named at run time",
                                text(func, source)
                            )),
                        }
                    } else if ASSET_CALLS.contains(&name.as_str())
                        && let Some(arg) = first
                        && arg.kind() != "keyword_argument"
                        && literal(arg, source).is_none()
                    {
                        out.uncertain.push(format!(
                            "line {line}: `{}` reads a path built at run time",
                            text(func, source)
                        ));
                    }
                }
            }
            "string" => {
                if let Some(s) = literal(node, source)
                    && !s.is_empty()
                    && s.len() < 512
                    && !s.contains('\n')
                {
                    out.strings.push(s);
                }
                continue;
            }
            _ => {}
        }
        let mut c = node.walk();
        for child in node.children(&mut c) {
            stack.push(child);
        }
    }
    out
}

/// Folders of the project that never hold a scene's inputs.
pub fn ignored_dir(name: &str) -> bool {
    matches!(
        name,
        ".git"
            | ".venv"
            | "venv"
            | "__pycache__"
            | ".parender"
            | "media"
            | "node_modules"
            | "target"
    ) || name.starts_with('.')
}

/// Everything a scene depends on, as project-relative paths.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Closure {
    /// Local Python modules, the scene file included.
    pub modules: BTreeSet<String>,
    /// Other project files named in string literals.
    pub assets: BTreeSet<String>,
    /// Why the closure may be incomplete (then every project file counts).
    pub uncertain: Vec<String>,
}

/// Parses files once per content (keyed by their hash).
#[derive(Default)]
pub struct Analyzer {
    parsed: Mutex<HashMap<String, FileFacts>>,
}

impl Analyzer {
    fn facts_of(&self, path: &Path, hashes: &HashCache) -> Result<Option<FileFacts>, Error> {
        let Some(hash) = hashes.hash(path)? else {
            return Ok(None);
        };
        if let Ok(p) = self.parsed.lock()
            && let Some(f) = p.get(&hash)
        {
            return Ok(Some(f.clone()));
        }
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let f = facts(&bytes);
        if let Ok(mut p) = self.parsed.lock() {
            p.insert(hash, f.clone());
        }
        Ok(Some(f))
    }

    /// The local modules and assets of the scene in `scene_file` (relative to
    /// `root`), the way Python resolves imports from the scene's folder and
    /// the project root.
    pub fn closure(
        &self,
        root: &Path,
        scene_file: &str,
        hashes: &HashCache,
    ) -> Result<Closure, Error> {
        let scene_dir = root
            .join(scene_file)
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| root.to_path_buf());
        let search = [scene_dir.clone(), root.to_path_buf()];
        let mut out = Closure::default();
        let mut queue: VecDeque<PathBuf> = VecDeque::from([root.join(scene_file)]);
        let mut seen: BTreeSet<PathBuf> = BTreeSet::new();
        let rel = |p: &Path| -> Option<String> {
            let r = p.strip_prefix(root).ok()?;
            if r.components()
                .any(|c| ignored_dir(&c.as_os_str().to_string_lossy()))
            {
                return None;
            }
            Some(
                r.components()
                    .map(|c| c.as_os_str().to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/"),
            )
        };
        while let Some(file) = queue.pop_front() {
            if !seen.insert(file.clone()) {
                continue;
            }
            let Some(name) = rel(&file) else { continue };
            let Some(f) = self.facts_of(&file, hashes)? else {
                continue;
            };
            out.modules.insert(name.clone());
            for u in &f.uncertain {
                out.uncertain.push(format!("{name} {u}"));
            }
            let here = file
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| root.to_path_buf());
            for (level, module, names) in &f.imports {
                let bases: Vec<PathBuf> = if *level == 0 {
                    search.to_vec()
                } else {
                    let mut b = here.clone();
                    for _ in 1..*level {
                        b = b.parent().map(Path::to_path_buf).unwrap_or(b);
                    }
                    vec![b]
                };
                for base in bases {
                    for found in resolve(&base, module, names) {
                        queue.push_back(found);
                    }
                }
            }
            for s in &f.strings {
                for cand in [root.join(s), here.join(s)] {
                    if cand.extension().is_some_and(|e| e == "py") {
                        continue;
                    }
                    if cand.is_file()
                        && let Some(r) = rel(&cand)
                    {
                        out.assets.insert(r);
                    }
                }
            }
        }
        Ok(out)
    }
}

/// Files a module name can mean below `base`: `a/b.py`, `a/b/__init__.py`,
/// every package `__init__.py` on the way (they run on import), and
/// `from a import b` where `b` is a submodule.
fn resolve(base: &Path, module: &str, names: &[String]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dir = base.to_path_buf();
    let parts: Vec<&str> = if module.is_empty() {
        Vec::new()
    } else {
        module.split('.').collect()
    };
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        let file = dir.join(format!("{part}.py"));
        let pkg = dir.join(part);
        if last && file.is_file() {
            out.push(file);
            return out;
        }
        if pkg.join("__init__.py").is_file() {
            out.push(pkg.join("__init__.py"));
        } else if !pkg.is_dir() {
            return Vec::new();
        }
        dir = pkg;
    }
    // `dir` is a package (or `base` for `from . import x`): names may be submodules.
    for n in names {
        let f = dir.join(format!("{n}.py"));
        if f.is_file() {
            out.push(f);
        } else if dir.join(n).join("__init__.py").is_file() {
            out.push(dir.join(n).join("__init__.py"));
        }
    }
    if parts.is_empty() && dir.join("__init__.py").is_file() {
        out.push(dir.join("__init__.py"));
    }
    out
}

/// Every file of the project (for scenes whose inputs cannot be known).
pub fn all_project_files(
    root: &Path,
    skip: &[PathBuf],
) -> Result<BTreeMap<String, PathBuf>, Error> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        if skip.iter().any(|s| s == &dir) {
            continue;
        }
        let rd = std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))?;
        for e in rd.flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                if !ignored_dir(&name) {
                    stack.push(p);
                }
            } else if ft.is_file()
                && !name.ends_with(".pyc")
                && let Ok(r) = p.strip_prefix(root)
            {
                out.insert(r.to_string_lossy().replace('\\', "/"), p.clone());
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_imports_of_every_shape() {
        let src = br#"
import common, pkg.sub as ps
from helpers import (
    a,
    b,
)
from .rel import x
from .. import up
def f():
    import inner_mod
if cond:
    from cond_mod import y
import importlib
m = importlib.import_module("dyn_mod")
n = importlib.import_module(name)
"""import in_string"""
# import in_comment
"#;
        let f = facts(src);
        let mods: Vec<(usize, &str)> = f.imports.iter().map(|(l, m, _)| (*l, m.as_str())).collect();
        for want in [
            (0, "common"),
            (0, "pkg.sub"),
            (0, "helpers"),
            (1, "rel"),
            (2, ""),
            (0, "inner_mod"),
            (0, "cond_mod"),
            (0, "importlib"),
            (0, "dyn_mod"),
        ] {
            assert!(mods.contains(&want), "{want:?} missing from {mods:?}");
        }
        assert!(
            !mods
                .iter()
                .any(|(_, m)| m.contains("in_string") || m.contains("in_comment"))
        );
        let helpers = f.imports.iter().find(|(_, m, _)| m == "helpers").unwrap();
        assert_eq!(helpers.2, vec!["a", "b"]);
        assert_eq!(f.uncertain.len(), 1, "{:?}", f.uncertain);
        assert!(f.uncertain[0].contains("line 15"));
    }

    #[test]
    fn asset_strings_and_runtime_paths() {
        let f = facts(
            br#"
logo = SVGMobject("assets/logo.svg")
pic = ImageMobject(f"assets/{name}.png")
data = open(os.path.join("data", fname))
ok = Text(f"{x}")
"#,
        );
        assert!(f.strings.contains(&"assets/logo.svg".to_string()));
        assert_eq!(f.uncertain.len(), 2, "{:?}", f.uncertain);
        assert!(f.uncertain[0].contains("ImageMobject") || f.uncertain[1].contains("ImageMobject"));
    }

    #[test]
    fn closure_follows_local_modules_transitively() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        let w = |p: &str, s: &str| {
            let p = r.join(p);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, s).unwrap();
        };
        w(
            "scenes/a.py",
            "from manim import *\nimport common\nfrom pkg import tool\nfrom lib.deep import thing\n",
        );
        w(
            "scenes/common.py",
            "from colors import RED_ISH\nLOGO = 'assets/logo.svg'\n",
        );
        w("scenes/colors.py", "RED_ISH = 1\n");
        w("scenes/pkg/__init__.py", "");
        w("scenes/pkg/tool.py", "from .util import z\n");
        w("scenes/pkg/util.py", "z = open('data/table.csv')\n");
        w("lib/__init__.py", "");
        w("lib/deep.py", "thing = 1\n");
        w("scenes/unused.py", "");
        w("assets/logo.svg", "<svg/>");
        w("data/table.csv", "1,2");
        let hashes = HashCache::default();
        let c = Analyzer::default()
            .closure(r, "scenes/a.py", &hashes)
            .unwrap();
        let mods: Vec<&str> = c.modules.iter().map(String::as_str).collect();
        assert_eq!(
            mods,
            vec![
                "lib/__init__.py",
                "lib/deep.py",
                "scenes/a.py",
                "scenes/colors.py",
                "scenes/common.py",
                "scenes/pkg/__init__.py",
                "scenes/pkg/tool.py",
                "scenes/pkg/util.py",
            ]
        );
        let assets: Vec<&str> = c.assets.iter().map(String::as_str).collect();
        assert_eq!(assets, vec!["assets/logo.svg", "data/table.csv"]);
        assert!(c.uncertain.is_empty(), "{:?}", c.uncertain);
    }
}
