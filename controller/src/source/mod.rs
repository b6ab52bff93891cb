//! Where objects come from: YAML files (`--from-dir`) or the Kubernetes API. Both only feed the [`crate::index`]
//! and wake the publisher; neither translates or pushes.

mod dir_watch;
mod file_events;
pub mod files;
mod fingerprint;
pub mod kube;
mod manifest;
