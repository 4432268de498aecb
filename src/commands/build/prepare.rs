//! What a build knows before anything renders: the scenes, their inputs
//! and keys, why each stale one is stale. Shared with `status` and `scenes`.
use std::path::Path;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::analyze::discover::{self, Discovery};
use crate::analyze::fingerprint::{Fingerprinter, Inputs, explain};
use crate::analyze::hashcache::HashCache;
use crate::cache::store::{Entry, LocalStore, Lookup, Store};
use crate::error::Error;
use crate::project::Project;
use crate::python::Runner;
use crate::settings::{BuildSettings, Overrides};

/// Everything known before anything renders: the scenes, their inputs and
/// keys, and the store. Shared by `build` and `status`.
pub struct Prepared {
    pub settings: BuildSettings,
    pub discovery: Discovery,
    pub inputs: Vec<Inputs>,
    pub keys: Vec<String>,
    pub fingerprinter: Arc<Fingerprinter>,
    pub hashes: Arc<HashCache>,
    pub store: Arc<LocalStore>,
}

pub async fn prepare(
    project: &Project,
    overrides: &Overrides,
    runner: &Runner,
    cancel: &CancellationToken,
) -> Result<Prepared, Error> {
    let mut settings = BuildSettings::resolve(&project.config, overrides);
    let state = project.state_dir();
    let versions =
        crate::analyze::toolchain::versions(runner.python(), &state.join("toolchain.json"), cancel)
            .await?;
    settings.render.pin_encoder(&versions.manim);
    let hashes = Arc::new(HashCache::load(state.join("hashes.json")));
    let fingerprinter = Arc::new(Fingerprinter::new(
        project,
        settings.render.clone(),
        versions.clone(),
        hashes.clone(),
    ));
    runner.refresh(&versions.manim, settings.jobs).await;
    let discovery = discover::discover(project, runner, &versions, &fingerprinter, cancel).await?;
    let inputs = discovery
        .scenes
        .iter()
        .map(|s| fingerprinter.inputs(s))
        .collect::<Result<Vec<_>, _>>()?;
    let keys = inputs.iter().map(Inputs::key).collect();
    let store = Arc::new(LocalStore::open(state.join("cache"), hashes.clone()));
    Ok(Prepared {
        settings,
        discovery,
        inputs,
        keys,
        fingerprinter,
        hashes,
        store,
    })
}

impl Prepared {
    /// Whether scene `i` makes sound of its own (`add_sound`), as its latest
    /// render in this profile (else the other) shows; `None` before any.
    pub fn scene_sound(&self, i: usize) -> Option<bool> {
        self.find_latest(i, |e| Some(e.sound.is_some()))
    }

    /// `found` of scene `i`'s latest render in this profile, else in the
    /// other one: the first that is in the cache and gives `Some`.
    pub fn find_latest<T>(&self, i: usize, found: impl Fn(Entry) -> Option<T>) -> Option<T> {
        let id = &self.discovery.scenes[i].id;
        let profile = self.settings.profile.name();
        [profile, "dev", "release"]
            .iter()
            .find_map(|prof| match self.store.latest(id, prof) {
                Ok(Lookup::Hit(e)) => found(*e),
                _ => None,
            })
    }
}

/// Says what a scene's audio is: `audio/a.wav`, `sound from the scene`,
/// both, or `(no audio)`.
pub fn describe_audio(audio: Option<&Path>, sound: Option<bool>) -> String {
    match (audio, sound == Some(true)) {
        (Some(a), true) => format!("{} + sound from the scene", a.display()),
        (Some(a), false) => a.display().to_string(),
        (None, true) => "sound from the scene".into(),
        (None, false) => "(no audio)".into(),
    }
}

/// Why scene `i` needs rendering: the difference from its last render.
pub fn why_stale(p: &Prepared, i: usize, corrupt: Option<&str>) -> Vec<String> {
    if let Some(c) = corrupt {
        return vec![format!("cache entry corrupt ({c})")];
    }
    let scene = &p.discovery.scenes[i];
    // The last render in this profile, else in the other one (so switching
    // to --release says "quality changed low -> high", not "never built").
    let profile = p.settings.profile.name();
    let prev = p.find_latest(i, |e| e.inputs);
    if prev.is_none()
        && let Some(last) = [profile, "dev", "release"]
            .iter()
            .find_map(|prof| p.store.latest_key(&scene.id, prof))
    {
        return vec![if last == p.keys[i] {
            "evicted from the cache (`cache gc`); its inputs did not change".into()
        } else {
            "its last render was evicted from the cache (`cache gc`), so what changed is unknown"
                .into()
        }];
    }
    let why = explain(prev.as_ref(), &p.inputs[i]);
    if why.is_empty() {
        // Same inputs as the last render, but that is not in the cache
        // (evicted by `cache gc`, or rendered in another profile's folder).
        vec!["not in the cache".into()]
    } else {
        why
    }
}
