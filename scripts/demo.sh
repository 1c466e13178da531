#!/usr/bin/env bash
# Sets up a fresh machine, installs berth, starts berthd, makes a busybox image from
# Debian's busybox-static and runs a container through it.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "run as root: berthd manages namespaces and cgroups" >&2; exit 1; }
scripts/deps.sh
scripts/build-release.sh
release=${CARGO_TARGET_DIR:-target}/release
install -m 0755 "$release/berthd" "$release/berth" "$release/berth-shim" \
    "$release/berth-shim-libcontainer" /usr/local/bin/
sock=/run/berth/berth.sock
if ! berth -H "unix://$sock" version >/dev/null 2>&1; then
  mkdir -p /var/log
  nohup berthd >>/var/log/berthd.log 2>&1 &
  for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.1; done
fi
if ! berth image inspect busybox >/dev/null 2>&1; then
  tmp=$(mktemp -d)
  mkdir -p "$tmp/rootfs/bin" "$tmp/rootfs/etc" "$tmp/rootfs/tmp"
  cp /bin/busybox "$tmp/rootfs/bin/busybox"
  for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$tmp/rootfs/bin/$a"; done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$tmp/rootfs/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$tmp/rootfs/etc/group"
  tar -C "$tmp/rootfs" -cf "$tmp/rootfs.tar" .
  berth import --change 'CMD ["sh"]' "$tmp/rootfs.tar" busybox:latest
  rm -rf "$tmp"
fi
berth run --rm busybox echo "hello from a berth container"
echo "berthd is running on unix://$sock — try: DOCKER_HOST=unix://$sock docker run --rm busybox uname -a"
