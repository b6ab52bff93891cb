//! How bytes reach an endpoint: a TCP connection, with TLS on top when the backend asks for it. The protocols of
//! this layer (HTTP/1.1 through hyper, HTTP/2, tunnels) speak over a [`Stream`] without knowing which; Holdfast's own
//! HTTP/1.1 client (`plain`) keeps its TCP socket, whose readiness it drives itself.

mod tcp;
mod tls;

pub use tcp::connect as connect_tcp;
pub use tls::TlsClient;

use super::failure::{Failure, FailureKind};
use holdfast_snapshot::{Backend, UpstreamProtocol};
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// How one backend's endpoints are reached; compiled with each snapshot.
#[derive(Debug, Clone)]
pub struct Upstream {
    pub protocol: UpstreamProtocol,
    pub transport: Transport,
}

impl Upstream {
    pub fn for_backend(backend: &Backend) -> Self {
        let transport = match &backend.tls {
            None => Transport::Tcp,
            Some(tls) => Transport::Tls(TlsClient::for_backend(tls, backend.protocol)),
        };
        Upstream { protocol: backend.protocol, transport }
    }

    /// Plain HTTP/1.1 over TCP: what the snapshot means when it says nothing.
    pub fn plain_http1() -> Self {
        Upstream { protocol: UpstreamProtocol::Http1, transport: Transport::Tcp }
    }
}

#[derive(Debug, Clone)]
pub enum Transport {
    Tcp,
    Tls(Arc<TlsClient>),
}

impl Transport {
    /// Tells connections of different transports apart in the pool: 0 for TCP, the setting's hash for TLS.
    pub fn key(&self) -> u64 {
        match self {
            Transport::Tcp => 0,
            Transport::Tls(client) => client.key,
        }
    }

    /// A connection to `addr`, handshake included, within `timeout`.
    pub async fn connect(&self, addr: SocketAddr, timeout: Duration) -> Result<Stream, Failure> {
        match self {
            Transport::Tcp => Ok(Stream::Tcp(connect_tcp(addr, timeout).await?)),
            Transport::Tls(client) => {
                let connected = async {
                    let tcp = connect_tcp(addr, timeout).await?;
                    client.connect(tcp, addr).await
                };
                match tokio::time::timeout(timeout, connected).await {
                    Ok(stream) => Ok(Stream::Tls(Box::new(stream?))),
                    Err(_) => Err(Failure::new(
                        FailureKind::ConnectTimeout,
                        format!("{addr}: TLS handshake not done after {timeout:?}"),
                    )),
                }
            }
        }
    }
}

/// A connection to an endpoint.
pub enum Stream {
    Tcp(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Tcp(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
