//! Shared helpers of the controller's integration tests.

#![allow(dead_code)] // Each test binary uses part of the support code.

pub mod cluster_double;
pub mod dataplane;
pub mod dataplane_double;
pub mod objects;
pub mod scrape;
pub mod upstream;
