//! The methods of `holdfast.test.Echo`.

use super::wire::{self, Messages};
use super::{Body, Seen};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;

/// The message `Fail` answers with: a space, a `%` and a non-ASCII character, which all need percent-encoding.
pub const FAIL_MESSAGE: &str = "not allowed: 100% denied ✗";
/// The details `Fail` answers with: bytes that are not text, to show that binary metadata arrives intact.
pub const FAIL_DETAILS: &[u8] = b"\x08\x07\x12\x06denied\x00\xff\xfe\x80";

pub async fn answer(seen: Seen, path: &str, request: http::Request<Incoming>) -> http::Response<Body> {
    let repeat: usize = request.headers().get("x-repeat").and_then(|v| v.to_str().ok()?.parse().ok()).unwrap_or(3);
    let mut messages = Messages::new(request.into_body());
    match path {
        "/holdfast.test.Echo/Unary" => match messages.next().await {
            Ok(Some(message)) => wire::response(&seen, vec![message], wire::status(&seen, wire::OK, "", None)),
            Ok(None) => wire::trailers_only(&seen, wire::INTERNAL, "no request message", None),
            Err(error) => wire::trailers_only(&seen, wire::INTERNAL, &error, None),
        },
        "/holdfast.test.Echo/ServerStream" => match messages.next().await {
            Ok(Some(message)) => {
                let mut trailers = wire::status(&seen, wire::OK, "", None);
                trailers.insert("x-count", repeat.into());
                wire::response(&seen, vec![message; repeat], trailers)
            }
            Ok(None) => wire::trailers_only(&seen, wire::INTERNAL, "no request message", None),
            Err(error) => wire::trailers_only(&seen, wire::INTERNAL, &error, None),
        },
        "/holdfast.test.Echo/ClientStream" => client_stream(seen, messages).await,
        "/holdfast.test.Echo/Bidi" => bidi(seen, messages),
        "/holdfast.test.Echo/Fail" => {
            // Read the request first, as a server that checks it would.
            while let Ok(Some(_)) = messages.next().await {}
            wire::trailers_only(&seen, wire::PERMISSION_DENIED, FAIL_MESSAGE, Some(FAIL_DETAILS))
        }
        _ => wire::trailers_only(&seen, wire::UNIMPLEMENTED, &format!("no method {path}"), None),
    }
}

/// One answer after the whole request stream: the messages concatenated, their count in the head and trailers.
async fn client_stream(seen: Seen, mut messages: Messages) -> http::Response<Body> {
    let mut all = Vec::new();
    let mut count = 0usize;
    loop {
        match messages.next().await {
            Ok(Some(message)) => {
                all.extend_from_slice(&message);
                count += 1;
            }
            Ok(None) => break,
            Err(error) => return wire::trailers_only(&seen, wire::INTERNAL, &error, None),
        }
    }
    let mut trailers = wire::status(&seen, wire::OK, "", None);
    trailers.insert("x-count", count.into());
    let mut response = wire::response(&seen, vec![Bytes::from(all)], trailers);
    response.headers_mut().insert("x-count", count.into());
    response
}

/// The head at once, then each message echoed as soon as it is read: a client that waits for each echo before
/// sending its next message deadlocks on any hop that holds messages back.
fn bidi(seen: Seen, mut messages: Messages) -> http::Response<Body> {
    let (mut sender, body) = http_body_util::channel::Channel::<Bytes, std::convert::Infallible>::new(4);
    let response = wire::head(&seen, body.boxed());
    tokio::spawn(async move {
        let mut count = 0usize;
        let trailers = loop {
            match messages.next().await {
                Ok(Some(message)) => {
                    count += 1;
                    if sender.send_data(wire::frame(&message)).await.is_err() {
                        return;
                    }
                }
                Ok(None) => {
                    let mut trailers = wire::status(&seen, wire::OK, "", None);
                    trailers.insert("x-count", count.into());
                    break trailers;
                }
                Err(error) => break wire::status(&seen, wire::INTERNAL, &error, None),
            }
        };
        let _ = sender.send_trailers(trailers).await;
    });
    response
}
