//! Command-line errors reported as docker (cobra/pflag) reports them, with its exit statuses:
//! 125 for a bad flag, 1 for a wrong number of arguments or an unknown command.

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::Command;

/// Exit status for flag errors, as docker's (`unknown flag: --x`, exit 125).
pub const EXIT_USAGE: i32 = 125;

/// The (sub)command `argv` names: its path below `berth` and its definition. Only the
/// global `-H`/`--host` takes a value before a subcommand.
fn command_path(root: &Command, argv: &[String]) -> (Vec<String>, Command) {
    let mut cur = root.clone();
    let mut path = Vec::new();
    let mut i = 1;
    while i < argv.len() && cur.has_subcommands() {
        let a = &argv[i];
        if a == "-H" || a == "--host" {
            i += 2;
            continue;
        }
        if a.starts_with("--host=") || (a.starts_with("-H") && a.len() > 2) {
            i += 1;
            continue;
        }
        if a.starts_with('-') {
            // An unknown flag before the subcommand is the parent's error.
            break;
        }
        match cur.find_subcommand(a) {
            Some(sub) => {
                path.push(sub.get_name().to_string());
                cur = sub.clone();
                i += 1;
            }
            None => break,
        }
    }
    (path, cur)
}

fn context(e: &clap::Error, kind: ContextKind) -> Option<String> {
    match e.get(kind)? {
        ContextValue::String(s) => Some(s.clone()),
        ContextValue::Strings(v) => v.first().cloned(),
        ContextValue::StyledStr(s) => Some(s.to_string()),
        _ => None,
    }
}

/// cobra's argument-count complaint for `cmd`.
fn arg_count_message(cmd: &Command) -> (String, bool) {
    let positionals: Vec<_> = cmd
        .get_arguments()
        .filter(|a| a.is_positional() && !a.is_hide_set())
        .collect();
    if positionals.is_empty() {
        return ("accepts no arguments".into(), false);
    }
    let required = positionals.iter().filter(|a| a.is_required_set()).count();
    let open_ended = positionals.iter().any(|a| {
        !a.is_required_set()
            || a.get_num_args()
                .is_some_and(|n| n.max_values() > 1 || n.max_values() == 0)
    });
    let noun = if required == 1 {
        "argument"
    } else {
        "arguments"
    };
    if open_ended {
        (format!("requires at least {required} {noun}"), true)
    } else {
        (format!("requires {required} {noun}"), false)
    }
}

/// `-n, --last` for the flag clap names `--last <LAST>`.
fn flag_display(cmd: &Command, clap_name: &str) -> String {
    let long = clap_name
        .split_whitespace()
        .next()
        .unwrap_or(clap_name)
        .trim_start_matches('-');
    let arg = cmd
        .get_arguments()
        .find(|a| a.get_long() == Some(long) || a.get_id().as_str() == long);
    match arg.and_then(|a| a.get_short()) {
        Some(s) => format!("-{s}, --{long}"),
        None => format!("--{long}"),
    }
}

/// How the user spelled the flag clap calls `clap_name`: pflag names the short form as
/// `'H' in -H`.
fn spelled(cmd: &Command, clap_name: &str, argv: &[String]) -> String {
    let long = clap_name
        .split_whitespace()
        .next()
        .unwrap_or(clap_name)
        .trim_start_matches('-');
    let short = cmd
        .get_arguments()
        .find(|a| a.get_long() == Some(long))
        .and_then(|a| a.get_short());
    match (short, argv.last()) {
        (Some(s), Some(last)) if last.starts_with('-') && !last.starts_with("--") => {
            format!("'{s}' in {last}")
        }
        _ => format!("--{long}"),
    }
}

/// The text docker prints for a command-line error, and the exit status; `None` when clap's
/// own rendering should stand (help, version).
pub fn report(root: &Command, e: &clap::Error, argv: &[String]) -> Option<(String, i32)> {
    if !e.use_stderr() {
        return None;
    }
    let (path, cmd) = command_path(root, argv);
    let name = if path.is_empty() {
        "berth".to_string()
    } else {
        format!("berth {}", path.join(" "))
    };
    let usage = cmd
        .clone()
        .bin_name(&name)
        .render_usage()
        .to_string()
        .replacen("Usage: ", "Usage:  ", 1);
    let with_usage = |msg: String, hint: &str, code: i32| {
        Some((
            format!("{msg}\n\n{usage}\n\n{hint} '{name} --help' for more information"),
            code,
        ))
    };
    let invalid = context(e, ContextKind::InvalidArg).unwrap_or_default();
    match e.kind() {
        ErrorKind::InvalidSubcommand => {
            let sub = context(e, ContextKind::InvalidSubcommand).unwrap_or_default();
            let msg = format!("berth: unknown command: {name} {sub}");
            if path.is_empty() {
                Some((
                    format!("{msg}\n\nRun '{name} --help' for more information"),
                    1,
                ))
            } else {
                with_usage(msg, "Run", 1)
            }
        }
        ErrorKind::UnknownArgument if invalid.starts_with("--") => {
            let flag = invalid.split('=').next().unwrap_or(&invalid);
            with_usage(format!("unknown flag: {flag}"), "Run", EXIT_USAGE)
        }
        ErrorKind::UnknownArgument if invalid.starts_with('-') && invalid.len() > 1 => {
            let c = invalid[1..].chars().next().unwrap_or('?');
            with_usage(
                format!("unknown shorthand flag: '{c}' in {invalid}"),
                "Run",
                EXIT_USAGE,
            )
        }
        ErrorKind::UnknownArgument
        | ErrorKind::MissingRequiredArgument
        | ErrorKind::TooFewValues
        | ErrorKind::TooManyValues
        | ErrorKind::WrongNumberOfValues => {
            let (msg, at_least) = arg_count_message(&cmd);
            with_usage(
                format!("berth: '{name}' {msg}"),
                if at_least { "See" } else { "Run" },
                1,
            )
        }
        ErrorKind::InvalidValue | ErrorKind::ValueValidation => {
            let value = context(e, ContextKind::InvalidValue).unwrap_or_default();
            if value.is_empty() && e.kind() == ErrorKind::InvalidValue {
                let msg = format!("flag needs an argument: {}", spelled(&cmd, &invalid, argv));
                return with_usage(msg, "Run", EXIT_USAGE);
            }
            let reason = std::error::Error::source(e)
                .map(|s| s.to_string())
                .unwrap_or_else(|| "invalid value".into());
            with_usage(
                format!(
                    "invalid argument {value:?} for \"{}\" flag: {reason}",
                    flag_display(&cmd, &invalid)
                ),
                "Run",
                EXIT_USAGE,
            )
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn check(args: &[&str]) -> (String, i32) {
        let argv: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let e = crate::Cli::try_parse_from(&argv).unwrap_err();
        let mut root = <crate::Cli as clap::CommandFactory>::command();
        root.build();
        report(&root, &e, &argv).expect("a usage error")
    }

    #[test]
    fn flag_errors_read_like_pflag_and_exit_125() {
        let (msg, code) = check(&["berth", "ps", "--bogus"]);
        assert_eq!(code, 125);
        assert_eq!(
            msg,
            "unknown flag: --bogus\n\nUsage:  berth ps [OPTIONS]\n\nRun 'berth ps --help' for more information"
        );
        let (msg, code) = check(&["berth", "-H", "unix:///x", "ps", "-aH"]);
        assert_eq!(code, 125);
        assert!(
            msg.starts_with("unknown shorthand flag: 'H' in -H\n"),
            "{msg}"
        );
        let (msg, code) = check(&["berth", "ps", "-n", "x"]);
        assert_eq!(code, 125);
        assert!(
            msg.starts_with("invalid argument \"x\" for \"-n, --last\" flag: "),
            "{msg}"
        );
        let (msg, _) = check(&["berth", "--bogus", "ps"]);
        assert!(msg.contains("Run 'berth --help'"), "{msg}");
        let (msg, code) = check(&["berth", "-H"]);
        assert_eq!(code, 125);
        assert!(
            msg.starts_with("flag needs an argument: 'H' in -H\n"),
            "{msg}"
        );
    }

    #[test]
    fn argument_counts_and_commands_read_like_cobra_and_exit_1() {
        let (msg, code) = check(&["berth", "rm"]);
        assert_eq!(code, 1);
        assert!(
            msg.starts_with("berth: 'berth rm' requires at least 1 argument\n"),
            "{msg}"
        );
        assert!(msg.ends_with("See 'berth rm --help' for more information"));
        let (msg, _) = check(&["berth", "tag", "a"]);
        assert!(
            msg.starts_with("berth: 'berth tag' requires 2 arguments\n"),
            "{msg}"
        );
        let (msg, _) = check(&["berth", "logs", "a", "b"]);
        assert!(
            msg.starts_with("berth: 'berth logs' requires 1 argument\n"),
            "{msg}"
        );
        let (msg, _) = check(&["berth", "container", "ls", "x"]);
        assert!(
            msg.starts_with("berth: 'berth container ls' accepts no arguments\n"),
            "{msg}"
        );
        let (msg, code) = check(&["berth", "nosuch"]);
        assert_eq!(code, 1);
        assert_eq!(
            msg,
            "berth: unknown command: berth nosuch\n\nRun 'berth --help' for more information"
        );
        let (msg, _) = check(&["berth", "container", "nosuch"]);
        assert!(
            msg.starts_with("berth: unknown command: berth container nosuch\n"),
            "{msg}"
        );
    }
}
