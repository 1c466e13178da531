//! Container names: Docker's validation rule and generated `adjective_surname` names.

use rand::seq::SliceRandom;

use crate::error::{EngineError, Result};

/// Checks a user-given name (a leading `/` is allowed) and returns it without the `/`.
/// Docker's rule: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn validate(name: &str) -> Result<String> {
    let bare = name.strip_prefix('/').unwrap_or(name);
    let mut chars = bare.chars();
    let ok = match chars.next() {
        Some(c) if c.is_ascii_alphanumeric() => {
            let rest: Vec<char> = chars.collect();
            !rest.is_empty()
                && rest
                    .iter()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        }
        _ => false,
    };
    if ok {
        Ok(bare.to_string())
    } else {
        Err(EngineError::InvalidName(name.to_string()))
    }
}

const ADJECTIVES: &[&str] = &[
    "admiring",
    "agitated",
    "amazing",
    "angry",
    "awesome",
    "blissful",
    "bold",
    "brave",
    "busy",
    "charming",
    "clever",
    "compassionate",
    "competent",
    "confident",
    "cool",
    "dazzling",
    "determined",
    "eager",
    "ecstatic",
    "elastic",
    "elegant",
    "epic",
    "focused",
    "friendly",
    "gallant",
    "gifted",
    "goofy",
    "gracious",
    "happy",
    "hopeful",
    "jolly",
    "keen",
    "kind",
    "laughing",
    "loving",
    "lucid",
    "magical",
    "modest",
    "musing",
    "nice",
    "nifty",
    "nostalgic",
    "optimistic",
    "peaceful",
    "pensive",
    "practical",
    "priceless",
    "quirky",
    "quizzical",
    "relaxed",
    "reverent",
    "romantic",
    "serene",
    "sharp",
    "silly",
    "sleepy",
    "stoic",
    "strange",
    "sweet",
    "tender",
    "trusting",
    "upbeat",
    "vibrant",
    "vigilant",
    "vigorous",
    "wizardly",
    "wonderful",
    "youthful",
    "zealous",
    "zen",
];

const SURNAMES: &[&str] = &[
    "agnesi",
    "albattani",
    "allen",
    "archimedes",
    "babbage",
    "banach",
    "bardeen",
    "bartik",
    "bassi",
    "bell",
    "blackwell",
    "bohr",
    "booth",
    "borg",
    "bose",
    "brown",
    "carson",
    "cerf",
    "chandrasekhar",
    "chaplygin",
    "clarke",
    "curie",
    "darwin",
    "davinci",
    "dijkstra",
    "einstein",
    "elion",
    "engelbart",
    "euclid",
    "euler",
    "faraday",
    "fermat",
    "fermi",
    "feynman",
    "franklin",
    "galileo",
    "gauss",
    "goldberg",
    "goodall",
    "hamilton",
    "hawking",
    "heisenberg",
    "hertz",
    "hodgkin",
    "hopper",
    "hypatia",
    "jackson",
    "jennings",
    "johnson",
    "kalam",
    "kepler",
    "knuth",
    "lamarr",
    "lamport",
    "leakey",
    "lovelace",
    "mayer",
    "mccarthy",
    "mcclintock",
    "meitner",
    "mendel",
    "morse",
    "newton",
    "nobel",
    "noether",
    "pasteur",
    "payne",
    "perlman",
    "pike",
    "poincare",
    "ritchie",
    "shannon",
    "swanson",
    "tesla",
    "thompson",
    "torvalds",
    "turing",
    "wilson",
    "wozniak",
    "yalow",
];

/// A random `adjective_surname` for which `taken` is false (a digit is appended after
/// collisions, as Docker does).
pub fn generate(taken: impl Fn(&str) -> bool) -> String {
    let mut rng = rand::thread_rng();
    for attempt in 0..10 {
        let mut name = format!(
            "{}_{}",
            ADJECTIVES.choose(&mut rng).expect("non-empty"),
            SURNAMES.choose(&mut rng).expect("non-empty")
        );
        if attempt > 0 {
            name.push_str(&rand::Rng::gen_range(&mut rng, 0..10).to_string());
        }
        if !taken(&name) {
            return name;
        }
    }
    format!("berth_{}", rand::Rng::gen::<u32>(&mut rng))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_dockers_rule() {
        assert_eq!(validate("/web").unwrap(), "web");
        assert_eq!(validate("a.b-c_d").unwrap(), "a.b-c_d");
        for bad in ["", "a", "-x", "x y", "x/y", "_x"] {
            let err = validate(bad).unwrap_err().to_string();
            assert!(err.contains("Invalid container name"), "{bad}: {err}");
        }
    }

    #[test]
    fn generated_names_avoid_taken_ones() {
        let n = generate(|_| false);
        assert!(validate(&n).is_ok());
        let first = generate(|_| false);
        let other = generate(|n| n == first);
        assert_ne!(other, first);
    }
}
