//! Holdfast's end-to-end suite: the real `holdfast-controller` and `holdfast-dataplane` binaries, run on this
//! machine, against the Kubernetes cluster that `HOLDFAST_E2E_KUBECONFIG` points to (out-of-cluster, like kubectl).
//!
//! A real API server refuses EndpointSlice addresses in 127.0.0.0/8, so the upstreams run as test hosts: network
//! namespaces with a veth pair to this machine and addresses from 198.18.0.0/15 ([`netns`]). The test creates a
//! namespace and the objects that point at those hosts ([`cluster`], [`objects`]), starts the binaries
//! ([`binaries`], [`process`]), and checks what the controller did through the dataplane ([`upload`]) and through
//! the API, every wait bounded ([`poll`]). The processes and test hosts it starts are removed by `Drop` guards, also
//! when it fails; the objects it creates in the cluster are deleted by an awaited step of the test, whose failure
//! fails it ([`cluster::Scratch::delete`]).
//!
//! Without a cluster, tests run the same binaries on 127.0.0.1 with the controller's file source ([`stack`]); one of
//! them reads the chart's Grafana dashboard ([`dashboard`]) and the binaries' scrapes ([`exposition`]) to check
//! that every metric the dashboard queries exists.
//!
//! `anyhow` is used throughout: every function here is set-up or a check whose error ends the test with context.

pub mod binaries;
pub mod cluster;
pub mod dashboard;
pub mod exposition;
pub mod netns;
pub mod objects;
pub mod poll;
pub mod process;
pub mod stack;
pub mod upload;
