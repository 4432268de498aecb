//! Commands: one module per subcommand, each owning its arguments.
//! [`build`] runs the pipeline once, [`watch`] keeps running it, [`status`]
//! reports on scenes and the cache, [`doctor`] checks the toolchain and
//! [`init`] starts a project, [`scenes`] lists the scenes, [`completions`]
//! prints shell completions and man pages.
pub mod build;
pub mod completions;
pub mod doctor;
pub mod init;
pub mod scenes;
pub mod status;
pub mod watch;
