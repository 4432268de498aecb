//! `parender scenes`: the scenes in build order with their audio, a dry
//! view of `build`.
use std::path::PathBuf;

use clap::Args;
use tokio_util::sync::CancellationToken;

use crate::analyze::toolchain::Toolchain;
use crate::error::Error;
use crate::messages::SceneListing;
use crate::project::Project;
use crate::report::{MessageFormat, Reporter};
use crate::settings::Overrides;

#[derive(Debug, Args)]
pub struct ScenesArgs {
    #[arg(long, value_name = "DIR")]
    pub project: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "human", value_name = "FMT")]
    pub message_format: MessageFormat,
}

pub async fn list_scenes(args: &ScenesArgs, reporter: &Reporter) -> Result<(), Error> {
    let project = Project::open(args.project.as_deref())?;
    let (python, _) = Toolchain::resolve_python(&project)?;
    let p = crate::commands::build::prepare(
        &project,
        &Overrides::default(),
        &crate::python::Runner::cold(&python),
        &CancellationToken::new(),
    )
    .await?;
    let d = &p.discovery;
    for w in &d.warnings {
        reporter.warning(w);
    }
    for b in &d.broken {
        reporter.warning(&format!(
            "{} cannot be loaded, so its scenes are unknown: {}",
            b.file,
            b.error.summary()
        ));
    }
    for (i, s) in d.scenes.iter().enumerate() {
        let sound = p.scene_sound(i);
        if reporter.is_json() {
            let l = SceneListing {
                scene: s.id.0.clone(),
                file: s.file.clone(),
                class: s.class.clone(),
                line: s.line,
                audio: s.audio.as_ref().map(|a| a.display().to_string()),
                scene_sound: sound,
                title: s.title().to_string(),
            };
            if let Ok(line) = serde_json::to_string(&l) {
                reporter.out(&line);
            }
        } else {
            let audio = crate::commands::build::describe_audio(s.audio.as_deref(), sound);
            reporter.out(&format!("{}  {audio}", s.id));
        }
    }
    p.hashes.save();
    Ok(())
}
