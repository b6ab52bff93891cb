use super::*;

fn test_families() -> Arc<RouteFamilies> {
    RouteFamilies::register(&mut prometheus_client::registry::Registry::default())
}

fn table(json: &str) -> RouteTable {
    RouteTable::compile(&Snapshot::from_json(json.as_bytes()).unwrap(), Some(&test_families()))
}

fn backend(table: &RouteTable, host: &str, path: &str) -> Option<String> {
    table.find(host, path).map(|r| r.backend.to_string())
}

/// The cases of the Ingress documentation's "Examples" table, plus the precedence rules.
#[test]
fn paths_match_like_the_ingress_specification() {
    let cases: &[(&str, &str, &str, Option<&str>)] = &[
        // (rules as "type path backend;...", request path, comment, expected backend)
        ("Prefix / a", "/anything", "root prefix matches everything", Some("a")),
        ("Exact /foo a", "/foo", "exact", Some("a")),
        ("Exact /foo a", "/bar", "exact mismatch", None),
        ("Exact /foo a", "/foo/", "exact does not ignore trailing slash", None),
        ("Exact /foo/ a", "/foo", "exact with trailing slash in rule", None),
        ("Prefix /foo a", "/foo", "prefix equal", Some("a")),
        ("Prefix /foo a", "/foo/", "prefix with request slash", Some("a")),
        ("Prefix /foo/ a", "/foo", "trailing slash on rule ignored", Some("a")),
        ("Prefix /foo/ a", "/foo/", "both slashes", Some("a")),
        ("Prefix /aaa/bb a", "/aaa/bbb", "element mismatch", None),
        ("Prefix /aaa/bbb a", "/aaa/bbb", "element match", Some("a")),
        ("Prefix /aaa/bbb/ a", "/aaa/bbb", "rule trailing slash ignored", Some("a")),
        ("Prefix /aaa/bbb a", "/aaa/bbb/", "request trailing slash", Some("a")),
        ("Prefix /aaa/bbb a", "/aaa/bbb/ccc", "subpath", Some("a")),
        ("Prefix /aaa/bbb a", "/aaa/bbbxyz", "no string prefix matching", None),
        ("Prefix /aaa a", "/aaaccc", "no string prefix matching", None),
        ("Prefix / a;Prefix /aaa b", "/aaa/ccc", "longest prefix wins", Some("b")),
        ("Prefix /aaa a;Prefix /aaa/bbb b", "/aaa/bbb", "longest prefix wins", Some("b")),
        ("Prefix /aaa a;Prefix /aaa/bbb b", "/aaa/bbbxyz", "falls back to shorter", Some("a")),
        ("Prefix /aaa a;Exact /aaa b", "/aaa", "exact beats prefix", Some("b")),
        ("Exact /aaa b;Prefix /aaa a", "/aaa", "exact beats prefix in any order", Some("b")),
        ("Prefix /aaa a;Exact /aaa b", "/aaa/x", "prefix still matches longer", Some("a")),
        ("Prefix /FOO a", "/foo", "case-sensitive", None),
        ("ImplementationSpecific /img a", "/img/1.png", "implementation specific is prefix", Some("a")),
        ("ImplementationSpecific /img a", "/imgs", "implementation specific is element-wise", None),
    ];
    for (rules, path, comment, expected) in cases {
        let paths: Vec<String> = rules
            .split(';')
            .map(|r| {
                let mut it = r.split(' ');
                let (t, p, b) = (it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
                format!(r#"{{"path":"{p}","pathType":"{t}","backend":"{b}"}}"#)
            })
            .collect();
        let json = format!(
            r#"{{"version":1,"hosts":[{{"host":"","paths":[{}]}}],"backends":{{"a":{{}},"b":{{}}}}}}"#,
            paths.join(",")
        );
        assert_eq!(backend(&table(&json), "x", path).as_deref(), *expected, "{comment}: {rules} vs {path}");
    }
}

const HOSTS: &str = r#"{"version":1,
  "hosts":[
    {"host":"foo.bar.com","paths":[{"path":"/","pathType":"Prefix","backend":"exact"}]},
    {"host":"*.bar.com","paths":[{"path":"/","pathType":"Prefix","backend":"wild"}]},
    {"host":"only.example","paths":[{"path":"/api","pathType":"Prefix","backend":"api"}]},
    {"host":"","paths":[{"path":"/","pathType":"Prefix","backend":"any"}]}],
  "backends":{"exact":{},"wild":{},"api":{},"any":{},"dflt":{}},
  "defaultBackend":{"backend":"dflt"}}"#;

#[test]
fn hosts_match_exactly_then_by_one_label_wildcard_then_any() {
    let t = table(HOSTS);
    let cases = [
        ("foo.bar.com", "exact"),
        ("FOO.Bar.com", "exact"),
        ("baz.bar.com", "wild"),
        ("bar.com", "any"),
        ("a.foo.bar.com", "any"),
        ("other.org", "any"),
        ("only.example", "dflt"),
    ];
    for (host, expected) in cases {
        assert_eq!(backend(&t, host, "/x").as_deref(), Some(expected), "{host}");
    }
    assert_eq!(backend(&t, "only.example", "/api/v1").as_deref(), Some("api"));
}

#[test]
fn nothing_matches_without_a_default_backend() {
    let t = table(
        r#"{"version":1,"hosts":[{"host":"a.com","paths":[{"path":"/","pathType":"Prefix","backend":"b"}]}],"backends":{"b":{}}}"#,
    );
    assert!(t.find("b.com", "/").is_none());
}

#[test]
fn routes_carry_their_policy() {
    let t = table(
        r#"{"version":1,"hosts":[{"paths":[{"path":"/up","pathType":"Prefix","backend":"b","policy":"p"},{"path":"/","pathType":"Prefix","backend":"b"}]}],
        "backends":{"b":{}},"policies":{"p":{"mode":"Tee","maxBodySizeBytes":10}}}"#,
    );
    assert_eq!(t.find("h", "/up/1").unwrap().policy.max_body_size_bytes, 10);
    assert_eq!(t.find("h", "/down").unwrap().policy.max_body_size_bytes, 0);
}

#[test]
fn host_of_strips_ports_and_brackets() {
    assert_eq!(host_of("example.com:8080"), "example.com");
    assert_eq!(host_of("example.com"), "example.com");
    assert_eq!(host_of("[::1]:80"), "::1");
    assert_eq!(host_of("127.0.0.1:80"), "127.0.0.1");
}

/// Requests are routed by their normal path (`normalize`), so rule paths are compiled into the same form.
#[test]
fn rule_paths_are_compiled_in_the_normal_form_requests_are_routed_by() {
    let t = table(
        r#"{"version":1,"hosts":[{"paths":[{"path":"/%7euser","pathType":"Prefix","backend":"a"},
        {"path":"/a//b/./","pathType":"Exact","backend":"b"},{"path":"/files%2fx","pathType":"Prefix","backend":"c"}]}],
        "backends":{"a":{},"b":{},"c":{}}}"#,
    );
    let route = |path: &str| backend(&t, "h", &normalize_path(path).unwrap());
    assert_eq!(route("/%7Euser/x").as_deref(), Some("a"));
    assert_eq!(route("/~user").as_deref(), Some("a"));
    assert_eq!(route("/a/b/").as_deref(), Some("b"));
    assert_eq!(route("/a//b/").as_deref(), Some("b"));
    assert_eq!(route("/files%2Fx/y").as_deref(), Some("c"));
    assert_eq!(route("/files/x").as_deref(), None, "an encoded slash is not a slash");
}
