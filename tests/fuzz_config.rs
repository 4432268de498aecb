//! Property tests of the `parender.toml` parser (issue 8): whatever the text,
//! `Config::parse` returns a value or a located error, never panics; what it
//! accepts is within the documented ranges; and every error that toml can
//! place in the text carries its `file:line:column` and source line.
//!
//! 256 cases per property by default (well under a second). A longer run
//! (a million cases per property: about 20 s in release on 2 cores, after
//! the build):
//!
//! ```text
//! PROPTEST_CASES=1000000 cargo test --release --test fuzz_config
//! ```
//!
//! A failing case is shrunk and saved in
//! `tests/fuzz_config.proptest-regressions`; commit that file (its cases are
//! replayed first on every run) and add the input to `regressions` below.
use std::path::Path;
use std::time::Duration;

use parender::config::{Config, MAX_GAP, MAX_JOBS, MAX_TIMEOUT, bad_name};
use proptest::prelude::*;

/// Valid configurations to mutate: the README's example and every key.
const SEEDS: &[&str] = &[
    r#"name = "odd-squares"
gap = 0.5

[profile.dev]
quality = "low"
jobs = 2

[profile.release]
quality = "production"

[output]
subtitles = "embed"

[scene."03_graph.py:Growth"]
audio = "audio/growth-take2.wav"
timeout = "20m"
title = "How it grows"
"#,
    r#"name = "talk"
scenes = "src/scenes"
audio = "voice"
output = "build"
order = ["02_b.py", "01_a.py:A", "C"]
gap = 1
jobs = 3
timeout = "2m"
python = ".venv/bin/python"
manim = "manim"
manim_args = ["--disable_caching"]
cache_salt = "x"
cache_max_size = "2GB"

[watch]
ignore = ["drafts/**"]
debounce = "250ms"

[profile.dev]
quality = "m"
fps = 24
manim_args = ["-v", "WARNING"]

[scene.B]
audio = false
"#,
    "",
];

/// Values that have broken parsers before, or sit on a boundary.
const VALUES: &[&str] = &[
    "0",
    "-1",
    "1",
    "1024",
    "1025",
    "99999999999",
    "9223372036854775807",
    "-9223372036854775808",
    "18446744073709551616",
    "1e300",
    "-1e300",
    "1e-300",
    "nan",
    "inf",
    "-inf",
    "0.0",
    "3600",
    "3600.0001",
    "604800",
    "604801",
    "\"\"",
    "\".\"",
    "\"..\"",
    "\"../../../x\"",
    "\"a/b\"",
    "\"four\"",
    "\"0s\"",
    "\"1e300s\"",
    "\"99999999999999999999999h\"",
    "\"250ms\"",
    "\"-5s\"",
    "\"1.5.2m\"",
    "\"\\u0000\"",
    "\"é\"",
    "true",
    "false",
    "[]",
    "[1, \"a\"]",
    "{}",
    "{ dir = \"x\" }",
    "1979-05-27T07:32:00Z",
    "'''\nmulti\n'''",
];

const KEYS: &[&str] = &[
    "name",
    "scenes",
    "audio",
    "output",
    "order",
    "gap",
    "jobs",
    "timeout",
    "python",
    "manim",
    "cache_salt",
    "cache_max_size",
    "manim_args",
    "output.dir",
    "output.subtitles",
    "watch.ignore",
    "watch.debounce",
    "profile.dev.quality",
    "profile.dev.fps",
    "profile.dev.jobs",
    "profile.release.manim_args",
    "scene.A.audio",
    "scene.\"a.py:A\".timeout",
    "scene.A.title",
    "jbos",
];

/// Pieces of TOML syntax inserted at random places.
const TOKENS: &[&str] = &[
    "=",
    "[",
    "]",
    "[[",
    "]]",
    "{",
    "}",
    "\"",
    "'",
    "\n",
    ",",
    ".",
    "#",
    "\\",
    "é",
    "\u{0}",
    "\r",
    "\t",
    "=\"",
    "[profile.",
    "[scene.\"",
    "\"\"\"",
];

#[derive(Debug, Clone)]
enum Edit {
    Insert(usize, String),
    Delete(usize, usize),
    Set(String, String),
    DuplicateLine(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (
            any::<usize>(),
            prop_oneof![
                proptest::sample::select(TOKENS).prop_map(str::to_string),
                proptest::sample::select(VALUES).prop_map(str::to_string),
                any::<String>(),
            ]
        )
            .prop_map(|(at, s)| Edit::Insert(at, s)),
        (any::<usize>(), 0usize..40).prop_map(|(at, n)| Edit::Delete(at, n)),
        (
            proptest::sample::select(KEYS),
            proptest::sample::select(VALUES)
        )
            .prop_map(|(k, v)| Edit::Set(k.to_string(), v.to_string())),
        any::<usize>().prop_map(Edit::DuplicateLine),
    ]
}

/// The nearest char boundary at or below `at % (len + 1)`.
fn boundary(text: &str, at: usize) -> usize {
    let mut i = at % (text.len() + 1);
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn apply(text: &mut String, e: &Edit) {
    match e {
        Edit::Insert(at, s) => {
            let i = boundary(text, *at);
            text.insert_str(i, s);
        }
        Edit::Delete(at, n) => {
            let i = boundary(text, *at);
            let j = boundary(text, i + n).max(i);
            text.replace_range(i..j, "");
        }
        // A dotted key at the top, before any table: sets that key.
        Edit::Set(k, v) => *text = format!("{k} = {v}\n{text}"),
        Edit::DuplicateLine(at) => {
            let lines: Vec<&str> = text.lines().collect();
            if !lines.is_empty() {
                let l = lines[at % lines.len()].to_string();
                text.push('\n');
                text.push_str(&l);
                text.push('\n');
            }
        }
    }
}

/// Parses and checks every property of one text.
fn check(text: &str) -> Result<(), TestCaseError> {
    let path = Path::new("/p/parender.toml");
    match Config::parse(text, path) {
        Ok(c) => {
            // Accepted means within the documented ranges.
            if let Some(t) = c.timeout {
                prop_assert!(!t.0.is_zero() && t.0 <= MAX_TIMEOUT, "timeout {:?}", t.0);
            }
            for (k, s) in &c.scene {
                if let Some(t) = s.timeout {
                    prop_assert!(!t.0.is_zero() && t.0 <= MAX_TIMEOUT, "{k}: {:?}", t.0);
                }
            }
            if let Some(g) = c.gap {
                prop_assert!(g.0 <= MAX_GAP, "gap {:?}", g.0);
            }
            if let Some(d) = c.watch.debounce {
                prop_assert!(d.0 <= Duration::from_secs(60), "debounce {:?}", d.0);
            }
            for j in [
                c.jobs,
                c.profile.dev.as_ref().and_then(|p| p.jobs),
                c.profile.release.as_ref().and_then(|p| p.jobs),
            ]
            .into_iter()
            .flatten()
            {
                prop_assert!((1..=MAX_JOBS).contains(&j.0), "jobs {}", j.0);
            }
            if let Some(n) = &c.name {
                prop_assert!(bad_name(n).is_none(), "name {n:?}");
            }
        }
        Err(e) => {
            prop_assert!(!e.to_string().trim().is_empty(), "empty message");
            let raw = toml::from_str::<Config>(text).expect_err("toml agrees it is an error");
            match raw.span() {
                Some(span) => {
                    let (l, c) = parender::config::line_col(text, span.start);
                    prop_assert_eq!(e.location(), format!("/p/parender.toml:{l}:{c}"));
                    prop_assert!(e.snippet().is_some(), "no source line for {}", e);
                }
                None => prop_assert_eq!(e.location(), "/p/parender.toml"),
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::WithSource("proptest-regressions"),
        )),
        ..ProptestConfig::default()
    })]

    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        check(&text)?;
    }

    #[test]
    fn mutated_configs_never_panic_and_errors_are_located(
        seed in proptest::sample::select(SEEDS),
        edits in proptest::collection::vec(edit(), 1..6),
    ) {
        let mut text = seed.to_string();
        for e in &edits {
            apply(&mut text, e);
        }
        check(&text)?;
    }

    #[test]
    fn every_key_with_every_odd_value(
        k in proptest::sample::select(KEYS),
        v in proptest::sample::select(VALUES),
        table in any::<bool>(),
    ) {
        // As a dotted key, and as a key inside its table.
        let text = match (table, k.rsplit_once('.')) {
            (true, Some((t, key))) => format!("[{t}]\n{key} = {v}\n"),
            _ => format!("{k} = {v}\n"),
        };
        check(&text)?;
    }
}

/// Inputs that panicked or were accepted before issue 8, kept as plain tests.
#[test]
fn regressions() {
    let path = Path::new("parender.toml");
    for text in [
        "timeout = 1e300",
        "gap = 1e300",
        "[watch]\ndebounce = 1e300",
        "[scene.A]\ntimeout = 1e300",
        "timeout = \"99999999999999999999999h\"",
        "timeout = 0",
        "gap = 1e9",
        "name = \"\"",
        "name = \"../../../x\"",
        "jobs = 99999999999",
        "jobs = \"four\"",
        "[profile.dev]\nfps = 1e300",
    ] {
        let err = Config::parse(text, path).expect_err(text);
        assert!(
            err.location().starts_with("parender.toml:"),
            "{text}: {}",
            err.location()
        );
        assert!(err.snippet().is_some(), "{text}");
    }
    // An error at the end of the text (after the last newline) still shows
    // its (empty) source line. Found by the fuzzer.
    let err = Config::parse("name = \"\"\"abc\n", path).unwrap_err();
    assert_eq!(err.location(), "parender.toml:2:1");
    assert_eq!(err.snippet(), Some((2, 1, "")));
    // Multi-byte text before an error still gives a column, not a panic.
    let err = Config::parse("name = \"é\"\njbos = 1\n", path).unwrap_err();
    assert_eq!(err.location(), "parender.toml:2:1");
}
