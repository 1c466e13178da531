//! ADD's remote sources: an `http://` or `https://` URL downloaded by berthd (HTTPS by
//! rustls against the system's root certificates), redirects followed as Go's client
//! follows them (at most 10), into an unlinked file of the build's directory under the
//! ingest budget, hashed as it arrives.
//!
//! Docker's rules: the file is named from the URL's path (else from a `Content-Disposition`
//! filename), its mtime is the `Last-Modified` header's, and it is never extracted. The
//! content's digest is the step's cache key (Docker downloads again at every build).

use std::io::Write;
use std::path::Path;

use berth_image::{Budget, IngestLimits};
use hyper::body::Incoming;
use hyper::{Response, StatusCode};
use sha2::{Digest, Sha256};

/// Go's client gives up after 10 redirects.
const MAX_REDIRECTS: usize = 10;

/// A downloaded file.
#[derive(Debug)]
pub struct Download {
    /// The content, read from the start (unlinked: gone when dropped).
    pub file: std::fs::File,
    pub size: u64,
    /// `sha256:<hex>` of the content.
    pub digest: String,
    /// The name it takes in a destination directory; `None` when neither the URL's path nor
    /// a `Content-Disposition` gives one.
    pub name: Option<String>,
    /// Unix seconds: `Last-Modified`, else now.
    pub mtime: u64,
}

/// Whether a source is a URL ADD downloads (a git URL is not: see [`is_git`]).
pub fn is_http(src: &str) -> bool {
    (src.starts_with("http://") || src.starts_with("https://")) && !is_git(src)
}

/// Whether a source names a git repository (BuildKit's forms: `git@host:repo`, `git://`,
/// `ssh://`, and an http(s) URL whose path ends in `.git`, with or without a `#ref`).
pub fn is_git(src: &str) -> bool {
    if src.starts_with("git@") || src.starts_with("git://") || src.starts_with("ssh://") {
        return true;
    }
    let Some(rest) = src
        .strip_prefix("http://")
        .or_else(|| src.strip_prefix("https://"))
    else {
        return false;
    };
    let before_fragment = rest.split('#').next().unwrap_or("");
    let path = before_fragment.split('?').next().unwrap_or("");
    path.trim_end_matches('/').ends_with(".git")
}

/// Downloads `url` into a new unlinked file in `dir`, charged to the ingest budget of
/// `limits`. Errors name the URL and say what failed (the message of the build).
pub async fn download(url: &str, dir: &Path, limits: IngestLimits) -> Result<Download, String> {
    let fail = |why: String| format!("failed to GET {url}: {why}");
    let original = url::Url::parse(url).map_err(|e| format!("invalid URL {url}: {e}"))?;
    let mut current = original.clone();
    let mut response = None;
    for _ in 0..=MAX_REDIRECTS {
        let r = request(&current).await.map_err(fail)?;
        if r.status().is_redirection() && r.status() != StatusCode::NOT_MODIFIED {
            let location = r
                .headers()
                .get(hyper::header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .ok_or_else(|| fail(format!("{} without a Location", r.status())))?;
            current = current
                .join(location)
                .map_err(|e| fail(format!("redirected to {location:?}: {e}")))?;
            if !matches!(current.scheme(), "http" | "https") {
                return Err(fail(format!("redirected to a {} URL", current.scheme())));
            }
            continue;
        }
        response = Some(r);
        break;
    }
    let Some(response) = response else {
        return Err(fail(format!("stopped after {MAX_REDIRECTS} redirects")));
    };
    if !response.status().is_success() {
        return Err(format!(
            "failed to GET {url} with status {}",
            response.status()
        ));
    }
    let name = file_name(&original).or_else(|| disposition_name(&response));
    let mtime = response
        .headers()
        .get(hyper::header::LAST_MODIFIED)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
        .unwrap_or_else(std::time::SystemTime::now)
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let budget = Budget::for_archive(dir, limits).map_err(|e| fail(e.to_string()))?;
    let path = dir.join(format!("url-{}", crate::builder::rand_suffix()));
    let mut file = std::fs::File::options()
        .create_new(true)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| fail(format!("store the download: {e}")))?;
    let _ = std::fs::remove_file(&path);
    let mut hash = Sha256::new();
    let mut size = 0u64;
    let mut body = response.into_body();
    loop {
        let Some(data) = berth_registry::transport::next_chunk(&mut body)
            .await
            .map_err(fail)?
        else {
            break;
        };
        budget
            .charge_written(data.len() as u64)
            .map_err(|e| fail(e.to_string()))?;
        hash.update(&data);
        size += data.len() as u64;
        file.write_all(&data)
            .map_err(|e| fail(format!("store the download: {e}")))?;
    }
    use std::io::Seek;
    file.rewind()
        .map_err(|e| fail(format!("store the download: {e}")))?;
    Ok(Download {
        file,
        size,
        digest: format!("sha256:{:x}", hash.finalize()),
        name,
        mtime,
    })
}

/// `--checksum=<algorithm>:<hex>` against a download: sha256, sha384 or sha512 (what
/// BuildKit's digest parser takes).
pub fn verify_checksum(expected: &str, download: &mut Download) -> Result<(), String> {
    let (algorithm, hex) = expected
        .split_once(':')
        .ok_or_else(|| format!("invalid checksum digest format: {expected}"))?;
    let len = match algorithm {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => return Err(format!("unsupported digest algorithm: {algorithm}")),
    };
    if hex.len() != len || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(format!("invalid checksum digest format: {expected}"));
    }
    let actual = if algorithm == "sha256" {
        download.digest.clone()
    } else {
        use std::io::{Read, Seek};
        let mut h: Box<dyn sha2::digest::DynDigest> = if algorithm == "sha384" {
            Box::new(sha2::Sha384::new())
        } else {
            Box::new(sha2::Sha512::new())
        };
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let n = download.file.read(&mut buf).map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        download.file.rewind().map_err(|e| e.to_string())?;
        let bytes = h.finalize();
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        format!("{algorithm}:{hex}")
    };
    if actual != expected {
        return Err(format!(
            "checksum mismatch: --checksum={expected}, the content is {actual}"
        ));
    }
    Ok(())
}

/// One GET of `u`, up to its response headers: berth's registry transport (timeouts on
/// connecting, the TLS handshake and the answer; rustls with the system's roots).
async fn request(u: &url::Url) -> Result<Response<Incoming>, String> {
    static TRANSPORT: std::sync::OnceLock<berth_registry::transport::Transport> =
        std::sync::OnceLock::new();
    TRANSPORT
        .get_or_init(|| berth_registry::transport::Transport::new(None, "berth-builder"))
        .send(
            hyper::Method::GET,
            u,
            hyper::HeaderMap::new(),
            berth_registry::transport::empty(),
            berth_registry::transport::Verify::Roots,
        )
        .await
}

/// The last element of the URL's path, decoded, as Docker names a download: none for a
/// path ending in `/` (or `.`, `..`, which would name no file).
fn file_name(u: &url::Url) -> Option<String> {
    let path = u.path();
    if path.ends_with('/') {
        return None;
    }
    let last = path.rsplit('/').next()?;
    let decoded = percent_encoding::percent_decode_str(last)
        .decode_utf8()
        .ok()?
        .into_owned();
    valid_name(decoded)
}

/// `Content-Disposition: attachment; filename="x"`'s base name.
fn disposition_name(r: &Response<Incoming>) -> Option<String> {
    let v = r
        .headers()
        .get(hyper::header::CONTENT_DISPOSITION)?
        .to_str()
        .ok()?;
    let param = v
        .split(';')
        .map(str::trim)
        .find_map(|p| p.strip_prefix("filename="))?;
    let name = param.trim_matches('"');
    if name.ends_with('/') {
        return None;
    }
    valid_name(name.rsplit('/').next()?.to_string())
}

fn valid_name(name: String) -> Option<String> {
    (!name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\0'])).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_urls_are_told_from_downloads() {
        for git in [
            "git@github.com:moby/buildkit.git",
            "git://example.com/r",
            "https://github.com/moby/buildkit.git",
            "https://github.com/moby/buildkit.git#v0.10.1",
            "ssh://git@example.com/r.git",
        ] {
            assert!(is_git(git) && !is_http(git), "{git}");
        }
        for http in [
            "http://example.com/x.tar.gz",
            "https://example.com/a.git.txt",
        ] {
            assert!(is_http(http) && !is_git(http), "{http}");
        }
    }

    #[test]
    fn downloads_are_named_from_the_url_path() {
        let name = |s: &str| file_name(&url::Url::parse(s).unwrap());
        assert_eq!(name("http://h/a/b.txt?x=1").as_deref(), Some("b.txt"));
        assert_eq!(name("http://h/a/my%20file").as_deref(), Some("my file"));
        assert_eq!(name("http://h/a/"), None);
        assert_eq!(name("http://h"), None);
        assert_eq!(name("http://h/a/%2e%2e"), None);
        assert_eq!(name("http://h/a/x%2fy"), None);
    }

    #[test]
    fn checksums_are_checked() {
        let dir = std::env::temp_dir();
        let path = dir.join(format!("berth-fetch-test-{}", std::process::id()));
        std::fs::write(&path, b"hello\n").unwrap();
        let file = std::fs::File::open(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        let mut d = Download {
            file,
            size: 6,
            digest: format!("sha256:{:x}", Sha256::digest(b"hello\n")),
            name: None,
            mtime: 0,
        };
        let good = d.digest.clone();
        assert_eq!(verify_checksum(&good, &mut d), Ok(()));
        let sha512 = format!("sha512:{:x}", sha2::Sha512::digest(b"hello\n"));
        assert_eq!(verify_checksum(&sha512, &mut d), Ok(()));
        let bad = format!("sha256:{}", "0".repeat(64));
        assert!(verify_checksum(&bad, &mut d)
            .unwrap_err()
            .contains("checksum mismatch"));
        assert!(verify_checksum("sha256:abc", &mut d)
            .unwrap_err()
            .contains("invalid checksum digest format"));
        assert!(verify_checksum("md5:abc", &mut d).is_err());
    }
}
