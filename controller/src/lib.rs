//! Holdfast's controller: Kubernetes objects (or YAML files) in, dataplane snapshots out.
//!
//! Data flows one way: a source ([`source::files`] or [`source::kube`]) feeds the synchronous [`index::Index`];
//! [`publish`] coalesces changes and runs [`translate::translate`]; [`push`] sends each snapshot to the dataplane's
//! admin `/config` until it is accepted, and again when the dataplane restarts.

pub mod index;
pub mod overrides;
pub mod translate;
