//! `parender.toml`: the schema, its defaults, and errors that point at the
//! offending file, line and column with a suggestion.
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer};

use std::str::FromStr;

use serde::Serialize;

/// The manifest's file name, found like cargo finds `Cargo.toml`.
pub const MANIFEST: &str = "parender.toml";

/// Every key is optional; defaults are applied by [`crate::project`] and
/// [`crate::settings`] and documented in the README.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Name of the final video (default: the project folder's name): a
    /// file name, so it cannot lead out of the output folder.
    #[serde(default, deserialize_with = "de_name")]
    pub name: Option<String>,
    /// Folder with the scene files (default `scenes`).
    pub scenes: Option<String>,
    /// Folder with the narration audio (default `audio`).
    pub audio: Option<String>,
    /// `output = "folder"`, or `[output]` with `dir` and `subtitles`.
    #[serde(default)]
    pub output: OutputConfig,
    /// Explicit scene order: entries `file.py`, `file.py:Class` or `Class`.
    pub order: Option<Vec<String>>,
    /// Seconds between scenes, holding the previous scene's last frame.
    #[serde(default, deserialize_with = "de_gap")]
    pub gap: Option<Seconds>,
    /// Parallel renders (default: number of CPUs).
    pub jobs: Option<Jobs>,
    /// Per-scene render timeout (default 10 minutes).
    #[serde(default, deserialize_with = "de_timeout")]
    pub timeout: Option<Seconds>,
    /// Python interpreter that has Manim installed.
    pub python: Option<String>,
    /// The `manim` command to use; its interpreter is read from its `#!` line.
    pub manim: Option<String>,
    /// Changing it invalidates every cached render on purpose.
    pub cache_salt: Option<String>,
    /// Size the cache is trimmed to by `parender cache gc` (default "2GB").
    pub cache_max_size: Option<ByteSize>,
    /// Extra arguments passed to every Manim render.
    #[serde(default)]
    pub manim_args: Vec<String>,
    #[serde(default)]
    pub profile: Profiles,
    /// Per-scene overrides, keyed by `file.py:Class`, `file.py` or `Class`.
    #[serde(default)]
    pub scene: BTreeMap<String, SceneOverride>,
    #[serde(default)]
    pub watch: WatchConfig,
    #[serde(default)]
    pub render: RenderConfig,
    #[serde(default)]
    pub cache: CacheConfig,
    #[serde(default)]
    pub executor: ExecutorConfig,
}

/// `[cache]`: the shared remote cache.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// `s3://bucket/prefix`, `gs://…`, `az://…` or `http(s)://host/prefix`
    /// (WebDAV): renders are looked up there after a local miss and
    /// uploaded there after a render.
    #[serde(default, deserialize_with = "de_remote")]
    pub remote: Option<String>,
}

/// The URL schemes `[cache] remote` takes.
pub const REMOTE_SCHEMES: &[&str] = &[
    "s3", "s3a", "gs", "az", "azure", "abfs", "abfss", "http", "https",
];

fn de_remote<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let url = String::deserialize(d)?;
    let scheme = url.split_once("://").map(|(s, _)| s);
    match scheme {
        Some(s) if REMOTE_SCHEMES.contains(&s) => Ok(Some(url)),
        _ => Err(de::Error::custom(format!(
            "invalid remote {url:?}: expected s3://bucket/prefix, gs://bucket/prefix, az://container/prefix or http(s)://host/prefix"
        ))),
    }
}

/// `[executor]`: where scene renders run.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecutorConfig {
    #[serde(default)]
    pub kind: ExecutorKind,
    /// Ray: `ray://host:port` or `host:port` of the cluster's head.
    pub address: Option<String>,
    /// Slurm: the partition (`srun -p`).
    pub partition: Option<String>,
    /// Slurm: the account (`srun -A`).
    pub account: Option<String>,
    /// Slurm: more `srun` options, e.g. `["--qos=short"]`.
    #[serde(default)]
    pub options: Vec<String>,
    /// CPUs per render (default 1).
    pub cpus: Option<u32>,
}

/// `[executor] kind`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExecutorKind {
    /// Renders on this machine (the warm workers or the CLI).
    #[default]
    Local,
    /// One Ray task per render.
    Ray,
    /// One Slurm job step (`srun`) per render.
    Slurm,
}

/// `[render]`: how scenes are rendered.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenderConfig {
    /// `warm` (default): forked from a Python that imported Manim once;
    /// `cli`: a fresh Python process per render.
    #[serde(default)]
    pub backend: Backend,
    /// Split a long scene into animation ranges rendered in parallel, where
    /// that is frame-exact (default true).
    #[serde(default)]
    pub split: Option<bool>,
}

/// `[render] backend`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    #[default]
    Warm,
    Cli,
}

/// `[watch]`: how `parender watch` watches.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchConfig {
    /// Globs (relative to the project root) whose changes are ignored.
    #[serde(default)]
    pub ignore: Vec<String>,
    /// Quiet period after the last change before rebuilding (default 100ms).
    #[serde(default, deserialize_with = "de_debounce")]
    pub debounce: Option<Seconds>,
}

/// `[output]`: where the final video goes and what comes with it. A plain
/// string (`output = "out"`) names just the folder.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputTable {
    /// Folder for final videos (default `out`).
    pub dir: Option<String>,
    /// `"file"` (default): `<name>.srt` and `<name>.vtt` beside the video;
    /// `"embed"`: those and a subtitle track in it; `"none"`.
    #[serde(default)]
    pub subtitles: crate::config::SubtitleMode,
}

#[derive(Debug, Default, Clone)]
pub struct OutputConfig(pub OutputTable);

impl<'de> Deserialize<'de> for OutputConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = OutputConfig;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a folder name or an [output] table")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<OutputConfig, E> {
                Ok(OutputConfig(OutputTable {
                    dir: Some(v.to_string()),
                    ..OutputTable::default()
                }))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<OutputConfig, A::Error> {
                OutputTable::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(OutputConfig)
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profiles {
    pub dev: Option<ProfileConfig>,
    pub release: Option<ProfileConfig>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileConfig {
    pub quality: Option<Quality>,
    pub fps: Option<Fps>,
    pub jobs: Option<Jobs>,
    pub manim_args: Option<Vec<String>>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SceneOverride {
    /// Audio file (relative to the project root) instead of the paired one;
    /// `false` means none.
    pub audio: Option<AudioOverride>,
    #[serde(default, deserialize_with = "de_timeout")]
    pub timeout: Option<Seconds>,
    /// The scene's chapter title (default: its class name).
    pub title: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum AudioOverride {
    File(String),
    None,
}

impl<'de> Deserialize<'de> for AudioOverride {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            S(String),
            B(bool),
        }
        match Raw::deserialize(d).map_err(|_| {
            de::Error::custom("invalid audio: expected a file path or `false` for no audio")
        })? {
            Raw::S(s) => Ok(AudioOverride::File(s)),
            Raw::B(false) => Ok(AudioOverride::None),
            Raw::B(true) => Err(de::Error::custom(
                "invalid audio: expected a file path or `false` for no audio",
            )),
        }
    }
}

/// A non-negative duration, written as a number of seconds (`90`, `1.5`) or a
/// string with a unit (`"90s"`, `"10m"`, `"1h"`, `"250ms"`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Seconds(pub Duration);

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Seconds;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number of seconds or a string like \"90s\", \"10m\", \"1h\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Seconds, E> {
                self.visit_f64(v as f64)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Seconds, E> {
                self.visit_f64(v as f64)
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Seconds, E> {
                let shown = if v.abs() >= 1e15 {
                    format!("{v:e}")
                } else {
                    v.to_string()
                };
                // NaN is not >= 0 either.
                if v.is_nan() || v < 0.0 {
                    return Err(E::custom(format!(
                        "invalid duration {shown}: expected a number of seconds >= 0"
                    )));
                }
                // `try_`: a huge number (1e300) is an error, not a panic.
                Duration::try_from_secs_f64(v).map(Seconds).map_err(|_| {
                    E::custom(format!("invalid duration {shown} seconds: far too long"))
                })
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Seconds, E> {
                parse_duration(v).map(Seconds).ok_or_else(|| {
                    E::custom(format!(
                        "invalid duration \"{v}\": expected a number with a unit, like \"90s\", \"10m\", \"1h\" or \"250ms\""
                    ))
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// `"1.5 GB"` → (1.5, "GB"): a number and the unit written after it.
fn number_and_unit(text: &str) -> Option<(f64, &str)> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    Some((num.parse().ok()?, unit.trim()))
}

/// Parses `"90s"`, `"10m"`, `"1.5h"`, `"250ms"` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let (n, unit) = number_and_unit(text)?;
    let scale = match unit {
        "" | "s" | "sec" | "secs" => 1.0,
        "ms" => 0.001,
        "m" | "min" | "mins" => 60.0,
        "h" => 3600.0,
        _ => return None,
    };
    // `try_`: a number too large for a Duration is no duration, not a panic.
    Duration::try_from_secs_f64(n * scale).ok()
}

/// A size in bytes, written as a number or `"500MB"`, `"2GB"`, `"750KiB"`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ByteSize(pub u64);

/// Parses `"2GB"`, `"500 MB"`, `"750KiB"`, `"1024"`.
pub fn parse_size(text: &str) -> Option<u64> {
    let (n, unit) = number_and_unit(text)?;
    let scale: f64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        "t" | "tb" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    let v = n * scale;
    (v.is_finite() && v >= 0.0).then_some(v as u64)
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        let bad = || {
            de::Error::custom("invalid size: expected bytes or a string like \"2GB\", \"500MB\"")
        };
        match Raw::deserialize(d).map_err(|_| bad())? {
            Raw::N(n) => Ok(ByteSize(n)),
            Raw::S(s) => parse_size(&s).map(ByteSize).ok_or_else(bad),
        }
    }
}

/// A positive number of parallel renders.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Jobs(pub usize);

/// More parallel renders than this is a typo, not a machine.
pub const MAX_JOBS: usize = 1024;

impl<'de> Deserialize<'de> for Jobs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let expected = format!("a whole number of parallel renders from 1 to {MAX_JOBS}");
        let v = whole_number(d, "jobs", &expected)?;
        match usize::try_from(v) {
            Ok(n) if (1..=MAX_JOBS).contains(&n) => Ok(Jobs(n)),
            _ => Err(de::Error::custom(format!(
                "invalid jobs {v}: expected {expected}"
            ))),
        }
    }
}

/// A whole number, with an error in the user's words (`expected a whole
/// number of parallel renders`) instead of serde's (`expected i64`).
fn whole_number<'de, D: Deserializer<'de>>(
    d: D,
    key: &str,
    expected: &str,
) -> Result<i128, D::Error> {
    struct V<'a> {
        key: &'a str,
        expected: &'a str,
    }
    impl<'de> de::Visitor<'de> for V<'_> {
        type Value = i128;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str(self.expected)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<i128, E> {
            Ok(v.into())
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<i128, E> {
            Ok(v.into())
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<i128, E> {
            Err(E::custom(format!(
                "invalid {} {v}: expected {}",
                self.key, self.expected
            )))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<i128, E> {
            Err(E::custom(format!(
                "invalid {} \"{v}\": expected {} (a number, without quotes)",
                self.key, self.expected
            )))
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<i128, E> {
            Err(E::custom(format!(
                "invalid {} {v}: expected {}",
                self.key, self.expected
            )))
        }
    }
    d.deserialize_any(V { key, expected })
}

/// A frame rate in whole frames per second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fps(pub u32);

impl<'de> Deserialize<'de> for Fps {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let expected = "a whole number of frames per second from 1 to 240";
        let v = whole_number(d, "fps", expected)?;
        match u32::try_from(v) {
            Ok(n) if (1..=240).contains(&n) => Ok(Fps(n)),
            _ => Err(de::Error::custom(format!(
                "invalid fps {v}: expected {expected}"
            ))),
        }
    }
}

/// The longest `timeout`: a render that needs more than a week is a typo.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 3600);
/// The longest `gap` between scenes.
pub const MAX_GAP: Duration = Duration::from_secs(3600);
/// The longest `[watch] debounce`.
pub const MAX_DEBOUNCE: Duration = Duration::from_secs(60);

/// A duration within `(min, max]` (or `[0, max]` when `zero_ok`), with an
/// error that says the allowed range.
fn seconds_within<'de, D: Deserializer<'de>>(
    d: D,
    key: &str,
    zero_ok: bool,
    max: (Duration, &str),
) -> Result<Option<Seconds>, D::Error> {
    let s = Seconds::deserialize(d)?;
    let (max, max_text) = max;
    if !zero_ok && s.0.is_zero() {
        return Err(de::Error::custom(format!(
            "invalid {key} 0: expected a duration above zero, like \"90s\" or \"10m\""
        )));
    }
    if s.0 > max {
        return Err(de::Error::custom(format!(
            "invalid {key} {}: expected at most {max_text}",
            crate::config::human_duration(s.0)
        )));
    }
    Ok(Some(s))
}

fn de_timeout<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Seconds>, D::Error> {
    seconds_within(d, "timeout", false, (MAX_TIMEOUT, "a week (\"168h\")"))
}

fn de_gap<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Seconds>, D::Error> {
    seconds_within(d, "gap", true, (MAX_GAP, "an hour (3600 seconds)"))
}

fn de_debounce<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Seconds>, D::Error> {
    seconds_within(d, "debounce", true, (MAX_DEBOUNCE, "a minute (\"60s\")"))
}

/// The longest video name, in bytes (file names stop at 255, and the
/// temporary file beside the video adds a few).
pub const MAX_NAME_BYTES: usize = 200;

/// Why `name` cannot name a video file, if it cannot.
pub fn bad_name(name: &str) -> Option<&'static str> {
    if name.trim().is_empty() {
        Some("it is empty")
    } else if name == "." || name == ".." {
        Some("`.` and `..` are folders")
    } else if name.contains('/') || name.contains('\\') {
        Some("it contains a path separator")
    } else if name.contains('\0') {
        Some("it contains a NUL character")
    } else if name.len() > MAX_NAME_BYTES {
        Some("it is too long")
    } else {
        None
    }
}

fn de_name<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let name = String::deserialize(d)?;
    match bad_name(&name) {
        None => Ok(Some(name)),
        Some(why) => Err(de::Error::custom(format!(
            "invalid name {name:?}: {why}; expected a file name for the video, like \"lecture\" (it is written to <output>/<profile>/<name>.mp4)"
        ))),
    }
}

/// A configuration error, located in its file (boxed: errors stay small).
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.message)]
pub struct ConfigError(Box<ConfigErrorDetail>);

#[derive(Debug)]
pub struct ConfigErrorDetail {
    pub path: PathBuf,
    pub message: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// The offending source line, for display.
    pub snippet: Option<String>,
    pub help: Option<String>,
}

impl ConfigError {
    pub fn help(&self) -> Option<String> {
        self.0.help.clone()
    }

    /// `file:line:column`, as editors and terminals understand it.
    pub fn location(&self) -> String {
        let d = &self.0;
        match (d.line, d.column) {
            (Some(l), Some(c)) => format!("{}:{l}:{c}", d.path.display()),
            _ => d.path.display().to_string(),
        }
    }

    pub fn snippet(&self) -> Option<(usize, usize, &str)> {
        let d = &self.0;
        match (d.line, d.column, &d.snippet) {
            (Some(l), Some(c), Some(s)) => Some((l, c, s.as_str())),
            _ => None,
        }
    }
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError(Box::new(ConfigErrorDetail {
                path: path.to_path_buf(),
                message: format!("could not read {}: {e}", path.display()),
                line: None,
                column: None,
                snippet: None,
                help: None,
            }))
        })?;
        Config::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        toml::from_str::<Config>(text).map_err(|e| {
            let (line, column, snippet) = match e.span() {
                Some(span) => {
                    let (l, c) = line_col(text, span.start);
                    // An error at the very end (an unclosed `[`) points past
                    // the last newline: an empty line.
                    let snip = Some(text.lines().nth(l - 1).unwrap_or("").to_owned());
                    (Some(l), Some(c), snip)
                }
                None => (None, None, None),
            };
            let raw = e.message().trim().to_string();
            let help = suggest_from_message(&raw);
            ConfigError(Box::new(ConfigErrorDetail {
                path: path.to_path_buf(),
                message: tidy_message(&raw),
                line,
                column,
                snippet,
                help,
            }))
        })
    }
}

/// 1-based line and column of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rsplit('\n')
        .next()
        .map(|s| s.chars().count())
        .unwrap_or(0)
        + 1;
    (line, col)
}

/// serde says "unknown field"; users write keys.
fn tidy_message(raw: &str) -> String {
    raw.replacen("unknown field", "unknown key", 1)
        .replacen("unknown variant", "unknown value", 1)
}

/// From serde's "unknown field `jbos`, expected one of `jobs`, ..." (or
/// "unknown variant"), the nearest valid name, if one is close enough.
fn suggest_from_message(raw: &str) -> Option<String> {
    if !(raw.starts_with("unknown field") || raw.starts_with("unknown variant")) {
        return None;
    }
    let ticked: Vec<&str> = raw.split('`').skip(1).step_by(2).collect();
    let (given, candidates) = ticked.split_first()?;
    let best = nearest(given, candidates.iter().copied())?;
    Some(format!("did you mean `{best}`?"))
}

/// The candidate closest to `given`, if it is plausibly a typo of it.
pub fn nearest<'a>(given: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(given, c), c))
        .filter(|(score, _)| *score >= 0.75)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// Default per-scene render timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// `[output] subtitles`: where the scenes' subtitles go.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SubtitleMode {
    /// `<name>.srt` and `<name>.vtt` beside the video.
    #[default]
    File,
    /// Those files, and a soft subtitle track in the video.
    Embed,
    None,
}

/// Manim's quality presets (`-ql` … `-qk`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Quality {
    Low,
    Medium,
    High,
    Production,
    Fourk,
}

pub const QUALITY_NAMES: &[&str] = &[
    "l",
    "m",
    "h",
    "p",
    "k",
    "low",
    "medium",
    "high",
    "production",
    "fourk",
];

impl Quality {
    /// The Manim flag (`-ql` etc.).
    pub fn flag(self) -> &'static str {
        match self {
            Quality::Low => "-ql",
            Quality::Medium => "-qm",
            Quality::High => "-qh",
            Quality::Production => "-qp",
            Quality::Fourk => "-qk",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Quality::Low => "low",
            Quality::Medium => "medium",
            Quality::High => "high",
            Quality::Production => "production",
            Quality::Fourk => "fourk",
        }
    }

    /// Pixel size and frame rate Manim renders at for this preset.
    pub fn preset(self) -> (u32, u32, u32) {
        match self {
            Quality::Low => (854, 480, 15),
            Quality::Medium => (1280, 720, 30),
            Quality::High => (1920, 1080, 60),
            Quality::Production => (2560, 1440, 60),
            Quality::Fourk => (3840, 2160, 60),
        }
    }
}

pub fn human_duration(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 60.0 {
        format!("{s:.1}s")
    } else if s < 3600.0 {
        format!("{}m{:02}s", (s / 60.0) as u64, (s % 60.0) as u64)
    } else {
        format!(
            "{}h{:02}m",
            (s / 3600.0) as u64,
            ((s % 3600.0) / 60.0) as u64
        )
    }
}

impl fmt::Display for Quality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Quality {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "l" | "low" | "low_quality" => Quality::Low,
            "m" | "medium" | "medium_quality" => Quality::Medium,
            "h" | "high" | "high_quality" => Quality::High,
            "p" | "production" | "production_quality" => Quality::Production,
            "k" | "fourk" | "4k" | "fourk_quality" => Quality::Fourk,
            _ => {
                let list = QUALITY_NAMES
                    .iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err(format!("unknown variant `{s}`, expected one of {list}"));
            }
        })
    }
}

impl<'de> Deserialize<'de> for Quality {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("parender.toml"))
    }

    #[test]
    fn empty_config_is_valid() {
        let c = parse("").unwrap();
        assert!(c.name.is_none());
        assert!(c.scene.is_empty());
    }

    #[test]
    fn full_config_parses() {
        let c = parse(
            r#"
name = "talk"
scenes = "src/scenes"
audio = "voice"
order = ["02_b.py", "01_a.py:A"]
gap = 0.5
jobs = 3
timeout = "2m"
python = ".venv/bin/python"
manim_args = ["--disable_caching"]

[profile.dev]
quality = "m"
fps = 24

[profile.release]
quality = "production"
jobs = 1

[scene."01_a.py:A"]
audio = "voice/other.wav"
timeout = 30

[scene.B]
audio = false
"#,
        )
        .unwrap();
        assert_eq!(c.jobs, Some(Jobs(3)));
        assert_eq!(c.timeout, Some(Seconds(Duration::from_secs(120))));
        assert_eq!(c.gap, Some(Seconds(Duration::from_millis(500))));
        let dev = c.profile.dev.unwrap();
        assert_eq!(dev.quality, Some(Quality::Medium));
        assert_eq!(dev.fps, Some(Fps(24)));
        assert_eq!(
            c.profile.release.unwrap().quality,
            Some(Quality::Production)
        );
        assert_eq!(
            c.scene["01_a.py:A"].audio,
            Some(AudioOverride::File("voice/other.wav".into()))
        );
        assert_eq!(c.scene["B"].audio, Some(AudioOverride::None));
    }

    #[test]
    fn output_is_a_folder_or_a_table() {
        let c = parse("output = \"build\"\n").unwrap();
        assert_eq!(c.output.0.dir.as_deref(), Some("build"));
        assert_eq!(c.output.0.subtitles, crate::config::SubtitleMode::File);
        let c =
            parse("[output]\ndir = \"v\"\nsubtitles = \"embed\"\n[scene.A]\ntitle = \"Intro\"\n")
                .unwrap();
        assert_eq!(c.output.0.dir.as_deref(), Some("v"));
        assert_eq!(c.output.0.subtitles, crate::config::SubtitleMode::Embed);
        assert_eq!(c.scene["A"].title.as_deref(), Some("Intro"));
        let err = parse("[output]\nsubtitles = \"srt\"\n").unwrap_err();
        assert_eq!(err.location(), "parender.toml:2:13");
        assert!(err.to_string().contains("`file`, `embed`"), "{err}");
        let err = parse("[output]\nsubtitle = \"file\"\n").unwrap_err();
        assert_eq!(err.location(), "parender.toml:2:1");
        assert_eq!(err.help().as_deref(), Some("did you mean `subtitles`?"));
    }

    #[test]
    fn unknown_key_names_line_column_and_suggests() {
        let err = parse("name = \"x\"\njbos = 4\n").unwrap_err();
        assert_eq!(err.location(), "parender.toml:2:1");
        assert!(err.to_string().contains("unknown key `jbos`"), "{err}");
        assert_eq!(err.help().as_deref(), Some("did you mean `jobs`?"));
    }

    #[test]
    fn unknown_profile_key_suggests() {
        let err = parse("[profile.dev]\nqualty = \"l\"\n").unwrap_err();
        assert_eq!(err.location(), "parender.toml:2:1");
        assert_eq!(err.help().as_deref(), Some("did you mean `quality`?"));
    }

    #[test]
    fn bad_quality_value_is_located() {
        let err = parse("[profile.release]\nquality = \"ultra\"\n").unwrap_err();
        assert_eq!(err.location(), "parender.toml:2:11");
        assert!(err.to_string().contains("ultra"), "{err}");
    }

    #[test]
    fn bad_values_are_errors() {
        assert!(parse("jobs = 0").is_err());
        assert!(parse("gap = -1").is_err());
        assert!(parse("timeout = \"ten minutes\"").is_err());
        assert!(parse("[profile.dev]\nfps = 0").is_err());
        assert!(parse("[profile.staging]\nfps = 30").is_err());
    }

    #[test]
    fn out_of_range_values_are_located_errors_not_panics() {
        for (text, wanted) in [
            ("timeout = 1e300", "far too long"),
            ("timeout = 0", "above zero"),
            ("timeout = \"0s\"", "above zero"),
            ("timeout = \"999999999h\"", "at most a week"),
            ("gap = 1e9", "at most an hour"),
            ("[watch]\ndebounce = 3601", "at most a minute"),
            ("[scene.A]\ntimeout = 0", "above zero"),
            ("jobs = 99999999999", "from 1 to 1024"),
            ("jobs = \"four\"", "whole number of parallel renders"),
            ("jobs = 2.5", "whole number of parallel renders"),
            (
                "[profile.dev]\njobs = -3",
                "whole number of parallel renders",
            ),
            (
                "[profile.dev]\nfps = \"30\"",
                "whole number of frames per second",
            ),
            ("name = \"\"", "it is empty"),
            ("name = \"../../../x\"", "path separator"),
            ("name = \"..\"", "folders"),
            ("name = \".\"", "folders"),
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.to_string().contains(wanted), "{text}: {err}");
            assert!(!err.to_string().contains("i64"), "{text}: {err}");
            let line = text.matches('\n').count() + 1;
            assert!(
                err.location()
                    .starts_with(&format!("parender.toml:{line}:")),
                "{text}: {}",
                err.location()
            );
        }
        assert!(parse("timeout = \"168h\"\ngap = 3600\njobs = 1024\nname = \"a b.c\"").is_ok());
        assert!(parse("gap = 0\n[watch]\ndebounce = 0").is_ok());
        assert_eq!(parse_duration("99999999999999999999999999"), None);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("10m"), Some(Duration::from_secs(600)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("x"), None);
        assert_eq!(parse_duration("5 parsecs"), None);
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("2GB"), Some(2_000_000_000));
        assert_eq!(parse_size("500 MB"), Some(500_000_000));
        assert_eq!(parse_size("1KiB"), Some(1024));
        assert_eq!(parse_size("12"), Some(12));
        assert_eq!(parse_size("lots"), None);
        assert!(parse("cache_max_size = \"1GB\"\ncache_salt = \"x\"").is_ok());
        assert!(parse("cache_max_size = \"big\"").is_err());
    }

    #[test]
    fn line_col_counts_from_one() {
        assert_eq!(line_col("ab\ncd", 0), (1, 1));
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
    }
}
