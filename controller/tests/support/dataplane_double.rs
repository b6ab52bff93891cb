//! A test double of the dataplane's admin API: `GET /config` answers the version in force, `PUT /config` validates
//! the snapshot with the real contract code and records it. It can refuse pushes and "restart" (forget its
//! snapshot) on demand. It serves on `127.0.0.1:0`; tests read the bound port, never guess one.

use bytes::Bytes;
use holdfast_snapshot::Snapshot;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

#[derive(Default)]
struct State {
    in_force: Option<Snapshot>,
    accepted: Vec<Snapshot>,
    refuse_next: usize,
}

/// A running double; dropping it stops nothing (the test runtime ends with the test).
pub struct DataplaneDouble {
    pub url: String,
    state: Arc<Mutex<State>>,
    accepted: Arc<Notify>,
}

impl DataplaneDouble {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/config", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State::default()));
        let accepted = Arc::new(Notify::new());
        let (s, n) = (state.clone(), accepted.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let (s, n) = (s.clone(), n.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| handle(req, s.clone(), n.clone()));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        DataplaneDouble { url, state, accepted }
    }

    /// Refuses the next `n` pushes with 503, as a dataplane that is still starting would.
    pub fn refuse_next(&self, n: usize) {
        self.state.lock().unwrap().refuse_next = n;
    }

    /// Puts an empty snapshot of `version` in force, as one pushed by an earlier controller process.
    pub fn preload(&self, version: u64) {
        let snapshot = Snapshot::from_json(format!("{{\"version\": {version}}}").as_bytes()).unwrap();
        self.state.lock().unwrap().in_force = Some(snapshot);
    }

    /// Forgets the snapshot in force, as a restarted dataplane does.
    pub fn restart(&self) {
        self.state.lock().unwrap().in_force = None;
    }

    pub fn accepted_count(&self) -> usize {
        self.state.lock().unwrap().accepted.len()
    }

    /// Every snapshot accepted so far, oldest first.
    pub fn accepted(&self) -> Vec<Snapshot> {
        self.state.lock().unwrap().accepted.clone()
    }

    pub fn in_force(&self) -> Option<Snapshot> {
        self.state.lock().unwrap().in_force.clone()
    }

    /// Waits (up to `within`) for an accepted snapshot that satisfies `check`, and returns it.
    pub async fn wait_for(&self, within: Duration, check: impl Fn(&Snapshot) -> bool) -> Option<Snapshot> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let notified = self.accepted.notified();
            if let Some(snapshot) = self.in_force().filter(|s| check(s)) {
                return Some(snapshot);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }
}

async fn handle(
    req: Request<Incoming>,
    state: Arc<Mutex<State>>,
    accepted: Arc<Notify>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let reply =
        |status: StatusCode, body: String| Ok(Response::builder().status(status).body(Full::from(body)).unwrap());
    if req.uri().path() != "/config" {
        return reply(StatusCode::NOT_FOUND, "no such path".into());
    }
    match *req.method() {
        Method::GET => {
            let version = state.lock().unwrap().in_force.as_ref().map(|s| s.version);
            reply(StatusCode::OK, serde_json::json!({ "version": version }).to_string())
        }
        Method::PUT => {
            let body = req.into_body().collect().await?.to_bytes();
            let mut state = state.lock().unwrap();
            if state.refuse_next > 0 {
                state.refuse_next -= 1;
                return reply(StatusCode::SERVICE_UNAVAILABLE, "starting".into());
            }
            let current = state.in_force.as_ref().map(|s| s.version);
            let checked = Snapshot::from_json(&body).and_then(|s| s.check_newer_than(current).map(|()| s));
            match checked {
                Ok(snapshot) => {
                    state.in_force = Some(snapshot.clone());
                    state.accepted.push(snapshot);
                    accepted.notify_waiters();
                    reply(StatusCode::OK, String::new())
                }
                Err(error) => reply(StatusCode::BAD_REQUEST, error.to_string()),
            }
        }
        _ => reply(StatusCode::METHOD_NOT_ALLOWED, String::new()),
    }
}
