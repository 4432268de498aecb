//! Fingerprints: the cache key of a scene's render, a blake3 hash over a
//! canonical description of everything that can change its pixels, and only
//! that:
//! - the scene's file and every local module it imports, transitively;
//! - every project file its code names as an asset, by content;
//! - the `manim.cfg` files Manim reads for it (project root, the scene's
//!   folder, the user's config);
//! - the render settings, the Python and Manim versions, parender's render
//!   format and the user's `cache_salt`.
//!
//! Where the source leaves the inputs open (an import or asset path computed
//! at run time) every project file counts, so an edit anywhere re-renders the
//! scene: parender errs toward re-rendering, never toward a stale video.
//! [`explain`] compares two descriptions and says why a scene is stale.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use serde::{Deserialize, Serialize};

use crate::analyze::hashcache::HashCache;
use crate::analyze::pydeps::{Analyzer, Closure};
use crate::analyze::toolchain::ToolVersions;
use crate::error::Error;
use crate::project::Project;
use crate::scene::Scene;
use crate::settings::RenderSettings;

/// Bumped whenever what parender stores for a render changes meaning.
/// v3: entries keep the scene's own sound and subtitles beside its video.
/// v4: renders are reproducible: Manim's own cache off, `random` and
/// `numpy.random` seeded per scene (renders made before differ).
pub const RENDER_FORMAT: &str = "parender-render-v4";

/// The key material of one render, stored with its cache entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Inputs {
    pub format: String,
    pub scene: String,
    /// Project-relative path (or `~/.config/manim/manim.cfg`) → blake3.
    pub files: BTreeMap<String, String>,
    pub settings: RenderSettings,
    pub versions: ToolVersions,
    pub salt: Option<String>,
    /// Why the file set is "everything" rather than a known closure.
    pub uncertain: Vec<String>,
    /// What can make two renders of these inputs differ (the clock,
    /// unseeded randomness), for `--explain`. Derived from the files above,
    /// so not part of the key, and not stored.
    #[serde(skip)]
    pub notes: Vec<String>,
}

impl Inputs {
    pub fn key(&self) -> String {
        let canonical = serde_json::to_vec(self).unwrap_or_default();
        blake3::hash(&canonical).to_hex().to_string()
    }
}

/// Why `cur` differs from `prev` (the inputs of the scene's last render),
/// in words: `never built`, `scenes/common.py changed`, `quality changed low -> high`;
/// then, when it differs, the scene's notes (it reads the clock, draws
/// unseeded random numbers). Empty when nothing changed.
pub fn explain(prev: Option<&Inputs>, cur: &Inputs) -> Vec<String> {
    let Some(prev) = prev else {
        let mut why = vec!["never built".to_string()];
        why.extend(cur.notes.iter().cloned());
        return why;
    };
    let mut why = Vec::new();
    if prev.format != cur.format {
        why.push(format!(
            "parender render format {} -> {}",
            prev.format, cur.format
        ));
    }
    let (a, b) = (&prev.settings, &cur.settings);
    if a.quality != b.quality {
        why.push(format!("quality changed {} -> {}", a.quality, b.quality));
    } else if (a.width, a.height) != (b.width, b.height) {
        why.push(format!(
            "size changed {}x{} -> {}x{}",
            a.width, a.height, b.width, b.height
        ));
    }
    if a.fps != b.fps {
        why.push(format!("fps changed {} -> {}", a.fps, b.fps));
    }
    if a.manim_args != b.manim_args {
        why.push(format!(
            "manim arguments changed {:?} -> {:?}",
            a.manim_args, b.manim_args
        ));
    }
    if prev.versions.manim != cur.versions.manim {
        why.push(format!(
            "manim {} -> {}",
            prev.versions.manim, cur.versions.manim
        ));
    }
    if prev.versions.python != cur.versions.python {
        why.push(format!(
            "python {} -> {}",
            prev.versions.python, cur.versions.python
        ));
    }
    if prev.salt != cur.salt {
        why.push("cache_salt changed".into());
    }
    for (path, hash) in &cur.files {
        match prev.files.get(path) {
            Some(h) if h == hash => {}
            Some(_) => why.push(format!("{path} changed")),
            None => why.push(format!("{path} is a new input")),
        }
    }
    for path in prev.files.keys() {
        if !cur.files.contains_key(path) {
            why.push(format!("{path} is no longer an input"));
        }
    }
    if why.is_empty() && prev.uncertain != cur.uncertain {
        why.push("its dependencies changed".into());
    }
    if why.is_empty() && prev.scene != cur.scene {
        why.push(format!("renamed from {}", prev.scene));
    }
    if !why.is_empty()
        && let Some(first) = cur.uncertain.first()
    {
        why.push(format!("it depends on every project file because {first}"));
    }
    if !why.is_empty() {
        why.extend(cur.notes.iter().cloned());
    }
    why
}

/// Computes [`Inputs`] for the scenes of one build.
pub struct Fingerprinter {
    root: PathBuf,
    /// Folders whose files are never inputs (parender's own, the audio).
    skip: Vec<PathBuf>,
    settings: RenderSettings,
    versions: ToolVersions,
    salt: Option<String>,
    pub hashes: std::sync::Arc<HashCache>,
    analyzer: Analyzer,
    closures: Mutex<BTreeMap<String, Closure>>,
    everything: OnceLock<BTreeMap<String, PathBuf>>,
}

fn user_manim_cfg() -> Option<PathBuf> {
    let home = std::env::var_os("HOME")?;
    let p = PathBuf::from(home).join(".config/manim/manim.cfg");
    p.is_file().then_some(p)
}

impl Fingerprinter {
    pub fn new(
        project: &Project,
        settings: RenderSettings,
        versions: ToolVersions,
        hashes: std::sync::Arc<HashCache>,
    ) -> Fingerprinter {
        Fingerprinter {
            root: project.root.clone(),
            skip: vec![
                project.state_dir(),
                project.output_dir(),
                project.audio_dir(),
            ],
            settings,
            versions,
            salt: project.config.cache_salt.clone(),
            hashes,
            analyzer: Analyzer::default(),
            closures: Mutex::new(BTreeMap::new()),
            everything: OnceLock::new(),
        }
    }

    /// The local modules and assets of a scene file (memoised per build).
    pub fn closure(&self, file: &str) -> Result<Closure, Error> {
        if let Ok(c) = self.closures.lock()
            && let Some(found) = c.get(file)
        {
            return Ok(found.clone());
        }
        let c = self.analyzer.closure(&self.root, file, &self.hashes)?;
        if let Ok(mut m) = self.closures.lock() {
            m.insert(file.to_string(), c.clone());
        }
        Ok(c)
    }

    /// Forgets memoised closures and file hashes (before re-checking inputs
    /// after a render, when files may have changed meanwhile).
    pub fn refresh(&self, inputs: &Inputs) {
        if let Ok(mut c) = self.closures.lock() {
            c.clear();
        }
        for path in inputs.files.keys() {
            self.hashes.forget(&self.root.join(path));
        }
    }

    fn all_files(&self) -> Result<&BTreeMap<String, PathBuf>, Error> {
        if let Some(all) = self.everything.get() {
            return Ok(all);
        }
        let all = crate::analyze::pydeps::all_project_files(&self.root, &self.skip)?;
        Ok(self.everything.get_or_init(|| all))
    }

    pub fn inputs(&self, scene: &Scene) -> Result<Inputs, Error> {
        let closure = self.closure(&scene.file)?;
        let mut files = BTreeMap::new();
        let mut add = |label: String, path: &Path| -> Result<(), Error> {
            if let Some(h) = self.hashes.hash(path)? {
                files.insert(label, h);
            }
            Ok(())
        };
        if closure.uncertain.is_empty() {
            for rel in closure.modules.iter().chain(closure.assets.iter()) {
                add(rel.clone(), &self.root.join(rel))?;
            }
        } else {
            for (rel, path) in self.all_files()? {
                add(rel.clone(), path)?;
            }
        }
        // manim.cfg: the working folder's, the scene folder's, the user's.
        add("manim.cfg".into(), &self.root.join("manim.cfg"))?;
        if let Some(dir) = Path::new(&scene.file).parent()
            && !dir.as_os_str().is_empty()
        {
            let rel = format!("{}/manim.cfg", dir.display());
            add(rel.clone(), &self.root.join(&rel))?;
        }
        if let Some(user) = user_manim_cfg() {
            add("~/.config/manim/manim.cfg".into(), &user)?;
        }
        Ok(Inputs {
            format: RENDER_FORMAT.into(),
            scene: scene.id.0.clone(),
            files,
            settings: self.settings.clone(),
            versions: self.versions.clone(),
            salt: self.salt.clone(),
            uncertain: closure.uncertain,
            notes: closure.notes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Quality;

    fn inputs() -> Inputs {
        Inputs {
            format: RENDER_FORMAT.into(),
            scene: "scenes/a.py:A".into(),
            files: BTreeMap::from([
                ("scenes/a.py".to_string(), "h1".to_string()),
                ("scenes/common.py".to_string(), "h2".to_string()),
            ]),
            settings: RenderSettings::preset(Quality::Low),
            versions: ToolVersions {
                python: "3.11.7".into(),
                manim: "0.19.0".into(),
            },
            salt: None,
            uncertain: vec![],
            notes: vec![],
        }
    }

    #[test]
    fn explains_each_kind_of_change() {
        let a = inputs();
        assert_eq!(explain(None, &a), vec!["never built"]);
        assert!(explain(Some(&a), &a).is_empty());
        assert_eq!(a.key(), inputs().key());

        let mut b = a.clone();
        b.files.insert("scenes/common.py".into(), "h3".into());
        assert_eq!(explain(Some(&a), &b), vec!["scenes/common.py changed"]);
        assert_ne!(a.key(), b.key());

        let mut b = a.clone();
        b.settings.quality = Quality::High;
        b.settings.width = 1920;
        b.settings.height = 1080;
        b.settings.fps = 60;
        assert_eq!(
            explain(Some(&a), &b),
            vec!["quality changed low -> high", "fps changed 15 -> 60"]
        );

        let mut b = a.clone();
        b.versions.manim = "0.19.1".into();
        b.files.insert("assets/logo.svg".into(), "h9".into());
        assert_eq!(
            explain(Some(&a), &b),
            vec!["manim 0.19.0 -> 0.19.1", "assets/logo.svg is a new input"]
        );

        let mut b = a.clone();
        b.uncertain =
            vec!["scenes/a.py line 3: `import_module` imports a module named at run time".into()];
        b.files.insert("notes.txt".into(), "h7".into());
        assert_eq!(
            explain(Some(&a), &b),
            vec![
                "notes.txt is a new input",
                "it depends on every project file because scenes/a.py line 3: `import_module` imports a module named at run time"
            ]
        );

        let mut b = a.clone();
        b.salt = Some("v2".into());
        assert_eq!(explain(Some(&a), &b), vec!["cache_salt changed"]);
    }

    #[test]
    fn explain_notes_clock_and_randomness_without_changing_the_key() {
        let a = inputs();
        let mut b = a.clone();
        b.notes = vec!["scenes/a.py line 4: `time.time` reads the clock: …".into()];
        // Notes are derived from the files: never part of the key.
        assert_eq!(a.key(), b.key());
        // A fresh scene has no "why" to add them to.
        assert!(explain(Some(&b), &b).is_empty());
        assert_eq!(
            explain(None, &b),
            vec![
                "never built",
                "scenes/a.py line 4: `time.time` reads the clock: …"
            ]
        );
        let mut c = b.clone();
        c.files.insert("scenes/a.py".into(), "h5".into());
        assert_eq!(explain(Some(&a), &c).len(), 2);
        // Not stored with the cache entry either.
        let stored: Inputs = serde_json::from_slice(&serde_json::to_vec(&b).unwrap()).unwrap();
        assert!(stored.notes.is_empty());
    }
}
