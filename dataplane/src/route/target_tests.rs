use super::*;

fn request(version: Version, uri: &str, hosts: &[&str]) -> Request<()> {
    let mut builder = Request::builder().version(version).uri(uri);
    for host in hosts {
        builder = builder.header(header::HOST, *host);
    }
    builder.body(()).unwrap()
}

fn prepared(version: Version, uri: &str, hosts: &[&str]) -> Result<String, String> {
    let mut request = request(version, uri, hosts);
    prepare(&mut request, MAX_TARGET_BYTES).map(|()| request.uri().to_string()).map_err(|e| format!("{e:?}"))
}

#[test]
fn http_1_1_needs_exactly_one_valid_host_and_http_1_0_may_have_none() {
    assert_eq!(prepared(Version::HTTP_11, "/a", &["x.test"]), Ok("/a".into()));
    for good in ["x.test:8080", "x.test:", "[::1]:8080", "[::1]", "10.0.0.1"] {
        assert_eq!(prepared(Version::HTTP_11, "/a", &[good]), Ok("/a".into()), "{good:?}");
    }
    assert_eq!(prepared(Version::HTTP_11, "/a", &[""]), Ok("/a".into()));
    assert_eq!(prepared(Version::HTTP_11, "/a", &[]), Err("MissingHost".into()));
    assert_eq!(prepared(Version::HTTP_11, "/a", &["x.test", "y.test"]), Err("DuplicateHost".into()));
    assert_eq!(prepared(Version::HTTP_11, "/a", &["x.test", "x.test"]), Err("DuplicateHost".into()));
    assert_eq!(prepared(Version::HTTP_10, "/a", &[]), Ok("/a".into()));
    assert_eq!(prepared(Version::HTTP_10, "/a", &["x.test", "y.test"]), Err("DuplicateHost".into()));
    for bad in ["x test", "user@x.test", "x.test:port", "x.test:99999", "x.test/a", "[::1]x"] {
        assert_eq!(prepared(Version::HTTP_11, "/a", &[bad]), Err("InvalidHost".into()), "{bad:?}");
    }
}

#[test]
fn an_absolute_form_target_wins_over_its_host_field_in_http_1_1() {
    assert_eq!(prepared(Version::HTTP_11, "http://a.test/x", &["b.test"]), Ok("http://a.test/x".into()));
}

#[test]
fn an_http_2_host_field_must_name_the_same_server_as_the_authority() {
    let h2 = |uri, hosts: &[&str]| prepared(Version::HTTP_2, uri, hosts);
    assert_eq!(h2("https://a.test/x", &[]), Ok("https://a.test/x".into()));
    assert_eq!(h2("https://a.test/x", &["A.Test"]), Ok("https://a.test/x".into()));
    assert_eq!(h2("https://a.test/x", &["a.test:443"]), Ok("https://a.test/x".into()));
    assert_eq!(h2("http://a.test:80/x", &["a.test"]), Ok("http://a.test:80/x".into()));
    assert_eq!(h2("https://a.test/x", &["b.test"]), Err("HostContradictsAuthority".into()));
    assert_eq!(h2("https://a.test/x", &["a.test:8443"]), Err("HostContradictsAuthority".into()));
    assert_eq!(h2("https://a.test/x", &["a.test", "a.test"]), Err("DuplicateHost".into()));
    // Without :authority (a request converted from HTTP/1), Host names the server.
    assert_eq!(h2("/x", &["b.test"]), Ok("/x".into()));
}

#[test]
fn the_path_is_normalised_in_place_with_its_query_scheme_and_authority_kept() {
    let h1 = prepared(Version::HTTP_11, "/public/../admin?next=/public/../x", &["x.test"]);
    assert_eq!(h1, Ok("/admin?next=/public/../x".into()));
    let h2 = prepared(Version::HTTP_2, "https://a.test//a/%2e/b", &[]);
    assert_eq!(h2, Ok("https://a.test/a/b".into()));
    assert_eq!(prepared(Version::HTTP_11, "/..%2Fadmin", &["x.test"]), Err("Path(HiddenDotSegment)".into()));
    assert_eq!(prepared(Version::HTTP_11, "/../admin", &["x.test"]), Err("Path(AboveRoot)".into()));
}

#[test]
fn a_target_over_the_limit_gets_414_and_one_at_the_limit_passes() {
    let at_limit = format!("/{}", "a".repeat(MAX_TARGET_BYTES - 1));
    assert!(prepared(Version::HTTP_11, &at_limit, &["x.test"]).is_ok());
    let mut over = request(Version::HTTP_11, &format!("{at_limit}a"), &["x.test"]);
    let error = prepare(&mut over, MAX_TARGET_BYTES).unwrap_err();
    assert_eq!((error.status(), format!("{error:?}")), (StatusCode::URI_TOO_LONG, "TooLong(8192)".to_string()));
    assert_eq!(error.to_string(), "the request target is longer than 8192 bytes");
    let query_over = format!("/?{}", "q".repeat(MAX_TARGET_BYTES));
    assert_eq!(prepared(Version::HTTP_11, &query_over, &["x.test"]), Err("TooLong(8192)".into()));
    // Another limit, as `--max-request-target` sets it.
    let mut over = request(Version::HTTP_11, &format!("{at_limit}a"), &["x.test"]);
    assert!(prepare(&mut over, 2 * MAX_TARGET_BYTES).is_ok());
}
