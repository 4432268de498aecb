//! Pairs each scene with its narration.
//!
//! A file with one scene: `audio/<file stem>.<ext>`; a file with several:
//! `audio/<file stem>.<Class>.<ext>`. Scene files in sub-folders pair with
//! audio in the same sub-folders. `[scene."..."] audio = ...` wins. Audio files
//! that match no scene are reported.
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use crate::config::AudioOverride;
use crate::error::Error;
use crate::fsutil::walk;
use crate::project::Project;
use crate::scene::Scene;
use crate::scene::matches;

/// Audio extensions, in the order of preference when several files match.
pub const AUDIO_EXTS: &[&str] = &["wav", "flac", "m4a", "mp3", "ogg"];

/// The pairing key of a scene: its file's path below the scene folder without
/// `.py`, plus `.Class` when the file holds several scenes.
fn scene_key(scene: &Scene, scenes_rel: &str, multi: bool) -> String {
    let rel = scene
        .file
        .strip_prefix(scenes_rel)
        .map(|r| r.trim_start_matches('/'))
        .unwrap_or(&scene.file);
    let stem = rel.strip_suffix(".py").unwrap_or(rel);
    if multi {
        format!("{stem}.{}", scene.class)
    } else {
        stem.to_string()
    }
}

/// Audio files below `dir`, keyed by their path without extension.
fn audio_files(project: &Project, dir: &Path) -> Result<BTreeMap<String, Vec<PathBuf>>, Error> {
    let mut map: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    if !dir.is_dir() {
        return Ok(map);
    }
    walk(dir, &mut |p| {
        let Some(ext) = p.extension().and_then(|e| e.to_str()) else {
            return;
        };
        let ext = ext.to_ascii_lowercase();
        if !AUDIO_EXTS.contains(&ext.as_str()) {
            return;
        }
        let rel = p.strip_prefix(dir).unwrap_or(p);
        let key = rel
            .with_extension("")
            .components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/");
        map.entry(key)
            .or_default()
            .push(PathBuf::from(project.relative(p)));
    })?;
    for files in map.values_mut() {
        files.sort_by_key(|f| {
            let ext = f
                .extension()
                .and_then(|e| e.to_str())
                .unwrap_or("")
                .to_ascii_lowercase();
            AUDIO_EXTS
                .iter()
                .position(|x| *x == ext)
                .unwrap_or(usize::MAX)
        });
    }
    Ok(map)
}

pub fn pair(
    project: &Project,
    mut scenes: Vec<Scene>,
    warnings: &mut Vec<String>,
) -> Result<Vec<Scene>, Error> {
    let scenes_rel = project.relative(&project.scenes_dir());
    let audio = audio_files(project, &project.audio_dir())?;
    let mut per_file: HashMap<String, usize> = HashMap::new();
    for s in &scenes {
        *per_file.entry(s.file.clone()).or_default() += 1;
    }
    // Which scene each audio key was paired with before overrides.
    let mut paired: HashMap<String, String> = HashMap::new();
    for s in scenes.iter_mut() {
        let multi = per_file.get(&s.file).copied().unwrap_or(1) > 1;
        let key = scene_key(s, &scenes_rel, multi);
        if let Some(files) = audio.get(&key) {
            if files.len() > 1 {
                warnings.push(format!(
                    "{} has several audio files ({}); using {}",
                    s.id,
                    files
                        .iter()
                        .map(|f| f.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                    files[0].display()
                ));
            }
            s.audio = Some(files[0].clone());
            paired.insert(key, s.id.0.clone());
        }
    }
    // Per-scene overrides from parender.toml.
    for (pattern, ov) in &project.config.scene {
        let mut any = false;
        for s in scenes.iter_mut().filter(|s| matches(s, pattern)) {
            any = true;
            if let Some(t) = ov.timeout {
                s.timeout = t.0;
            }
            if let Some(t) = &ov.title {
                s.title = Some(t.clone());
            }
            match &ov.audio {
                Some(AudioOverride::None) => s.audio = None,
                Some(AudioOverride::File(f)) => {
                    let path = project.root.join(f);
                    if !path.is_file() {
                        return Err(Error::Selection {
                            message: format!(
                                "audio file `{f}` set for `{pattern}` in parender.toml does not exist"
                            ),
                            help: Some("fix the path (it is relative to the project root)".into()),
                        });
                    }
                    s.audio = Some(PathBuf::from(project.relative(&path)));
                }
                None => {}
            }
        }
        if !any {
            let names: Vec<String> = scenes.iter().map(|s| s.id.0.clone()).collect();
            let hint = crate::config::nearest(pattern, names.iter().map(String::as_str))
                .map(|n| format!(" (did you mean `{n}`?)"))
                .unwrap_or_default();
            warnings.push(format!(
                "[scene.\"{pattern}\"] in parender.toml matches no scene{hint}"
            ));
        }
    }
    // Audio that no scene uses: probably a typo in a file name.
    let in_use: Vec<PathBuf> = scenes.iter().filter_map(|s| s.audio.clone()).collect();
    for (key, files) in &audio {
        for f in files.iter().filter(|f| !in_use.contains(f)) {
            match paired.get(key) {
                Some(scene) if files.len() == 1 => warnings.push(format!(
                    "audio file {} is not used: parender.toml sets another audio for {scene}",
                    f.display()
                )),
                Some(_) => {} // reported above as one of several files
                None => warnings.push(format!(
                    "audio file {} matches no scene (expected `<file stem>.<ext>`, or `<file stem>.<Class>.<ext>` for files with several scenes)",
                    f.display()
                )),
            }
        }
    }
    Ok(scenes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn project(dir: &Path, toml: &str) -> Project {
        Project {
            root: dir.to_path_buf(),
            manifest: dir.join("parender.toml"),
            config: Config::parse(toml, Path::new("parender.toml")).unwrap(),
            name: "t".into(),
        }
    }

    fn scene(file: &str, class: &str) -> Scene {
        Scene::new(file, class, crate::config::DEFAULT_TIMEOUT)
    }

    fn touch(root: &Path, rel: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, b"x").unwrap();
    }

    #[test]
    fn pairs_by_stem_and_class() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        for f in [
            "audio/01_intro.wav",
            "audio/02_multi.First.mp3",
            "audio/02_multi.Second.ogg",
            "audio/sub/03_deep.flac",
            "audio/99_orphan.wav",
            "audio/notes.txt",
        ] {
            touch(r, f);
        }
        let p = project(r, "");
        let mut w = Vec::new();
        let out = pair(
            &p,
            vec![
                scene("scenes/01_intro.py", "Intro"),
                scene("scenes/02_multi.py", "First"),
                scene("scenes/02_multi.py", "Second"),
                scene("scenes/02_multi.py", "Third"),
                scene("scenes/sub/03_deep.py", "Deep"),
            ],
            &mut w,
        )
        .unwrap();
        let audio: Vec<_> = out
            .iter()
            .map(|s| s.audio.as_ref().map(|a| a.display().to_string()))
            .collect();
        assert_eq!(
            audio,
            vec![
                Some("audio/01_intro.wav".to_string()),
                Some("audio/02_multi.First.mp3".to_string()),
                Some("audio/02_multi.Second.ogg".to_string()),
                None,
                Some("audio/sub/03_deep.flac".to_string()),
            ]
        );
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("audio/99_orphan.wav"));
    }

    #[test]
    fn overrides_win() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        touch(r, "audio/a.wav");
        touch(r, "voice/special.m4a");
        let p = project(
            r,
            "[scene.\"a.py:A\"]\naudio = \"voice/special.m4a\"\ntimeout = 5\n[scene.B]\naudio = false\n[scene.Nope]\ntimeout = 1\n",
        );
        touch(r, "audio/b.wav");
        let mut w = Vec::new();
        let out = pair(
            &p,
            vec![scene("scenes/a.py", "A"), scene("scenes/b.py", "B")],
            &mut w,
        )
        .unwrap();
        assert_eq!(
            out[0].audio.as_deref(),
            Some(Path::new("voice/special.m4a"))
        );
        assert_eq!(out[0].timeout, std::time::Duration::from_secs(5));
        assert_eq!(out[1].audio, None);
        // a.wav is now unused; Nope matches nothing.
        assert!(w.iter().any(|m| m.contains("audio/a.wav")), "{w:?}");
        assert!(w.iter().any(|m| m.contains("Nope")), "{w:?}");
    }

    #[test]
    fn missing_override_file_is_an_error() {
        let t = tempfile::tempdir().unwrap();
        let p = project(t.path(), "[scene.A]\naudio = \"nope.wav\"\n");
        let err = pair(&p, vec![scene("scenes/a.py", "A")], &mut Vec::new()).unwrap_err();
        assert!(err.to_string().contains("nope.wav"));
    }
}
