//! `parender init`: a new project skeleton that builds as it is.
use std::path::{Path, PathBuf};

use crate::config::MANIFEST;
use crate::error::Error;

const CONFIG: &str = r#"# parender project configuration. Every key is optional; the values shown
# commented out are the defaults. See the parender README for all keys.

# name = "<folder name>"        # the final video is out/<profile>/<name>.mp4
# scenes = "scenes"             # folder with the Manim scene files
# audio = "audio"               # narration: audio/<file stem>.<wav|mp3|m4a|ogg|flac>
# order = ["01_intro.py"]       # explicit order (default: natural file order)
# gap = 0                       # seconds between scenes (holds the last frame)
# timeout = "10m"               # per-scene render timeout
# python = ".venv/bin/python"   # interpreter with Manim (default: .venv, else manim on PATH)
# manim_args = []               # extra arguments for every Manim render

[output]
# dir = "out"                   # final videos: out/<profile>/<name>.mp4, with chapters
# subtitles = "file"            # add_subcaption cues: "file" (<name>.srt, .vtt), "embed", "none"

[profile.dev]
# quality = "low"               # 854x480 at 15 fps
# fps = 15
# jobs = <number of CPUs>

[profile.release]
# quality = "high"              # 1920x1080 at 60 fps

# [scene."01_intro.py:Intro"]
# audio = "audio/intro-take2.wav"
# timeout = "20m"
# title = "Introduction"        # its chapter title (default: the class name)
"#;

const SCENE: &str = r#"from manim import *


class Intro(Scene):
    def construct(self):
        title = Text("Hello, parender")
        self.play(Write(title))
        self.wait(1)
"#;

const GITIGNORE: &str = "# parender's cache and outputs\n/.parender/\n/out/\n# Manim's own output and Python caches\nmedia/\n__pycache__/\n";

fn write_new(path: &Path, text: &str) -> Result<(), Error> {
    if path.exists() {
        return Ok(());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    std::fs::write(path, text).map_err(|e| Error::io(path, e))
}

pub fn init(dir: Option<&Path>) -> Result<PathBuf, Error> {
    let dir = match dir {
        Some(d) => d.to_path_buf(),
        None => std::env::current_dir().map_err(|e| Error::io(Path::new("."), e))?,
    };
    let manifest = dir.join(MANIFEST);
    if manifest.exists() {
        return Err(Error::Usage {
            message: format!(
                "{} already exists; not overwriting a project",
                manifest.display()
            ),
            help: Some("to start another project, name a new folder: `parender init DIR`".into()),
        });
    }
    write_new(&manifest, CONFIG)?;
    write_new(&dir.join("scenes/01_intro.py"), SCENE)?;
    let audio = dir.join("audio");
    std::fs::create_dir_all(&audio).map_err(|e| Error::io(&audio, e))?;
    write_new(&dir.join(".gitignore"), GITIGNORE)?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn skeleton_is_a_valid_project() {
        let t = tempfile::tempdir().unwrap();
        init(Some(t.path())).unwrap();
        Config::load(&t.path().join(MANIFEST)).unwrap();
        assert!(t.path().join("scenes/01_intro.py").is_file());
        assert!(t.path().join("audio").is_dir());
        assert!(
            std::fs::read_to_string(t.path().join(".gitignore"))
                .unwrap()
                .contains(".parender")
        );
        assert!(init(Some(t.path())).is_err());
    }
}
