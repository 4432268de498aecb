//! Profiles and render settings: what `--release`, `--quality` and the
//! `[profile.*]` tables resolve to. The rest of the program trusts these.

use serde::{Deserialize, Serialize};

use crate::config::{Config, Quality};

/// Build profiles, as in cargo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    Dev,
    Release,
}

impl Profile {
    pub fn name(self) -> &'static str {
        match self {
            Profile::Dev => "dev",
            Profile::Release => "release",
        }
    }
    fn default_quality(self) -> Quality {
        match self {
            Profile::Dev => Quality::Low,
            Profile::Release => Quality::High,
        }
    }
}

/// Everything about a render that changes its pixels; part of the fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenderSettings {
    pub quality: Quality,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub manim_args: Vec<String>,
    /// The video encoder's threading when nothing fixes it, which changes
    /// the bitstream and the decoded pixels (libx264 cuts one slice per
    /// thread, and by default takes as many threads as the machine has
    /// CPUs): `auto on N CPUs`. Empty when `manim_args` fix the threads
    /// (parender's pin, see [`RenderSettings::pin_encoder`], or the user's
    /// own `--encoder-option threads=N`). In the key either way, so renders
    /// are shared only between machines whose renders are identical.
    #[serde(default)]
    pub encoder: String,
}

/// The encoder threads parender pins: the same on every machine, so a render
/// from a 2-core laptop and one from a 64-core node are identical
/// (`PARENDER_ENCODER_THREADS` sets another number, or `auto` for none).
/// Two, because the slice count also moves Manim's timestamps: at 15 fps, a
/// 5-frame animation followed by a wait came out with the wait's frames 5
/// ticks (of 1/15360 s) early with 1, 3, 4 or 8 threads, and on the frame
/// grid with 2 (measured with Manim 0.22).
pub const ENCODER_THREADS: u32 = 2;

impl RenderSettings {
    /// Manim's preset for `quality` (its size and frame rate), nothing added.
    pub fn preset(quality: Quality) -> RenderSettings {
        let (width, height, fps) = quality.preset();
        RenderSettings {
            quality,
            width,
            height,
            fps,
            manim_args: Vec::new(),
            encoder: String::new(),
        }
    }

    /// Fixes the encoder's threading for renders by `manim_version`: where
    /// the user set no threads of their own, `--encoder-option threads=N`
    /// ([`ENCODER_THREADS`]) joins `manim_args` when Manim takes it (0.22 and
    /// later); else this machine's CPU count is recorded in `encoder`.
    pub fn pin_encoder(&mut self, manim_version: &str) {
        self.encoder.clear();
        let user = self
            .manim_args
            .windows(2)
            .any(|w| w[0] == "--encoder-option" && w[1].starts_with("threads="));
        if user {
            return;
        }
        let threads = std::env::var("PARENDER_ENCODER_THREADS").ok();
        let pinned = match threads.as_deref() {
            Some("auto") => None,
            Some(n) => n.parse::<u32>().ok().filter(|n| *n > 0),
            None => Some(ENCODER_THREADS),
        };
        match pinned {
            Some(n) if takes_encoder_options(manim_version) => self
                .manim_args
                .extend(["--encoder-option".to_string(), format!("threads={n}")]),
            _ => {
                let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
                self.encoder = format!("auto on {cpus} CPUs");
            }
        }
    }

    /// Arguments for `manim render` that select this quality and frame rate.
    pub fn manim_flags(&self) -> Vec<String> {
        let mut v = vec![self.quality.flag().to_string()];
        if self.fps != self.quality.preset().2 {
            v.push("--frame_rate".into());
            v.push(self.fps.to_string());
        }
        v.extend(self.manim_args.iter().cloned());
        v
    }

    /// Manim's output sub-folder, e.g. `480p15`.
    pub fn folder_name(&self) -> String {
        format!("{}p{}", self.height, self.fps)
    }
}

/// Whether Manim `version` has `--encoder-option` (0.22.0 and later).
fn takes_encoder_options(version: &str) -> bool {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(major), Some(minor)) => (major, minor) >= (0, 22),
        _ => false,
    }
}

/// Command-line choices that override the configuration.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub release: bool,
    pub quality: Option<Quality>,
    pub jobs: Option<usize>,
}

/// The resolved profile: render settings plus how to run the build.
#[derive(Debug, Clone)]
pub struct BuildSettings {
    pub profile: Profile,
    pub render: RenderSettings,
    pub jobs: usize,
    /// Whether `jobs` was set (`--jobs`, the profile, `jobs`) rather than
    /// taken from this machine's CPU count.
    pub jobs_given: bool,
}

impl BuildSettings {
    pub fn resolve(config: &Config, overrides: &Overrides) -> BuildSettings {
        let profile = if overrides.release {
            Profile::Release
        } else {
            Profile::Dev
        };
        let pc = match profile {
            Profile::Dev => config.profile.dev.clone(),
            Profile::Release => config.profile.release.clone(),
        }
        .unwrap_or_default();
        let quality = overrides
            .quality
            .or(pc.quality)
            .unwrap_or(profile.default_quality());
        let (width, height, preset_fps) = quality.preset();
        // `--quality` on the command line means Manim's preset, frame rate included.
        let fps = if overrides.quality.is_some() {
            preset_fps
        } else {
            pc.fps.map(|f| f.0).unwrap_or(preset_fps)
        };
        let mut manim_args = config.manim_args.clone();
        manim_args.extend(pc.manim_args.unwrap_or_default());
        let given = overrides
            .jobs
            .or(pc.jobs.map(|j| j.0))
            .or(config.jobs.map(|j| j.0));
        let jobs = given.unwrap_or_else(default_jobs).max(1);
        BuildSettings {
            profile,
            render: RenderSettings {
                quality,
                width,
                height,
                fps,
                manim_args,
                encoder: String::new(),
            },
            jobs,
            jobs_given: given.is_some(),
        }
    }
}

pub fn default_jobs() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn the_encoders_threads_are_pinned_where_manim_can() {
        let pinned = |version: &str, manim_args: &[&str]| {
            let mut s = RenderSettings::preset(Quality::Low);
            s.manim_args = manim_args.iter().map(|a| a.to_string()).collect();
            s.pin_encoder(version);
            s
        };
        let s = pinned("0.22.0", &[]);
        assert_eq!(s.encoder, "");
        assert_eq!(
            s.manim_flags(),
            vec!["-ql", "--encoder-option", "threads=2"]
        );
        let mut again = s.clone();
        again.pin_encoder("0.22.0");
        assert_eq!(again, s, "pinning twice pins once");
        let s = pinned("0.21.0", &[]);
        assert!(s.encoder.starts_with("auto on "), "{}", s.encoder);
        assert_eq!(s.manim_flags(), vec!["-ql"]);
        let s = pinned("0.22.0", &["--encoder-option", "threads=1"]);
        assert_eq!(s.encoder, "");
        assert_eq!(
            s.manim_flags(),
            vec!["-ql", "--encoder-option", "threads=1"]
        );
    }

    #[test]
    fn quality_names() {
        for (s, q) in [
            ("l", Quality::Low),
            ("low", Quality::Low),
            ("m", Quality::Medium),
            ("h", Quality::High),
            ("high", Quality::High),
            ("p", Quality::Production),
            ("k", Quality::Fourk),
            ("fourk", Quality::Fourk),
        ] {
            assert_eq!(s.parse::<Quality>().unwrap(), q);
        }
        assert!("ultra".parse::<Quality>().is_err());
        // The seed design's mistake: LOW is 480p15, not 4K.
        assert_eq!(Quality::Low.flag(), "-ql");
        assert_eq!(Quality::Low.preset(), (854, 480, 15));
    }

    #[test]
    fn profiles_default_to_preview_and_final() {
        let c = Config::default();
        let dev = BuildSettings::resolve(&c, &Overrides::default());
        assert_eq!(dev.profile, Profile::Dev);
        assert_eq!(dev.render.quality, Quality::Low);
        assert_eq!(dev.render.folder_name(), "480p15");
        let rel = BuildSettings::resolve(
            &c,
            &Overrides {
                release: true,
                ..Default::default()
            },
        );
        assert_eq!(rel.render.quality, Quality::High);
        assert_eq!(rel.render.folder_name(), "1080p60");
        assert_eq!(rel.render.manim_flags(), vec!["-qh".to_string()]);
    }

    #[test]
    fn config_and_cli_override_in_order() {
        let c = Config::parse(
            "jobs = 3\n[profile.dev]\nquality = \"m\"\nfps = 24\njobs = 2\n",
            Path::new("p.toml"),
        )
        .unwrap();
        let s = BuildSettings::resolve(&c, &Overrides::default());
        assert_eq!(s.jobs, 2);
        assert_eq!(s.render.fps, 24);
        assert_eq!(s.render.manim_flags(), vec!["-qm", "--frame_rate", "24"]);
        let s = BuildSettings::resolve(
            &c,
            &Overrides {
                quality: Some(Quality::Low),
                jobs: Some(5),
                ..Default::default()
            },
        );
        assert_eq!(s.jobs, 5);
        assert_eq!(s.render.fps, 15);
        assert_eq!(s.render.quality, Quality::Low);
    }
}
