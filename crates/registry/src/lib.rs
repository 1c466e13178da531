//! berth-registry: the OCI Distribution client berthd pulls and pushes with, and berth's
//! own registry server (bin `berth-registry`).
//!
//! - [`transport`]: HTTP/1.1 over TCP or rustls, with timeouts and per-registry
//!   certificates (`/etc/berth/certs.d/<host:port>/`).
//! - [`client`]: a repository at a registry: endpoints (mirrors, insecure registries and
//!   their plain-HTTP fallback), the `WWW-Authenticate` challenge (bearer tokens, basic
//!   auth), registry errors.
//! - [`manifest`]: Docker schema 2 and OCI manifests and indexes, platform selection.
//! - [`pull`]: manifest, config, then the layers streamed into the image store's ingest
//!   path ([`berth_image::LayerIngest`]), several at once, resumed where they broke off,
//!   with Docker's JSON progress.
//! - [`push`]: the blobs the registry lacks (checked, mounted from another repository, or
//!   uploaded straight from the content store), then the manifest (the pulled one when the
//!   image is unchanged).
//! - [`server`]: `berth-registry serve` (the OCI Distribution Spec 1.1 endpoints over a
//!   content-addressed store) and `berth-registry gc`.

pub mod client;
pub mod manifest;
pub mod pull;
pub mod push;
pub mod server;
pub mod transport;

pub use client::{AuthConfig, Registry, RegistryConfig, RegistryError};
pub use manifest::Platform;
pub use pull::{pull, Message, PullError, PullErrorKind, PullOptions, Pulled, Sink};
pub use push::{push, PushError, Pushed};

/// `docker login`: checks `auth` against the registry at its `serveraddress` (`""` or
/// Docker Hub's address for Docker Hub, else `host[:port]`, a scheme and path allowed).
/// A token server that hands out refresh tokens gives one: the identity token the
/// client keeps instead of the password.
pub async fn login(
    registry: &std::sync::Arc<Registry>,
    auth: &AuthConfig,
) -> Result<Option<String>, RegistryError> {
    let domain = berth_api::auth::registry_domain(&auth.server_address);
    let endpoint = registry
        .endpoint(domain)
        .await
        .map_err(RegistryError::Invalid)?;
    let session = registry
        .session_scoped(&endpoint, "", auth, Vec::new())
        .await?;
    session.check_login().await
}
