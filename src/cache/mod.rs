//! Cache: the content-addressed [`store`] of renders and muxes, and the
//! [`plan`] that looks every scene's fingerprint up in it.
pub mod plan;
pub mod store;
