#!/usr/bin/env bash
# Build benchmarks (issue 16): a 6-step Dockerfile with a 50 MiB context, built by berthd
# (through the docker CLI's classic builder, as users drive it) and by `podman build`
# (buildah) in the same rounds, interleaved:
#   cold     --no-cache: every step runs
#   cached   nothing changed: no step runs
#   changed  one copied file changed: that COPY and what follows run again
# and `berth run --rm busybox true` in the same rounds, for the cached build's second target.
# The cached and changed builds are measured through both front doors: the docker CLI
# (which sends the whole context every time) and `berth build` (which sends an unchanged
# directory once: berthd keeps it). Then the concurrency of independent stages: two
# CPU-bound stages built alone, and together under a third that copies from both.
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

def berthcli_build(*flags):
    return timed([berth, "build", "-q", *flags, "-t", "bench-built", ctx])

def podman_build(*flags):
    return timed(podman.split() + ["build", "-q", *flags, "-t", "bench-built", ctx])

small = os.path.join(ctx, "small.txt")
res = {k: [] for k in ["berth-cold", "berth-cached", "berth-changed", "berth-run",
                       "berthcli-cached", "berthcli-changed",
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
    berthcli_build()  # sends the context once more, with the key berthd keeps it under
    res["berthcli-cached"].append(berthcli_build())
    if podman:
        res["podman-cached"].append(podman_build())
    with open(small, "w") as f:
        f.write(f"version {r + 1}\n")
    res["berth-changed"].append(berth_build())
    with open(small, "w") as f:
        f.write(f"version {r + 1}b\n")
    res["berthcli-changed"].append(berthcli_build())
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
for who in ["berth", "berthcli"]:
    door = "docker build" if who == "berth" else "berth build"
    print(f"  cached ({door}): {p50[f'{who}-cached'] / run:.2f}x the run's p50 "
          f"(target <= 3x): {verdict(p50[f'{who}-cached'] <= 3 * run)}")
if podman:
    for kind, target in [("cold", 0.35), ("cached", 0.1), ("changed", 0.3)]:
        for who in ["berth", "berthcli"]:
            if f"{who}-{kind}" not in p50:
                continue
            door = "docker build" if who == "berth" else "berth build"
            ratio = p50[f"{who}-{kind}"] / p50[f"podman-{kind}"]
            print(f"  {kind} ({door}): {ratio:.3f}x podman's (target <= {target}x): "
                  f"{verdict(ratio <= target)}")
PYEOF

# Independent stages at once: each stage a CPU-bound RUN of its own; built alone (--target)
# and together (the final stage needs both). On 2 cores, together takes about as long as
# the slower alone, not their sum.
STAGES=$WORK/stages
mkdir -p "$STAGES"
cat > "$STAGES/Dockerfile" <<'EOF'
FROM busybox AS a
RUN i=0; while [ $i -lt 400000 ]; do i=$((i+1)); done; echo a > /a
FROM busybox AS b
RUN i=0; while [ $i -lt 400000 ]; do i=$((i+2)); i=$((i-1)); done; echo b > /b
FROM busybox
COPY --from=a /a /a
COPY --from=b /b /b
EOF
python3 - "$RES/stages.json" "$ROUNDS" "$STAGES" "$SOCK" <<'PYEOF'
import json, os, statistics, subprocess, sys, time

out, rounds, ctx, sock = sys.argv[1:5]
env = dict(os.environ, DOCKER_HOST=f"unix://{sock}", DOCKER_BUILDKIT="0")
env.pop("DOCKER_API_VERSION", None)

def timed(*flags):
    t = time.perf_counter()
    r = subprocess.run(["docker", "build", "-q", "--no-cache", *flags, ctx], env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if r.returncode != 0:
        sys.exit(f"stages build failed: {r.stderr.decode()[-2000:]}")
    return (time.perf_counter() - t) * 1000

res = {"a-alone": [], "b-alone": [], "both": []}
for _ in range(int(rounds)):
    res["a-alone"].append(timed("--target", "a"))
    res["b-alone"].append(timed("--target", "b"))
    res["both"].append(timed())
p50 = {k: round(statistics.median(v), 1) for k, v in res.items()}
json.dump({"p50": p50, "samples": res}, open(out, "w"), indent=1)
seq = p50["a-alone"] + p50["b-alone"]
print(f"  stages: a alone {p50['a-alone']} ms, b alone {p50['b-alone']} ms, "
      f"both {p50['both']} ms ({p50['both'] / seq:.2f}x their sum: "
      f"{'overlapped' if p50['both'] < 0.8 * seq else 'NOT overlapped'})")
PYEOF
