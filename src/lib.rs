//! parender turns a folder of Manim scenes into one narrated video.
//!
//! The pipeline runs one way, one folder per stage: [`analyze`] (scenes,
//! their narration, what they import, one fingerprint each) → [`cache`]
//! (what is stale) → [`render`] (Manim, in isolated processes) → [`media`]
//! (each scene with its audio, then one video, published atomically).
//! [`commands`] drive it; [`report`] tells people and scripts what happened.
//! Side effects live at the edges: [`procs`] (child processes), [`ffmpeg`]
//! (the ffmpeg tools), [`fsutil`] (atomic writes), the store in [`cache`].
pub mod analyze;
pub mod cache;
pub mod cli;
pub mod commands;
pub mod config;
pub mod error;
pub mod execute;
pub mod ffmpeg;
pub mod fsutil;
pub mod media;
pub mod messages;
pub mod procs;
pub mod project;
pub mod python;
pub mod render;
pub mod report;
pub mod scene;
pub mod serve;
pub mod settings;
