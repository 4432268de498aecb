//! Fingerprints: the cache key of a scene's render, a blake3 hash over a
//! canonical description of everything that can change its pixels.
//!
//! This first version is deliberately coarse so it never serves a stale
//! video for the common cases: the scene's own file, every non-scene file
//! under the scene folder (helper modules, assets kept beside the scenes),
//! the `manim.cfg` files Manim reads (the project root's; one beside the
//! scenes is under the scene folder), the render settings and the toolchain.
//! Precise import and asset tracking replaces the folder digest later.
use std::path::Path;

use crate::discover::{ToolVersions, walk};
use crate::error::Error;
use crate::project::Project;
use crate::scene::Scene;
use crate::settings::RenderSettings;

/// Bumped whenever what parender stores for a render changes meaning.
pub const RENDER_FORMAT: &str = "parender-render-v1";

/// What every scene's key shares in one build.
#[derive(Debug, Clone)]
pub struct SharedInputs {
    digest: blake3::Hash,
}

fn hash_file_into(h: &mut blake3::Hasher, label: &str, path: &Path) -> Result<(), Error> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    h.update(label.as_bytes());
    h.update(&(bytes.len() as u64).to_le_bytes());
    h.update(&bytes);
    Ok(())
}

impl SharedInputs {
    /// `scene_files` are the files that hold scenes (each is hashed into its
    /// own scenes' keys only, so editing one scene does not invalidate others).
    pub fn collect(
        project: &Project,
        scene_files: &[String],
        settings: &RenderSettings,
        versions: &ToolVersions,
    ) -> Result<SharedInputs, Error> {
        let mut h = blake3::Hasher::new();
        h.update(RENDER_FORMAT.as_bytes());
        let s = serde_json::to_string(settings).map_err(|e| Error::Other(e.to_string()))?;
        h.update(s.as_bytes());
        h.update(format!("python {}\0manim {}\0", versions.python, versions.manim).as_bytes());
        let mut others = Vec::new();
        walk(&project.scenes_dir(), &mut |p| {
            let rel = project.relative(p);
            if !scene_files.contains(&rel) && !rel.ends_with(".pyc") {
                others.push(rel);
            }
        })?;
        others.sort();
        for rel in &others {
            hash_file_into(&mut h, rel, &project.root.join(rel))?;
        }
        let cfg = project.root.join("manim.cfg");
        if cfg.is_file() {
            hash_file_into(&mut h, "manim.cfg", &cfg)?;
        }
        Ok(SharedInputs {
            digest: h.finalize(),
        })
    }

    /// The key of one scene's render.
    pub fn scene_key(&self, project: &Project, scene: &Scene) -> Result<String, Error> {
        let mut h = blake3::Hasher::new();
        h.update(self.digest.as_bytes());
        h.update(scene.id.0.as_bytes());
        h.update(b"\0");
        hash_file_into(&mut h, &scene.file, &project.root.join(&scene.file))?;
        Ok(h.finalize().to_hex().to_string())
    }
}
