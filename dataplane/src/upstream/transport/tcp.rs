//! TCP connections to endpoints, classified for the replay decision when they fail.

use crate::upstream::failure::{Failure, FailureKind};
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpStream;

/// A TCP connection to `addr` within `timeout`, with Nagle off (heads and small bodies go out at once).
pub async fn connect(addr: SocketAddr, timeout: Duration) -> Result<TcpStream, Failure> {
    let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Err(_) => return Err(Failure::new(FailureKind::ConnectTimeout, format!("{addr} after {timeout:?}"))),
        Ok(Err(e)) if e.kind() == ErrorKind::ConnectionRefused => {
            return Err(Failure::new(FailureKind::ConnectRefused, addr))
        }
        // Unreachable networks and the like are treated as refusals: nothing was sent.
        Ok(Err(e)) => return Err(Failure::new(FailureKind::ConnectRefused, format!("{addr}: {e}"))),
        Ok(Ok(stream)) => stream,
    };
    let _ = stream.set_nodelay(true);
    Ok(stream)
}
