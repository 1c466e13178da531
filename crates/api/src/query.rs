//! Query-string conventions of the Docker API.

/// Docker's loose boolean: `""`, `0`, `no`, `false`, `none` (any case) are false; anything
/// else is true (moby's `httputils.BoolValue`). docker-py sends `True`/`False`.
pub fn parse_bool(value: &str) -> bool {
    let v = value.trim().to_ascii_lowercase();
    !matches!(v.as_str(), "" | "0" | "no" | "false" | "none")
}

/// Go's `strconv.ParseBool`, strict where [`parse_bool`] is loose: the spellings Docker
/// takes in filters (`prune`'s `all`) and the CLI in `--mount` (`readonly=`,
/// `volume-nocopy=`); anything else is `None`, for the caller's "invalid syntax" error.
pub fn go_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
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

    #[test]
    fn go_bool_takes_only_strconv_parsebool_spellings() {
        for t in ["1", "t", "T", "TRUE", "true", "True"] {
            assert_eq!(go_bool(t), Some(true), "{t}");
        }
        for f in ["0", "f", "F", "FALSE", "false", "False"] {
            assert_eq!(go_bool(f), Some(false), "{f}");
        }
        for bad in ["", "yes", "no", "tRUE", " true", "2", "on"] {
            assert_eq!(go_bool(bad), None, "{bad:?}");
        }
    }
}
