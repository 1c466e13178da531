#!/usr/bin/env bash
# Installs what berth needs to build and run on Debian (as root): libseccomp for the
# runtime, busybox-static for the test image, runc for the bench's reference, tini for
# --init, procps for `top`; gcc, iproute2 and util-linux (runuser) for the tests;
# qemu-system-x86, kmod, cpio and xz-utils for the pure cgroup v2 guest (scripts/v2vm.sh).
set -euo pipefail
need=()
for pkg in libseccomp-dev pkg-config gcc busybox-static runc tini procps iproute2 util-linux \
    qemu-system-x86 kmod cpio xz-utils; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
command -v cargo >/dev/null || { echo "cargo is required (rustup)" >&2; exit 1; }
