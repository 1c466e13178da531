#!/usr/bin/env bash
# Sets up a fresh machine and runs berth's whole test suite (unit, crate, privileged, e2e
# and v2 tiers). Must run as root: the privileged tiers run real containers.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "run as root: the tests start real containers" >&2; exit 1; }
scripts/deps.sh
# What the tests alone need: firewalld, which the coexistence test runs for itself (berth
# beside its rules); docker-registry (Docker's distribution 2.8), skopeo and openssl for
# the registry tests (peer registries the tests start on free ports, images copied into
# them, a CA made for the TLS test). Installed without being started or enabled
# (policy-rc.d refuses every service start during the install; one the machine has
# already is put aside and back): a test machine's firewall stays as it was, and no
# registry listens on :5000.
test_pkgs=()
for pkg in firewalld docker-registry skopeo openssl; do
  dpkg -s "$pkg" >/dev/null 2>&1 || test_pkgs+=("$pkg")
done
if [ ${#test_pkgs[@]} -gt 0 ]; then
  policy=/usr/sbin/policy-rc.d
  saved=$(mktemp)
  had=0
  [ -e "$policy" ] && { cp -p "$policy" "$saved"; had=1; }
  restore() { if [ "$had" = 1 ]; then cp -p "$saved" "$policy"; else rm -f "$policy"; fi; rm -f "$saved"; }
  trap restore EXIT
  printf '#!/bin/sh\nexit 101\n' > "$policy"
  chmod 0755 "$policy"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${test_pkgs[@]}" >/dev/null
  restore
  trap - EXIT
  # The packages enable their services for the next boot: not on a test machine
  # (systemctl disables them without a running systemd too).
  systemctl disable firewalld.service docker-registry.service >/dev/null 2>&1 || true
fi
# The standards CI enforces: formatting, and clippy with warnings as errors (the
# undocumented_unsafe_blocks lint is only enforced here).
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
cargo build --workspace --bins
# The end-to-end tier drives the release binaries, as installed (scripts/demo.sh): the
# static `berth` CLI among them.
scripts/build-release.sh
release=$(realpath "${CARGO_TARGET_DIR:-target}")/release
BERTH_BIN_DIR=$release cargo test --workspace -- --test-threads=2
# The v2 tier: the cgroup tests again on a pure cgroup v2 kernel, in a QEMU guest (this
# machine's own layout may be hybrid or v1).
BERTH_BIN_DIR=$release scripts/test-v2.sh
