#!/usr/bin/env bash
# Mount benchmarks (issue 15): start-to-exit latency of `berth run --rm --network none
# busybox true` with five named volumes (`-v v1:/v1 ... -v v5:/v5`, made before the rounds)
# against the same run without any, and runc run of the default-spec bundle, interleaved in
# the same rounds; docker beside with the same five volumes when a dockerd answers.
# Target: five named volumes cost <= 1.2x the start without any (p50s of the same rounds).
# Needs root and runc. See bench/README.md.
#
# Environment: ROUNDS=30, WARMUP=2, BUILD, BIN_DIR, KEEP as bench/run.sh.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
ROUNDS=${ROUNDS:-30}
WARMUP=${WARMUP:-2}
command -v runc >/dev/null || { echo "runc is required" >&2; exit 1; }
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"

make_rootfs
B_DEFAULT=$WORK/bundles/runc-default
mkdir -p "$B_DEFAULT"
cp -a "$RFS" "$B_DEFAULT/rootfs"
(cd "$B_DEFAULT" && runc spec)
$PY runc-default-config "$B_DEFAULT/config.json"

start_daemon
berth import "$WORK/busybox.tar" busybox:latest >/dev/null
for i in 1 2 3 4 5; do berth volume create "benchv$i" >/dev/null; done
DOCKER_IMAGE=
if command -v docker >/dev/null && timeout 10 env -u DOCKER_HOST docker info >/dev/null 2>&1; then
    DOCKER_IMAGE=berth-bench-busybox:latest
    env -u DOCKER_HOST docker import "$WORK/busybox.tar" "$DOCKER_IMAGE" >/dev/null
    for i in 1 2 3 4 5; do env -u DOCKER_HOST docker volume create "benchv$i" >/dev/null; done
    echo "== docker $(env -u DOCKER_HOST docker version --format '{{.Server.Version}}') beside"
else
    echo "== docker: not present (no dockerd answering)"
fi

python3 - "$RES/engines.json" "$DOCKER_IMAGE" <<PYEOF
import json, sys
vols = [a for i in range(1, 6) for a in ("-v", f"benchv{i}:/v{i}")]
run = ["$BERTH", "run", "--rm", "--network", "none"]
e = {
    "berth-none": {"argv": run + ["busybox", "true"]},
    "berth-5-volumes": {"argv": run + vols + ["busybox", "true"]},
    "runc-default": {"argv": ["runc", "--root", "$RUNC_ROOT", "run", "--bundle", "$B_DEFAULT", "{id}"]},
}
if sys.argv[2]:
    d = ["env", "-u", "DOCKER_HOST", "docker", "run", "--rm", "--network", "none"]
    e["docker-none"] = {"argv": d + [sys.argv[2], "true"]}
    e["docker-5-volumes"] = {"argv": d + vols + [sys.argv[2], "true"]}
json.dump(e, open(sys.argv[1], "w"))
PYEOF
echo "== start-to-exit latency: $ROUNDS rounds (+$WARMUP warm-up)"
$PY latency --engines "$RES/engines.json" --rounds "$ROUNDS" --warmup "$WARMUP" \
    --out "$RES/latency.json"
python3 - "$RES/latency.json" <<'PYEOF'
import json, sys
eng = json.load(open(sys.argv[1]))["engines"]
base = eng["runc-default"]["p50"]
for n, e in eng.items():
    print(f"  {n:<18} p50 {e['p50']:>7} ms  p90 {e['p90']:>7} ms  {e['p50'] / base:.2f}x runc p50")
ratio = eng["berth-5-volumes"]["p50"] / eng["berth-none"]["p50"]
verdict = "met" if ratio <= 1.2 else "MISSED"
print(f"  five named volumes: {ratio:.3f}x the start without (target <= 1.2x): {verdict}")
if "docker-5-volumes" in eng:
    print(f"  docker: {eng['docker-5-volumes']['p50'] / eng['docker-none']['p50']:.3f}x")
PYEOF
if [ -n "$DOCKER_IMAGE" ]; then
    for i in 1 2 3 4 5; do env -u DOCKER_HOST docker volume rm "benchv$i" >/dev/null || true; done
    env -u DOCKER_HOST docker rmi "$DOCKER_IMAGE" >/dev/null || true
fi
