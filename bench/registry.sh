#!/usr/bin/env bash
# Registry benchmarks (issue 17): pulls and pushes of the same images between berthd and a
# local Debian docker-registry (Docker's distribution 2.8), beside podman doing the same
# in the same rounds, interleaved:
#   pull one   a single-layer image, 200 MiB of content in a gzip layer, unpack included
#   pull five  the same 200 MiB in 5 gzip layers (berth takes 3 at a time)
#   push one / push five   the same images into a fresh registry each round
#   noop push  a push of an image the registry already has
#   noop pull  a pull of an image already present
# Targets: pull >= 3x podman's throughput (one layer), >= 4x (five layers); push >= 3x
# podman's; noop push and noop pull <= 50 ms. Needs root, docker-registry and skopeo;
# podman is measured when it is installed.
#
# Environment: ROUNDS=5, BUILD, BIN_DIR, KEEP as bench/run.sh.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
ROUNDS=${ROUNDS:-5}
for t in docker-registry skopeo; do
    command -v $t >/dev/null || { echo "$t is required (apt-get install $t)" >&2; exit 1; }
done
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"

start_daemon

# The images, as OCI layouts: 200 MiB of content (half random, half text that gzip
# shrinks), in one layer and in five.
python3 - "$WORK/layouts" <<'PYEOF'
import gzip, hashlib, io, json, os, sys, tarfile

root = sys.argv[1]
MiB = 1 << 20

def content(n, seed):
    rnd = os.urandom(n // 2)
    text = (b"patient-record %d lorem ipsum dolor sit amet\n" % seed) * ((n - len(rnd)) // 46 + 1)
    return rnd + text[: n - len(rnd)]

def layer(files):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as t:
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 1700000000
            t.addfile(info, io.BytesIO(data))
    raw = buf.getvalue()
    return raw, gzip.compress(raw, compresslevel=6, mtime=0)

def blob(d, data):
    h = hashlib.sha256(data).hexdigest()
    with open(os.path.join(d, "blobs/sha256", h), "wb") as f:
        f.write(data)
    return "sha256:" + h, len(data)

def layout(name, layers):
    d = os.path.join(root, name)
    os.makedirs(os.path.join(d, "blobs/sha256"))
    open(os.path.join(d, "oci-layout"), "w").write('{"imageLayoutVersion":"1.0.0"}')
    descs, diff_ids = [], []
    for raw, gz in layers:
        diff_ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
        dg, sz = blob(d, gz)
        descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": dg, "size": sz})
    cfg = {"architecture": "amd64", "os": "linux", "config": {},
           "rootfs": {"type": "layers", "diff_ids": diff_ids}}
    cd, cs = blob(d, json.dumps(cfg).encode())
    m = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
         "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
         "layers": descs}
    md, ms = blob(d, json.dumps(m).encode())
    idx = {"schemaVersion": 2, "manifests": [{"mediaType": m["mediaType"], "digest": md, "size": ms,
           "annotations": {"org.opencontainers.image.ref.name": "1"}}]}
    open(os.path.join(d, "index.json"), "w").write(json.dumps(idx))
    print(f"  {name}: {len(layers)} layer(s), {sum(len(g) for _, g in layers) / MiB:.0f} MiB compressed")

layout("one", [layer([(f"data/f{i}", content(20 * MiB, i)) for i in range(10)])])
layout("five", [layer([(f"data{k}/f{i}", content(20 * MiB, 10 * k + i)) for i in range(2)]) for k in range(5)])
PYEOF

REG_PIDS=()
start_registry() { # dir port -> starts docker-registry there
    mkdir -p "$1"
    cat > "$1/config.yml" <<YAML
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $1/data
http:
  addr: 127.0.0.1:$2
YAML
    docker-registry serve "$1/config.yml" > "$1/log" 2>&1 &
    REG_PIDS+=($!)
    EXTRA_PIDS="$EXTRA_PIDS $!"
    for _ in $(seq 100); do
        curl -fs "http://127.0.0.1:$2/v2/" >/dev/null && return 0
        sleep 0.05
    done
    echo "docker-registry on $2 did not start" >&2
    exit 1
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

PORT=$(free_port)
start_registry "$WORK/reg" "$PORT"
for img in one five; do
    skopeo copy -q --dest-tls-verify=false "oci:$WORK/layouts/$img:1" "docker://127.0.0.1:$PORT/$img:1"
done

PODMAN=
if command -v podman >/dev/null; then
    PODMAN_ROOT=$WORK/podman
    PODMAN="podman --root $PODMAN_ROOT/storage --runroot $PODMAN_ROOT/run --cgroup-manager cgroupfs --events-backend none"
    echo "== $(podman --version) beside"
else
    echo "== podman: not installed (apt-get install podman to compare)"
fi

python3 - "$RES/registry.json" "$ROUNDS" "$PORT" "$BERTH" "$PODMAN" "$WORK" <<'PYEOF'
import json, os, socket, statistics, subprocess, sys, time

out, rounds, port, berth, podman, work = sys.argv[1:7]
rounds = int(rounds)
podman = podman.split() if podman else None
reg = f"127.0.0.1:{port}"
SIZE_MIB = 200

def run(argv, quiet=True):
    r = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if r.returncode != 0:
        sys.exit(f"{argv[:4]} failed: {r.stderr.decode()[-2000:]}")

def timed(argv):
    t = time.perf_counter()
    run(argv)
    return (time.perf_counter() - t) * 1000

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def fresh_registry(n):
    d = f"{work}/push-{n}"
    p = free_port()
    subprocess.run(["bash", "-c", f". /dev/null; mkdir -p {d}; printf 'version: 0.1\\nlog:\\n  level: error\\nstorage:\\n  filesystem:\\n    rootdirectory: {d}/data\\nhttp:\\n  addr: 127.0.0.1:{p}\\n' > {d}/config.yml"], check=True)
    proc = subprocess.Popen(["docker-registry", "serve", f"{d}/config.yml"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", p), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    return proc, f"127.0.0.1:{p}"

res = {k: [] for k in ["berth pull one", "berth pull five", "berth push one", "berth push five",
                       "berth noop push", "berth noop pull",
                       "podman pull one", "podman pull five", "podman push one", "podman push five"]}
for r in range(rounds):
    for img in ["one", "five"]:
        ref = f"{reg}/{img}:1"
        # By id: a push adds repository digests, and removing one name only untags.
        ids = subprocess.run([berth, "images", "-q", "--no-trunc"], capture_output=True, text=True).stdout.split()
        if ids:
            subprocess.run([berth, "rmi", "-f", *ids], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        res[f"berth pull {img}"].append(timed([berth, "pull", "-q", ref]))
        if podman:
            subprocess.run(podman + ["rmi", "-f", ref], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            res[f"podman pull {img}"].append(timed(podman + ["pull", "-q", "--tls-verify=false", ref]))
        proc, dst = fresh_registry(f"{r}-{img}-b")
        run([berth, "tag", ref, f"{dst}/{img}:1"])
        res[f"berth push {img}"].append(timed([berth, "push", "-q", f"{dst}/{img}:1"]))
        run([berth, "rmi", f"{dst}/{img}:1"])
        proc.kill(); proc.wait()
        if podman:
            proc, dst = fresh_registry(f"{r}-{img}-p")
            res[f"podman push {img}"].append(timed(podman + ["push", "-q", "--tls-verify=false", ref, f"{dst}/{img}:1"]))
            proc.kill(); proc.wait()
    res["berth noop push"].append(timed([berth, "push", "-q", f"{reg}/five:1"]))
    res["berth noop pull"].append(timed([berth, "pull", "-q", f"{reg}/five:1"]))

p50 = {k: round(statistics.median(v), 1) for k, v in res.items() if v}
json.dump({"p50_ms": p50, "samples": res}, open(out, "w"), indent=1)
def mibs(k):
    return SIZE_MIB / (p50[k] / 1000)
for op in ["pull one", "pull five", "push one", "push five"]:
    b = p50[f"berth {op}"]
    line = f"  {op:9}: berth {b:7.0f} ms ({mibs('berth ' + op):6.1f} MiB/s)"
    if f"podman {op}" in p50:
        p = p50[f"podman {op}"]
        line += f"   podman {p:7.0f} ms ({mibs('podman ' + op):6.1f} MiB/s)   ratio {p / b:.2f}x podman's throughput"
    print(line)
print(f"  noop push: berth {p50['berth noop push']} ms   noop pull: berth {p50['berth noop pull']} ms (target <= 50)")
PYEOF
echo "== results in $RES/registry.json"
