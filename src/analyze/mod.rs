//! Analyze: what the project holds and what each scene depends on.
//!
//! [`discover`] finds the scenes (asking Python and Manim), [`pairing`]
//! pairs each with its narration, [`pydeps`] follows the local modules a
//! scene file imports, [`toolchain`] names the Python and Manim that render,
//! and [`fingerprint`] hashes all of it into one key per scene, reading file
//! contents through [`hashcache`].
pub mod discover;
pub mod fingerprint;
pub mod hashcache;
pub mod pairing;
pub mod pydeps;
pub mod toolchain;
