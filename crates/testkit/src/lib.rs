//! mlops-testkit: what the test suites share to start real local services without races.
//!
//! A port picked by binding port 0 and closing the socket again can be taken by another process
//! (Ray's head binds dozens) before the service binds it, and then the readiness check talks to
//! the wrong listener. So a service here binds port 0 itself and announces the port it got
//! ([`ChildService`]); [`Moto`] is the AWS stand-in started that way; [`RefusedPort`] is a port
//! that is guaranteed to refuse connections for as long as a test holds it. [`settings`] builds
//! the name/value map that every crate's `from_map` configuration reader takes.

mod child;
mod moto;

use std::collections::BTreeMap;

pub use child::{ChildService, RefusedPort, port_after};
pub use moto::Moto;

/// Whether this run is CI, where a missing service fails a test instead of skipping it.
pub fn in_ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// Settings by their environment names, as the `from_map` readers take them, from literal pairs.
pub fn settings(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}
