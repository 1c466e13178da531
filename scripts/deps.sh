#!/usr/bin/env bash
# Installs what berth needs to build and run on Debian (as root): libseccomp for the
# runtime, busybox-static for the test image, runc for the bench's reference, tini for
# --init, procps for `top`, nftables (`nft`: berth's packet rules for bridge networks);
# gcc, iproute2 (`ip`, `ss`) and util-linux (runuser) for the tests;
# qemu-system-x86, kmod, cpio and xz-utils for the pure cgroup v2 guest (scripts/v2vm.sh);
# python3-venv for docker-py, the SDK the e2e tier drives berthd with.
set -euo pipefail
need=()
for pkg in libseccomp-dev pkg-config gcc busybox-static runc tini procps nftables iproute2 util-linux \
    qemu-system-x86 kmod cpio xz-utils python3-venv; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
# The e2e tier drives berthd with the real docker CLI and compares berth's CLI with it word
# for word, so it needs the client berth's CLI follows: docker 28 or newer. A fresh Debian
# machine has none (Debian 12's docker.io is 20.10, Debian 13's docker-cli 26). Debian
# packages the client alone as docker-cli; the newest is in unstable, and its binary needs
# only libc, so it is taken out of that package (apt-get download from the mirror this machine
# already uses, dpkg-deb -x) without installing anything else: no dockerd or containerd is
# installed, let alone left running.
docker_major() { docker --version 2>/dev/null | sed -nE 's/^Docker version ([0-9]+)\..*/\1/p'; }
if [ "$(docker_major)" -lt 28 ] 2>/dev/null || ! command -v docker >/dev/null; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  mkdir -p "$tmp/parts" "$tmp/lists/partial" "$tmp/cache" "$tmp/x"
  mirror=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | sed -n 's/^URIs: *//p' \
             | grep -v security | head -1)
  [ -n "$mirror" ] || mirror=$(grep -h -E '^deb ' /etc/apt/sources.list 2>/dev/null \
             | grep -v security | sed -E 's/^deb (\[[^]]*\] )?([^ ]+).*/\2/' | head -1)
  printf 'Types: deb\nURIs: %s\nSuites: unstable\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
    "$mirror" > "$tmp/parts/unstable.sources"
  apt_tmp=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$tmp/parts"
           -o "Dir::State::Lists=$tmp/lists" -o "Dir::Cache=$tmp/cache"
           -o APT::Sandbox::User=root)
  apt-get "${apt_tmp[@]}" update -qq
  (cd "$tmp" && apt-get "${apt_tmp[@]}" download -qq docker-cli)
  dpkg-deb -x "$tmp"/docker-cli_*.deb "$tmp/x"
  install -m 0755 "$tmp/x/usr/bin/docker" /usr/local/bin/docker
  rm -rf "$tmp"
  trap - EXIT
  hash -r
  [ "$(docker_major)" -ge 28 ] || { echo "deps: need docker CLI 28+, have: $(docker --version)" >&2; exit 1; }
fi
# docker-py from PyPI in a venv of its own (tests/e2e/tests/docker_py.rs): the SDK users
# script Docker with, in the major version current today.
pyenv=/var/cache/berth/docker-py
if ! "$pyenv/bin/python" -c 'import docker' 2>/dev/null; then
  rm -rf "$pyenv"
  python3 -m venv "$pyenv"
  "$pyenv/bin/pip" install -q 'docker>=7,<8'
fi
command -v cargo >/dev/null || { echo "cargo is required (rustup)" >&2; exit 1; }
