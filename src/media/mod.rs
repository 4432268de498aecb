//! Media: from rendered scenes to the published video. [`mux`] joins each
//! scene with its narration to whole frames, [`placeholder`] stands in for a
//! scene that failed, [`timeline`] places scenes at exact frames,
//! [`subtitles`] shifts cues onto it, [`stitch`] joins everything into one
//! video (its audio track encoded in reusable chunks by [`aac`]), and [`publish`] drives mux → stitch and records what was published;
//! [`recent`] keeps the last stitches, so an undone edit publishes at once.
pub mod aac;
pub mod mux;
pub mod placeholder;
pub mod publish;
pub mod recent;
pub mod stitch;
pub mod subtitles;
pub mod timeline;
