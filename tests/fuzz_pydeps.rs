//! Property tests of the Python source analysis (issue 8): whatever the
//! bytes, `pydeps::facts` returns, never panics, and finishes; the closure of
//! a scene in a project of random modules (imports of every shape, relative
//! imports that climb past the root, `import_module` and asset strings that
//! point outside) terminates and names only files inside the project.
//!
//! A few seconds by default (`PROPTEST_CASES` cases per property, 256 for
//! the parser, 64 for the project ones). A longer run:
//!
//! ```text
//! PROPTEST_CASES=100000 cargo test --release --test fuzz_pydeps
//! ```
//!
//! A failing case is shrunk and saved under `tests/proptest-regressions/`;
//! commit that file (it is replayed first on every run) and add the input
//! to the named regression tests at the end with what it must do.
use std::path::{Component, Path};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use parender::analyze::hashcache::HashCache;
use parender::analyze::pydeps::{Analyzer, Closure, FileFacts, facts};
use proptest::prelude::*;

/// Longest any one analysis may take, even in a debug build.
const LIMIT: Duration = Duration::from_secs(20);

fn config(default_cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default_cases);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

/// Runs `f` on its own thread: its result, or a failure when it panics or
/// does not finish within [`LIMIT`].
fn bounded<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(LIMIT) {
        Ok(v) => Ok(v),
        Err(mpsc::RecvTimeoutError::Timeout) => Err(format!("did not finish in {LIMIT:?}")),
        Err(mpsc::RecvTimeoutError::Disconnected) => Err("panicked".into()),
    }
}

fn analyse(source: Vec<u8>) -> Result<FileFacts, String> {
    bounded(move || facts(&source))
}

/// What every analysis result must satisfy.
fn check_facts(f: &FileFacts) -> Result<(), TestCaseError> {
    for u in &f.uncertain {
        // One line and short, whatever the expression it quotes.
        prop_assert!(u.len() <= 300 && !u.contains('\n'), "{u:?}");
    }
    for e in &f.effects {
        prop_assert!(e.line >= 1 && e.call.len() <= 200, "{e:?}");
    }
    Ok(())
}

/// Valid Python to mutate: every import shape, assets, clock and randomness.
const SEEDS: &[&str] = &[
    r#"import common, pkg.sub as ps
from helpers import (
    a,
    b,
)
from .rel import x
from .. import up
import numpy as np, random as rnd, time
from datetime import datetime
from numpy.random import uniform as U
m = importlib.import_module("dyn_mod")
n = importlib.import_module(name)
logo = SVGMobject("assets/logo.svg")
pic = ImageMobject(f"assets/{name}.png")
t = time.time(); d = datetime.now()
a = rnd.uniform(0, 1); b = np.random.normal(); c = U(0, 1)
g = np.random.default_rng()
random.seed(3)
config.seed = 4
class S(Scene):
    def __init__(self):
        super().__init__(random_seed=3)
    def construct(self):
        self.play(Create(NumberPlane()))
"#,
    "from manim import *\n\nclass A(Scene):\n    def construct(self):\n        self.wait()\n",
    "",
];

/// Fragments that stress the parser and the analysis.
const TOKENS: &[&str] = &[
    "import ",
    "from ",
    " import ",
    " as ",
    ".",
    "..",
    "...",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ",",
    ":",
    "=",
    "\"",
    "'",
    "\"\"\"",
    "f\"{",
    "\\",
    "\n",
    "    ",
    "\t",
    "#",
    "*",
    "@",
    "lambda ",
    "import_module(",
    "__import__(",
    "open(",
    "SVGMobject(",
    "random.",
    "np.random.",
    "time.time()",
    "datetime.now()",
    "seed(",
    "random_seed=",
    "config.seed",
    "a",
    "common",
    "pkg",
    "é",
    "\u{0}",
    "\u{feff}",
    "\r",
    "x().",
];

/// An edit of a seed: at byte position (modulo its length) delete some
/// bytes, insert a token, or replace bytes with a token.
#[derive(Debug, Clone)]
enum Edit {
    Delete(usize, usize),
    Insert(usize, usize),
    Replace(usize, usize, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), 1..8usize).prop_map(|(p, n)| Edit::Delete(p, n)),
        (any::<usize>(), 0..TOKENS.len()).prop_map(|(p, t)| Edit::Insert(p, t)),
        (any::<usize>(), 1..8usize, 0..TOKENS.len()).prop_map(|(p, n, t)| Edit::Replace(p, n, t)),
    ]
}

fn apply(seed: &str, edits: &[Edit]) -> Vec<u8> {
    let mut s = seed.as_bytes().to_vec();
    for e in edits {
        let at = |p: usize, len: usize| if len == 0 { 0 } else { p % (len + 1) };
        match *e {
            Edit::Delete(p, n) => {
                let a = at(p, s.len());
                let b = (a + n).min(s.len());
                s.drain(a..b);
            }
            Edit::Insert(p, t) => {
                let a = at(p, s.len());
                s.splice(a..a, TOKENS[t].bytes());
            }
            Edit::Replace(p, n, t) => {
                let a = at(p, s.len());
                let b = (a + n).min(s.len());
                s.splice(a..b, TOKENS[t].bytes());
            }
        }
    }
    s
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn arbitrary_bytes_never_panic(source in proptest::collection::vec(any::<u8>(), 0..4000)) {
        let f = analyse(source).map_err(TestCaseError::fail)?;
        check_facts(&f)?;
    }

    #[test]
    fn token_soup_never_panics(tokens in proptest::collection::vec(0..TOKENS.len(), 0..400)) {
        let source: String = tokens.iter().map(|&t| TOKENS[t]).collect();
        let f = analyse(source.into_bytes()).map_err(TestCaseError::fail)?;
        check_facts(&f)?;
    }

    #[test]
    fn mutated_python_never_panics(
        seed in 0..SEEDS.len(),
        edits in proptest::collection::vec(edit(), 0..40),
    ) {
        let f = analyse(apply(SEEDS[seed], &edits)).map_err(TestCaseError::fail)?;
        check_facts(&f)?;
    }
}

// ---- closures over random projects ----------------------------------------

/// Module files a project may hold (project-relative).
const FILES: &[&str] = &[
    "scenes/a.py",
    "scenes/b.py",
    "scenes/pkg/__init__.py",
    "scenes/pkg/m.py",
    "scenes/pkg/sub/__init__.py",
    "scenes/pkg/sub/deep.py",
    "lib/__init__.py",
    "lib/util.py",
    "common.py",
    "assets/logo.svg",
    "data/table.csv",
];

/// Names an import or a string may use, including ones that lead outside
/// the project (its parent holds `outside.py`, `outside.txt` and
/// `escape/__init__.py` to be found if anything climbs out).
const NAMES: &[&str] = &[
    "a",
    "b",
    "pkg",
    "pkg.m",
    "pkg.sub",
    "pkg.sub.deep",
    "m",
    "sub",
    "deep",
    "lib",
    "lib.util",
    "util",
    "common",
    "outside",
    "escape",
    "scenes",
    "scenes.a",
    "",
];

/// String literals: asset paths, inside and out.
const STRINGS: &[&str] = &[
    "assets/logo.svg",
    "data/table.csv",
    "../outside.txt",
    "../../outside.txt",
    "scenes/../../outside.txt",
    "/etc/hostname",
    "/etc/passwd",
    "..",
    ".",
    "",
    "./assets/logo.svg",
    "assets//logo.svg",
    "assets/../assets/logo.svg",
    "~/.bashrc",
    "../escape/__init__.py",
    "a/../../b",
    "x./etc/passwd",
    "/",
    "\\..\\outside.txt",
];

fn statement() -> impl Strategy<Value = String> {
    prop_oneof![
        (0..NAMES.len()).prop_map(|n| format!("import {}\n", or_x(NAMES[n]))),
        (0..8usize, 0..NAMES.len(), 0..NAMES.len()).prop_map(|(level, m, n)| {
            format!(
                "from {}{} import {}\n",
                ".".repeat(level),
                NAMES[m],
                or_x(NAMES[n].rsplit('.').next().unwrap_or("x"))
            )
        }),
        (0..STRINGS.len()).prop_map(|s| format!("importlib.import_module({:?})\n", STRINGS[s])),
        (0..NAMES.len()).prop_map(|n| format!("importlib.import_module({:?})\n", NAMES[n])),
        (0..STRINGS.len()).prop_map(|s| format!("x = open({:?})\n", STRINGS[s])),
        (0..STRINGS.len()).prop_map(|s| format!("SVGMobject({:?})\n", STRINGS[s])),
        Just("y = random.random()\n".to_string()),
        Just("z = time.time()\n".to_string()),
    ]
}

fn or_x(name: &str) -> &str {
    if name.is_empty() { "x" } else { name }
}

/// A project: for each of [`FILES`], whether it exists and its statements.
fn project() -> impl Strategy<Value = Vec<(bool, Vec<String>)>> {
    proptest::collection::vec(
        (any::<bool>(), proptest::collection::vec(statement(), 0..8)),
        FILES.len(),
    )
}

fn check_closure(root: &Path, c: &Closure) -> Result<(), TestCaseError> {
    let real_root = root
        .canonicalize()
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    for rel in c.modules.iter().chain(c.assets.iter()) {
        let p = Path::new(rel);
        prop_assert!(
            p.components().all(|c| matches!(c, Component::Normal(_))),
            "{rel} is not a plain project-relative path"
        );
        let full = root.join(p);
        prop_assert!(full.is_file(), "{rel} is not a file of the project");
        let real = full
            .canonicalize()
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(
            real.starts_with(&real_root),
            "{rel} escapes the project: {}",
            real.display()
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn closure_terminates_and_stays_inside_the_project(
        files in project(),
        scene in 0..2usize,
    ) {
        let t = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
        // Decoys beside the project, to be found by anything that climbs out.
        std::fs::write(t.path().join("outside.py"), "import secret\n").unwrap();
        std::fs::write(t.path().join("outside.txt"), "x").unwrap();
        std::fs::create_dir_all(t.path().join("escape")).unwrap();
        std::fs::write(t.path().join("escape/__init__.py"), "").unwrap();
        let root = t.path().join("proj");
        for (i, (exists, statements)) in files.iter().enumerate() {
            // The scene file always exists.
            if *exists || i == scene {
                let p = root.join(FILES[i]);
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                std::fs::write(&p, statements.concat()).unwrap();
            }
        }
        let r = root.clone();
        let c = bounded(move || {
            Analyzer::default().closure(&r, FILES[scene], &HashCache::default())
        })
        .map_err(TestCaseError::fail)?
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(c.modules.contains(FILES[scene]), "{:?}", c.modules);
        check_closure(&root, &c)?;
    }
}

// ---- named regressions ------------------------------------------------------

/// A call chain as long as the file (`x.open(a).open(a)…`) quoted the whole
/// chain in each of its "reads a path built at run time" messages: memory
/// quadratic in the file's length (1.6 GB for a 160 kB line).
#[test]
fn long_call_chain_messages_stay_short() {
    let source = format!("x{}\n", ".open(a)".repeat(5000));
    let start = Instant::now();
    let f = analyse(source.into_bytes()).expect("analysis");
    assert_eq!(f.uncertain.len(), 5000);
    let total: usize = f.uncertain.iter().map(String::len).sum();
    assert!(total < 5000 * 200, "{total} bytes of messages");
    assert!(start.elapsed() < LIMIT);
}

/// `import_module("x./etc/passwd")` makes `/etc/passwd.py` a candidate
/// (joining an absolute part replaces the path): never in the closure.
#[test]
fn import_module_with_an_absolute_part_stays_inside() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("proj");
    std::fs::create_dir_all(root.join("scenes")).unwrap();
    std::fs::write(t.path().join("outside.py"), "").unwrap();
    let outside = t.path().join("outside").display().to_string();
    std::fs::write(
        root.join("scenes/a.py"),
        format!(
            "import importlib\nimportlib.import_module({:?})\nfrom ........ import outside\nopen({:?})\n",
            format!("x.{outside}"),
            t.path().join("outside.py").display().to_string(),
        ),
    )
    .unwrap();
    let c = Analyzer::default()
        .closure(&root, "scenes/a.py", &HashCache::default())
        .unwrap();
    assert_eq!(c.modules.iter().collect::<Vec<_>>(), vec!["scenes/a.py"]);
    assert!(c.assets.is_empty(), "{:?}", c.assets);
}
