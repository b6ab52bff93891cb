//! The `--from-dir` source without the network: what it reads, what it refuses, and that the shipped example
//! manifests translate into the routes the README promises.

use holdfast_controller::publish::Shared;
use holdfast_controller::source::files::{is_manifest, parse, FileSource, Kind};
use holdfast_controller::translate::{translate, Config, Translation};
use std::path::Path;

const CLASS: &str = "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: holdfast}\nspec: {controller: holdfast.io/ingress-controller}\n";

fn service(name: &str) -> String {
    format!("apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: default}}\nspec: {{ports: [{{name: http, port: 80}}]}}\n")
}

fn translated(shared: &Shared) -> Translation {
    shared.read(|index| translate(index, &Config::default()))
}

fn services(shared: &Shared) -> usize {
    shared.read(|index| index.services.len())
}

#[test]
fn example_manifests_translate_into_a_route_to_the_local_upstream() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/examples/local");
    let mut source = FileSource::new(&dir);
    let shared = Shared::default();
    let scan = source.scan(&shared).unwrap();
    assert!(scan.rejected.is_empty(), "{:?}", scan.rejected);
    let t = translated(&shared);
    assert!(t.report.warnings.is_empty(), "{:?}", t.report.warnings);
    t.snapshot.validate().unwrap();
    let route = &t.snapshot.hosts[0].paths[0];
    assert_eq!((t.snapshot.hosts[0].host.as_str(), route.path.as_str()), ("", "/"));
    assert_eq!(route.target.backend, "default/uploads:80");
    assert_eq!(route.target.policy.as_deref(), Some("default/large-uploads"));
    // What the dataplane labels the route's metrics with: the Ingress, and the Service port (named `http` in the
    // Ingress) by its number.
    let ingress = route.target.ingress.as_ref().map(|i| (i.namespace.as_str(), i.name.as_str()));
    assert_eq!(ingress, Some(("default", "uploads")));
    let service = t.snapshot.backends["default/uploads:80"].service.as_ref();
    let service = service.map(|s| (s.namespace.as_str(), s.name.as_str(), s.port.as_str()));
    assert_eq!(service, Some(("default", "uploads", "80")));
    let endpoint = &t.snapshot.backends["default/uploads:80"].endpoints[0];
    assert_eq!((endpoint.address.as_str(), endpoint.port, endpoint.ready), ("127.0.0.1", 3000, true));
    assert_eq!(t.snapshot.policies["default/large-uploads"].max_body_size_bytes, 1 << 30);
    let status = &t.report.policies.values().next().unwrap();
    assert!(status.accepted.status && status.resolved_refs.status);
}

#[test]
fn reads_several_documents_and_ignores_other_kinds() {
    let yaml = format!(
        "{CLASS}---\n{}---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: x, namespace: default}}\n---\n",
        service("web")
    );
    let documents = parse(Path::new("all.yaml"), yaml.as_bytes()).unwrap();
    let kinds: Vec<Kind> = documents.iter().map(|d| d.kind).collect();
    assert_eq!(kinds, [Kind::Class, Kind::Service]);
}

#[test]
fn refuses_a_file_with_the_document_and_the_reason() {
    let cases = [
        (
            "kind: Service\napiVersion: v1\nmetadata: {name: a}\n",
            "document 1 (Service): Service a has no metadata.namespace",
        ),
        (
            "apiVersion: extensions/v1beta1\nkind: Ingress\nmetadata: {name: a, namespace: d}\n",
            "apiVersion \"extensions/v1beta1\" is not supported",
        ),
        ("metadata: {name: a}\n", "has no kind"),
        (
            "apiVersion: v1\nkind: Service\nmetadata: {name: a, namespace: d}\nspec: {ports: 80}\n",
            "document 1 (Service)",
        ),
        ("a: [\n", "document 1"),
    ];
    for (yaml, expected) in cases {
        let text = format!("{CLASS}---\n{yaml}");
        let error = parse(Path::new("f.yaml"), text.as_bytes()).unwrap_err().to_string();
        let expected = expected.replace("document 1", "document 2");
        assert!(error.contains(&expected), "{yaml:?}: {error}");
    }
}

#[test]
fn broken_file_keeps_its_previous_objects_and_removed_file_drops_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.yaml");
    std::fs::write(dir.path().join("class.yaml"), CLASS).unwrap();
    std::fs::write(&path, service("web")).unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not a manifest").unwrap();
    let mut source = FileSource::new(dir.path());
    let shared = Shared::default();
    assert!(source.scan(&shared).unwrap().changed);
    assert_eq!(services(&shared), 1);

    std::fs::write(&path, "apiVersion: v1\nkind: Service\nmetadata: {name: [broken\n").unwrap();
    let scan = source.scan(&shared).unwrap();
    assert!(!scan.changed);
    assert!(scan.rejected[0].to_string().contains("app.yaml"), "{}", scan.rejected[0]);
    assert_eq!(services(&shared), 1, "previous objects stay");
    assert!(source.scan(&shared).unwrap().rejected.is_empty(), "an unchanged broken file is reported once");
    let named = source.refresh([path.clone()], &shared);
    assert!(named.rejected.is_empty() && !named.changed, "nor when an event names it again unchanged");

    std::fs::write(&path, format!("{}---\n{}", service("web"), service("api"))).unwrap();
    let scan = source.refresh([path.clone()], &shared);
    assert!(scan.changed);
    assert_eq!(scan.tally.applied.get(&Kind::Service), Some(&1), "only the new object is applied: {:?}", scan.tally);
    assert_eq!(services(&shared), 2);

    std::fs::remove_file(&path).unwrap();
    assert!(source.scan(&shared).unwrap().changed);
    assert_eq!(services(&shared), 0);
    assert_eq!(shared.read(|index| index.classes.len()), 1);
}

#[test]
fn an_object_defined_by_two_files_comes_from_the_last_path_and_survives_either_going() {
    let dir = tempfile::tempdir().unwrap();
    let port = |n: u16| {
        format!("apiVersion: v1\nkind: Service\nmetadata: {{name: web, namespace: default}}\nspec: {{ports: [{{name: http, port: {n}}}]}}\n")
    };
    let port_in_force = |shared: &Shared| shared.read(|index| index.services.values().next().map(|s| s.ports[0].port));
    let (a, b) = (dir.path().join("a.yaml"), dir.path().join("b.yaml"));
    std::fs::write(&b, port(82)).unwrap();
    let mut source = FileSource::new(dir.path());
    let shared = Shared::default();
    source.scan(&shared).unwrap();
    std::fs::write(&a, port(81)).unwrap();
    source.refresh([a.clone()], &shared);
    assert_eq!(port_in_force(&shared), Some(82), "b.yaml sorts last and wins, though a.yaml was read last");
    std::fs::remove_file(&b).unwrap();
    source.refresh([b.clone()], &shared);
    assert_eq!(port_in_force(&shared), Some(81), "a.yaml takes over");
    std::fs::write(&b, port(83)).unwrap();
    source.refresh([b.clone()], &shared);
    std::fs::remove_file(&a).unwrap();
    source.refresh([a], &shared);
    assert_eq!(port_in_force(&shared), Some(83));
    std::fs::remove_file(&b).unwrap();
    source.refresh([b], &shared);
    assert_eq!(port_in_force(&shared), None);
}

/// A gRPC-over-TLS service as `kubectl create secret generic --from-file=ca.crt` and a KEP-3726 `appProtocol`
/// describe it, plus an Ingress that turns verification on.
const UPSTREAM_TLS: &str = "
apiVersion: v1
kind: Secret
metadata: {name: backend-ca, namespace: default}
type: Opaque
data:
  ca.crt: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tClEwRXRZMlZ5ZEE9PQotLS0tLUVORCBDRVJUSUZJQ0FURS0tLS0tCg==
  password: aHVudGVyMg==
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: default}
spec: {ports: [{name: https, port: 443, appProtocol: https}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: api-1, namespace: default, labels: {kubernetes.io/service-name: api}}
addressType: IPv4
ports: [{name: https, port: 8443}]
endpoints: [{addresses: [10.0.0.9]}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: api
  namespace: default
  annotations:
    nginx.ingress.kubernetes.io/proxy-ssl-verify: \"on\"
    nginx.ingress.kubernetes.io/proxy-ssl-secret: default/backend-ca
    nginx.ingress.kubernetes.io/proxy-ssl-server-name: \"on\"
spec:
  ingressClassName: holdfast
  rules:
    - http:
        paths:
          - {path: /, pathType: Prefix, backend: {service: {name: api, port: {name: https}}}}
";

#[test]
fn an_opaque_ca_secret_and_an_app_protocol_read_from_files_make_a_verified_https_backend() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("class.yaml"), CLASS).unwrap();
    std::fs::write(dir.path().join("api.yaml"), UPSTREAM_TLS).unwrap();
    let mut source = FileSource::new(dir.path());
    let shared = Shared::default();
    assert!(source.scan(&shared).unwrap().rejected.is_empty());
    let t = translated(&shared);
    assert!(t.report.warnings.is_empty(), "{:?}", t.report.warnings);
    t.snapshot.validate().unwrap();
    let name = "default/api:443+tls(verify,sni,secret=default/backend-ca)";
    assert_eq!(t.snapshot.hosts[0].paths[0].target.backend, name);
    let backend = &t.snapshot.backends[name];
    assert_eq!(backend.protocol, holdfast_snapshot::UpstreamProtocol::Http1);
    assert_eq!((backend.endpoints[0].address.as_str(), backend.endpoints[0].port), ("10.0.0.9", 8443));
    let tls = backend.tls.as_ref().unwrap();
    assert!(tls.verify && tls.sni);
    assert_eq!(tls.server_name, "api.default.svc");
    assert_eq!(tls.ca_pem.as_deref(), Some("-----BEGIN CERTIFICATE-----\nQ0EtY2VydA==\n-----END CERTIFICATE-----\n"));
    assert_eq!(tls.source.as_deref(), Some("secret default/backend-ca"));
    let (ca_secrets, secrets) = shared.read(|index| (index.ca_secrets.len(), index.secrets.len()));
    assert_eq!(ca_secrets, 1, "the Opaque watch's store holds the CA Secret");
    assert_eq!(secrets, 0, "an Opaque Secret is not a listener certificate");
}

#[test]
fn the_resumable_example_read_from_files_turns_on_resumable_uploads_on_its_route() {
    let dir = tempfile::tempdir().unwrap();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/examples/uploadpolicy-resumable.yaml");
    std::fs::copy(example, dir.path().join("videos.yaml")).unwrap();
    std::fs::write(dir.path().join("class.yaml"), CLASS).unwrap();
    let service = "apiVersion: v1\nkind: Service\nmetadata: {name: video-uploads, namespace: photos}\nspec: {ports: [{name: http, port: 80}]}\n";
    std::fs::write(dir.path().join("service.yaml"), service).unwrap();
    let mut source = FileSource::new(dir.path());
    let shared = Shared::default();
    assert!(source.scan(&shared).unwrap().rejected.is_empty());
    let t = translated(&shared);
    assert!(t.report.warnings.is_empty(), "{:?}", t.report.warnings);
    t.snapshot.validate().unwrap();
    let route = &t.snapshot.hosts[0].paths[0];
    assert_eq!(route.target.policy.as_deref(), Some("photos/videos"));
    let r = t.snapshot.policies["photos/videos"].resumable.as_ref().expect("resumable uploads on");
    assert_eq!((r.max_size_bytes, r.expires_after_ms, r.answer_wait_ms), (20 << 30, 86_400_000, 120_000));
    assert_eq!(r.delivery_method, holdfast_snapshot::DeliveryMethod::Post);
    let headers: Vec<_> = r.metadata_headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(headers, [("album", "X-Album-Id"), ("title", "X-Video-Title")]);
}

#[test]
fn a_rescan_off_the_loop_names_the_files_gone_new_and_replaced_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["a", "b", "c", "d"] {
        std::fs::write(dir.path().join(format!("{name}.yaml")), service(name)).unwrap();
    }
    std::fs::write(dir.path().join("notes.txt"), "not a manifest").unwrap();
    let mut source = FileSource::new(dir.path());
    let shared = Shared::default();
    source.scan(&shared).unwrap();
    let names = |source: &FileSource| {
        let mut names: Vec<String> = source
            .known()
            .stale(is_manifest)
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    assert!(names(&source).is_empty(), "nothing changed since the scan");

    std::fs::remove_file(dir.path().join("a.yaml")).unwrap();
    std::fs::write(dir.path().join("e.yaml"), service("e")).unwrap();
    // Replaced by a rename, as editors and the bench do: a new inode.
    std::fs::write(dir.path().join("b.tmp"), service("b2")).unwrap();
    std::fs::rename(dir.path().join("b.tmp"), dir.path().join("b.yaml")).unwrap();
    assert_eq!(names(&source), ["a.yaml", "b.yaml", "e.yaml"]);

    // Reading what it named brings the source up to date.
    let stale = source.known().stale(is_manifest).unwrap();
    assert!(source.refresh(stale, &shared).changed);
    assert!(names(&source).is_empty());
    let mut services: Vec<String> = shared.read(|index| index.services.keys().map(|k| k.name.clone()).collect());
    services.sort();
    assert_eq!(services, ["b2", "c", "d", "e"]);
}
