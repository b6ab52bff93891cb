//! Real parts for the dataplane's integration tests: upstream processes that hash what they receive and can be
//! SIGKILLed, WebSocket and gRPC peers, a dataplane on 127.0.0.1:0 (in-process, or the real binary where killing
//! it is the point), a raw HTTP/1.1 client that uploads deterministic pseudo-random bytes and hashes them as it
//! sends, and WebSocket, RFC 8441, gRPC and tus clients.
// Each test binary uses its own subset of these helpers.
#![allow(dead_code, unused_imports)]

pub mod bridge;
pub mod client;
pub mod grpc;
pub mod h2_frames;
pub mod harness;
pub mod lines;
pub mod peer;
pub mod routes;
pub mod tls;
pub mod tus;
pub mod tus_client;
pub mod upstream;
pub mod ws;

pub use client::{upload, Upload};
pub use harness::{assert_dir_empty, get, push, snapshot, DataplaneProcess, Harness};
pub use peer::PeerProcess;
pub use upstream::UpstreamProcess;

pub const MB: u64 = 1_000_000;
