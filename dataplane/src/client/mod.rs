//! The client's connection as the request path sees it, below both the server (which accepts connections and hands
//! them to hyper) and the proxy (which serves their requests): what the two tell each other about one connection
//! ([`ConnState`]: responses in flight, a lingering close, the client going away) and the hand-over of a large body
//! read past hyper ([`DirectBody`]).

mod direct_body;
mod state;

pub use direct_body::{first_read_size, DirectBody};
pub use state::{ClientSignal, ConnState, ResponseInFlight};
