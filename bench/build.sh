#!/usr/bin/env bash
# Build benchmarks (issue 16): a 6-step Dockerfile with a 50 MiB context, built by berthd
# (through the docker CLI's classic builder, as users drive it) and by `podman build`
# (buildah) in the same rounds, interleaved:
#   cold     --no-cache: every step runs
#   cached   nothing changed: no step runs
#   changed  one copied file changed: that COPY and what follows run again
# and `berth run --rm busybox true` in the same rounds, for the cached build's second target.
# Targets: cold <= 0.35x podman's, cached <= 0.1x podman's and <= 3x the run's p50,
# changed <= 0.3x podman's (p50s). Needs root; podman is measured when it is installed.
#
# Environment: ROUNDS=5, BUILD, BIN_DIR, KEEP as bench/run.sh.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
ROUNDS=${ROUNDS:-5}
command -v docker >/dev/null || { echo "the docker CLI is required (scripts/deps.sh)" >&2; exit 1; }
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"

make_rootfs
start_daemon
berth import "$WORK/busybox.tar" busybox:latest >/dev/null

CTX=$WORK/context
mkdir -p "$CTX/big"
for i in $(seq -w 1 50); do
    head -c $((1024 * 1024)) /dev/urandom > "$CTX/big/part$i"
done
echo "version 0" > "$CTX/small.txt"
cat > "$CTX/Dockerfile" <<'EOF'
FROM busybox
COPY big/ /app/big/
RUN cat /app/big/* | wc -c > /size
COPY small.txt /app/
RUN cat /app/small.txt > /copied
CMD ["cat", "/size"]
EOF

PODMAN=
if command -v podman >/dev/null; then
    PODMAN_ROOT=$WORK/podman
    PODMAN="podman --root $PODMAN_ROOT/storage --runroot $PODMAN_ROOT/run --cgroup-manager cgroupfs --events-backend none"
    $PODMAN import "$WORK/busybox.tar" localhost/busybox:latest >/dev/null
    # podman resolves FROM busybox to localhost/busybox with this file's short-name mode.
    sed -i 's|^FROM busybox$|FROM localhost/busybox:latest|' "$CTX/Dockerfile"
    berth tag busybox:latest localhost/busybox:latest
    echo "== $(podman --version) beside"
else
    echo "== podman: not installed (apt-get install podman to compare)"
fi

python3 - "$RES/build.json" "$ROUNDS" "$CTX" "$SOCK" "$BERTH" "$PODMAN" <<'PYEOF'
import json, os, statistics, subprocess, sys, time

out, rounds, ctx, sock, berth, podman = sys.argv[1:7]
rounds = int(rounds)
env = dict(os.environ, DOCKER_HOST=f"unix://{sock}", DOCKER_BUILDKIT="0")
env.pop("DOCKER_API_VERSION", None)

def timed(argv, **kw):
    t = time.perf_counter()
    r = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kw)
    dt = (time.perf_counter() - t) * 1000
    if r.returncode != 0:
        sys.exit(f"{argv[:3]} failed: {r.stderr.decode()[-2000:]}")
    return dt

def berth_build(*flags):
    return timed(["docker", "build", "-q", *flags, "-t", "bench-built", ctx], env=env)

def podman_build(*flags):
    return timed(podman.split() + ["build", "-q", *flags, "-t", "bench-built", ctx])

small = os.path.join(ctx, "small.txt")
res = {k: [] for k in ["berth-cold", "berth-cached", "berth-changed", "berth-run",
                       "podman-cold", "podman-cached", "podman-changed"]}
# One warm-up of each, not counted.
berth_build("--no-cache")
if podman:
    podman_build("--no-cache")
for r in range(rounds):
    res["berth-cold"].append(berth_build("--no-cache"))
    if podman:
        res["podman-cold"].append(podman_build("--no-cache"))
    res["berth-cached"].append(berth_build())
    if podman:
        res["podman-cached"].append(podman_build())
    with open(small, "w") as f:
        f.write(f"version {r + 1}\n")
    res["berth-changed"].append(berth_build())
    if podman:
        res["podman-changed"].append(podman_build())
    for _ in range(3):
        res["berth-run"].append(timed([berth, "run", "--rm", "busybox", "true"]))
p50 = {k: round(statistics.median(v), 1) for k, v in res.items() if v}
json.dump({"p50": p50, "samples": res}, open(out, "w"), indent=1)
for k, v in p50.items():
    print(f"  {k:<15} p50 {v:>9} ms")
def verdict(ok):
    return "met" if ok else "MISSED"
run = p50["berth-run"]
print(f"  cached: {p50['berth-cached'] / run:.2f}x the run's p50 (target <= 3x): "
      f"{verdict(p50['berth-cached'] <= 3 * run)}")
if podman:
    for kind, target in [("cold", 0.35), ("cached", 0.1), ("changed", 0.3)]:
        ratio = p50[f"berth-{kind}"] / p50[f"podman-{kind}"]
        print(f"  {kind}: {ratio:.3f}x podman's (target <= {target}x): {verdict(ratio <= target)}")
PYEOF
