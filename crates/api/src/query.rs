//! Query-string conventions of the Docker API.

/// Docker's loose boolean: `""`, `0`, `no`, `false`, `none` (any case) are false; anything
/// else is true (moby's `httputils.BoolValue`). docker-py sends `True`/`False`.
pub fn parse_bool(value: &str) -> bool {
    let v = value.trim().to_ascii_lowercase();
    !matches!(v.as_str(), "" | "0" | "no" | "false" | "none")
}

/// Like [`parse_bool`], but an absent parameter gives `default`.
pub fn bool_or(value: Option<&str>, default: bool) -> bool {
    value.map(parse_bool).unwrap_or(default)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bools_parse_like_docker() {
        for t in ["1", "true", "True", "TRUE", "yes", "on"] {
            assert!(parse_bool(t), "{t}");
        }
        for f in ["", "0", "false", "False", "no", "none"] {
            assert!(!parse_bool(f), "{f}");
        }
        assert!(bool_or(None, true));
        assert!(!bool_or(Some("0"), true));
    }
}
