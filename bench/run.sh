#!/usr/bin/env bash
# berth benchmarks: start latency against runc (and docker when present), berthd idle RSS,
# shim RSS/PSS with many running containers, `berth ps` latency with many containers.
# See bench/README.md. Needs root.
#
# Environment:
#   ROUNDS=30          interleaved latency rounds (min 20), plus WARMUP=2 uncounted ones
#   BUILD=1            0: do not run scripts/build-release.sh
#   BIN_DIR=DIR        where berthd/berth/berth-shim are (default: <repo>/target/release)
#   SHIMS=50           running containers for the shim RSS/PSS figures
#   PS_CONTAINERS=100  containers present while timing `berth ps -a`
#   PS_RUNS=20         timed `berth ps -a` runs
#   PARALLEL=100       containers started at once, on each runtime
#   KEEP=1             keep the work directory (daemon log, bundles, raw results)
#   SETTLE=180         at most this many seconds waiting for a 1-minute load average < 1.0
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
ROUNDS=${ROUNDS:-30}
WARMUP=${WARMUP:-2}
SHIMS=${SHIMS:-50}
PS_CONTAINERS=${PS_CONTAINERS:-100}
PS_RUNS=${PS_RUNS:-20}
PARALLEL=${PARALLEL:-100}

if [ "$ROUNDS" -lt 20 ]; then
    echo "ROUNDS must be at least 20" >&2
    exit 1
fi
command -v runc >/dev/null || { echo "runc is required" >&2; exit 1; }
DOCKER=absent
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"

# Settle first: the kernel tears down a previous run's containers (network namespaces,
# mounts, cgroups) for a minute or two after they are gone, and that work slowed every
# engine here, berth's many-process path most (back-to-back runs: 0.37x, 0.40x, 0.45x,
# 0.47x, 0.48x; the next one after 150 s idle: 0.37x). SETTLE=0 skips the wait.
SETTLE=${SETTLE:-180}
settled=0
while [ "$settled" -lt "$SETTLE" ] &&
    awk '{exit !($1 >= 1.0)}' /proc/loadavg; do
    sleep 5
    settled=$((settled + 5))
done
[ "$settled" = 0 ] || echo "== waited ${settled} s for the load average to fall below 1.0"
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- image and bundles
make_rootfs

B_DEFAULT=$WORK/bundles/runc-default
mkdir -p "$B_DEFAULT"
cp -a "$RFS" "$B_DEFAULT/rootfs"
(cd "$B_DEFAULT" && runc spec)
$PY runc-default-config "$B_DEFAULT/config.json"

# ---------------------------------------------------------------- capture berth's config.json
# A daemon whose shims hand Docker's seccomp profile to libcontainer
# (BERTH_SECCOMP_LIBCONTAINER=1), so the captured config.json carries the linux.seccomp
# section runc would load, as under Docker. (By default berth's shim loads a precompiled BPF
# itself and leaves the section out.)
echo "== capture berth's config.json"
DAEMON_ARGS=(--runtime libcontainer)
start_daemon BERTH_SECCOMP_LIBCONTAINER=1
DAEMON_ARGS=()
berth import "$WORK/busybox.tar" busybox:latest >/dev/null
cid=$(berth run -d --network none busybox sleep 300)
B_BERTH=$WORK/bundles/runc-berthcfg
mkdir -p "$B_BERTH"
cp -a "$RFS" "$B_BERTH/rootfs"
$PY berth-config --src "$EXEC/containers/$cid/config.json" --container-dir "$WORK" \
    --bundle "$B_BERTH"
berth rm -f "$cid" >/dev/null
stop_daemon

# ---------------------------------------------------------------- idle berthd
echo "== berthd idle RSS"
start_daemon
berth ps >/dev/null
sleep 0.5
$PY rss "$DAEMON_PID" --out "$RES/berthd_idle.json"

# ---------------------------------------------------------------- docker
DOCKER_NOTE="docker: not present"
if command -v dockerd >/dev/null && command -v docker >/dev/null &&
    timeout 10 env -u DOCKER_HOST docker info >/dev/null 2>&1; then
    DOCKER=present
    DOCKER_IMAGE=berth-bench-busybox:latest
    env -u DOCKER_HOST docker import "$WORK/busybox.tar" "$DOCKER_IMAGE" >/dev/null
    DOCKER_NOTE="docker: $(env -u DOCKER_HOST docker version --format '{{.Server.Version}}')"
fi
echo "== $DOCKER_NOTE"

# ---------------------------------------------------------------- latency
start_lc_daemon
python3 - "$RES/engines.json" <<EOF
import json, sys
e = {
    "berth": {"argv": ["$BERTH", "run", "--rm", "--network", "none", "busybox", "true"]},
    "berth-bridge": {"argv": ["$BERTH", "run", "--rm", "busybox", "true"]},
    "berth-libcontainer": {"argv": ["$BERTH", "run", "--rm", "--network", "none", "busybox", "true"],
                           "env": {"BERTH_HOST": "unix://$LC_SOCK"}},
    "runc-default": {"argv": ["runc", "--root", "$RUNC_ROOT", "run", "--bundle", "$B_DEFAULT", "{id}"]},
    "runc-berthcfg": {"argv": ["runc", "--root", "$RUNC_ROOT", "run", "--bundle", "$B_BERTH", "{id}"]},
}
if "$DOCKER" == "present":
    e["docker"] = {"argv": ["env", "-u", "DOCKER_HOST", "docker", "run", "--rm", "--network", "none", "$DOCKER_IMAGE", "true"]}
json.dump(e, open(sys.argv[1], "w"), indent=2)
EOF
echo "== start-to-exit latency: $ROUNDS rounds (+$WARMUP warm-up), engines rotate each round"
$PY latency --engines "$RES/engines.json" --rounds "$ROUNDS" --warmup "$WARMUP" \
    --out "$RES/latency.json"

# ---------------------------------------------------------------- exec
echo "== exec latency: berth exec (CLI, API, shim) and berth-shim exec (the primitive) vs runc exec and runc run, $ROUNDS rounds"
cid=$(berth run -d --network none busybox sleep 600)
B_EXEC=$WORK/bundles/runc-exec
mkdir -p "$B_EXEC"
python3 - "$B_DEFAULT/config.json" "$B_EXEC/config.json" "$B_DEFAULT/rootfs" <<'EOF'
import json, sys
c = json.load(open(sys.argv[1]))
c["process"]["args"] = ["sleep", "600"]
c["root"]["path"] = sys.argv[3]
json.dump(c, open(sys.argv[2], "w"))
EOF
runc --root "$RUNC_ROOT" run -d --bundle "$B_EXEC" bench-exec </dev/null >/dev/null 2>&1
if [ "${DOCKER:-}" = present ]; then
    DOCKER_EXEC_CID=$(env -u DOCKER_HOST docker run -d --network none "$DOCKER_IMAGE" sleep 600)
fi
python3 - "$RES/exec_engines.json" <<EOF
import json, sys
e = {
    "berth-exec-cli": {"argv": ["$BERTH", "exec", "$cid", "true"]},
    "berth-exec": {"argv": ["$BIN_DIR/berth-shim", "exec", "$EXEC/containers/$cid", "true"]},
    "runc-exec": {"argv": ["runc", "--root", "$RUNC_ROOT", "exec", "bench-exec", "true"]},
    "runc-default": {"argv": ["runc", "--root", "$RUNC_ROOT", "run", "--bundle", "$B_DEFAULT", "{id}"]},
}
if "${DOCKER:-}" == "present":
    e["docker-exec"] = {"argv": ["env", "-u", "DOCKER_HOST", "docker", "exec", "${DOCKER_EXEC_CID:-}", "true"]}
json.dump(e, open(sys.argv[1], "w"), indent=2)
EOF
$PY latency --engines "$RES/exec_engines.json" --rounds "$ROUNDS" --warmup "$WARMUP" \
    --out "$RES/exec.json"
runc --root "$RUNC_ROOT" delete -f bench-exec >/dev/null 2>&1 || true
berth rm -f "$cid" >/dev/null
if [ -n "${DOCKER_EXEC_CID:-}" ]; then
    env -u DOCKER_HOST docker rm -f "$DOCKER_EXEC_CID" >/dev/null
fi

# ---------------------------------------------------------------- -t throughput
# One attached terminal session moving output: `cat` of a TTY_MIB MiB file of text lines
# (bind-mounted read-only) on the container's terminal; berth's CLI writes it to a real
# terminal (util-linux script's pty) and the shim to the json-file log. In the same rounds,
# the kernel's own ceiling: busybox cat of the same file through one pty (`bare-pty`) and
# through two nested ones (`bare-2pty`: a container's terminal, then the user's), and
# `docker run -t` when dockerd is present. Rates are over the whole wall time.
TTY_MIB=${TTY_MIB:-256}
BIG=$WORK/big.txt
# (`yes` ends by SIGPIPE: from a process substitution, not a pipeline under pipefail.)
head -c $((TTY_MIB * 1048576)) \
    < <(yes abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz01234567) >"$BIG"
echo "== -t throughput: $TTY_MIB MiB through one attached terminal"
python3 - "$RES/tty_engines.json" <<EOF
import json, sys
run = "run --rm -t --network none -v $BIG:/big:ro"
e = {
    "berth-t": {"argv": ["script", "-qfec", f"$BERTH {run} --log-opt max-size=64m busybox cat /big", "/dev/null"]},
    "bare-pty": {"argv": ["script", "-qfec", "$BUSYBOX cat $BIG", "/dev/null"]},
    "bare-2pty": {"argv": ["script", "-qfec", "script -qfec '$BUSYBOX cat $BIG' /dev/null", "/dev/null"]},
}
if "$DOCKER" == "present":
    e["docker-t"] = {"argv": ["script", "-qfec", f"env -u DOCKER_HOST docker {run} ${DOCKER_IMAGE:-} cat /big", "/dev/null"]}
json.dump(e, open(sys.argv[1], "w"), indent=2)
EOF
$PY throughput --mib "$TTY_MIB" --runs "${TTY_RUNS:-5}" --engines "$RES/tty_engines.json" \
    --out "$RES/tty.json"
rm -f "$BIG"

# ---------------------------------------------------------------- parallel starts
echo "== $PARALLEL containers started at once (run -d sleep 60), own runtime then libcontainer"
$PY parallel --n "$PARALLEL" --out "$RES/parallel.json" -- \
    "$BERTH" run -d --network none busybox sleep 60
# shellcheck disable=SC2046
berth rm -f $(berth ps -aq) >/dev/null
BERTH_HOST=unix://$LC_SOCK $PY parallel --n "$PARALLEL" --out "$RES/parallel_lc.json" -- \
    "$BERTH" run -d --network none busybox sleep 60
# shellcheck disable=SC2046
BERTH_HOST=unix://$LC_SOCK berth rm -f $(BERTH_HOST=unix://$LC_SOCK berth ps -aq) >/dev/null

# ---------------------------------------------------------------- shims
echo "== $SHIMS running containers (berth run -d busybox sleep 300)"
for i in $(seq "$SHIMS"); do
    berth run -d --network none busybox sleep 300 >/dev/null
done
sleep 1
$PY shims --exe "$BIN_DIR/berth-shim" --work "$WORK" --out "$RES/shims.json"

# ---------------------------------------------------------------- ps
more=$((PS_CONTAINERS - SHIMS))
[ "$more" -lt 0 ] && more=0
echo "== berth ps -a with $PS_CONTAINERS containers ($SHIMS running, $more created)"
for i in $(seq "$more"); do
    berth create --network none busybox true >/dev/null
done
n=$(berth ps -aq | wc -l)
$PY timed --runs "$PS_RUNS" --out "$RES/ps.json" -- "$BERTH" ps -a
if command -v curl >/dev/null; then
    $PY timed --runs "$PS_RUNS" --out "$RES/ps_api.json" -- \
        curl -sf --unix-socket "$SOCK" "http://x/containers/json?all=1"
fi
$PY api --socket "$SOCK" --path "/containers/json?all=1" --runs "$PS_RUNS" \
    --out "$RES/ps_api_inproc.json"
$PY rss "$DAEMON_PID" --out "$RES/berthd_after.json"
echo "== removing $n containers"
# shellcheck disable=SC2046
berth rm -f $(berth ps -aq) >/dev/null

cat >"$RES/meta.json" <<EOF
{"loadavg_start": "$LOAD0", "loadavg_end": "$(cut -d' ' -f1-3 /proc/loadavg)", "date": "$(date -u +%Y-%m-%dT%H:%M:%SZ)", "commit": "$commit", "kernel": "$(uname -r)",
 "cpus": $(nproc), "runc": "$(runc --version | head -1)", "docker": "$DOCKER",
 "ps_containers": $n, "ps_running": $SHIMS, "rounds": $ROUNDS,
 "berth_config_changes": $(python3 -c 'import json,sys; print(json.dumps(open(sys.argv[1]).read().splitlines()))' "$B_BERTH/CHANGES.txt")}
EOF
mkdir -p "$HERE/results"
$PY summary --dir "$RES" --out "$HERE/results/latest.json"
