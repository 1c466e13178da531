//! berth-registry: the OCI Distribution client berthd pulls with.
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

pub mod client;
pub mod manifest;
pub mod pull;
pub mod transport;

pub use client::{AuthConfig, Registry, RegistryConfig, RegistryError};
pub use manifest::Platform;
pub use pull::{pull, Message, PullError, PullErrorKind, PullOptions, Pulled, Sink};
