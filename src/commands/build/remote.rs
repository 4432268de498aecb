//! The build's side of the shared remote cache: stale scenes looked up
//! there before anything renders, new renders uploaded after, and a line
//! that says what the remote did.
use std::sync::Arc;

use futures::StreamExt;

use super::prepare::Prepared;
use crate::cache::plan::{Action, Step};
use crate::cache::remote::{Fetch, Remote};
use crate::cache::store::Entry;
use crate::report::Reporter;

/// Lookups at once.
const LOOKUPS: usize = 8;

/// Asks the remote for every scene the plan would render; each hit becomes
/// fresh. Returns the indices of the scenes that came from the remote.
pub(super) async fn fetch(
    p: &Prepared,
    steps: &mut [Step],
    remote: &Arc<Remote>,
    reporter: &Reporter,
) -> Vec<usize> {
    remote.resume(&p.store);
    let wanted: Vec<(usize, usize)> = steps
        .iter()
        .enumerate()
        .filter(|(_, s)| matches!(s.action, Action::Render { .. }))
        .map(|(n, s)| (n, s.index))
        .collect();
    let found: Vec<(usize, Fetch)> = futures::stream::iter(wanted)
        .map(|(n, i)| async move { (n, remote.fetch(&p.keys[i], &p.store).await) })
        .buffer_unordered(LOOKUPS)
        .collect()
        .await;
    let mut hits = Vec::new();
    for (n, fetched) in found {
        if let Fetch::Hit(entry) = fetched {
            hits.push(steps[n].index);
            steps[n].action = Action::Fresh(*entry);
        }
    }
    warn(remote, reporter);
    hits.sort_unstable();
    hits
}

/// Starts uploading the renders of this build.
pub(super) fn upload(remote: &Arc<Remote>, rendered: Vec<Entry>) {
    for entry in rendered {
        remote.upload(entry);
    }
}

/// Waits for the uploads when asked to, then says what the remote did in
/// this build and adds it to the stats.
pub(super) async fn finish(remote: &Remote, wait: bool, reporter: &Reporter) {
    if wait {
        remote.wait_uploads().await;
    }
    warn(remote, reporter);
    let run = remote.save_stats();
    let mut parts = Vec::new();
    if run.hits + run.misses > 0 {
        parts.push(format!(
            "{} hit{}, {} miss{} ({} down)",
            run.hits,
            plural(run.hits, "", "s"),
            run.misses,
            plural(run.misses, "", "es"),
            crate::report::human_size(run.bytes_down)
        ));
    }
    if run.uploads > 0 {
        parts.push(format!(
            "{} upload{} ({} up)",
            run.uploads,
            plural(run.uploads, "", "s"),
            crate::report::human_size(run.bytes_up)
        ));
    }
    let pending = remote.pending();
    reporter.emit(&crate::messages::Message::RemoteCache {
        url: remote.url().to_string(),
        hits: run.hits,
        misses: run.misses,
        rejected: run.rejected,
        uploads: run.uploads,
        bytes_down: run.bytes_down,
        bytes_up: run.bytes_up,
        pending,
    });
    if pending > 0 {
        parts.push(format!(
            "{pending} still uploading in the background (finished by the next build, or wait with --wait-uploads)"
        ));
    }
    if !parts.is_empty() {
        reporter.status("Remote", &format!("{}: {}", remote.url(), parts.join(", ")));
    }
}

fn warn(remote: &Remote, reporter: &Reporter) {
    for w in remote.take_warnings() {
        reporter.warning(&w);
    }
}

fn plural(n: u64, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 { one } else { many }
}
