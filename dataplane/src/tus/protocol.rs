//! tus 1.0.0's vocabulary: its header fields, the values Holdfast announces, and the parsing of what clients send
//! (`Upload-Metadata`, `Upload-Checksum`, lengths and offsets). Nothing here touches the disk or the network.

use base64::Engine;
use holdfast_snapshot::is_token;
use http::{HeaderMap, HeaderName, HeaderValue};
use sha2::Digest;

pub const TUS_RESUMABLE: HeaderName = HeaderName::from_static("tus-resumable");
pub const TUS_VERSION: HeaderName = HeaderName::from_static("tus-version");
pub const TUS_EXTENSION: HeaderName = HeaderName::from_static("tus-extension");
pub const TUS_MAX_SIZE: HeaderName = HeaderName::from_static("tus-max-size");
pub const TUS_CHECKSUM_ALGORITHM: HeaderName = HeaderName::from_static("tus-checksum-algorithm");
pub const UPLOAD_OFFSET: HeaderName = HeaderName::from_static("upload-offset");
pub const UPLOAD_LENGTH: HeaderName = HeaderName::from_static("upload-length");
pub const UPLOAD_DEFER_LENGTH: HeaderName = HeaderName::from_static("upload-defer-length");
pub const UPLOAD_METADATA: HeaderName = HeaderName::from_static("upload-metadata");
pub const UPLOAD_EXPIRES: HeaderName = HeaderName::from_static("upload-expires");
pub const UPLOAD_CHECKSUM: HeaderName = HeaderName::from_static("upload-checksum");
pub const METHOD_OVERRIDE: HeaderName = HeaderName::from_static("x-http-method-override");
/// The backend's status for a delivered upload, on HEAD answers (which cannot carry it as their own status).
pub const DELIVERY_STATUS: HeaderName = HeaderName::from_static("holdfast-delivery-status");
/// `pending` on the answer to the last PATCH when the backend had not answered within `answerWaitMs`.
pub const DELIVERY: HeaderName = HeaderName::from_static("holdfast-delivery");

/// The IETF draft's fields (draft-ietf-httpbis-resumable-upload, interop versions 5 and 6: what tus-js-client's
/// `ietf-draft-03` and `ietf-draft-05` protocols send).
pub const UPLOAD_COMPLETE: HeaderName = HeaderName::from_static("upload-complete");
pub const UPLOAD_DRAFT_INTEROP_VERSION: HeaderName = HeaderName::from_static("upload-draft-interop-version");
pub const UPLOAD_LIMIT: HeaderName = HeaderName::from_static("upload-limit");
/// The media type of an IETF append (interop version 6).
pub const PARTIAL_UPLOAD: &str = "application/partial-upload";

/// The resumable-upload protocol a request speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// tus 1.0.0 (`Tus-Resumable`).
    Tus,
    /// The IETF draft at an interop version Holdfast speaks (`Upload-Draft-Interop-Version`: 5 or 6), without the
    /// `104` responses of its optimistic mode (hyper cannot send them).
    Ietf(u8),
}

/// The dialect of a request: tus when it says `Tus-Resumable: 1.0.0`, the IETF draft when it names an interop
/// version spoken here; `None` for anything else (another tus version, an unknown interop version, neither).
pub fn dialect(headers: &HeaderMap) -> Option<Dialect> {
    if headers.get(&TUS_RESUMABLE).is_some_and(|v| v.as_bytes() == VERSION.as_bytes()) {
        return Some(Dialect::Tus);
    }
    match headers.get(&UPLOAD_DRAFT_INTEROP_VERSION).map(|v| v.as_bytes()) {
        Some(b"5") => Some(Dialect::Ietf(5)),
        Some(b"6") => Some(Dialect::Ietf(6)),
        _ => None,
    }
}

/// A structured-field boolean (`?1`, `?0`), as `Upload-Complete` carries it.
pub fn sf_boolean(headers: &HeaderMap, name: &HeaderName) -> Option<bool> {
    match headers.get(name)?.as_bytes() {
        b"?1" => Some(true),
        b"?0" => Some(false),
        _ => None,
    }
}

/// `?1` or `?0`.
pub fn sf_bool_value(value: bool) -> HeaderValue {
    HeaderValue::from_static(if value { "?1" } else { "?0" })
}

/// `Upload-Limit`: the largest upload, or `min-size=0` when there is no limit (the draft wants one member).
pub fn upload_limit(max: u64) -> HeaderValue {
    match max {
        0 => HeaderValue::from_static("min-size=0"),
        max => HeaderValue::from_str(&format!("max-size={max}")).expect("a number is a valid header value"),
    }
}

/// The only version spoken.
pub const VERSION: &str = "1.0.0";
pub const EXTENSIONS: &str = "creation,creation-with-upload,creation-defer-length,termination,expiration,checksum";
pub const CHECKSUM_ALGORITHMS: &str = "sha1,sha256,sha512";
/// The media type of PATCH bodies (and of a creation request's body, with creation-with-upload).
pub const OFFSET_OCTET_STREAM: &str = "application/offset+octet-stream";
/// The query parameter naming an upload in its URL: `<creation URL>?holdfast-upload=<id>`. An upload's URL is its
/// creation URL's path, so it takes the same route whatever the Ingress's path type, and resolves behind any prefix.
pub const UPLOAD_PARAM: &str = "holdfast-upload";

/// Why a tus request is refused before anything is stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("{0} must be a non-negative integer")]
    NotAnInteger(String),
    #[error("Upload-Metadata is malformed: {0}")]
    Metadata(&'static str),
    #[error("Upload-Checksum must be `<algorithm> <base64 digest>`")]
    ChecksumSyntax,
    #[error("the checksum algorithm {0:?} is not supported (sha1, sha256, sha512 are)")]
    ChecksumAlgorithm(String),
}

/// An optional header that must hold a non-negative integer.
pub fn integer(headers: &HeaderMap, name: &HeaderName) -> Result<Option<u64>, HeaderError> {
    let Some(value) = headers.get(name) else { return Ok(None) };
    let not = || HeaderError::NotAnInteger(name.as_str().to_string());
    let text = value.to_str().map_err(|_| not())?.trim();
    // `u64::from_str` takes a leading `+`; the spec's integers are digits only.
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(not());
    }
    text.parse().map(Some).map_err(|_| not())
}

/// One `Upload-Metadata` pair: the key and its decoded value (`None` for a key without a value).
pub type MetadataPair = (String, Option<Vec<u8>>);

/// Parses `Upload-Metadata`: comma-separated `key base64value` pairs (the value may be absent), unique keys with no
/// spaces or commas.
pub fn metadata(value: &HeaderValue) -> Result<Vec<MetadataPair>, HeaderError> {
    let text = value.to_str().map_err(|_| HeaderError::Metadata("not ASCII"))?;
    let mut pairs: Vec<MetadataPair> = Vec::new();
    for pair in text.split(',') {
        let pair = pair.trim();
        if pair.is_empty() {
            continue;
        }
        let mut parts = pair.split(' ').filter(|p| !p.is_empty());
        let key = parts.next().ok_or(HeaderError::Metadata("an empty pair"))?;
        let value = match parts.next() {
            None => None,
            Some(encoded) => Some(
                base64::engine::general_purpose::STANDARD
                    .decode(encoded)
                    .map_err(|_| HeaderError::Metadata("a value is not base64"))?,
            ),
        };
        if parts.next().is_some() {
            return Err(HeaderError::Metadata("a pair has more than a key and a value"));
        }
        if pairs.iter().any(|(k, _)| k == key) {
            return Err(HeaderError::Metadata("a key appears twice"));
        }
        pairs.push((key.to_string(), value));
    }
    Ok(pairs)
}

/// The value of metadata `key` as text, if it is there and UTF-8.
pub fn metadata_text<'a>(pairs: &'a [MetadataPair], key: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == key).and_then(|(_, v)| std::str::from_utf8(v.as_deref()?).ok())
}

/// A checksum algorithm of the checksum extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Sha1,
    Sha256,
    Sha512,
}

/// `Upload-Checksum`: the algorithm and the digest the PATCH body must have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checksum {
    pub algorithm: Algorithm,
    pub digest: Vec<u8>,
}

pub fn checksum(value: &HeaderValue) -> Result<Checksum, HeaderError> {
    let text = value.to_str().map_err(|_| HeaderError::ChecksumSyntax)?.trim();
    let (name, encoded) = text.split_once(' ').ok_or(HeaderError::ChecksumSyntax)?;
    let algorithm = match name.to_ascii_lowercase().as_str() {
        "sha1" => Algorithm::Sha1,
        "sha256" => Algorithm::Sha256,
        "sha512" => Algorithm::Sha512,
        _ => return Err(HeaderError::ChecksumAlgorithm(name.to_string())),
    };
    let digest =
        base64::engine::general_purpose::STANDARD.decode(encoded.trim()).map_err(|_| HeaderError::ChecksumSyntax)?;
    Ok(Checksum { algorithm, digest })
}

/// A running digest of a PATCH body.
pub enum Hasher {
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

impl Hasher {
    pub fn new(algorithm: Algorithm) -> Self {
        match algorithm {
            Algorithm::Sha1 => Hasher::Sha1(sha1::Digest::new()),
            Algorithm::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            Algorithm::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha1(h) => sha1::Digest::update(h, data),
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }

    pub fn finish(self) -> Vec<u8> {
        match self {
            Hasher::Sha1(h) => sha1::Digest::finalize(h).to_vec(),
            Hasher::Sha256(h) => h.finalize().to_vec(),
            Hasher::Sha512(h) => h.finalize().to_vec(),
        }
    }
}

/// The `Content-Type` of a delivery from the `filetype` metadata: a `type/subtype` of token characters (parameters
/// allowed), else `application/octet-stream`. Metadata is the client's text and becomes a header of the backend's
/// request, so anything else is dropped rather than passed on (the spec warns of header smuggling).
pub fn content_type(filetype: Option<&str>) -> HeaderValue {
    const FALLBACK: HeaderValue = HeaderValue::from_static("application/octet-stream");
    let Some(filetype) = filetype.map(str::trim) else { return FALLBACK };
    let essence = filetype.split(';').next().unwrap_or("").trim();
    let valid_essence = essence.split_once('/').is_some_and(|(t, s)| is_token(t) && is_token(s));
    let printable = filetype.bytes().all(|b| b == b' ' || b == b'\t' || b.is_ascii_graphic());
    match (valid_essence && printable && filetype.len() <= 255, HeaderValue::from_str(filetype)) {
        (true, Ok(value)) => value,
        _ => FALLBACK,
    }
}

/// `Content-Disposition` from the `filename` metadata (RFC 6266): `attachment` with an ASCII `filename` (other
/// characters replaced by `_`, quotes and backslashes escaped) for old parsers, and `filename*` in UTF-8 with
/// percent-encoding for the exact name. Path separators are cut off: a name is a name, not a path. `None` for a name
/// that is empty once cleaned.
pub fn content_disposition(filename: &str) -> Option<HeaderValue> {
    let name = filename.rsplit(['/', '\\']).next().unwrap_or("");
    let name: String = name.chars().filter(|c| !c.is_control()).collect();
    let name = name.trim();
    if name.is_empty() || name == "." || name == ".." || name.len() > 1024 {
        return None;
    }
    let mut ascii = String::with_capacity(name.len());
    for c in name.chars() {
        match c {
            '"' | '\\' => {
                ascii.push('\\');
                ascii.push(c);
            }
            ' '..='~' => ascii.push(c),
            _ => ascii.push('_'),
        }
    }
    let mut value = format!("attachment; filename=\"{ascii}\"");
    if !name.is_ascii() || name.contains(['"', '\\', '%']) {
        value.push_str("; filename*=UTF-8''");
        for byte in name.bytes() {
            // RFC 8187's attr-char.
            if byte.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&byte) {
                value.push(byte as char);
            } else {
                value.push_str(&format!("%{byte:02X}"));
            }
        }
    }
    HeaderValue::from_str(&value).ok()
}

/// Metadata passed to the backend as a field (`metadataHeaders`) must be a valid field value: printable text only.
pub fn field_value(value: &[u8]) -> Option<HeaderValue> {
    let text = std::str::from_utf8(value).ok()?;
    if text.len() > 4096 || text.chars().any(|c| c.is_control()) {
        return None;
    }
    HeaderValue::from_str(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hv(s: &str) -> HeaderValue {
        HeaderValue::from_str(s).unwrap()
    }

    #[test]
    fn metadata_pairs_decode_and_refuse_what_the_spec_forbids() {
        let pairs = metadata(&hv("filename d29ybGRfZG9taW5hdGlvbl9wbGFuLnBkZg==,is_confidential")).unwrap();
        assert_eq!(metadata_text(&pairs, "filename"), Some("world_domination_plan.pdf"));
        assert_eq!(pairs[1], ("is_confidential".to_string(), None));
        assert_eq!(metadata(&hv("")).unwrap(), vec![]);
        assert!(metadata(&hv("a YQ==,a Yg==")).is_err(), "a repeated key");
        assert!(metadata(&hv("a !!!")).is_err(), "not base64");
        assert!(metadata(&hv("a YQ== b")).is_err(), "three parts");
    }

    #[test]
    fn integers_are_digits_only() {
        let mut h = HeaderMap::new();
        assert_eq!(integer(&h, &UPLOAD_OFFSET), Ok(None));
        for (value, parsed) in [("0", Some(0)), ("123", Some(123)), (" 7 ", Some(7))] {
            h.insert(UPLOAD_OFFSET, hv(value));
            assert_eq!(integer(&h, &UPLOAD_OFFSET), Ok(parsed), "{value}");
        }
        for bad in ["-1", "+1", "1.5", "", "99999999999999999999999"] {
            h.insert(UPLOAD_OFFSET, hv(bad));
            assert!(integer(&h, &UPLOAD_OFFSET).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn checksums_parse_and_hash() {
        let c = checksum(&hv("sha1 Kq5sNclPz7QV2+lfQIuc6R7oRu0=")).unwrap();
        assert_eq!(c.algorithm, Algorithm::Sha1);
        let mut h = Hasher::new(Algorithm::Sha1);
        h.update(b"hello world");
        assert_eq!(h.finish(), c.digest);
        assert!(matches!(checksum(&hv("md5 AAAA")), Err(HeaderError::ChecksumAlgorithm(_))));
        assert_eq!(checksum(&hv("sha1")), Err(HeaderError::ChecksumSyntax));
        assert_eq!(checksum(&hv("sha256 ***")), Err(HeaderError::ChecksumSyntax));
    }

    #[test]
    fn content_type_comes_from_a_valid_filetype_only() {
        assert_eq!(content_type(Some("image/png")), "image/png");
        assert_eq!(content_type(Some("text/plain; charset=utf-8")), "text/plain; charset=utf-8");
        for bad in [None, Some(""), Some("png"), Some("image/png\r\nX-Evil: 1"), Some("a b/c"), Some("ïmage/png")] {
            assert_eq!(content_type(bad), "application/octet-stream", "{bad:?}");
        }
    }

    #[test]
    fn content_disposition_is_rfc_6266() {
        assert_eq!(content_disposition("report.pdf").unwrap(), "attachment; filename=\"report.pdf\"");
        assert_eq!(
            content_disposition("../../etc/naïve \"plan\".txt").unwrap(),
            "attachment; filename=\"na_ve \\\"plan\\\".txt\"; filename*=UTF-8''na%C3%AFve%20%22plan%22.txt"
        );
        assert_eq!(content_disposition("a\r\nb").unwrap(), "attachment; filename=\"ab\"");
        assert!(content_disposition("dir/").is_none());
        assert!(content_disposition("..").is_none());
    }

    #[test]
    fn metadata_fields_must_be_printable() {
        assert_eq!(field_value(b"Summer 2026").unwrap(), "Summer 2026");
        assert!(field_value(b"a\nb").is_none());
        assert!(field_value(&[0xff]).is_none());
    }
}
