//! Image references, normalised the way Docker's `distribution/reference` does:
//! `busybox` is `docker.io/library/busybox:latest`, shown in familiar form `busybox:latest`;
//! `index.docker.io` is `docker.io`; a first component with a `.` or `:` or `localhost` is a
//! registry host (`localhost:5000/x:1`); repository names must be lowercase.

use crate::error::ImageError;

const DEFAULT_DOMAIN: &str = "docker.io";
const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
const OFFICIAL_REPO_PREFIX: &str = "library/";
const DEFAULT_TAG: &str = "latest";
const NAME_TOTAL_LENGTH_MAX: usize = 255;

/// A parsed, normalised reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// registry host, `docker.io` by default
    pub domain: String,
    /// repository path, `library/busybox` for official images
    pub path: String,
    /// the tag as written, if any
    pub tag: Option<String>,
    /// `sha256:<hex>` as written, if any
    pub digest: Option<String>,
}

impl Reference {
    /// `busybox`, `berthtest/built`, `localhost:5000/x`.
    pub fn familiar_name(&self) -> String {
        if self.domain == DEFAULT_DOMAIN {
            match self.path.strip_prefix(OFFICIAL_REPO_PREFIX) {
                Some(rest) if !rest.contains('/') => rest.to_string(),
                _ => self.path.clone(),
            }
        } else {
            format!("{}/{}", self.domain, self.path)
        }
    }

    /// `docker.io/library/busybox`.
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// `busybox:latest`: the familiar name with the tag, `latest` when none was written.
    pub fn familiar_tagged(&self) -> String {
        format!(
            "{}:{}",
            self.familiar_name(),
            self.tag.as_deref().unwrap_or(DEFAULT_TAG)
        )
    }
}

fn invalid_format() -> ImageError {
    ImageError::InvalidReference("invalid reference format".to_string())
}

/// Normalise a reference the way Docker does.
///
/// Returns the familiar repository name (`busybox`, `localhost:5000/x`), the tag and the
/// digest. The tag defaults to `latest` when neither a tag nor a digest was written.
pub fn normalize_reference(
    s: &str,
) -> Result<(String, Option<String>, Option<String>), ImageError> {
    let r = parse(s)?;
    let tag = match (&r.tag, &r.digest) {
        (None, None) => Some(DEFAULT_TAG.to_string()),
        (t, _) => t.clone(),
    };
    Ok((r.familiar_name(), tag, r.digest.clone()))
}

/// Docker's `ParseNormalizedNamed`, keeping whether a tag was written.
pub fn parse(s: &str) -> Result<Reference, ImageError> {
    if is_full_hex_id(s) {
        return Err(ImageError::InvalidReference(format!(
            "invalid repository name ({s}), cannot specify 64-byte hexadecimal strings"
        )));
    }
    let (name_and_tag, digest) = match s.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (s, None),
    };
    let (name, tag) = match name_and_tag.rfind(':') {
        Some(i) if !name_and_tag[i..].contains('/') => {
            (&name_and_tag[..i], Some(&name_and_tag[i + 1..]))
        }
        _ => (name_and_tag, None),
    };
    let (domain, path) = split_docker_domain(name);
    if path.to_lowercase() != path {
        return Err(ImageError::InvalidReference(format!(
            "invalid reference format: repository name ({path}) must be lowercase"
        )));
    }
    if name.is_empty() || !valid_domain(&domain) || !path.split('/').all(valid_path_component) {
        return Err(invalid_format());
    }
    if domain.len() + 1 + path.len() > NAME_TOTAL_LENGTH_MAX {
        return Err(ImageError::InvalidReference(format!(
            "invalid reference format: repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters"
        )));
    }
    if let Some(t) = tag {
        if !valid_tag(t) {
            return Err(invalid_format());
        }
    }
    if let Some(d) = digest {
        if !valid_digest(d) {
            return Err(ImageError::InvalidReference(
                "invalid reference format: invalid checksum digest format".to_string(),
            ));
        }
    }
    Ok(Reference {
        domain,
        path,
        tag: tag.map(str::to_string),
        digest: digest.map(str::to_string),
    })
}

/// Docker's `splitDockerDomain`.
fn split_docker_domain(name: &str) -> (String, String) {
    let (mut domain, mut rest) = match name.find('/') {
        Some(i)
            if name[..i].contains(['.', ':'])
                || &name[..i] == "localhost"
                || name[..i].to_lowercase() != name[..i] =>
        {
            (name[..i].to_string(), name[i + 1..].to_string())
        }
        _ => (DEFAULT_DOMAIN.to_string(), name.to_string()),
    };
    if domain == LEGACY_DEFAULT_DOMAIN {
        domain = DEFAULT_DOMAIN.to_string();
    }
    if domain == DEFAULT_DOMAIN && !rest.contains('/') {
        rest = format!("{OFFICIAL_REPO_PREFIX}{rest}");
    }
    (domain, rest)
}

/// `host(.host)*(:port)?` with host labels of letters, digits and inner dashes.
fn valid_domain(domain: &str) -> bool {
    let (host, port) = match domain.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (domain, None),
    };
    if let Some(p) = port {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
    }
    !host.is_empty()
        && host.split('.').all(|label| {
            let b = label.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        })
}

/// One component of a repository path: `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`.
pub fn valid_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-')) {
            return false;
        }
    }
    true
}

/// A tag: `[\w][\w.-]{0,127}`.
pub fn valid_tag(t: &str) -> bool {
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && word(b[0])
        && b.iter().all(|&c| word(c) || c == b'.' || c == b'-')
}

fn valid_digest(d: &str) -> bool {
    match d.split_once(':') {
        Some(("sha256", hex)) => is_full_hex_id(hex),
        Some((algo, enc)) => {
            !algo.is_empty()
                && algo
                    .bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"+._-".contains(&c))
                && enc.len() >= 32
                && enc
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || b"=_-".contains(&c))
        }
        None => false,
    }
}

/// 64 lowercase hex characters: a full image id without its `sha256:` prefix.
pub(crate) fn is_full_hex_id(s: &str) -> bool {
    s.len() == 64 && is_lower_hex(s)
}

pub(crate) fn is_lower_hex(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> (String, Option<String>, Option<String>) {
        normalize_reference(s).unwrap()
    }

    #[test]
    fn official_images_lose_docker_io_library() {
        for s in [
            "busybox",
            "library/busybox",
            "docker.io/library/busybox",
            "index.docker.io/library/busybox:latest",
            "docker.io/busybox",
        ] {
            assert_eq!(
                norm(s),
                ("busybox".into(), Some("latest".into()), None),
                "{s}"
            );
        }
    }

    #[test]
    fn user_repos_and_registries_keep_their_path() {
        assert_eq!(norm("docker.io/berthtest/built:2").0, "berthtest/built");
        assert_eq!(norm("berthtest/built:2").1.as_deref(), Some("2"));
        assert_eq!(
            norm("localhost:5000/x:1"),
            ("localhost:5000/x".into(), Some("1".into()), None)
        );
        assert_eq!(norm("localhost/x").0, "localhost/x");
        assert_eq!(norm("quay.io/a/b/c").0, "quay.io/a/b/c");
        assert_eq!(
            norm("127.0.0.1:5055/berthtest/pullme:1").0,
            "127.0.0.1:5055/berthtest/pullme"
        );
    }

    #[test]
    fn digest_references_have_no_default_tag() {
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            norm(&format!("busybox@{d}")),
            ("busybox".into(), None, Some(d.clone()))
        );
        assert_eq!(norm(&format!("busybox:1@{d}")).1.as_deref(), Some("1"));
    }

    #[test]
    fn uppercase_repository_uses_dockers_wording() {
        let e = normalize_reference("UPPER").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid reference format: repository name (library/UPPER) must be lowercase"
        );
        assert_eq!(e.kind(), crate::ErrorKind::InvalidArgument);
        assert!(normalize_reference("docker.io/library/Upper:1").is_err());
        // Uppercase tags are fine.
        assert_eq!(norm("busybox:V1").1.as_deref(), Some("V1"));
    }

    #[test]
    fn malformed_references_are_rejected() {
        for s in [
            "",
            ":",
            "busybox:",
            "a//b",
            "-a",
            "a-",
            "busybox:-x",
            "a@sha256:12",
            "x y",
        ] {
            assert!(normalize_reference(s).is_err(), "{s}");
        }
        assert!(normalize_reference(&"a".repeat(64)).is_err());
        assert!(normalize_reference(&"a".repeat(300)).is_err());
    }

    #[test]
    fn separators_follow_the_grammar() {
        for s in ["a.b", "a_b", "a__b", "a---b", "a-b.c_d"] {
            assert!(normalize_reference(s).is_ok(), "{s}");
        }
        for s in ["a..b", "a___b", "a.-b"] {
            assert!(normalize_reference(s).is_err(), "{s}");
        }
    }
}
