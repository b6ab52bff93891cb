//! The request path, top-down: route → limits → body → upstream with replay → response (or rescue). A request that
//! asks to switch protocols takes its own path (`upgrade`) and may end as a tunnel.

mod client_body;
mod upgrade;

pub use client_body::ClientBody;

use crate::client::{ClientSignal, ConnState};
use crate::drain::AbortOnDrop;
use crate::error::{ProxyBody, ProxyError};
use crate::exchange::{Exchange, Finisher, Head, Mode, State};
use crate::forward::{self, ClientInfo, RequestHead};
use crate::receive::{receive, BodyLimits, Direct, Sink};
use crate::replay::deliver;
use crate::route::{host_of, Route};
use crate::spool::Spool;
use crate::state::Active;
use crate::upstream::{Answer, BodySource, IdleTimeoutBody};
use crate::Dataplane;
use holdfast_snapshot::{BodyMode, ClientAbort, HalfClose, Policy, UpstreamProtocol};
use http::{header, HeaderValue, Request, Response, Version};
use http_body_util::BodyExt;
use hyper::body::{Body, Incoming};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// The per-request limits the server's options set.
#[derive(Debug, Clone, Copy)]
pub struct RequestLimits {
    /// Requests a connection serves before it is closed (0: never).
    pub max_requests: u32,
    /// The longest request-target (path and query); longer ones get 414.
    pub max_target_bytes: usize,
}

/// Serves one client request. Never fails: every error becomes a response in [`ProxyError::into_response`].
pub async fn handle(
    dp: Arc<Dataplane>,
    client: ClientInfo,
    conn: Arc<ConnState>,
    limits: RequestLimits,
    mut request: Request<Incoming>,
) -> Result<Response<ClientBody>, Infallible> {
    let request_id = forward::request_id(request.headers());
    let version = request.version();
    // `in_flight` is held until the response body has been sent: meanwhile the header read timeout leaves the
    // connection alone.
    let (served, in_flight) = conn.start_request();
    if version == Version::HTTP_2 {
        conn.mark_http2();
    }
    // Before routing: the host fields are checked and the path put in normal form, in the request itself, so that
    // the route and the upstream (tus and tunnels too) see the same host and path.
    let prepared = crate::route::prepare(&mut request, limits.max_target_bytes).map_err(ProxyError::from);
    let host = host_of(forward::authority(request.uri(), request.headers()).unwrap_or(""));
    let route = prepared.and_then(|()| find_route(&dp, host, request.uri().path()));
    // Cloning a `Uri` or a `Method` shares their bytes rather than copying them.
    let head = Head {
        id: request_id.clone(),
        method: request.method().clone(),
        uri: request.uri().clone(),
        host_field: match request.uri().authority() {
            Some(_) => None,
            None => request.headers().get(header::HOST).cloned(),
        },
        client: client.addr,
        version,
    };
    let exchange = Exchange::new(head, route.as_ref().ok().map(|r| (r.route.metrics.clone(), r.backend.clone())));
    // Ends the request (log line, metrics) if this future is dropped before a response: the client went away.
    let finisher = Finisher::new(exchange.clone(), dp.clone());
    let failed = |error: ProxyError, policy: Option<&Policy>| {
        let (method, path) = (&exchange.head.method, exchange.head.uri.path());
        tracing::warn!(%error, %method, path, request_id = ?request_id, "request failed");
        exchange.set_error(&error);
        if let ProxyError::ClientBodyTooSlow(_) = error {
            exchange.body_too_slow(&dp.metrics);
        }
        error.into_response(&request_id, policy)
    };
    let mut response = match route {
        Ok(route) if route.redirect_https && client.scheme == "http" => redirect_to_https(&request),
        Ok(route) => match proxy(&dp, &client, &conn, &route, request, &request_id, &exchange).await {
            Ok(response) => response,
            Err(error) => failed(error, Some(&route.policy)),
        },
        Err(no_route) => failed(no_route, None),
    };
    if conn.body_taken() {
        // The body was read past hyper (`DirectBody`), which therefore cannot read the next request.
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    let closing = response.headers().get(header::CONNECTION).is_some_and(|v| v == "close");
    if response.status() == http::StatusCode::SWITCHING_PROTOCOLS {
        // The connection is the tunnel's now: it must neither close after this response nor linger.
    } else if closing {
        // The body may be partly unread: close without destroying the response (lingering close).
        conn.linger_on_close();
    } else if version <= Version::HTTP_11
        && (dp.drain.is_draining() || (limits.max_requests > 0 && served >= limits.max_requests))
    {
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    let status = response.status().as_u16();
    exchange.set_status(status);
    dp.metrics.requests.get_or_create(&crate::metrics::StatusLabel { status }).inc();
    let bytes_out = dp.metrics.bytes_out.clone();
    Ok(response.map(|body| ClientBody::new(body, finisher, in_flight, bytes_out)))
}

async fn proxy(
    dp: &Arc<Dataplane>,
    client: &ClientInfo,
    conn: &Arc<ConnState>,
    route: &Matched,
    request: Request<Incoming>,
    request_id: &HeaderValue,
    exchange: &Arc<Exchange>,
) -> Result<Response<ProxyBody>, ProxyError> {
    // The response side of `minBodyRate` is the connection's socket (`server::client_io`).
    conn.watch_reads(route.policy.min_body_rate, &dp.metrics.client_read_too_slow);
    if let Some(resumable) = route.policy.resumable.as_ref().filter(|_| crate::tus::claims(&request)) {
        let cx = crate::tus::Context {
            dp,
            client,
            policy: &route.policy,
            resumable,
            exchange,
            dialect: crate::tus::Dialect::Tus,
        };
        return Box::pin(crate::tus::serve(cx, request)).await;
    }
    if let Some(protocol) = upgrade::requested(&request) {
        let tunnel = upgrade::serve((dp, client, conn), route, (request, protocol), (request_id, exchange));
        return Box::pin(tunnel).await;
    }
    let policy = &route.policy;
    // Refuse a declared length over the limit before a byte of the body is read (and before `100 Continue`).
    let declared = request.body().size_hint().exact();
    check_declared_length(declared, policy)?;
    let (parts, body) = request.into_parts();
    let limits = BodyLimits {
        max_bytes: policy.max_body_size_bytes,
        idle: Duration::from_millis(policy.timeouts.client_body_ms),
        min_rate: policy.min_body_rate,
    };
    let has_length = parts.headers.contains_key(header::CONTENT_LENGTH);
    // HTTP/2 carries both directions of a request at once: a gRPC stream's messages keep flowing after the response
    // head. Its body is then read by a task of its own (`full_duplex`), which must own everything it reads with.
    let duplex = declared != Some(0) && route.upstream_protocol() == UpstreamProtocol::Http2;
    // A large declared body on a plain HTTP/1 connection is read past hyper, in large chunks (`DirectBody`).
    let direct = match declared.and_then(|len| Some((len, conn.direct_body(len)?))) {
        Some((len, body)) if parts.version <= Version::HTTP_11 && !duplex => Some(Direct { body, len }),
        _ => None,
    };
    let mode = if declared == Some(0) { policy.mode } else { body_mode(policy.mode, &parts.headers) };
    // Called once, in whichever branch runs: the client's head becomes the upstream's without a copy.
    let head_with = move |len| forward::upstream_head(parts, client, request_id, len);
    // Requests with a body box their futures: kept inline, those states would make every request's future (a
    // bodyless GET's too) as large as the largest of them, and each request's future is moved into hyper.
    let ctx = (dp, conn, route, exchange);
    let answer = if declared == Some(0) {
        let head = head_with(has_length.then_some(0));
        delivered(ctx, &head, BodySource::Empty, While::BodyRead).await.map(|answer| (answer, true))
    } else {
        // Boxed with the rest of a body's path: a GET's future holds only the pointer.
        let progress = Box::new(exchange.track(dp, mode_of(mode), declared));
        match mode {
            BodyMode::Buffered => {
                // The whole body is on disk before any upstream is contacted: the upstream never waits for a
                // slow client, and a chunked body is sent with a Content-Length.
                let spool = Spool::new(dp.spool.clone(), policy.memory_buffer_bytes, declared, false)?;
                let sink = Sink::Spool(spool.clone());
                Box::pin(receive(body, &sink, limits, (&dp.metrics, Some(&**progress)), direct)).await?;
                progress.set_state(State::Spooled);
                exchange.spooled(spool.len());
                let head = head_with(Some(spool.len()));
                Box::pin(delivered(ctx, &head, BodySource::Spool(spool), While::BodyRead))
                    .await
                    .map(|answer| (answer, true))
            }
            BodyMode::Tee | BodyMode::Streaming => {
                let (sink, source) = match mode {
                    BodyMode::Tee => {
                        let spool = Spool::new(dp.spool.clone(), policy.memory_buffer_bytes, declared, true)?;
                        (Sink::Spool(spool.clone()), BodySource::Spool(spool))
                    }
                    _ => {
                        let (tx, source) = BodySource::stream();
                        (Sink::Stream(tx), source)
                    }
                };
                let spooled = matches!(sink, Sink::Spool(_));
                let head = head_with(declared);
                let delivering = delivered(ctx, &head, source, While::Streaming);
                if duplex {
                    let (metrics, exchange) = (dp.metrics.clone(), exchange.clone());
                    let receiving = async move {
                        let received =
                            receive(body, &sink, limits, (&metrics, exchange.progress().map(|p| &**p)), None).await;
                        if let (Ok(len), true) = (&received, spooled) {
                            exchange.spooled(*len);
                        }
                        received
                    };
                    return Box::pin(full_duplex(dp, route, receiving, delivering, request_id)).await;
                }
                let direct = direct.filter(|_| mode == BodyMode::Tee);
                let receiving = async {
                    let received = receive(body, &sink, limits, (&dp.metrics, Some(&**progress)), direct).await;
                    if let (Ok(len), true) = (&received, spooled) {
                        exchange.spooled(*len);
                    }
                    received
                };
                let receiving = std::pin::pin!(receiving);
                let answer = Box::pin(receive_while_delivering((conn, route), receiving, delivering)).await;
                if let Sink::Spool(spool) = &sink {
                    // Said in the access log line: the upload went on without replay (`spool::relay`).
                    exchange.relayed_since(spool.relayed_since());
                }
                answer
            }
        }
    };
    let (answer, body_complete) = answer?;
    let mut response = into_client_response(dp, answer, policy, request_id);
    if !body_complete {
        // An early response: the rest of the body will not be read, so this connection cannot carry another request.
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    Ok(response)
}

/// 308 keeps the method and body, so an upload sent to the wrong scheme is retried correctly by the client.
fn redirect_to_https(request: &Request<Incoming>) -> Response<ProxyBody> {
    let authority = forward::authority(request.uri(), request.headers()).unwrap_or("");
    let path = request.uri().path_and_query().map_or("/", |pq| pq.as_str());
    let location = format!("https://{}{path}", host_of(authority));
    let mut response = crate::error::text_response(http::StatusCode::PERMANENT_REDIRECT, format!("{location}\n"));
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// The route a request matched, with the snapshot it was found in: the first delivery attempt picks its endpoint
/// from that snapshot instead of reading the one in force again (a read of state shared by every worker, so it
/// costs on every request).
#[derive(Clone)]
struct Matched {
    snapshot: Arc<Active>,
    route: Arc<Route>,
}

impl std::ops::Deref for Matched {
    type Target = Route;

    fn deref(&self) -> &Route {
        &self.route
    }
}

impl Matched {
    /// The protocol of the route's backend in the routing snapshot.
    fn upstream_protocol(&self) -> UpstreamProtocol {
        self.snapshot.backends.get(&*self.route.backend).map_or(UpstreamProtocol::Http1, |b| b.upstream.protocol)
    }
}

/// The body mode of a request: the policy's, except that a gRPC call is never Buffered. A gRPC stream's client sends
/// the end of its request stream when it is done, which in a bidirectional call is after the replies it waits for:
/// holding the body until its end would stall the call forever. Tee streams it and still keeps it for a replay.
fn body_mode(policy: BodyMode, headers: &http::HeaderMap) -> BodyMode {
    let grpc = || headers.get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    match policy {
        BodyMode::Buffered if grpc() => BodyMode::Tee,
        mode => mode,
    }
}

/// The record's name for a body mode.
fn mode_of(mode: BodyMode) -> Mode {
    match mode {
        BodyMode::Buffered => Mode::Buffered,
        BodyMode::Tee => Mode::Tee,
        BodyMode::Streaming => Mode::Streaming,
    }
}

fn find_route(dp: &Dataplane, host: &str, path: &str) -> Result<Matched, ProxyError> {
    let snapshot = dp.config.current();
    match snapshot.routes.find(host, path) {
        Some(route) => Ok(Matched { snapshot, route }),
        None => Err(ProxyError::NoRoute { host: host.to_string(), path: path.to_string() }),
    }
}

fn check_declared_length(declared: Option<u64>, policy: &Policy) -> Result<(), ProxyError> {
    match declared {
        Some(len) if policy.max_body_size_bytes > 0 && len > policy.max_body_size_bytes => {
            Err(ProxyError::BodyTooLarge { limit: policy.max_body_size_bytes })
        }
        _ => Ok(()),
    }
}

/// What the client connection is doing while its request is delivered.
#[derive(Clone, Copy, PartialEq, Eq)]
enum While {
    /// The body has been read (or there is none): hyper is not reading the socket, so the request watches it.
    BodyRead,
    /// The body is still arriving (Tee, Streaming): hyper reads the socket and reports a client that goes away.
    Streaming,
}

/// Runs the delivery, as the policy says: tied to this request (`clientAbort: Cancel`: when the client goes away the
/// delivery is dropped, which closes the upstream connection) or detached so that it finishes even then
/// (`Complete`). A client that resets is gone; one that sends end-of-file has half-closed or closed, and
/// `halfClose` says which to assume.
///
/// While the body is still arriving, the delivery runs on a neighbouring worker when there is one, so that this
/// worker reads the client and writes the spool while the neighbour writes to the upstream: on one core a single
/// large upload would run its reads, spool writes and upstream writes one after another.
async fn delivered(
    (dp, conn, route, exchange): (&Arc<Dataplane>, &Arc<ConnState>, &Matched, &Arc<Exchange>),
    // By reference: an async fn keeps an owned argument twice in its state (as argument and as local), and every
    // request's future is copied into its box whole.
    head: &RequestHead,
    body: BodySource,
    phase: While,
) -> Result<Answer, ProxyError> {
    let policy = &route.policy;
    // Not for HTTP/2: its connection's own task writes to the upstream, on the worker that opened it.
    let neighbour = match phase == While::Streaming && route.upstream_protocol() == UpstreamProtocol::Http1 {
        true => dp.workers.neighbour(),
        false => None,
    };
    let delivery = async {
        match (policy.client_abort, neighbour) {
            (ClientAbort::Cancel, None) => {
                deliver(dp, (&route.snapshot, &route.backend, exchange), head, &body, policy).await
            }
            (ClientAbort::Cancel, Some(neighbour)) => {
                let task = owned_delivery(dp.clone(), (route.clone(), exchange.clone()), head.clone(), body.clone());
                let task = dp.drain.spawn_on(&neighbour, task);
                // Dropping this request (its client went away) must drop the delivery, as it would a local one.
                let _cancel_with_request = AbortOnDrop(task.abort_handle());
                task.await.unwrap_or_else(|error| Err(ProxyError::Internal(format!("delivery task: {error}"))))
            }
            (ClientAbort::Complete, neighbour) => {
                let owned = (route.clone(), exchange.clone());
                Box::pin(detached_delivery(dp.clone(), owned, head.clone(), body.clone(), neighbour)).await
            }
        }
    };
    // Pinned once, before either use: awaiting it by value in one branch and pinned in the other would give it two
    // places in this future's state, and every request's future is moved into its box as a whole.
    tokio::pin!(delivery);
    if phase == While::Streaming {
        return delivery.await;
    }
    tokio::select! {
        answer = &mut delivery => answer,
        signal = conn.client_signal() => match client_left(signal, policy.half_close, &route.backend) {
            None => delivery.await,
            Some(error) => Err(error),
        },
    }
}

/// What the client's socket said while its request was being delivered, under the route's `halfClose`: `None` when
/// the request goes on (an end-of-file taken as a half-close), else the error that ends it.
fn client_left(signal: ClientSignal, half_close: HalfClose, backend: &str) -> Option<ProxyError> {
    if (signal, half_close) == (ClientSignal::Eof, HalfClose::Respond) {
        return None;
    }
    tracing::info!(?signal, backend, "client went away during delivery");
    Some(ProxyError::ClientAborted)
}

/// [`deliver`] with everything it needs owned, to run in a task of its own.
async fn owned_delivery(
    dp: Arc<Dataplane>,
    (route, exchange): (Matched, Arc<Exchange>),
    head: RequestHead,
    body: BodySource,
) -> Result<Answer, ProxyError> {
    deliver(&dp, (&route.snapshot, &route.backend, &exchange), &head, &body, &route.policy).await
}

/// A delivery in its own task (on `runtime`, or this worker's): if the client is gone when the answer comes, the
/// response is read to its end (so that the upstream finishes cleanly), logged and dropped.
async fn detached_delivery(
    dp: Arc<Dataplane>,
    owned: (Matched, Arc<Exchange>),
    head: RequestHead,
    body: BodySource,
    runtime: Option<Handle>,
) -> Result<Answer, ProxyError> {
    let (tx, rx) = oneshot::channel();
    let (drain, backend) = (dp.drain.clone(), owned.0.backend.clone());
    let task = async move {
        let result = owned_delivery(dp, owned, head, body).await;
        if let Err(Ok(answer)) = tx.send(result) {
            let status = answer.response.status();
            let read = answer.response.into_body().collect().await.map(|b| b.to_bytes().len());
            tracing::info!(%status, ?read, %backend, "delivery completed after the client left");
        }
    };
    drain.spawn_on(&runtime.unwrap_or_else(Handle::current), task);
    rx.await.unwrap_or(Err(ProxyError::ClientAborted))
}

/// Tee and Streaming: the client's body is read while the delivery runs. A failure of the client's side ends the
/// request with that failure (the upstream connection is aborted by the failed body); a response from the upstream
/// ends it with that response, possibly before the body is complete (an early response). Once the body has been
/// read to its end hyper no longer reads the socket, so from then on the request watches it, as a Buffered request
/// does during its delivery. Returns the answer and whether the client's body was read to its end.
async fn receive_while_delivering(
    (conn, route): (&ConnState, &Matched),
    mut receiving: impl std::future::Future<Output = Result<u64, ProxyError>> + Unpin,
    delivering: impl std::future::Future<Output = Result<Answer, ProxyError>>,
) -> Result<(Answer, bool), ProxyError> {
    tokio::pin!(delivering);
    let (mut received, mut watching) = (false, false);
    loop {
        tokio::select! {
            result = &mut receiving, if !received => match result {
                Ok(_) => (received, watching) = (true, true),
                // The attempt holding the stream ended; its own result says how.
                Err(ProxyError::StreamNotTaken) => received = true,
                Err(error) => return Err(error),
            },
            answer = &mut delivering => return answer.map(|answer| (answer, received)),
            signal = conn.client_signal(), if watching => {
                match client_left(signal, route.policy.half_close, &route.backend) {
                    // A half-close: nothing more will come from this socket, and nothing needs watching.
                    None => watching = false,
                    Some(error) => return Err(error),
                }
            }
        }
    }
}

/// Tee and Streaming to an HTTP/2 upstream: the client's body is read while the delivery runs, and goes on being
/// read after the response head for as long as the response lasts (a bidirectional gRPC call sends and receives
/// messages until it ends). Until the answer both run in this request's task; a body still arriving then is handed
/// to a task of its own, tied to the response body — most calls (unary ones) have sent theirs by then, and pay for
/// no task. A failure of the client's side before the answer ends the request with that failure; after it, the
/// failed body fails the upstream's stream, and with it the response. When the response is done (or the client
/// gone), whatever is left of the body is no longer wanted and its reading is stopped.
async fn full_duplex(
    dp: &Arc<Dataplane>,
    route: &Matched,
    receiving: impl std::future::Future<Output = Result<u64, ProxyError>> + Send + 'static,
    delivering: impl std::future::Future<Output = Result<Answer, ProxyError>>,
    request_id: &HeaderValue,
) -> Result<Response<ProxyBody>, ProxyError> {
    // Boxed so that it can move into a task of its own half-way through.
    let mut receiving = Box::pin(receiving);
    let mut received = false;
    tokio::pin!(delivering);
    let answer = loop {
        tokio::select! {
            answer = &mut delivering => break answer?,
            result = &mut receiving, if !received => match result {
                // The body is complete (or the attempt holding the stream ended, which its own result says).
                Ok(_) | Err(ProxyError::StreamNotTaken) => received = true,
                Err(error) => return Err(error),
            },
        }
    };
    let reading = (!received).then(|| AbortOnDrop(tokio::spawn(receiving).abort_handle()));
    let response = into_client_response(dp, answer, &route.policy, request_id);
    Ok(match reading {
        None => response,
        Some(reading) => response.map(|body| {
            body.map_frame(move |frame| {
                // Dropped with the response body.
                let _ = &reading;
                frame
            })
            .boxed_unsync()
        }),
    })
}

/// The upstream's response for the client: hop-by-hop headers removed, the body under the read timeout, and the
/// connection returned to the pool once the body has been read. The response carries the request's `X-Request-Id`.
fn into_client_response(
    dp: &Dataplane,
    answer: Answer,
    policy: &Policy,
    request_id: &HeaderValue,
) -> Response<ProxyBody> {
    let Answer { response, connection, .. } = answer;
    if let Some(connection) = connection {
        dp.pool.release(connection);
    }
    let (mut parts, body) = response.into_parts();
    forward::remove_hop_by_hop(&mut parts.headers);
    // The client can quote the same id the upstream logged, on every attempt.
    parts.headers.entry(forward::REQUEST_ID).or_insert_with(|| request_id.clone());
    let body = IdleTimeoutBody::new(body, Duration::from_millis(policy.timeouts.upstream_read_ms))
        .map_err(|e| Box::new(e) as crate::error::BoxError)
        .boxed_unsync();
    Response::from_parts(parts, body)
}
