#!/usr/bin/env bash
# The v2 tier: the privileged runtime tests and the e2e tests that touch cgroups, on a pure
# cgroup v2 kernel (scripts/v2vm.sh), whatever this host's own layout. The test binaries
# are built here and all run in one guest (a boot costs seconds, emulated code runs ~6x
# slower). Root only. BERTH_BIN_DIR: the berthd/berth/berth-shim the e2e tests drive
# (default target/debug, built here).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "run as root: the tests start real containers" >&2; exit 1; }
target=$(realpath "${CARGO_TARGET_DIR:-target}")
if [ -z "${BERTH_BIN_DIR:-}" ]; then
    cargo build --workspace --bins
    export BERTH_BIN_DIR=$target/debug
fi
scripts/v2vm.sh setup

# `name path` of each test binary (not the bins built for them), from cargo's report.
binaries() {
    cargo test "$@" --no-run --message-format=json |
        grep '"executable":"/' | grep '"kind":\["test"\]' |
        sed -E 's/.*"target":\{[^}]*"name":"([^"]+)".*"executable":"([^"]+)".*/\1 \2/'
}
runtime=$(binaries -p berth-runtime --test cgroups --test cgroup_v2 --test shim \
    --test differential --test start_deadline --test sockredirect)
# (exec's e2e tests are left to the host: one starts 260 execs, minutes under emulation; the
# runtime's shim tests above exec into a v2 cgroup.)
e2e=$(binaries -p berth-e2e --test cgroups --test containers --test isolation --test stats \
    --test update)
# Of the network tests, the one this machine's kernel cannot run whole: sctp ports (Debian's
# kernel has SCTP); and the socket redirect's that makes its own addresses (the guest has
# none of its own), whose programs go on the root of the cgroup2 hierarchy: here a hybrid
# host's unified one, there the only one, as on most users' hosts. And IPv6 networks on
# Debian 12's kernel (6.1 refuses some nftables rules newer ones take), but for the tests
# that need a global IPv6 address of the host's own.
network=$(binaries -p berth-e2e --test network)
ipv6=$(binaries -p berth-e2e --test ipv6)

# What the guest runs: every binary, whatever failed before, then one verdict.
mkdir -p "$target/tmp" "$target/v2"
script=$target/v2/run.sh
{
    echo 'failed=""'
    echo 'run() { local name=$1; shift; local t0=$SECONDS'
    echo '  echo "=== v2 tier: $name"'
    echo '  "$@" --test-threads=2 || failed="$failed $name"'
    echo '  echo "=== v2 tier: $name took $((SECONDS - t0)) s"; }'
    echo "echo \"v2 tier: kernel \$(uname -r), \$(cat /sys/fs/cgroup/cgroup.controllers)\""
    echo 'grep -q " - cgroup " /proc/self/mountinfo && { echo "v2 tier: a v1 hierarchy is mounted"; exit 1; }'
    while read -r name path; do printf 'run %q %q\n' "runtime/$name" "$path"; done <<<"$runtime"
    while read -r name path; do printf 'run %q %q\n' "e2e/$name" "$path"; done <<<"$e2e"
    while read -r name path; do printf 'run %q env BERTH_TEST_SCTP=1 %q sctp moves_away\n' "e2e/$name(sctp, redirect)" "$path"; done <<<"$network"
    while read -r name path; do printf 'run %q %q ipv6_networks_give each_family\n' "e2e/$name" "$path"; done <<<"$ipv6"
    echo '[ -z "$failed" ] || { echo "v2 tier FAILED:$failed"; exit 1; }'
    echo 'echo "v2 tier: all passed"'
} >"$script"
start=$SECONDS
status=0
V2VM_TIMEOUT=${V2VM_TIMEOUT:-1800} scripts/v2vm.sh run -k "$target" -k "$BERTH_BIN_DIR" \
    -w "$target/tmp" -- bash "$script" || status=$?
# 125: the guest itself gave no verdict (its kernel panicked or locked up under the
# emulator, or the timeout hit): the emulated machine failed, not a test. Once more, saying
# so; a test's own failure (any other status) is never retried.
if [ "$status" = 125 ]; then
    echo "v2 tier: the guest gave no verdict after $((SECONDS - start)) s; running it once more"
    status=0
    V2VM_TIMEOUT=${V2VM_TIMEOUT:-1800} scripts/v2vm.sh run -k "$target" -k "$BERTH_BIN_DIR" \
        -w "$target/tmp" -- bash "$script" || status=$?
fi
echo "v2 tier: $((SECONDS - start)) s in the guest, exit $status"
exit "$status"
