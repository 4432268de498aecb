//! Cache: the content-addressed [`store`] of renders and muxes, the shared
//! [`remote`] cache beside it, and the [`plan`] that looks every scene's
//! fingerprint up in them.
pub mod plan;
pub mod remote;
pub mod store;
