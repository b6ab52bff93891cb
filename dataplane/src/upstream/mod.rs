//! Talking to upstream endpoints: one attempt, over the transport and in the protocol the backend asks for.
//!
//! - [`attempt()`] picks the protocol part for the backend and the request, and is all the replay loop calls;
//! - protocols: [`plain`] (Holdfast's own HTTP/1.1 client: bodiless and spooled requests over TCP, the measured fast
//!   path), `hyper_h1` (HTTP/1.1 through hyper: chunked and streamed bodies, TLS, tunnel handshakes), `h2`
//!   (HTTP/2 through hyper, multiplexed: gRPC);
//! - [`transport`]: TCP, and TLS on top (rustls) with the backend's verification settings;
//! - `pool`: the connections of each kind kept per worker and endpoint;
//! - around them: the request as sent ([`request`]), its body ([`body_source`]), the response body and its read
//!   timeout, the attempt clock for hyper's clients, and how a failure is classified for the replay decision
//!   ([`failure`]);
//! - [`limits`]: the response head size and field count every protocol part holds a response to.

mod attempt;
pub mod body_source;
mod clock;
mod delivery;
pub mod failure;
mod h2;
mod hyper_exchange;
mod hyper_h1;
mod idle_body;
pub mod limits;
pub mod plain;
mod pool;
pub mod request;
mod response_body;
pub mod transport;

pub use attempt::attempt;
pub use body_source::{BodyItem, BodySource, UpstreamBody};
pub use delivery::{Answer, Delivery};
pub use failure::{Failure, FailureKind};
pub use idle_body::{IdleTimeoutBody, ResponseBodyError};
pub use pool::{Connection, Pool};
pub use response_body::ResponseBody;
pub use transport::Upstream;
