#!/usr/bin/env bash
# Installs what berth needs to build and run on Debian (as root): libseccomp for the
# runtime, busybox-static for the test image, runc for the bench's reference, tini for
# --init, procps for `top`; gcc, iproute2 and util-linux (runuser) for the tests.
set -euo pipefail
need=()
for pkg in libseccomp-dev pkg-config gcc busybox-static runc tini procps iproute2 util-linux; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
# The e2e tier drives berthd with the real docker CLI. A fresh Debian machine has none:
# take the client out of Debian's docker.io package, without installing the package, so no
# dockerd or containerd is installed, let alone left running.
if ! command -v docker >/dev/null; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  [ -n "$(apt-cache policy docker.io 2>/dev/null | grep Candidate)" ] || apt-get update -qq
  (cd "$tmp" && apt-get download -qq docker.io >/dev/null)
  dpkg-deb -x "$tmp"/docker.io_*.deb "$tmp/x"
  install -m 0755 "$tmp/x/usr/bin/docker" /usr/local/bin/docker
  rm -rf "$tmp"
  trap - EXIT
fi
command -v cargo >/dev/null || { echo "cargo is required (rustup)" >&2; exit 1; }
