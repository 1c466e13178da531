//! What a request names, checked before any path is made from it: repository names
//! (distribution's grammar), tags, digests (`sha256` only), upload ids, the route, and the
//! `Range` / `Content-Range` headers.
//!
//! The path is matched as sent, never percent-decoded: a `%` anywhere in a name fails the
//! grammar, so `%2F` or `%2e%2e` cannot become a separator or a parent directory.

use berth_image::reference::valid_path_component;
pub use berth_image::reference::valid_tag;

/// Distribution's limit on a whole repository name.
pub const MAX_NAME_LEN: usize = 255;

/// A repository name: lowercase components `[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*`
/// joined by `/`, at most 255 bytes. No component is empty, `.` or `..`, or starts with
/// `_` (the store's own directories do: `_blobs`, `_manifests`, ...).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_NAME_LEN && name.split('/').all(valid_path_component)
}

/// Why a digest is refused.
#[derive(Debug, PartialEq, Eq)]
pub enum DigestError {
    /// Not `algorithm:encoded` of the right form.
    Invalid,
    /// A well-formed digest of an algorithm berth does not store (`sha512`, ...).
    Unsupported,
}

/// The hex of a `sha256:<64 lowercase hex>` digest.
pub fn parse_digest(digest: &str) -> Result<&str, DigestError> {
    let (alg, hex) = digest.split_once(':').ok_or(DigestError::Invalid)?;
    let alg_ok = !alg.is_empty()
        && alg
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+._-".contains(&b));
    if !alg_ok || hex.is_empty() {
        return Err(DigestError::Invalid);
    }
    if alg != "sha256" {
        return Err(DigestError::Unsupported);
    }
    if hex.len() == 64 && is_lower_hex(hex) {
        Ok(hex)
    } else {
        Err(DigestError::Invalid)
    }
}

/// Lowercase hex only (file names in the store are made of nothing else).
pub fn is_lower_hex(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// An upload id: 32 lowercase hex digits (what the server hands out).
pub fn valid_upload_id(id: &str) -> bool {
    id.len() == 32 && is_lower_hex(id)
}

/// A manifest reference: a tag or a digest's hex.
#[derive(Debug, PartialEq, Eq, Clone)]
pub enum Reference {
    Tag(String),
    Digest(String),
}

/// The endpoint a path names (below `/v2/`).
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    Base,
    Catalog,
    Tags { name: String },
    Manifest { name: String, reference: String },
    Blob { name: String, digest: String },
    UploadStart { name: String },
    Upload { name: String, id: String },
    Referrers { name: String, digest: String },
}

/// Why a path has no route.
#[derive(Debug, PartialEq, Eq)]
pub enum RouteError {
    /// No endpoint has this shape.
    NotFound,
    /// The shape is an endpoint's, but the repository name is not valid.
    NameInvalid(String),
}

/// Splits `path` into its route. A name may hold slashes, so the endpoint is what follows
/// the name's last component: the reference, digest or upload id is the last segment and
/// never holds a slash.
pub fn route(path: &str) -> Result<Route, RouteError> {
    let rest = match path.strip_prefix("/v2") {
        Some("") | Some("/") => return Ok(Route::Base),
        Some(r) => r.strip_prefix('/').ok_or(RouteError::NotFound)?,
        None => return Err(RouteError::NotFound),
    };
    if rest == "_catalog" {
        return Ok(Route::Catalog);
    }
    let named = |name: &str, r: Route| {
        if valid_name(name) {
            Ok(r)
        } else {
            Err(RouteError::NameInvalid(name.to_string()))
        }
    };
    if let Some(name) = rest.strip_suffix("/tags/list") {
        return named(name, Route::Tags { name: name.into() });
    }
    if let Some(name) = rest
        .strip_suffix("/blobs/uploads/")
        .or_else(|| rest.strip_suffix("/blobs/uploads"))
    {
        return named(name, Route::UploadStart { name: name.into() });
    }
    let (prefix, last) = rest.rsplit_once('/').ok_or(RouteError::NotFound)?;
    if last.is_empty() {
        return Err(RouteError::NotFound);
    }
    let last = last.to_string();
    if let Some(name) = prefix.strip_suffix("/blobs/uploads") {
        return named(
            name,
            Route::Upload {
                name: name.into(),
                id: last,
            },
        );
    }
    if let Some(name) = prefix.strip_suffix("/manifests") {
        let r = Route::Manifest {
            name: name.into(),
            reference: last,
        };
        return named(name, r);
    }
    if let Some(name) = prefix.strip_suffix("/blobs") {
        return named(
            name,
            Route::Blob {
                name: name.into(),
                digest: last,
            },
        );
    }
    if let Some(name) = prefix.strip_suffix("/referrers") {
        let r = Route::Referrers {
            name: name.into(),
            digest: last,
        };
        return named(name, r);
    }
    Err(RouteError::NotFound)
}

/// A PATCH's `Content-Range`: `<start>-<end>` (inclusive; `bytes ` allowed before it).
pub fn parse_content_range(value: &str) -> Option<(u64, u64)> {
    let v = value.trim();
    let v = v.strip_prefix("bytes ").unwrap_or(v);
    let (s, e) = v.split_once('-')?;
    let digits = |x: &str| !x.is_empty() && x.bytes().all(|b| b.is_ascii_digit());
    if !digits(s) || !digits(e) {
        return None;
    }
    let (s, e) = (s.parse().ok()?, e.parse().ok()?);
    (s <= e).then_some((s, e))
}

/// What a blob GET serves for its `Range` header.
#[derive(Debug, PartialEq, Eq)]
pub enum RangeAnswer {
    /// The whole blob (no header, or one the server may ignore: several ranges, a suffix).
    Whole,
    /// Bytes `start..=end`.
    Part(u64, u64),
    /// A start at or past the end: 416.
    Unsatisfiable,
}

/// `Range: bytes=N-` or `bytes=N-M` against a blob of `size` bytes.
pub fn parse_range(value: &str, size: u64) -> RangeAnswer {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return RangeAnswer::Whole;
    };
    let Some((s, e)) = spec.trim().split_once('-') else {
        return RangeAnswer::Whole;
    };
    if spec.contains(',') || s.is_empty() {
        return RangeAnswer::Whole;
    }
    let Ok(start) = s.parse::<u64>() else {
        return RangeAnswer::Whole;
    };
    let end = if e.is_empty() {
        size.saturating_sub(1)
    } else {
        match e.parse::<u64>() {
            Ok(e) if e >= start => e.min(size.saturating_sub(1)),
            _ => return RangeAnswer::Whole,
        }
    };
    if start >= size {
        return RangeAnswer::Unsatisfiable;
    }
    if start == 0 && end + 1 == size {
        return RangeAnswer::Whole;
    }
    RangeAnswer::Part(start, end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_distribution_grammar() {
        for ok in [
            "a",
            "library/busybox",
            "a/b/c",
            "a.b",
            "a_b",
            "a__b",
            "a---b",
            "x9/0y",
        ] {
            assert!(valid_name(ok), "{ok}");
        }
        let long = "a".repeat(256);
        for bad in [
            "", "A", "a/B", "..", "a/../b", "a//b", "/a", "a/", "a___b", "a._b", "_a", "a_", "-a",
            "%2e%2e", "a%2Fb", "a/.", "a b", &long,
        ] {
            assert!(!valid_name(bad), "{bad}");
        }
        assert!(valid_name(&"a".repeat(255)));
    }

    #[test]
    fn tags_and_digests_are_checked() {
        assert!(valid_tag("latest") && valid_tag("_x.Y-1") && valid_tag(&"a".repeat(128)));
        for bad in ["", ".a", "-a", "a/b", "a:b", &"a".repeat(129)] {
            assert!(!valid_tag(bad), "{bad}");
        }
        let hex = "a".repeat(64);
        assert_eq!(parse_digest(&format!("sha256:{hex}")), Ok(hex.as_str()));
        assert_eq!(
            parse_digest(&format!("sha512:{}", "a".repeat(128))),
            Err(DigestError::Unsupported)
        );
        for bad in [
            "sha256:".to_string(),
            format!("sha256:{}", "A".repeat(64)),
            format!("sha256:{}", "a".repeat(63)),
            format!("sha256:../{}", "a".repeat(61)),
            "latest".to_string(),
            format!("SHA256:{hex}"),
        ] {
            assert_eq!(parse_digest(&bad), Err(DigestError::Invalid), "{bad}");
        }
    }

    #[test]
    fn routes_split_on_the_last_endpoint_segment() {
        let m = |n: &str, r: &str| Route::Manifest {
            name: n.into(),
            reference: r.into(),
        };
        assert_eq!(route("/v2/"), Ok(Route::Base));
        assert_eq!(route("/v2"), Ok(Route::Base));
        assert_eq!(route("/v2/_catalog"), Ok(Route::Catalog));
        assert_eq!(route("/v2/a/b/c/manifests/x"), Ok(m("a/b/c", "x")));
        assert_eq!(
            route("/v2/a/manifests/b/manifests/x"),
            Ok(m("a/manifests/b", "x"))
        );
        assert_eq!(
            route("/v2/a/blobs/uploads/"),
            Ok(Route::UploadStart { name: "a".into() })
        );
        assert_eq!(
            route("/v2/a/b/blobs/uploads/0123"),
            Ok(Route::Upload {
                name: "a/b".into(),
                id: "0123".into()
            })
        );
        assert_eq!(
            route("/v2/a/blobs/sha256:00"),
            Ok(Route::Blob {
                name: "a".into(),
                digest: "sha256:00".into()
            })
        );
        assert_eq!(
            route("/v2/a/b/tags/list"),
            Ok(Route::Tags { name: "a/b".into() })
        );
        assert_eq!(
            route("/v2/a/referrers/sha256:00"),
            Ok(Route::Referrers {
                name: "a".into(),
                digest: "sha256:00".into()
            })
        );
        assert_eq!(
            route("/v2/../x/manifests/latest"),
            Err(RouteError::NameInvalid("../x".into()))
        );
        assert_eq!(
            route("/v2/%2e%2e/manifests/latest"),
            Err(RouteError::NameInvalid("%2e%2e".into()))
        );
        assert_eq!(
            route("/v2/Upper/manifests/latest"),
            Err(RouteError::NameInvalid("Upper".into()))
        );
        assert_eq!(route("/v2/a/manifests/"), Err(RouteError::NotFound));
        assert_eq!(route("/v2/a/nothing/x"), Err(RouteError::NotFound));
        assert_eq!(route("/v3/"), Err(RouteError::NotFound));
        assert_eq!(route("/v2x/a/manifests/x"), Err(RouteError::NotFound));
    }

    #[test]
    fn content_range_is_start_dash_end() {
        assert_eq!(parse_content_range("0-1023"), Some((0, 1023)));
        assert_eq!(parse_content_range("bytes 5-5"), Some((5, 5)));
        for bad in ["", "5", "5-", "-5", "6-5", "a-b", "+1-2", "1-2-3"] {
            assert_eq!(parse_content_range(bad), None, "{bad}");
        }
    }

    #[test]
    fn range_header_gives_part_whole_or_unsatisfiable() {
        assert_eq!(parse_range("bytes=10-", 100), RangeAnswer::Part(10, 99));
        assert_eq!(parse_range("bytes=10-19", 100), RangeAnswer::Part(10, 19));
        assert_eq!(parse_range("bytes=10-1000", 100), RangeAnswer::Part(10, 99));
        assert_eq!(parse_range("bytes=0-", 100), RangeAnswer::Whole);
        assert_eq!(parse_range("bytes=100-", 100), RangeAnswer::Unsatisfiable);
        assert_eq!(parse_range("bytes=-5", 100), RangeAnswer::Whole);
        assert_eq!(parse_range("bytes=1-2,4-5", 100), RangeAnswer::Whole);
        assert_eq!(parse_range("items=1-2", 100), RangeAnswer::Whole);
        assert_eq!(parse_range("bytes=5-2", 100), RangeAnswer::Whole);
    }
}
