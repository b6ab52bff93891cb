//! Resumable uploads terminated at the ingress: tus 1.0.0 spoken to the client on routes whose policy has
//! `resumable`, the upload kept on the spool volume ([`store`]) so that it survives a restart of the dataplane, and,
//! once complete, delivered to the route's backend as one ordinary request with a `Content-Length` (`delivery`),
//! through the same endpoint waiting and replay as any request. The backend never learns that the upload was
//! resumable.
//!
//! Which requests are tus's, on such a route: a `POST` with `Tus-Resumable` (creation, at the very URL the client
//! would have posted the file to: that is where the finished upload is delivered), an `OPTIONS` with
//! `Tus-Resumable`, and every request to an upload's URL (the creation URL with `?holdfast-upload=<id>`). Everything
//! else on the route is proxied as before. See docs/resumable-uploads.md for the protocol choices.

mod create;
mod delivery;
mod patch;
mod peer;
pub mod protocol;
mod registry;
mod resource;
pub mod store;
mod upload;
mod writeback;

pub use delivery::resume_deliveries;
pub use registry::{instance_name, now_ms, owner_of, Uploads};

use crate::error::{text_response, ProxyBody, ProxyError};
use crate::exchange::Exchange;
use crate::forward::ClientInfo;
use crate::Dataplane;
use holdfast_snapshot::{Policy, Resumable};
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
pub use protocol::Dialect;
use protocol::{TUS_RESUMABLE, TUS_VERSION, UPLOAD_PARAM, VERSION};
use std::sync::Arc;
use std::time::Duration;

/// Whether a request on a resumable route is tus's to answer: anything to an upload URL, a `POST` or `OPTIONS` with
/// `Tus-Resumable`, and an IETF draft creation (a `POST` with `Upload-Draft-Interop-Version` and `Upload-Complete`).
pub fn claims(request: &Request<Incoming>) -> bool {
    let headers = request.headers();
    let tus_header = headers.contains_key(TUS_RESUMABLE);
    let ietf_creation =
        headers.contains_key(protocol::UPLOAD_DRAFT_INTEROP_VERSION) && headers.contains_key(protocol::UPLOAD_COMPLETE);
    match *request.method() {
        _ if upload_id(request.uri()).is_some() => true,
        Method::POST => tus_header || ietf_creation,
        Method::OPTIONS => tus_header,
        _ => false,
    }
}

/// The upload an URL names (`holdfast-upload` in its query).
pub fn upload_id(uri: &http::Uri) -> Option<&str> {
    uri.query()?.split('&').find_map(|pair| pair.strip_prefix(UPLOAD_PARAM)?.strip_prefix('='))
}

/// What a tus request needs of its route and client.
pub struct Context<'a> {
    pub dp: &'a Arc<Dataplane>,
    pub client: &'a ClientInfo,
    pub policy: &'a Policy,
    pub resumable: &'a Resumable,
    pub exchange: &'a Arc<Exchange>,
    /// The protocol the request speaks (set by [`serve`]).
    pub dialect: Dialect,
}

impl Context<'_> {
    /// The largest upload: the resumable limit or the route's body limit, whichever is set and lower (0: none).
    fn max_size(&self) -> u64 {
        match (self.resumable.max_size_bytes, self.policy.max_body_size_bytes) {
            (0, limit) | (limit, 0) => limit,
            (a, b) => a.min(b),
        }
    }

    fn answer_wait(&self) -> Duration {
        Duration::from_millis(self.resumable.answer_wait_ms)
    }
}

/// Answers a request that [`claims`] said is tus's.
pub async fn serve(mut cx: Context<'_>, request: Request<Incoming>) -> Result<Response<ProxyBody>, ProxyError> {
    let method = effective_method(&request);
    if method == Method::OPTIONS {
        return Ok(resource::options(&cx));
    }
    // Every other request must speak a version spoken here (412 tells a tus client which); a GET of an upload's URL
    // is not part of the protocol and may come from anything, a browser included.
    match protocol::dialect(request.headers()) {
        Some(dialect) => cx.dialect = dialect,
        None if method == Method::GET => {}
        None => {
            let text = "this server speaks tus 1.0.0 (Tus-Resumable) and the IETF draft's interop versions 5 and 6\n";
            let mut response = plain(StatusCode::PRECONDITION_FAILED, text);
            response.headers_mut().insert(TUS_VERSION, HeaderValue::from_static(VERSION));
            return Ok(response);
        }
    }
    let Some(id) = upload_id(request.uri()).map(str::to_string) else {
        return match method {
            Method::POST => create::create(&cx, request).await,
            _ => Ok(plain(StatusCode::METHOD_NOT_ALLOWED, "only POST creates an upload\n")),
        };
    };
    // Another replica's upload (each keeps its own on its own volume): passed to its owner. An upload on this
    // volume is this dataplane's whatever name its id carries: a Deployment's pod gets a new name when it is
    // replaced, and finds its predecessor's uploads on the claim it takes over.
    if cx.dp.tus.get(&id).is_none() && owner_of(&id) != cx.dp.tus.instance() {
        return Ok(peer::forward(&cx, request, &method).await);
    }
    // The upload's URL must be the one it was created at (host and path): an id alone does not open another
    // route's upload.
    let host = crate::route::host_of(crate::forward::authority(request.uri(), request.headers()).unwrap_or(""));
    let found = cx.dp.tus.get(&id).filter(|u| {
        let info = u.info();
        !u.is_gone()
            && info.target.path() == request.uri().path()
            && crate::route::host_of(&info.target.host).eq_ignore_ascii_case(host)
    });
    let Some(upload) = found else {
        return Ok(plain(StatusCode::NOT_FOUND, "no such upload (it may have expired or been delivered long ago)\n"));
    };
    // Past its expiry an unfinished upload is gone, whether or not the sweep has come by yet.
    let complete = upload.is_complete();
    let expired = {
        let info = upload.info();
        info.stage == store::Stage::Receiving && info.expires_ms <= now_ms() && !complete
    };
    if expired {
        cx.dp.tus.expire(&upload);
        return Ok(plain(StatusCode::NOT_FOUND, "no such upload (it expired)\n"));
    }
    match method {
        Method::HEAD => Ok(resource::head(&cx, &upload)),
        Method::GET => Ok(resource::get(&upload)),
        Method::PATCH => patch::patch(&cx, &upload, request).await,
        Method::DELETE => resource::delete(&cx, &upload).await,
        _ => Ok(plain(StatusCode::METHOD_NOT_ALLOWED, "an upload takes HEAD, PATCH, DELETE and GET\n")),
    }
}

/// The method, or the one `X-HTTP-Method-Override` asks for (for clients behind proxies that allow only GET and POST).
fn effective_method(request: &Request<Incoming>) -> Method {
    let overridden =
        request.headers().get(protocol::METHOD_OVERRIDE).and_then(|v| Method::from_bytes(v.as_bytes()).ok());
    match (request.method(), overridden) {
        (&Method::POST, Some(method)) => method,
        (method, _) => method.clone(),
    }
}

/// A short text answer of Holdfast's own, with `Tus-Resumable`.
pub fn plain(status: StatusCode, text: &'static str) -> Response<ProxyBody> {
    let mut response = text_response(status, text);
    response.headers_mut().insert(TUS_RESUMABLE, HeaderValue::from_static(VERSION));
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `400` saying which header is wrong and how.
pub fn bad_request(error: &protocol::HeaderError) -> Response<ProxyBody> {
    let mut response = plain(StatusCode::BAD_REQUEST, "");
    *response.body_mut() = crate::error::full_body(format!("{error}\n"));
    response
}

/// An empty answer with `Tus-Resumable` (the `204`s of the protocol).
pub fn empty(status: StatusCode) -> Response<ProxyBody> {
    let mut response = Response::new(crate::error::empty_body());
    *response.status_mut() = status;
    response.headers_mut().insert(TUS_RESUMABLE, HeaderValue::from_static(VERSION));
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A number as a header value.
pub fn number(n: u64) -> HeaderValue {
    HeaderValue::from(n)
}

/// `Upload-Expires` for an expiry in Unix milliseconds.
pub fn expires_value(ms: u64) -> HeaderValue {
    let at = std::time::UNIX_EPOCH + Duration::from_millis(ms);
    HeaderValue::from_str(&httpdate::fmt_http_date(at)).expect("an HTTP date is a valid header value")
}

/// Loads the uploads on the volume, resumes the deliveries that were pending, and sweeps expired uploads and old
/// outcomes every `sweep_every` from now on (`--resumable-sweep-interval`). Called once, on start, in the runtime.
pub fn start(dp: &Arc<Dataplane>, sweep_every: Duration) -> std::io::Result<()> {
    let resume = dp.tus.load()?;
    resume_deliveries(dp, resume);
    let weak = Arc::downgrade(dp);
    tokio::spawn(async move {
        let mut every = tokio::time::interval(sweep_every);
        loop {
            every.tick().await;
            let Some(dp) = weak.upgrade() else { return };
            sweep(&dp);
        }
    });
    Ok(())
}

/// Removes what is past its time; an outcome is kept as long as its route's policy says (the default when the route
/// is gone).
pub fn sweep(dp: &Dataplane) {
    let active = dp.config.current();
    dp.tus.sweep(|info| {
        let route = active.routes.find(crate::route::host_of(&info.target.host), info.target.path());
        let resumable = route.as_ref().and_then(|r| r.policy.resumable.as_ref());
        Duration::from_millis(
            resumable.map_or(holdfast_snapshot::DEFAULT_OUTCOME_RETENTION_MS, |r| r.outcome_retention_ms),
        )
    });
}
