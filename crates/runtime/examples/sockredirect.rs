//! Drives `berth_runtime::sockredirect` by hand (measurements, inspection), e.g.
//! `sockredirect /sys/fs/bpf/berth-bench insert 127.0.0.1:25202 10.251.250.2:5201`.
//!
//! Commands: `open` (attach, reusing pins), `insert FROM TO`, `remove FROM`, `list`,
//! `teardown` (detach and unpin). Each opens the directory first, so the programs redirect the
//! network namespace this runs in.

use std::path::Path;
use std::process::ExitCode;

use berth_runtime::sockredirect::{cgroup2_root, SockRedirect};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sockredirect: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let usage = "usage: sockredirect DIR open|insert FROM TO|remove FROM|list|teardown";
    let (dir, command) = match args {
        [dir, command, ..] => (Path::new(dir), command.as_str()),
        _ => return Err(usage.into()),
    };
    if command == "teardown" {
        return Ok(SockRedirect::teardown_at(dir)?);
    }
    let redirect = SockRedirect::open_at(dir, &cgroup2_root()?)?;
    match (command, &args[2..]) {
        ("open", []) => println!("getpeername hidden: {}", redirect.hides_rewrite()),
        ("insert", [from, to]) => redirect.insert(from.parse()?, to.parse()?)?,
        ("remove", [from]) => println!("{}", redirect.remove(from.parse()?)?),
        ("list", []) => {
            for (from, to) in redirect.entries()? {
                println!("{from} -> {to}");
            }
        }
        _ => return Err(usage.into()),
    }
    Ok(())
}
