//! The last few stitches of each output, kept by their key, so an edit
//! that is undone (a revert, a title changed back) publishes the video it
//! had before in milliseconds instead of stitching it again.
//!
//! The video is kept as a hard link to the published file: no copy, no
//! extra disk until the output is replaced (the link then keeps the old
//! video alive). Its size and modification time are recorded; a kept video
//! that was changed in place (through the output's name, before it was
//! replaced) no longer matches and is not used. Side files (chapters,
//! subtitles) are small and copied. Only [`KEEP`] stitches per output are
//! kept; where a hard link cannot be made (the output on another file
//! system), nothing is kept.
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::fsutil::{copy_atomic, write_atomic};

/// Stitches kept per output.
pub const KEEP: usize = 3;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Kept {
    size: u64,
    modified_ns: i128,
    /// File names beside the output (`talk.srt`, ...).
    side_files: Vec<String>,
    chapters: Option<String>,
    subtitles: Option<String>,
}

/// What a restored stitch published beside the video.
#[derive(Debug, Clone)]
pub struct Restored {
    pub chapters: Option<PathBuf>,
    pub subtitles: Option<PathBuf>,
    pub side_files: Vec<PathBuf>,
}

fn stamp(path: &Path) -> Option<(u64, i128)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((
        m.len(),
        m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128,
    ))
}

/// The folder of `output`'s kept stitches.
fn folder(cache: &Path, output: &Path) -> PathBuf {
    let h = blake3::hash(output.as_os_str().as_encoded_bytes()).to_hex();
    cache.join("stitched").join(&h[..32])
}

fn name_of(p: &Path) -> Option<String> {
    p.file_name().map(|n| n.to_string_lossy().into_owned())
}

/// Keeps the stitch just published at `output` under `key`. Best effort:
/// a stitch that cannot be kept is simply stitched again when needed.
pub fn keep(
    cache: &Path,
    key: &str,
    output: &Path,
    side_files: &[PathBuf],
    chapters: Option<&Path>,
    subtitles: Option<&Path>,
) {
    let dir = folder(cache, output).join(key);
    let _ = std::fs::remove_dir_all(&dir);
    if std::fs::create_dir_all(&dir).is_err() {
        return;
    }
    let Some((size, modified_ns)) = stamp(output) else {
        return;
    };
    let kept = Kept {
        size,
        modified_ns,
        side_files: side_files.iter().filter_map(|p| name_of(p)).collect(),
        chapters: chapters.and_then(name_of),
        subtitles: subtitles.and_then(name_of),
    };
    let linked = std::fs::hard_link(output, dir.join("video"));
    let copied = side_files.iter().all(|f| match name_of(f) {
        Some(n) => copy_atomic(f, &dir.join("side").join(n)).is_ok(),
        None => false,
    });
    let meta = serde_json::to_vec(&kept).ok();
    match (linked, copied, meta) {
        (Ok(()), true, Some(meta)) if write_atomic(&dir.join("meta.json"), &meta).is_ok() => {
            prune(&folder(cache, output));
        }
        _ => {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

/// Removes all but the [`KEEP`] most recently used stitches.
fn prune(folder: &Path) {
    let Ok(entries) = std::fs::read_dir(folder) else {
        return;
    };
    let mut dirs: Vec<(std::time::SystemTime, PathBuf)> = entries
        .flatten()
        .map(|e| {
            let used = std::fs::metadata(e.path().join("meta.json"))
                .and_then(|m| m.modified())
                .unwrap_or(std::time::UNIX_EPOCH);
            (used, e.path())
        })
        .collect();
    dirs.sort_by_key(|d| std::cmp::Reverse(d.0));
    for (_, d) in dirs.into_iter().skip(KEEP) {
        let _ = std::fs::remove_dir_all(d);
    }
}

/// Publishes the stitch kept under `key` at `output` (side files first,
/// then the video, each renamed into place), if it is kept and unchanged.
pub fn restore(cache: &Path, key: &str, output: &Path) -> Option<Restored> {
    let dir = folder(cache, output).join(key);
    let kept: Kept = serde_json::from_slice(&std::fs::read(dir.join("meta.json")).ok()?).ok()?;
    let video = dir.join("video");
    if stamp(&video) != Some((kept.size, kept.modified_ns)) {
        let _ = std::fs::remove_dir_all(&dir);
        return None;
    }
    let beside = output.parent()?;
    for n in &kept.side_files {
        copy_atomic(&dir.join("side").join(n), &beside.join(n)).ok()?;
    }
    let tmp = beside.join(format!(".tmp-restore-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    std::fs::hard_link(&video, &tmp).ok()?;
    if std::fs::rename(&tmp, output).is_err() {
        let _ = std::fs::remove_file(&tmp);
        return None;
    }
    // Most recently used: kept by the next prune.
    let _ = filetime_touch(&dir.join("meta.json"));
    Some(Restored {
        chapters: kept.chapters.map(|n| beside.join(n)),
        subtitles: kept.subtitles.map(|n| beside.join(n)),
        side_files: kept.side_files.iter().map(|n| beside.join(n)).collect(),
    })
}

fn filetime_touch(path: &Path) -> std::io::Result<()> {
    let f = std::fs::OpenOptions::new().append(true).open(path)?;
    f.set_modified(std::time::SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_stitch_comes_back_and_a_changed_one_does_not() {
        let t = tempfile::tempdir().unwrap();
        let (cache, out) = (t.path().join("cache"), t.path().join("talk.mp4"));
        let srt = t.path().join("talk.srt");
        std::fs::write(&out, b"first video").unwrap();
        std::fs::write(&srt, b"first cues").unwrap();
        keep(
            &cache,
            "k1",
            &out,
            std::slice::from_ref(&srt),
            None,
            Some(&srt),
        );
        // The next stitch replaces the output (a new file renamed over it).
        let next = t.path().join("next");
        std::fs::write(&next, b"second video").unwrap();
        std::fs::rename(&next, &out).unwrap();
        std::fs::write(&srt, b"second cues").unwrap();
        let r = restore(&cache, "k1", &out).unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), b"first video");
        assert_eq!(std::fs::read(&srt).unwrap(), b"first cues");
        assert_eq!(r.subtitles, Some(srt.clone()));
        assert!(restore(&cache, "k2", &out).is_none());
        // Written in place through the output's name: not trusted again.
        std::fs::write(&out, b"edited in place!").unwrap();
        assert!(restore(&cache, "k1", &out).is_none());
    }

    #[test]
    fn only_the_last_few_are_kept() {
        let t = tempfile::tempdir().unwrap();
        let (cache, out) = (t.path().join("cache"), t.path().join("talk.mp4"));
        for k in 0..KEEP + 2 {
            let tmp = t.path().join("tmp");
            std::fs::write(&tmp, format!("video {k}")).unwrap();
            std::fs::rename(&tmp, &out).unwrap();
            keep(&cache, &format!("k{k}"), &out, &[], None, None);
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let n = std::fs::read_dir(folder(&cache, &out)).unwrap().count();
        assert_eq!(n, KEEP);
        assert!(restore(&cache, "k0", &out).is_none());
        assert!(restore(&cache, &format!("k{}", KEEP + 1), &out).is_some());
    }
}
