//! Holdfast's controller: Kubernetes objects (or YAML files) in, dataplane snapshots out.
//!
//! Data flows one way: a source ([`source::files`] or [`source::kube`]) feeds the synchronous [`index::Index`];
//! [`publish`] coalesces changes and runs [`translate::translate`]; [`push`] sends each snapshot to the dataplane's
//! admin `/config` until it is accepted, and again when the dataplane restarts.

pub mod admin;
pub mod config;
pub mod drain;
pub mod index;
pub mod lease;
pub mod metrics;
pub mod overrides;
pub mod publish;
pub mod push;
pub mod run;
pub mod source;
pub mod status;
pub mod translate;
