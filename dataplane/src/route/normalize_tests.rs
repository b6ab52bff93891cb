use super::*;

fn normal(path: &str) -> String {
    match normalize_path(path) {
        Ok(normal) => normal.into_owned(),
        Err(error) => panic!("{path:?} was refused: {error}"),
    }
}

#[test]
fn a_path_already_normal_is_borrowed_unchanged() {
    for path in ["/", "/a", "/a/b", "/a/b/", "/a;v=1/b", "/caf\u{e9}", "/a.b/.c/..d/c..", "/{\"json\"}", "*", ""] {
        match normalize_path(path) {
            Ok(Cow::Borrowed(same)) => assert_eq!(same, path),
            other => panic!("{path:?} gave {other:?}, not itself borrowed"),
        }
    }
}

#[test]
fn dot_segments_are_removed_as_rfc_3986_says() {
    let cases = [
        ("/public/../admin", "/admin"),
        ("/a/./b", "/a/b"),
        ("/a/b/../c", "/a/c"),
        ("/a/b/..", "/a/"),
        ("/a/b/.", "/a/b/"),
        ("/a/..", "/"),
        ("/.", "/"),
        ("/a/b/c/../../d", "/a/d"),
        ("/a/./../b/./", "/b/"),
    ];
    for (path, expected) in cases {
        assert_eq!(normal(path), expected, "{path:?}");
    }
}

#[test]
fn repeated_slashes_are_merged_before_dot_segments_are_resolved() {
    assert_eq!(normal("//a///b//"), "/a/b/");
    assert_eq!(normal("//"), "/");
    // As nginx: the empty segment is no segment, so `..` leaves `a`, not an empty segment after it.
    assert_eq!(normal("/a//../b"), "/b");
}

#[test]
fn unreserved_escapes_are_decoded_and_the_others_get_upper_case_hex() {
    assert_eq!(normal("/%7Euser/%41%62%2d%5f"), "/~user/Ab-_");
    assert_eq!(normal("/public/%2e%2E/admin"), "/admin");
    assert_eq!(normal("/a%2fb"), "/a%2Fb");
    assert_eq!(normal("/caf%c3%a9"), "/caf%C3%A9");
    assert_eq!(normal("/a%20b/%25"), "/a%20b/%25");
    // A decoded `%25` is not decoded again: `%252E` is the text `%2E`, not a dot.
    assert_eq!(normal("/a/%252E%252E/b"), "/a/%252E%252E/b");
}

#[test]
fn encoded_slashes_and_backslashes_inside_a_segment_are_kept() {
    assert_eq!(normal("/api/v4/projects/group%2Fproject"), "/api/v4/projects/group%2Fproject");
    assert_eq!(normal("/a%5cb"), "/a%5Cb");
    assert_eq!(normal("/a\\b"), "/a\\b");
    assert_eq!(normal("/a%2F.b"), "/a%2F.b");
}

#[test]
fn a_malformed_escape_is_refused() {
    for path in ["/%", "/a%2", "/%zz", "/%2G", "/%%41", "/a/%/b"] {
        assert_eq!(normalize_path(path), Err(PathError::BadEscape), "{path:?}");
    }
}

#[test]
fn a_path_above_the_root_is_refused() {
    for path in ["/..", "/../a", "/a/../..", "/%2E%2E", "/./..", "//..", "/a/b/../../../c"] {
        assert_eq!(normalize_path(path), Err(PathError::AboveRoot), "{path:?}");
    }
}

#[test]
fn a_dot_segment_hidden_behind_an_encoded_slash_a_backslash_or_a_parameter_is_refused() {
    let hidden = [
        "/public/..%2Fadmin",
        "/public/..%2fadmin",
        "/public/%2E%2E%2Fadmin",
        "/public/..%5Cadmin",
        "/public/..\\admin",
        "/public/a%2F..",
        "/public/a%2F.",
        "/public/..;/admin",
        "/public/.;x",
        "/public/a%2F..;x",
    ];
    for path in hidden {
        assert_eq!(normalize_path(path), Err(PathError::HiddenDotSegment), "{path:?}");
    }
}

#[test]
fn a_path_that_does_not_begin_with_a_slash_is_refused() {
    for path in ["a/b", "?q", ".", "%2F"] {
        assert_eq!(normalize_path(path), Err(PathError::NotOriginForm), "{path:?}");
    }
}

/// Every string of up to `max` tokens over `alphabet`, as is and after a `/`: no panic; a normal form is normal
/// (normalising it again borrows it unchanged), has no empty segment, and yields no `.` or `..` segment even to a
/// backend that decodes every escape, treats `\` as `/` and drops `;` parameters.
fn exhaustive(alphabet: &[&str], max: usize) -> usize {
    let mut strings = vec![String::new()];
    let mut checked = 0;
    for _ in 0..=max {
        for s in &strings {
            for path in [s.clone(), format!("/{s}")] {
                if let Ok(normal) = normalize_path(&path) {
                    assert_normal(&path, &normal);
                }
                checked += 1;
            }
        }
        strings = strings.iter().flat_map(|s| alphabet.iter().map(move |t| format!("{s}{t}"))).collect();
    }
    checked
}

fn assert_normal(input: &str, normal: &str) {
    if normal.is_empty() || normal == "*" {
        assert_eq!(normal, input);
        return;
    }
    assert!(normal.starts_with('/'), "{input:?} gave {normal:?}");
    assert!(!normal.contains("//"), "{input:?} gave {normal:?} with an empty segment");
    match normalize_path(normal) {
        Ok(Cow::Borrowed(again)) => assert_eq!(again, normal, "{input:?}"),
        other => panic!("{input:?} gave {normal:?}, which normalises to {other:?}"),
    }
    let decoded = normal.to_ascii_uppercase().replace("%2E", ".").replace("%2F", "/").replace("%5C", "/");
    let decoded = decoded.replace('\\', "/");
    for segment in decoded.split('/') {
        let name = segment.split(';').next().unwrap_or("");
        assert!(name != "." && name != "..", "{input:?} gave {normal:?}, which decodes to a dot segment");
    }
}

#[test]
fn every_short_path_over_dots_slashes_and_their_escapes_normalises_safely_and_idempotently() {
    let checked = exhaustive(&["/", ".", "a", "%2E", "%2F"], 6);
    assert_eq!(checked, 2 * (1..=7).map(|n| 5usize.pow(n - 1)).sum::<usize>());
}

#[test]
fn every_short_path_over_backslashes_parameters_and_lower_case_escapes_normalises_safely() {
    exhaustive(&["/", ".", ";", "\\", "%5c", "%2e", "%2f", "%"], 5);
}
