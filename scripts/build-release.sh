#!/usr/bin/env bash
# Builds the release binaries into target/release: berthd and the shims as usual, and the
# `berth` CLI as a static-pie executable (glibc linked in, as docker's CLI is a static Go
# binary). The CLI starts for every command a script runs; without the dynamic loader's
# work (three libraries, their relocations, libgcc_s's CPU probe) it starts 0.3 ms sooner
# (perf stat: 1.36 -> 1.07 ms for `berth --version`; `run --rm true` 0.35-0.6 ms less). It
# needs nothing from glibc at run time that a static build lacks: unix sockets only, no
# name service lookups.
#
# `cargo rustc` passes the flag to the CLI's final crate only: the other crates and
# binaries keep the default dynamic linking, and a plain `cargo build --release --bins`
# would build a dynamic `berth` instead (use this script). `berth-registry` (the registry
# server `berth registry serve` runs) is built with the daemon, dynamic.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p berth-daemon -p berth-runtime -p berth-registry --bins
cargo rustc --release -p berth-cli --bin berth -- -C target-feature=+crt-static
