//! Planning: for each scene, render it, take it from the cache, or (when the
//! build was restricted to some scenes) reuse the last render it has.
use crate::cache::store::{Entry, Lookup, Store};
use crate::error::Error;
use crate::scene::Scene;

#[derive(Debug)]
pub enum Action {
    /// Stale or never built: render it. `corrupt` says why a cached entry
    /// with the same key could not be used.
    Render { corrupt: Option<String> },
    /// The cache holds a render with this exact fingerprint.
    Fresh(Entry),
    /// Not selected for this build: its last render, which may be stale.
    Reuse { entry: Entry, stale: bool },
    /// Not selected and never rendered: left out of the video.
    Missing,
}

#[derive(Debug)]
pub struct Step {
    pub index: usize,
    pub action: Action,
}

/// `selected[i]` says whether scene `i` is built; `keys[i]` is its fingerprint.
pub fn plan(
    scenes: &[Scene],
    selected: &[bool],
    keys: &[String],
    profile: &str,
    store: &dyn Store,
    warnings: &mut Vec<String>,
) -> Result<Vec<Step>, Error> {
    let mut steps = Vec::with_capacity(scenes.len());
    for (i, scene) in scenes.iter().enumerate() {
        let mut corrupt = None;
        let found = match store.get(&keys[i])? {
            Lookup::Hit(entry) => Some(*entry),
            Lookup::Miss => None,
            Lookup::Corrupt(why) => {
                warnings.push(format!(
                    "cache entry of {} is corrupt ({why}); it is not used",
                    scene.id
                ));
                corrupt = Some(why);
                None
            }
        };
        let action = match (found, selected[i]) {
            (Some(entry), true) => Action::Fresh(entry),
            (Some(entry), false) => Action::Reuse {
                entry,
                stale: false,
            },
            (None, true) => Action::Render { corrupt },
            (None, false) => match store.latest(&scene.id, profile)? {
                Lookup::Hit(entry) => {
                    warnings.push(format!(
                        "{} changed since its last render and is not part of this build; the video uses its last render",
                        scene.id
                    ));
                    Action::Reuse {
                        entry: *entry,
                        stale: true,
                    }
                }
                _ => {
                    let why = if let Some(e) = store.failure(&keys[i]) {
                        format!("failed when it last rendered ({})", e.summary())
                    } else if store.latest_key(&scene.id, profile).is_some() {
                        "has no render in the cache (evicted by `cache gc`)".to_string()
                    } else {
                        "has never been rendered".to_string()
                    };
                    warnings.push(format!(
                        "{} {why} and is not part of this build; it is left out of the video",
                        scene.id
                    ));
                    Action::Missing
                }
            },
        };
        steps.push(Step { index: i, action });
    }
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::store::LocalStore;

    fn scene(class: &str) -> Scene {
        Scene::new("scenes/a.py", class, crate::config::DEFAULT_TIMEOUT)
    }

    fn entry(key: &str, s: &Scene) -> Entry {
        Entry::fixture(key, s.id.clone())
    }

    #[test]
    fn fresh_stale_reused_and_missing() {
        let t = tempfile::tempdir().unwrap();
        let store = LocalStore::open(
            t.path().join("cache"),
            std::sync::Arc::new(crate::analyze::hashcache::HashCache::default()),
        );
        let v = t.path().join("v.mp4");
        std::fs::write(&v, b"v").unwrap();
        let scenes = vec![scene("A"), scene("B"), scene("C"), scene("D")];
        // A and B were rendered with their current keys, C with an old key.
        store
            .put(
                entry("ka", &scenes[0]),
                &v,
                crate::cache::store::Extras::default(),
            )
            .unwrap();
        store
            .put(
                entry("kb", &scenes[1]),
                &v,
                crate::cache::store::Extras::default(),
            )
            .unwrap();
        store
            .put(
                entry("kc-old", &scenes[2]),
                &v,
                crate::cache::store::Extras::default(),
            )
            .unwrap();
        let keys: Vec<String> = ["ka", "kb", "kc", "kd"].map(String::from).to_vec();
        let mut w = Vec::new();
        // Build only A and C.
        let steps = plan(
            &scenes,
            &[true, false, true, false],
            &keys,
            "dev",
            &store,
            &mut w,
        )
        .unwrap();
        assert!(matches!(steps[0].action, Action::Fresh(_)));
        assert!(matches!(
            steps[1].action,
            Action::Reuse { stale: false, .. }
        ));
        assert!(matches!(steps[2].action, Action::Render { .. }));
        assert!(matches!(steps[3].action, Action::Missing));
        // Everything selected: C is stale, D never built.
        let steps = plan(&scenes, &[true; 4], &keys, "dev", &store, &mut w).unwrap();
        assert!(matches!(steps[2].action, Action::Render { .. }));
        assert!(matches!(steps[3].action, Action::Render { .. }));
        // Not selected and changed: its last render, flagged stale.
        let steps = plan(&scenes, &[false; 4], &keys, "dev", &store, &mut w).unwrap();
        assert!(matches!(steps[2].action, Action::Reuse { stale: true, .. }));
        assert!(
            w.iter().any(|m| m.contains("scenes/a.py:C changed")),
            "{w:?}"
        );
    }
}
