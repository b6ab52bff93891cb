//! gRPC calls are never Buffered. A call's request body is a stream that may last as long as the call (a
//! bidirectional stream sends its next message only after reading a response), so holding it until its end would
//! deadlock; the dataplane therefore sends requests with content-type `application/grpc…` in Tee mode whatever the
//! policy says. A user who asked for Buffered on such a route is told where they asked for it. The controller's own
//! `--default-mode` is not a request of theirs, and other requests on the route keep the policy's mode.

use super::policy::{ModeSource, RoutePolicy};
use super::report::{Reason, Report};
use crate::index::ObjectKey;
use holdfast_snapshot::{BodyMode, UpstreamProtocol};

/// Warns when `route` sets Buffered explicitly on a route to an HTTP/2 backend (`backend`, its snapshot name).
pub fn warn_if_buffered(
    ingress: &ObjectKey,
    route: &RoutePolicy<'_>,
    protocol: UpstreamProtocol,
    backend: &str,
    report: &mut Report,
) {
    if protocol != UpstreamProtocol::Http2 || route.policy.mode != BodyMode::Buffered {
        return;
    }
    let consequence = "gRPC calls (content-type application/grpc…) on it are delivered in Tee mode instead, because a streaming call's body cannot be held until its end; other requests stay Buffered";
    let message = match route.mode_set_by {
        None => return,
        Some(ModeSource::Annotation) => format!(
            "nginx.ingress.kubernetes.io/proxy-request-buffering: \"on\" asks for Buffered on a route to the HTTP/2 backend {backend}: {consequence}"
        ),
        Some(ModeSource::UploadPolicy(policy)) => {
            let message = format!(
                "mode Buffered applies to routes of Ingress {ingress} to the HTTP/2 backend {backend}: {consequence}"
            );
            report.warn("UploadPolicy", policy, Reason::GrpcNotBuffered, message);
            format!(
                "UploadPolicy {policy} asks for mode Buffered on a route to the HTTP/2 backend {backend}: {consequence}"
            )
        }
    };
    report.warn("Ingress", ingress, Reason::GrpcNotBuffered, message);
}
