//! Docker Engine API wire types for berth: what travels between a client and `berthd`.
//!
//! This crate owns the JSON shapes (with Docker's exact field spellings), the API version
//! range berth serves, the error body, query-string conventions (loose booleans, both
//! `filters` shapes) and the 8-byte stdout/stderr stream framing. It does no I/O and knows
//! nothing about containers beyond their wire form.
//!
//! Main types: [`container::Config`], [`container::HostConfig`], [`container::CreateRequest`],
//! [`container::Summary`], [`container::Inspect`], [`image::Summary`], [`image::Inspect`],
//! [`system::Version`], [`events::Message`], [`stats::Stats`], [`ErrorBody`],
//! [`filters::Filters`].
//!
//! Structs that a client sends keep unknown fields in an `extra` map, so that `inspect`
//! gives back everything the client sent, as Docker does, and newer clients' fields are
//! never rejected.

pub mod archive;
pub mod auth;
pub mod build_secrets;
pub mod container;
pub mod dockerignore;
pub mod events;
pub mod exec;
pub mod filters;
pub mod human;
pub mod image;
pub mod query;
pub mod stats;
pub mod stream;
pub mod system;

use serde::{Deserialize, Serialize};

/// The newest API version berth serves (advertised in `Api-Version`).
pub const API_VERSION: &str = "1.44";
/// The oldest API version berth accepts in a `/vX.Y/` path prefix.
pub const MIN_API_VERSION: &str = "1.24";

/// The body of every error response: `{"message": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Docker's wording, which clients sometimes match.
    pub message: String,
}

/// An API version as `major.minor`, comparable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ApiVersion {
    /// Always 1 in practice.
    pub major: u32,
    /// 24 ..= 44 for what berth serves.
    pub minor: u32,
}

impl ApiVersion {
    /// `1.minor`.
    pub const fn v1(minor: u32) -> ApiVersion {
        ApiVersion { major: 1, minor }
    }

    /// Parses `"1.41"`; `None` for anything else.
    pub fn parse(s: &str) -> Option<ApiVersion> {
        let (major, minor) = s.split_once('.')?;
        Some(ApiVersion {
            major: major.parse().ok()?,
            minor: minor.parse().ok()?,
        })
    }

    /// The newest version berth serves.
    pub fn current() -> ApiVersion {
        ApiVersion::parse(API_VERSION).expect("API_VERSION is well formed")
    }

    /// The oldest version berth serves.
    pub fn minimum() -> ApiVersion {
        ApiVersion::parse(MIN_API_VERSION).expect("MIN_API_VERSION is well formed")
    }
}

impl std::fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// `{"Id": "..."}`, returned by image import and commit.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IdResponse {
    /// The new object's id.
    #[serde(rename = "Id")]
    pub id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_numerically() {
        let a = ApiVersion::parse("1.9").unwrap();
        let b = ApiVersion::parse("1.24").unwrap();
        assert!(a < b);
        assert_eq!(ApiVersion::current().to_string(), "1.44");
        assert!(ApiVersion::parse("x").is_none());
    }
}
