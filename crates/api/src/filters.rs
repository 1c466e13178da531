//! The `filters` query parameter: a JSON object in one of two shapes.
//!
//! Go clients send `{"label":{"a=b":true}}`; docker-py and compose v1 send
//! `{"label":["a=b"]}`. Values within one key are OR-ed, different keys AND-ed.

use std::collections::BTreeMap;

/// Parsed filters: key -> accepted values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters(pub BTreeMap<String, Vec<String>>);

/// A filters value that is not valid JSON of either shape.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct FilterError(pub String);

impl Filters {
    /// Parses the raw (already percent-decoded) parameter; empty means no filter.
    pub fn parse(raw: &str) -> Result<Filters, FilterError> {
        let mut out = BTreeMap::new();
        if raw.trim().is_empty() {
            return Ok(Filters(out));
        }
        let value: serde_json::Value =
            serde_json::from_str(raw).map_err(|e| FilterError(e.to_string()))?;
        let obj = value
            .as_object()
            .ok_or_else(|| FilterError("filters must be a JSON object".into()))?;
        for (key, v) in obj {
            let values: Vec<String> = match v {
                serde_json::Value::Object(m) => m
                    .iter()
                    .filter(|(_, on)| on.as_bool().unwrap_or(true))
                    .map(|(k, _)| k.clone())
                    .collect(),
                serde_json::Value::Array(a) => a
                    .iter()
                    .map(|x| match x {
                        serde_json::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect(),
                serde_json::Value::String(s) => vec![s.clone()],
                other => {
                    return Err(FilterError(format!(
                        "invalid value for filter '{key}': {other}"
                    )))
                }
            };
            out.insert(key.clone(), values);
        }
        Ok(Filters(out))
    }

    /// Checks that every key is one of `allowed`; Docker (since 20.10) answers 400
    /// `invalid filter 'k'`.
    pub fn validate(&self, allowed: &[&str]) -> Result<(), FilterError> {
        for key in self.0.keys() {
            if !allowed.contains(&key.as_str()) {
                return Err(FilterError(format!("invalid filter '{key}'")));
            }
        }
        Ok(())
    }

    /// The values given for `key` (empty when the key is absent).
    pub fn get(&self, key: &str) -> &[String] {
        self.0.get(key).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Whether the key was given at all.
    pub fn contains(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }

    /// Encodes in the Go clients' shape, `{"k":{"v":true}}`.
    pub fn to_query(&self) -> String {
        let mut obj = serde_json::Map::new();
        for (k, vs) in &self.0 {
            let inner: serde_json::Map<String, serde_json::Value> = vs
                .iter()
                .map(|v| (v.clone(), serde_json::Value::Bool(true)))
                .collect();
            obj.insert(k.clone(), serde_json::Value::Object(inner));
        }
        serde_json::Value::Object(obj).to_string()
    }

    /// Adds one `key=value` pair as given on a CLI `--filter` flag.
    pub fn add(&mut self, key: &str, value: &str) {
        self.0
            .entry(key.to_string())
            .or_default()
            .push(value.to_string());
    }

    /// True when no filter was given.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Matches container or image labels against `label` filter values (`k` or `k=v`).
pub fn labels_match(
    wanted: &[String],
    labels: Option<&std::collections::HashMap<String, String>>,
) -> bool {
    wanted.iter().all(|w| {
        let labels = match labels {
            Some(l) => l,
            None => return false,
        };
        match w.split_once('=') {
            Some((k, v)) => labels.get(k).map(|x| x == v).unwrap_or(false),
            None => labels.contains_key(w.as_str()),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_filter_shapes_parse() {
        let go = Filters::parse(r#"{"label":{"a=b":true},"status":{"running":true}}"#).unwrap();
        let py = Filters::parse(r#"{"label":["a=b"],"status":["running"]}"#).unwrap();
        assert_eq!(go, py);
        assert_eq!(go.get("label"), ["a=b".to_string()]);
        assert!(Filters::parse("").unwrap().is_empty());
        assert!(Filters::parse("{bogus").is_err());
    }

    #[test]
    fn unknown_filter_key_is_reported_with_dockers_text() {
        let f = Filters::parse(r#"{"bogus":["x"]}"#).unwrap();
        assert_eq!(
            f.validate(&["name"]).unwrap_err().to_string(),
            "invalid filter 'bogus'"
        );
    }

    #[test]
    fn label_filter_matches_key_and_key_value() {
        let mut l = std::collections::HashMap::new();
        l.insert("a".to_string(), "b".to_string());
        assert!(labels_match(&["a".into()], Some(&l)));
        assert!(labels_match(&["a=b".into()], Some(&l)));
        assert!(!labels_match(&["a=c".into()], Some(&l)));
        assert!(!labels_match(&["z".into()], None));
    }
}
