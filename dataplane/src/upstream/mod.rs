//! Talking to upstream endpoints: connections, one attempt, and how its failure is classified.

mod attempt;
mod body;
mod clock;
mod failure;
mod idle_body;
mod io;
mod pool;

pub use attempt::{attempt, Answer, Delivery};
pub use body::{BodyItem, BodySource, UpstreamBody};
pub use failure::{Failure, FailureKind};
pub use idle_body::{IdleTimeoutBody, ResponseBodyError};
pub use pool::Pool;
