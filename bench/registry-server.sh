#!/usr/bin/env bash
# berth's own registry against Docker's (Debian's docker-registry, distribution 2.8) on
# this machine (issue 17): a 200 MiB blob pushed as push.rs does (POST, then one PUT with
# the whole body) and served back (GET to /dev/null), by curl, ROUNDS times each,
# interleaved. Targets: serving >= 0.8x docker-registry's speed, accepting >= 1x.
#
# Environment: ROUNDS=5, SIZE_MIB=200, BIN_DIR (default target/release: build it with
# scripts/build-release.sh), KEEP=1 keeps the work directory.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
ROUNDS=${ROUNDS:-5}
SIZE_MIB=${SIZE_MIB:-200}
BIN_DIR=${BIN_DIR:-$REPO/target/release}
WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    [ -n "${KEEP:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_listen() { for _ in $(seq 500); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.01; done; echo "port $1 never listened" >&2; exit 1; }

head -c $((SIZE_MIB << 20)) /dev/urandom >"$WORK/blob"
DIGEST=sha256:$(sha256sum "$WORK/blob" | cut -d' ' -f1)

BERTH_PORT=$(free_port)
"$BIN_DIR/berth-registry" serve --addr "127.0.0.1:$BERTH_PORT" --root "$WORK/berth" >"$WORK/berth.log" 2>&1 &
PIDS+=($!)
DIST_PORT=$(free_port)
cat >"$WORK/config.yml" <<CONF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $WORK/dist
http:
  addr: 127.0.0.1:$DIST_PORT
CONF
docker-registry serve "$WORK/config.yml" >"$WORK/dist.log" 2>&1 &
PIDS+=($!)
wait_listen "$BERTH_PORT"
wait_listen "$DIST_PORT"

# Prints the seconds one push of the blob takes.
push() {
    local loc sep
    loc=$(curl -sf -D - -o /dev/null -X POST "http://$1/v2/bench/blobs/uploads/" |
        tr -d '\r' | awk -F': ' 'tolower($1)=="location"{print $2}')
    case $loc in http*) ;; *) loc=http://$1$loc ;; esac
    case $loc in *\?*) sep='&' ;; *) sep='?' ;; esac
    curl -sf -o /dev/null -w '%{time_total}\n' -X PUT -H 'Content-Type: application/octet-stream' \
        --data-binary @"$WORK/blob" "$loc${sep}digest=$DIGEST"
}
get() { curl -sfL -o /dev/null -w '%{time_total}\n' "http://$1/v2/bench/blobs/$DIGEST"; }
mbs() { python3 -c "import sys; print(f'{$SIZE_MIB / float(sys.argv[1]):.0f}')" "$1"; }

declare -A T
for _ in $(seq "$ROUNDS"); do
    T[berth_push]+="$(push "127.0.0.1:$BERTH_PORT") "
    T[dist_push]+="$(push "127.0.0.1:$DIST_PORT") "
    T[berth_get]+="$(get "127.0.0.1:$BERTH_PORT") "
    T[dist_get]+="$(get "127.0.0.1:$DIST_PORT") "
done
median() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
for k in push get; do
    b=$(median "${T[berth_$k]}")
    d=$(median "${T[dist_$k]}")
    printf '%-5s berth-registry %5s MiB/s  docker-registry %5s MiB/s  ratio %.2f\n' \
        "$k" "$(mbs "$b")" "$(mbs "$d")" "$(python3 -c "print($d / $b)")"
done
