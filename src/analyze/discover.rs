//! Discovery: which scenes the project has, in which order.
//!
//! A scene is exactly what Manim would render: a class defined in a scene file
//! that subclasses Manim's `Scene` (directly or through any imported base). We
//! ask Python: one interpreter imports Manim, then loads each scene file the
//! way Manim does in a child forked from it, and reports the classes (see
//! `python/discover.py`). A file that exits, crashes or hangs while loading
//! fails alone, by name. A static guess from base names would miss
//! `manim_slides.Slide` and friends.
use std::path::Path;
use std::time::Duration;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::analyze::fingerprint::Fingerprinter;
use crate::analyze::toolchain::ToolVersions;
use crate::config::DEFAULT_TIMEOUT;
use crate::error::Error;
use crate::fsutil::{natural_path_cmp, walk};
use crate::project::Project;
use crate::python::{PythonRun, Runner};
use crate::scene::matches;
use crate::scene::{Scene, SceneError, SceneId};

const DISCOVER_PY: &str = include_str!("../../python/discover.py");

/// How long loading one scene file may take (its module-level code), unless
/// the render `timeout` is shorter.
pub const LOAD_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Deserialize)]
struct PythonReport {
    manim: Option<String>,
    manim_error: Option<PyError>,
    files: Vec<FileReport>,
}

#[derive(Debug, Deserialize)]
struct FileReport {
    file: String,
    scenes: Vec<FoundClass>,
    error: Option<PyError>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct FoundClass {
    class: String,
    line: Option<u32>,
}

/// A Python exception as the embedded scripts report it.
#[derive(Debug, Clone, Deserialize)]
pub struct PyError {
    pub message: String,
    pub file: Option<String>,
    pub line: Option<u32>,
    #[serde(default)]
    pub traceback: String,
}

impl From<&PyError> for SceneError {
    fn from(e: &PyError) -> SceneError {
        SceneError {
            file: e.file.clone(),
            line: e.line,
            message: e.message.clone(),
        }
    }
}

/// A scene file Python could not load: none of its scenes can be known.
#[derive(Debug, Clone)]
pub struct BrokenFile {
    pub file: String,
    /// Top-level classes found by reading the file (Python could not load
    /// it): the names its scenes are reported under.
    pub classes: Vec<String>,
    pub error: SceneError,
    pub traceback: String,
}

#[derive(Debug, Clone)]
pub struct Discovery {
    /// In build order, with audio paired.
    pub scenes: Vec<Scene>,
    pub broken: Vec<BrokenFile>,
    pub versions: ToolVersions,
    pub warnings: Vec<String>,
}

/// Every `.py` file under the scene folder, in natural order of their paths
/// (`2_b.py` before `10_a.py`), relative to the project root. Files that
/// cannot be scene files are skipped with a warning: a symbolic link that
/// leads nowhere (missing target, or a loop), a name that is not UTF-8.
pub fn scene_files(project: &Project, warnings: &mut Vec<String>) -> Result<Vec<String>, Error> {
    let dir = project.scenes_dir();
    if !dir.is_dir() {
        return Err(Error::NoScenesDir(dir));
    }
    let mut files = Vec::new();
    walk(&dir, &mut |p| {
        if p.extension().is_none_or(|e| e != "py") {
            return;
        }
        let Some(rel) = p.strip_prefix(&project.root).unwrap_or(p).to_str() else {
            warnings.push(format!(
                "{} is skipped: its name is not valid UTF-8 (rename it; Manim cannot import it either)",
                p.display()
            ));
            return;
        };
        if let Err(e) = std::fs::metadata(p) {
            let why = match e.raw_os_error() {
                Some(libc::ELOOP) => "a symbolic link loop".to_string(),
                Some(libc::ENOENT) => "a symbolic link to a file that does not exist".to_string(),
                _ => format!("unreadable: {e}"),
            };
            warnings.push(format!("{rel} is skipped: it is {why}"));
            return;
        }
        files.push(rel.to_string());
    })?;
    files.sort_by(|a, b| natural_path_cmp(a, b));
    Ok(files)
}

/// Runs the embedded discovery script with the project's Python.
async fn ask_python(
    project: &Project,
    runner: &Runner,
    files: &[String],
    cancel: &CancellationToken,
) -> Result<PythonReport, Error> {
    let python = runner.python();
    // Loading a scene file runs its module-level code: each file gets
    // `load` (the script stops it after that), the whole run a bound that
    // only a Python stuck outside the files (importing Manim) reaches.
    let load = project
        .config
        .timeout
        .map(|t| t.0)
        .unwrap_or(DEFAULT_TIMEOUT)
        .min(LOAD_TIMEOUT);
    let limit = Duration::from_secs(120) + load * (files.len() as u32).max(1);
    let mut args = vec![format!("{:.3}", load.as_secs_f64()).into()];
    args.extend(files.iter().map(Into::into));
    let run = PythonRun {
        script: DISCOVER_PY.into(),
        args,
        env: Vec::new(),
        cwd: project.root.clone(),
        timeout: limit,
    };
    // Its own process group, killed as a whole: nothing a scene file starts
    // while loading outlives discovery. A warm worker answers in
    // milliseconds: Manim is imported already.
    let out = runner
        .run(&run, cancel)
        .await
        .map_err(|e| Error::Toolchain {
            message: format!("cannot run Python `{}`: {e}", python.display()),
            help: "run `parender doctor`, or set `python = \"...\"` in parender.toml".into(),
        })?;
    let status = match out.outcome {
        crate::procs::Outcome::Exited(s) => s.to_string(),
        crate::procs::Outcome::Cancelled => return Err(Error::Interrupted),
        crate::procs::Outcome::TimedOut => {
            return Err(Error::Discovery {
                message: format!(
                    "`{}` took longer than {} to load the scene files and was stopped",
                    python.display(),
                    crate::config::human_duration(limit)
                ),
                detail: crate::procs::tail_lines(&out.stderr, 20),
            });
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().rev().find(|l| l.starts_with('{'));
    match last.map(serde_json::from_str::<PythonReport>) {
        Some(Ok(r)) if r.manim.is_none() => Err(Error::Toolchain {
            message: format!(
                "Manim cannot be imported by `{}`: {}",
                python.display(),
                r.manim_error
                    .as_ref()
                    .map(|e| e.message.as_str())
                    .unwrap_or("unknown error")
            ),
            help: format!(
                "install it into that interpreter: `{} -m pip install manim=={}`",
                python.display(),
                crate::analyze::toolchain::PINNED_MANIM
            ),
        }),
        Some(Ok(r)) => Ok(r),
        _ => Err(Error::Discovery {
            message: format!(
                "`{}` did not report the scenes ({status})",
                python.display(),
            ),
            detail: crate::procs::tail_lines(&out.stderr, 20),
        }),
    }
}

/// How many answers are remembered per file: an edit that is undone finds
/// the answer for the content it returns to.
const REMEMBERED_PER_FILE: usize = 4;

/// The remembered answer for `file` with this key.
fn remembered<'a>(
    memo: &'a BTreeMap<String, Vec<Remembered>>,
    file: &str,
    key: Option<&str>,
) -> Option<&'a Remembered> {
    let key = key?;
    memo.get(file)?.iter().find(|r| r.key == key)
}

/// Remembers an answer as the file's most recent one.
fn remember(
    memo: &mut BTreeMap<String, Vec<Remembered>>,
    file: &str,
    key: &str,
    scenes: &[FoundClass],
) {
    let list = memo.entry(file.to_string()).or_default();
    list.retain(|r| r.key != key);
    list.insert(
        0,
        Remembered {
            key: key.to_string(),
            scenes: scenes.to_vec(),
        },
    );
    list.truncate(REMEMBERED_PER_FILE);
}

/// Which classes a file defines, remembered per file by a key over the
/// toolchain and the content of the file's local import closure (a base
/// class may come from a helper module).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Remembered {
    key: String,
    scenes: Vec<FoundClass>,
}

fn discovery_key(
    fp: &Fingerprinter,
    versions: &ToolVersions,
    file: &str,
    root: &Path,
) -> Result<Option<String>, Error> {
    let closure = fp.closure(file)?;
    if !closure.uncertain.is_empty() {
        return Ok(None);
    }
    let mut h = blake3::Hasher::new();
    h.update(format!("discover-v1\0{}\0{}\0", versions.python, versions.manim).as_bytes());
    for m in &closure.modules {
        let Some(hash) = fp.hashes.hash(&root.join(m))? else {
            return Ok(None);
        };
        h.update(format!("{m}\0{hash}\0").as_bytes());
    }
    Ok(Some(h.finalize().to_hex().to_string()))
}

/// Finds every scene, orders it and pairs it with its audio. Python is
/// asked only about files whose closure changed since it last answered.
pub async fn discover(
    project: &Project,
    runner: &Runner,
    versions: &ToolVersions,
    fp: &Fingerprinter,
    cancel: &CancellationToken,
) -> Result<Discovery, Error> {
    let mut warnings = Vec::new();
    let files = scene_files(project, &mut warnings)?;
    let reports = answers(project, runner, versions, fp, &files, cancel).await?;
    let (found, broken) = scenes_of(project, &reports);
    let scenes = match &project.config.order {
        Some(order) => apply_order(found, order, &mut warnings)?,
        None => found,
    };
    let scenes = crate::analyze::pairing::pair(project, scenes, &mut warnings)?;
    Ok(Discovery {
        scenes,
        broken,
        versions: versions.clone(),
        warnings,
    })
}

/// What each file defines: remembered, or asked of Python (and then
/// remembered) for the files whose closure changed.
async fn answers(
    project: &Project,
    runner: &Runner,
    versions: &ToolVersions,
    fp: &Fingerprinter,
    files: &[String],
    cancel: &CancellationToken,
) -> Result<Vec<FileReport>, Error> {
    let memo_path = project.state_dir().join("discovery.json");
    let mut memo: BTreeMap<String, Vec<Remembered>> = std::fs::read(&memo_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let mut keys = BTreeMap::new();
    let mut ask = Vec::new();
    for f in files {
        let key = discovery_key(fp, versions, f, &project.root)?;
        if remembered(&memo, f, key.as_deref()).is_none() {
            ask.push(f.clone());
        }
        keys.insert(f.clone(), key);
    }
    let mut answers: BTreeMap<String, FileReport> = BTreeMap::new();
    if !ask.is_empty() {
        for f in ask_python(project, runner, &ask, cancel).await?.files {
            answers.insert(f.file.clone(), f);
        }
    }
    let mut reports = Vec::new();
    for f in files {
        let key = keys.get(f).and_then(|k| k.as_deref());
        match answers.remove(f) {
            Some(r) => {
                match key {
                    Some(key) if r.error.is_none() => remember(&mut memo, f, key, &r.scenes),
                    _ => {
                        memo.remove(f);
                    }
                }
                reports.push(r);
            }
            None => reports.push(FileReport {
                file: f.clone(),
                scenes: remembered(&memo, f, key)
                    .map(|r| r.scenes.clone())
                    .unwrap_or_default(),
                error: None,
            }),
        }
    }
    memo.retain(|f, _| files.contains(f));
    if !ask.is_empty()
        && let Ok(bytes) = serde_json::to_vec(&memo)
    {
        let _ = crate::fsutil::write_atomic(&memo_path, &bytes);
    }
    Ok(reports)
}

/// The scenes the files define, and the files Python could not load.
fn scenes_of(project: &Project, reports: &[FileReport]) -> (Vec<Scene>, Vec<BrokenFile>) {
    let timeout = project
        .config
        .timeout
        .map(|s| s.0)
        .unwrap_or(DEFAULT_TIMEOUT);
    let mut found = Vec::new();
    let mut broken = Vec::new();
    for f in reports {
        if let Some(err) = &f.error {
            let text = std::fs::read_to_string(project.root.join(&f.file)).unwrap_or_default();
            broken.push(BrokenFile {
                file: f.file.clone(),
                classes: top_level_classes(&text),
                error: err.into(),
                traceback: err.traceback.clone(),
            });
            continue;
        }
        for c in &f.scenes {
            found.push(Scene {
                id: SceneId::new(&f.file, &c.class),
                file: f.file.clone(),
                class: c.class.clone(),
                line: c.line,
                audio: None,
                timeout,
                title: None,
            });
        }
    }
    (found, broken)
}

/// Names of classes defined at the top level of a Python file, by reading
/// it: only used to name the scenes of a file that cannot be imported.
pub fn top_level_classes(source: &str) -> Vec<String> {
    source
        .lines()
        .filter_map(|l| l.strip_prefix("class "))
        .filter_map(|rest| {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            (!name.is_empty()).then_some(name)
        })
        .collect()
}

/// Error for a pattern that names no scene, with the nearest name.
pub fn no_match(pattern: &str, scenes: &[Scene], context: &str) -> Error {
    let names: Vec<String> = scenes
        .iter()
        .flat_map(|s| [s.id.0.clone(), s.short_name(), s.class.clone()])
        .collect();
    let help = crate::config::nearest(pattern, names.iter().map(String::as_str))
        .map(|n| format!("did you mean `{n}`?"))
        .or_else(|| Some("run `parender scenes` to list the scenes".into()));
    Error::Selection {
        message: format!("{context} `{pattern}` matches no scene"),
        help,
    }
}

/// Puts scenes named in `order` first, in that order; the rest follow in
/// their natural order, with a warning.
fn apply_order(
    scenes: Vec<Scene>,
    order: &[String],
    warnings: &mut Vec<String>,
) -> Result<Vec<Scene>, Error> {
    let mut placed = vec![false; scenes.len()];
    let mut out = Vec::with_capacity(scenes.len());
    for pattern in order {
        let mut any = false;
        for (i, s) in scenes.iter().enumerate() {
            if matches(s, pattern) {
                any = true;
                if !placed[i] {
                    placed[i] = true;
                    out.push(s.clone());
                }
            }
        }
        if !any {
            return Err(no_match(pattern, &scenes, "`order` entry"));
        }
    }
    for (i, s) in scenes.iter().enumerate() {
        if !placed[i] {
            warnings.push(format!(
                "{} is not listed in `order`; it goes after the listed scenes",
                s.id
            ));
            out.push(s.clone());
        }
    }
    Ok(out)
}

/// `SCENE...` arguments: which scenes to build. Empty means all.
pub fn select(scenes: &[Scene], patterns: &[String]) -> Result<Vec<bool>, Error> {
    if patterns.is_empty() {
        return Ok(vec![true; scenes.len()]);
    }
    let mut chosen = vec![false; scenes.len()];
    for p in patterns {
        let mut any = false;
        for (i, s) in scenes.iter().enumerate() {
            if matches(s, p) {
                chosen[i] = true;
                any = true;
            }
        }
        if !any {
            return Err(no_match(p, scenes, "scene"));
        }
    }
    Ok(chosen)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scene(file: &str, class: &str) -> Scene {
        Scene::new(file, class, DEFAULT_TIMEOUT)
    }

    #[test]
    fn natural_order_of_paths() {
        let mut v = vec![
            "scenes/10_end.py",
            "scenes/2_b.py",
            "scenes/1_a.py",
            "scenes/part2/1.py",
            "scenes/part10/1.py",
        ];
        v.sort_by(|a, b| natural_path_cmp(a, b));
        assert_eq!(
            v,
            vec![
                "scenes/1_a.py",
                "scenes/2_b.py",
                "scenes/10_end.py",
                "scenes/part2/1.py",
                "scenes/part10/1.py"
            ]
        );
    }

    #[test]
    fn static_class_names_for_broken_files() {
        let src = "from manim import *\nclass A(Scene):\n    class Inner: pass\nclass B :\n  pass\nx = '''\nclass C(Scene)\n'''\n";
        // A class inside a string at column 0 is listed: this is only a name
        // for an error report, never a scene that gets rendered.
        assert_eq!(top_level_classes(src), vec!["A", "B", "C"]);
    }

    #[test]
    fn patterns() {
        let s = scene("scenes/03_graph.py", "Growth");
        assert!(matches(&s, "03_graph.py"));
        assert!(matches(&s, "scenes/03_graph.py"));
        assert!(matches(&s, "03_graph.py:Growth"));
        assert!(matches(&s, "scenes/03_graph.py:Growth"));
        assert!(matches(&s, "Growth"));
        assert!(!matches(&s, "3_graph.py"));
        assert!(!matches(&s, "03_graph.py:Other"));
        assert!(!matches(&s, "Grow"));
    }

    #[test]
    fn order_puts_listed_first_and_warns_about_the_rest() {
        let v = vec![
            scene("s/a.py", "A"),
            scene("s/b.py", "B1"),
            scene("s/b.py", "B2"),
            scene("s/c.py", "C"),
        ];
        let mut w = Vec::new();
        let out = apply_order(v.clone(), &["c.py".into(), "B2".into()], &mut w).unwrap();
        let ids: Vec<_> = out.iter().map(|s| s.class.as_str()).collect();
        assert_eq!(ids, vec!["C", "B2", "A", "B1"]);
        assert_eq!(w.len(), 2);
        let err = apply_order(v, &["d.py".into()], &mut w).unwrap_err();
        assert!(err.to_string().contains("`d.py` matches no scene"));
    }

    #[test]
    fn selection_suggests() {
        let v = vec![scene("s/a.py", "Alpha"), scene("s/b.py", "Beta")];
        assert_eq!(select(&v, &["Beta".into()]).unwrap(), vec![false, true]);
        let err = select(&v, &["Alpah".into()]).unwrap_err();
        assert_eq!(err.help().as_deref(), Some("did you mean `Alpha`?"));
    }
}
