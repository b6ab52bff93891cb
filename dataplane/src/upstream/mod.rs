//! Talking to upstream endpoints: connections, one attempt, and how its failure is classified.

mod attempt;
mod body;
mod chunked;
mod clock;
mod failure;
mod idle_body;
mod io;
mod plain;
mod plain_body;
mod plain_conn;
mod plain_send;
mod pool;
mod response_body;

pub use attempt::{attempt, Answer, Delivery};
pub use body::{BodyItem, BodySource, UpstreamBody};
pub use failure::{Failure, FailureKind};
pub use idle_body::{IdleTimeoutBody, ResponseBodyError};
pub use pool::Pool;
pub use response_body::ResponseBody;
