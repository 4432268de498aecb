//! Planning: for each scene, render it, take it from the cache, or (when the
//! build was restricted to some scenes) reuse the last render it has.
use crate::error::Error;
use crate::scene::Scene;
use crate::store::{Entry, Lookup, Store};

#[derive(Debug)]
pub enum Action {
    /// Stale or never built: render it.
    Render,
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
    pub key: String,
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
        let key = keys[i].clone();
        let found = match store.get(&key)? {
            Lookup::Hit(entry) => Some(*entry),
            Lookup::Miss => None,
            Lookup::Corrupt(why) => {
                warnings.push(format!(
                    "cache entry of {} is corrupt ({why}); it is not used",
                    scene.id
                ));
                None
            }
        };
        let action = match (found, selected[i]) {
            (Some(entry), true) => Action::Fresh(entry),
            (Some(entry), false) => Action::Reuse {
                entry,
                stale: false,
            },
            (None, true) => Action::Render,
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
                    warnings.push(format!(
                        "{} has never been rendered and is not part of this build; it is left out of the video",
                        scene.id
                    ));
                    Action::Missing
                }
            },
        };
        steps.push(Step {
            index: i,
            key,
            action,
        });
    }
    Ok(steps)
}
