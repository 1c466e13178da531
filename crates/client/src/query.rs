//! Query strings: ordered `key=value` pairs, percent-encoded, repeated keys allowed.

/// A query string under construction. Keys may repeat (`changes=..&changes=..`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query(Vec<(String, String)>);

impl Query {
    /// No parameters.
    pub fn new() -> Query {
        Query::default()
    }

    /// Appends `key=value`.
    pub fn push(&mut self, key: &str, value: impl Into<String>) -> &mut Query {
        self.0.push((key.to_string(), value.into()));
        self
    }

    /// Appends `key=1` when `on`; Docker reads absent booleans as false.
    pub fn flag(&mut self, key: &str, on: bool) -> &mut Query {
        if on {
            self.push(key, "1");
        }
        self
    }

    /// Appends `key=value` when there is a value.
    pub fn opt(&mut self, key: &str, value: Option<impl ToString>) -> &mut Query {
        if let Some(v) = value {
            self.push(key, v.to_string());
        }
        self
    }

    /// Appends `filters=<json>` unless the filters are empty.
    pub fn filters(&mut self, filters: &berth_api::filters::Filters) -> &mut Query {
        if !filters.is_empty() {
            self.push("filters", filters.to_query());
        }
        self
    }

    /// `?a=1&b=2`, or the empty string. Keys are sorted (stably, so repeated keys keep
    /// their order) and values escaped as Go's `url.Values.Encode` does, so requests read
    /// the same as the docker CLI's.
    pub fn to_suffix(&self) -> String {
        if self.0.is_empty() {
            return String::new();
        }
        let mut sorted: Vec<&(String, String)> = self.0.iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        let pairs: Vec<String> = sorted
            .iter()
            .map(|(k, v)| format!("{}={}", query_escape(k), query_escape(v)))
            .collect();
        format!("?{}", pairs.join("&"))
    }
}

/// Go's `url.QueryEscape`: space becomes `+`, unreserved characters stay.
fn query_escape(s: &str) -> String {
    encode(s, b" ").replace(' ', "+")
}

/// Percent-encodes everything but RFC 3986 unreserved characters and `keep`.
pub(crate) fn encode(s: &str, keep: &[u8]) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || keep.contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_percent_encoded_and_keys_repeat() {
        let mut q = Query::new();
        q.push("changes", "ENV X=1")
            .push("changes", "CMD [\"sh\"]")
            .flag("all", true)
            .flag("size", false)
            .opt("limit", Some(3));
        assert_eq!(
            q.to_suffix(),
            "?all=1&changes=ENV+X%3D1&changes=CMD+%5B%22sh%22%5D&limit=3"
        );
        assert_eq!(Query::new().to_suffix(), "");
    }
}
