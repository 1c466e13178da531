//! The raw query string as Docker clients send it: repeated keys (`changes`, `t`), loose
//! booleans, JSON-valued parameters.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use berth_api::filters::Filters;

use crate::error::ApiError;

/// Parsed query pairs, in order.
#[derive(Debug, Clone, Default)]
pub struct Query(pub Vec<(String, String)>);

impl Query {
    /// Parses a raw query string.
    pub fn parse(raw: &str) -> Self {
        Query(
            form_urlencoded::parse(raw.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The last value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `key`.
    pub fn all(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Docker's loose boolean, `default` when absent.
    pub fn bool(&self, key: &str, default: bool) -> bool {
        berth_api::query::bool_or(self.get(key), default)
    }

    /// An integer parameter; absent or empty gives `None`.
    pub fn int(&self, key: &str) -> Result<Option<i64>, ApiError> {
        match self.get(key).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| ApiError::bad_request(format!("invalid value for {key}: {v:?}"))),
        }
    }

    /// The `filters` parameter (a malformed one is a 400 with the parser's message).
    pub fn filters(&self) -> Result<Filters, ApiError> {
        Filters::parse(self.get("filters").unwrap_or("")).map_err(|e| ApiError::bad_request(e.0))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Query {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Query::parse(parts.uri.query().unwrap_or("")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_keys_and_loose_bools() {
        let q = Query::parse("changes=CMD+x&changes=ENV+A%3D1&force=True&v=0");
        assert_eq!(q.all("changes"), ["CMD x", "ENV A=1"]);
        assert!(q.bool("force", false));
        assert!(!q.bool("v", true));
        assert!(q.bool("missing", true));
    }
}
