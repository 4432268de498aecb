//! What a scene depends on, read from Python source with a real parser
//! (tree-sitter-python): the local modules it imports, transitively, and the
//! project files it names as assets. Where the source leaves it open (an
//! import or an asset path computed at run time) the result says so, and
//! the fingerprint then errs toward re-rendering.
//!
//! It also notes what makes a scene's frames differ between two renders of
//! the same inputs: reading the clock, and drawing random numbers without a
//! seed (which parender's render driver seeds per scene, see
//! `python/render_driver.py`).
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use tree_sitter::{Node, Parser};

use crate::analyze::hashcache::HashCache;
use crate::error::Error;

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
    /// Calls that read the clock or draw random numbers, by line.
    pub effects: Vec<Effect>,
    /// The seeds this file sets (`random.seed(n)`, `np.random.seed(n)`,
    /// Manim's `random_seed=`/`config.seed`).
    pub seeds: Seeds,
}

/// What a call makes depend on something other than the scene's inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum EffectKind {
    /// `time.time()`, `datetime.now()`, ...: differs on every render.
    Clock,
    /// `os.urandom`, `uuid.uuid4`, `secrets`, `random.SystemRandom`, a
    /// generator made without a seed: no seed set from outside fixes it.
    Entropy,
    /// The `random` module's shared generator (also Manim's `random_color`).
    Random,
    /// `numpy.random`'s shared generator.
    Numpy,
    /// `numpy.random.default_rng()` without a seed.
    NumpyGenerator,
}

/// One call with an [`EffectKind`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Effect {
    pub line: usize,
    pub kind: EffectKind,
    /// The call as written, e.g. `np.random.uniform`.
    pub call: String,
}

/// Which shared generators a file seeds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Seeds {
    pub random: bool,
    pub numpy: bool,
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

fn last_name<'a>(func: Node, src: &'a [u8]) -> &'a str {
    let t = text(func, src);
    t.rsplit('.').next().unwrap_or(t)
}

/// A called expression as shown in a message: short, on one line (a call
/// chain can be as long as the file).
fn shown(func: Node, src: &[u8]) -> String {
    let mut chars = text(func, src).chars().filter(|c| !c.is_whitespace());
    let mut out: String = chars.by_ref().take(80).collect();
    if chars.next().is_some() {
        out.push('…');
    }
    out
}

/// Longest called name worth classifying (`numpy.random.default_rng`).
const MAX_CALL_NAME: usize = 200;

/// A call seen while parsing, classified once the file's imports are known.
struct Call {
    line: usize,
    func: String,
    args: usize,
}

/// The dotted name a plain `a.b.c` refers to, through the file's imports
/// (`import numpy as np`, `from numpy import random as npr`,
/// `from random import uniform`). `None` unless it is a plain dotted name.
fn canonical(func: &str, aliases: &HashMap<String, String>) -> Option<String> {
    let plain: String = func.chars().filter(|c| !c.is_whitespace()).collect();
    let ok = !plain.is_empty()
        && plain
            .split('.')
            .all(|p| !p.is_empty() && p.chars().all(|c| c == '_' || c.is_alphanumeric()));
    if !ok {
        return None;
    }
    let (head, rest) = match plain.split_once('.') {
        Some((h, r)) => (h, Some(r)),
        None => (plain.as_str(), None),
    };
    let head = match aliases.get(head) {
        Some(full) => full.clone(),
        // `from manim import *` brings numpy in as `np`.
        None if head == "np" => "numpy".into(),
        None => head.to_string(),
    };
    Some(match rest {
        Some(r) => format!("{head}.{r}"),
        None => head,
    })
}

/// Functions of `random` that draw from its shared generator.
const RANDOM_FNS: &[&str] = &[
    "random",
    "uniform",
    "randint",
    "randrange",
    "choice",
    "choices",
    "shuffle",
    "sample",
    "gauss",
    "normalvariate",
    "lognormvariate",
    "expovariate",
    "vonmisesvariate",
    "gammavariate",
    "betavariate",
    "paretovariate",
    "weibullvariate",
    "triangular",
    "binomialvariate",
    "getrandbits",
    "randbytes",
];

/// Names in `numpy.random` that do not draw from its shared generator.
const NUMPY_NOT_DRAWS: &[&str] = &[
    "seed",
    "get_state",
    "set_state",
    "default_rng",
    "Generator",
    "RandomState",
    "SeedSequence",
    "BitGenerator",
    "PCG64",
    "PCG64DXSM",
    "MT19937",
    "Philox",
    "SFC64",
];

/// Calls that read the clock whatever their arguments.
const CLOCK_ALWAYS: &[&str] = &[
    "time.time",
    "time.time_ns",
    "datetime.datetime.now",
    "datetime.datetime.today",
    "datetime.datetime.utcnow",
    "datetime.date.today",
    // `from datetime import *`, or names the imports did not tell.
    "datetime.now",
    "datetime.today",
    "datetime.utcnow",
    "date.today",
];

/// Calls that read the clock when called without a time to convert.
const CLOCK_NO_ARGS: &[&str] = &[
    "time.localtime",
    "time.gmtime",
    "time.ctime",
    "time.asctime",
];

fn classify(call: &Call, name: &str, seeds: &mut Seeds) -> Option<EffectKind> {
    let (module, func) = name.rsplit_once('.').unwrap_or(("", name));
    let args = call.args;
    match (module, func) {
        ("random", "seed") => {
            // `random.seed()` seeds from the OS: that is no seed.
            seeds.random |= args > 0;
            None
        }
        ("numpy.random", "seed") => {
            seeds.numpy |= args > 0;
            None
        }
        ("random", f) if RANDOM_FNS.contains(&f) => Some(EffectKind::Random),
        ("random", "SystemRandom") => Some(EffectKind::Entropy),
        ("random", "Random") if args == 0 => Some(EffectKind::Entropy),
        ("numpy.random", "default_rng") if args == 0 => Some(EffectKind::NumpyGenerator),
        ("numpy.random", "RandomState" | "SeedSequence" | "PCG64" | "MT19937") if args == 0 => {
            Some(EffectKind::Entropy)
        }
        ("numpy.random", f) if !NUMPY_NOT_DRAWS.contains(&f) => Some(EffectKind::Numpy),
        ("os", "urandom" | "getrandom") | ("uuid", "uuid1" | "uuid4") => Some(EffectKind::Entropy),
        ("secrets", _) => Some(EffectKind::Entropy),
        ("" | "manim", "random_color" | "random_bright_color") => Some(EffectKind::Random),
        ("" | "manim", "RandomColorGenerator") if args == 0 => Some(EffectKind::Random),
        _ if CLOCK_ALWAYS.contains(&name) => Some(EffectKind::Clock),
        _ if args == 0 && CLOCK_NO_ARGS.contains(&name) => Some(EffectKind::Clock),
        _ => None,
    }
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
    let mut aliases: HashMap<String, String> = HashMap::new();
    let mut calls: Vec<Call> = Vec::new();
    let mut stack = vec![tree.root_node()];
    while let Some(node) = stack.pop() {
        let line = node.start_position().row + 1;
        match node.kind() {
            "import_statement" => {
                let mut c = node.walk();
                for n in node.children_by_field_name("name", &mut c) {
                    let module = match n.kind() {
                        "aliased_import" => n.child_by_field_name("name").map(|m| {
                            let m = text(m, source).to_string();
                            if let Some(a) = n.child_by_field_name("alias") {
                                aliases.insert(text(a, source).to_string(), m.clone());
                            }
                            m
                        }),
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
                    let (name, alias) = match n.kind() {
                        "aliased_import" => (
                            n.child_by_field_name("name").map(|m| text(m, source)),
                            n.child_by_field_name("alias").map(|a| text(a, source)),
                        ),
                        _ => (Some(text(n, source)), None),
                    };
                    if let Some(name) = name {
                        if level == 0 && !module.is_empty() {
                            let bound = alias.unwrap_or(name).to_string();
                            aliases.insert(bound, format!("{module}.{name}"));
                        }
                        names.push(name.to_string());
                    }
                }
                out.imports.push((level, module, names));
            }
            "call" => {
                if let Some(func) = node.child_by_field_name("function") {
                    let name = last_name(func, source);
                    let arguments = node.child_by_field_name("arguments");
                    let mut args = 0;
                    if let Some(a) = arguments {
                        let mut c = a.walk();
                        for arg in a.named_children(&mut c) {
                            if arg.kind() == "comment" {
                                continue;
                            }
                            args += 1;
                            // Manim's `Scene(random_seed=n)` seeds both generators.
                            if arg.kind() == "keyword_argument"
                                && arg
                                    .child_by_field_name("name")
                                    .is_some_and(|k| text(k, source) == "random_seed")
                            {
                                out.seeds.random = true;
                                out.seeds.numpy = true;
                            }
                        }
                    }
                    let written = text(func, source);
                    if written.len() <= MAX_CALL_NAME
                        && matches!(func.kind(), "identifier" | "attribute")
                    {
                        calls.push(Call {
                            line,
                            func: written.to_string(),
                            args,
                        });
                    }
                    let first = arguments.and_then(|a| a.named_child(0));
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
                                shown(func, source)
                            )),
                        }
                    } else if ASSET_CALLS.contains(&name)
                        && let Some(arg) = first
                        && arg.kind() != "keyword_argument"
                        && literal(arg, source).is_none()
                    {
                        out.uncertain.push(format!(
                            "line {line}: `{}` reads a path built at run time",
                            shown(func, source)
                        ));
                    }
                }
            }
            "assignment" | "augmented_assignment" => {
                // `config.seed = n` / `config["seed"] = n`: Manim seeds both.
                if let Some(left) = node.child_by_field_name("left")
                    && left.byte_range().len() < 64
                {
                    let t: String = text(left, source)
                        .chars()
                        .filter(|c| !c.is_whitespace())
                        .collect();
                    if t == "config.seed" || t == "config[\"seed\"]" || t == "config['seed']" {
                        out.seeds.random = true;
                        out.seeds.numpy = true;
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
    for call in &calls {
        if let Some(name) = canonical(&call.func, &aliases)
            && let Some(kind) = classify(call, &name, &mut out.seeds)
        {
            out.effects.push(Effect {
                line: call.line,
                kind,
                call: call.func.chars().filter(|c| !c.is_whitespace()).collect(),
            });
        }
    }
    out.effects.sort();
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
    /// What can make two renders of the same inputs differ (the clock,
    /// randomness), one note per file and kind, for `--explain`.
    pub notes: Vec<String>,
}

/// The `--explain` notes for the effects of a closure's files, given the
/// seeds set anywhere in it.
fn notes(files: &[(String, Vec<Effect>)], seeds: Seeds) -> Vec<String> {
    let mut out = Vec::new();
    for (name, effects) in files {
        let mut kinds: Vec<EffectKind> = effects
            .iter()
            .map(|e| e.kind)
            .filter(|k| match k {
                EffectKind::Random => !seeds.random,
                EffectKind::Numpy => !seeds.numpy,
                _ => true,
            })
            .collect();
        kinds.sort();
        kinds.dedup();
        // In the order they appear in the file.
        kinds.sort_by_key(|k| effects.iter().find(|e| e.kind == *k).map(|e| e.line));
        for kind in kinds {
            let of_kind: Vec<&Effect> = effects.iter().filter(|e| e.kind == kind).collect();
            let Some(first) = of_kind.first() else {
                continue;
            };
            let more = match of_kind.len() - 1 {
                0 => String::new(),
                1 => " (and 1 more call)".into(),
                n => format!(" (and {n} more calls)"),
            };
            let what = match kind {
                EffectKind::Clock => {
                    "reads the clock: its frames can differ from one render to the next".into()
                }
                EffectKind::Entropy => "draws random numbers that no seed fixes: its frames can \
                    differ from one render to the next"
                    .into(),
                EffectKind::Random | EffectKind::Numpy | EffectKind::NumpyGenerator => {
                    let generator = match kind {
                        EffectKind::Random => "`random`",
                        EffectKind::Numpy => "`numpy.random`",
                        _ => "`numpy.random.default_rng()`",
                    };
                    format!(
                        "draws random numbers without a seed: parender seeds {generator} from \
                         the scene's name, so its renders repeat"
                    )
                }
            };
            out.push(format!(
                "{name} line {}: `{}`{more} {what}",
                first.line, first.call
            ));
        }
    }
    out
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
        let mut effects: Vec<(String, Vec<Effect>)> = Vec::new();
        let mut seeds = Seeds::default();
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
            seeds.random |= f.seeds.random;
            seeds.numpy |= f.seeds.numpy;
            if !f.effects.is_empty() {
                effects.push((name.clone(), f.effects.clone()));
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
        out.notes = notes(&effects, seeds);
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

    /// Writes `text` to `rel` below `root`, making its folders.
    fn write(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

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

    fn kinds(src: &[u8]) -> Vec<(usize, EffectKind, String)> {
        facts(src)
            .effects
            .into_iter()
            .map(|e| (e.line, e.kind, e.call))
            .collect()
    }

    #[test]
    fn finds_clock_and_randomness() {
        use EffectKind::*;
        let got = kinds(
            br#"import time, random as rnd, numpy.random as npr
from datetime import datetime
from numpy.random import uniform as U
import os, uuid
t = time.time()
d = datetime.now()
a = rnd.uniform(0, 1)
b = np.random.normal()
c = npr.rand(3)
e = U(0, 1)
g = np.random.default_rng()
h = np.random.default_rng(7)
k = os.urandom(4)
l = uuid.uuid4()
m = random_color()
n = time.localtime(0)
o = time.localtime()
p = rng.uniform()
q = obj.random.uniform()
"#,
        );
        assert_eq!(
            got,
            vec![
                (5, Clock, "time.time".into()),
                (6, Clock, "datetime.now".into()),
                (7, Random, "rnd.uniform".into()),
                (8, Numpy, "np.random.normal".into()),
                (9, Numpy, "npr.rand".into()),
                (10, Numpy, "U".into()),
                (11, NumpyGenerator, "np.random.default_rng".into()),
                (13, Entropy, "os.urandom".into()),
                (14, Entropy, "uuid.uuid4".into()),
                (15, Random, "random_color".into()),
                (17, Clock, "time.localtime".into()),
            ]
        );
        let f = facts(b"import random\nrandom.seed()\nnp.random.seed(1)\n");
        assert_eq!(
            f.seeds,
            Seeds {
                random: false,
                numpy: true
            }
        );
        let f = facts(
            b"class S(Scene):\n    def __init__(self):\n        super().__init__(random_seed=3)\n",
        );
        assert_eq!(
            f.seeds,
            Seeds {
                random: true,
                numpy: true
            }
        );
        assert!(facts(b"config.seed = 4\n").seeds.random);
    }

    #[test]
    fn closure_notes_unseeded_randomness_and_the_clock() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        let w = |p: &str, s: &str| write(r, p, s);
        w(
            "scenes/a.py",
            "import random, time\nimport common\nx = random.random()\ny = random.uniform(0, 1)\nstamp = time.time()\n",
        );
        w(
            "scenes/common.py",
            "import numpy as np\nnp.random.seed(5)\nz = np.random.rand()\n",
        );
        let hashes = HashCache::default();
        let c = Analyzer::default()
            .closure(r, "scenes/a.py", &hashes)
            .unwrap();
        assert_eq!(
            c.notes,
            vec![
                "scenes/a.py line 3: `random.random` (and 1 more call) draws random numbers \
                 without a seed: parender seeds `random` from the scene's name, so its renders repeat",
                "scenes/a.py line 5: `time.time` reads the clock: its frames can differ from \
                 one render to the next",
            ]
        );
        // Seeded in the scene: no note about `random` any more.
        w(
            "scenes/a.py",
            "import random, common\nrandom.seed(1)\nx = random.random()\n",
        );
        let c = Analyzer::default()
            .closure(r, "scenes/a.py", &HashCache::default())
            .unwrap();
        assert!(c.notes.is_empty(), "{:?}", c.notes);
    }

    #[test]
    fn closure_follows_local_modules_transitively() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        let w = |p: &str, s: &str| write(r, p, s);
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
