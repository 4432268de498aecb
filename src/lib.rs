//! parender turns a folder of Manim scenes into one narrated video.
//!
//! The pipeline runs one way: [`discover`] (scene files → scenes, paired with
//! their audio by [`pairing`]) → [`plan`] (fingerprints and the [`store`]
//! decide what is stale) → [`render`] (isolated Manim processes) → [`mux`]
//! (each scene with its audio, to whole frames) → [`stitch`] (one video, one
//! audio track, published atomically). [`build`] drives it; [`report`] tells
//! people and scripts what happened. Side effects live behind [`render::Renderer`],
//! [`store::Store`] and the ffmpeg wrappers in [`media`].
pub mod build;
pub mod cli;
pub mod config;
pub mod discover;
pub mod doctor;
pub mod error;
pub mod fingerprint;
pub mod hashcache;
pub mod init;
pub mod media;
pub mod messages;
pub mod mux;
pub mod pairing;
pub mod placeholder;
pub mod plan;
pub mod procs;
pub mod project;
pub mod publish;
pub mod pydeps;
pub mod render;
pub mod report;
pub mod scene;
pub mod settings;
pub mod status;
pub mod stitch;
pub mod store;
pub mod subtitles;
pub mod timeline;
pub mod toolchain;
pub mod watch;
