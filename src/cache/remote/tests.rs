use std::sync::Arc;

use object_store::memory::InMemory;

use super::*;
use crate::analyze::hashcache::HashCache;
use crate::scene::SceneId;

struct Machine {
    _dir: tempfile::TempDir,
    local: LocalStore,
    remote: Arc<Remote>,
}

/// A project's local cache with `shared` as its remote.
fn machine(shared: &Arc<dyn ObjectStore>) -> Machine {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    Machine {
        local: LocalStore::open(cache.clone(), Arc::new(HashCache::default())),
        remote: Arc::new(Remote::with_store("mem://", shared.clone(), &cache)),
        _dir: dir,
    }
}

/// A render of `key` in `m`'s local store, with subtitles.
fn rendered(m: &Machine, key: &str) -> Entry {
    let video = m._dir.path().join("v.mp4");
    let srt = m._dir.path().join("v.srt");
    std::fs::write(&video, format!("video of {key}")).unwrap();
    std::fs::write(&srt, "1\n00:00:00,000 --> 00:00:01,000\nhi\n").unwrap();
    let entry = Entry::fixture(key, SceneId("scenes/a.py:A".into()));
    let extras = Extras {
        sound: None,
        subtitles: Some(&srt),
    };
    m.local.put(entry, &video, extras).unwrap()
}

#[tokio::test]
async fn one_machines_render_is_anothers_hit() {
    let shared: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let a = machine(&shared);
    let b = machine(&shared);
    assert!(matches!(b.remote.fetch("k1", &b.local).await, Fetch::Miss));
    let made = rendered(&a, "k1");
    a.remote.upload(made.clone());
    a.remote.wait_uploads().await;
    assert!(!a.remote.dir.join("pending/k1").exists());
    let Fetch::Hit(got) = b.remote.fetch("k1", &b.local).await else {
        panic!("expected a hit")
    };
    assert_eq!(got.video_hash, made.video_hash);
    assert_eq!(got.subtitles, made.subtitles);
    assert_eq!(
        std::fs::read(&got.video).unwrap(),
        std::fs::read(&made.video).unwrap()
    );
    assert!(matches!(b.local.get("k1").unwrap(), Lookup::Hit(_)));
    let up = a.remote.save_stats();
    assert_eq!(up.uploads, 1);
    assert!(up.bytes_up > 0);
    let down = b.remote.save_stats();
    assert_eq!((down.hits, down.misses), (1, 1));
    assert_eq!(load_stats(b.local.dir()).hits, 1);
}

#[tokio::test]
async fn a_poisoned_object_is_rejected_then_overwritten() {
    let shared: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let a = machine(&shared);
    let b = machine(&shared);
    let made = rendered(&a, "k1");
    a.remote.upload(made.clone());
    a.remote.wait_uploads().await;
    let path = Remote::object_path(&made.video_hash, "mp4");
    shared
        .put(&path, PutPayload::from(b"truncated".to_vec()))
        .await
        .unwrap();
    assert!(matches!(b.remote.fetch("k1", &b.local).await, Fetch::Miss));
    let warnings = b.remote.take_warnings();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("rejected") && w.contains("does not match its hash")),
        "{warnings:?}"
    );
    assert!(matches!(b.local.get("k1").unwrap(), Lookup::Miss));
    // b renders it and uploads: the poisoned object is replaced.
    let again = rendered(&b, "k1");
    b.remote.upload(again);
    b.remote.wait_uploads().await;
    let c = machine(&shared);
    assert!(matches!(
        c.remote.fetch("k1", &c.local).await,
        Fetch::Hit(_)
    ));
}

#[tokio::test]
async fn a_dead_remote_turns_off_with_one_warning_and_uploads_stay_pending() {
    // Nothing listens on port 1.
    let dead = open::store("http://127.0.0.1:1/cache").unwrap();
    let a = machine(&dead);
    let t = std::time::Instant::now();
    assert!(matches!(a.remote.fetch("k1", &a.local).await, Fetch::Off));
    assert!(matches!(a.remote.fetch("k2", &a.local).await, Fetch::Off));
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    let made = rendered(&a, "k1");
    a.remote.upload(made);
    a.remote.wait_uploads().await;
    assert!(a.remote.dir.join("pending/k1").exists());
    let warnings = a.remote.take_warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("cannot connect"), "{warnings:?}");
    // The next run, with the remote back, sends what was pending.
    let shared: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let back = Arc::new(Remote::with_store("mem://", shared.clone(), a.local.dir()));
    back.resume(&a.local);
    back.wait_uploads().await;
    assert!(!a.remote.dir.join("pending/k1").exists());
    let b = machine(&shared);
    assert!(matches!(
        b.remote.fetch("k1", &b.local).await,
        Fetch::Hit(_)
    ));
}

#[test]
fn urls_choose_stores_and_bad_ones_say_why() {
    assert!(open::store("http://127.0.0.1:8080/team/cache").is_ok());
    let e = open::store("ftp://host/x").err().unwrap();
    assert!(e.contains("unsupported scheme `ftp:`"), "{e}");
    assert!(open::store("not a url").is_err());
}
