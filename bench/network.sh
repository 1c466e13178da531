#!/usr/bin/env bash
# Network benchmarks (issue 14), against the same berthd on its default bridge:
#   1. start-to-exit latency of `berth run --rm busybox true` on the default bridge, on a
#      user-defined network (its embedded DNS served too), with --network none and runc run
#      of the default-spec bundle, interleaved in the same rounds;
#   2. TCP throughput through a published port (127.0.0.1 and the host's address, both
#      socket-redirected; the bridge's address, on the DNAT path) against a direct
#      connection to the container's address (iperf3, the server in the container's
#      network namespace), interleaved;
#   3. 1000 published ports: start time against one port, berthd's RSS, processes.
# Needs root, runc and iperf3 (Debian packages). See bench/README.md.
#
# Environment: ROUNDS=30 (latency), TPUT_ROUNDS=12 and TPUT_SECONDS=3 (iperf3),
# TPUT_CPUS=1,1 (iperf3 -A: client and server on one CPU, so that a path's cost per byte
# is what is measured, not the scheduler's placement on a shared machine; empty: not
# pinned), PORT_ROUNDS=5 (1000 ports), BUILD, BIN_DIR, KEEP as bench/run.sh.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
ROUNDS=${ROUNDS:-30}
WARMUP=${WARMUP:-2}
TPUT_ROUNDS=${TPUT_ROUNDS:-12}
TPUT_SECONDS=${TPUT_SECONDS:-3}
TPUT_CPUS=${TPUT_CPUS-1,1}
PORT_ROUNDS=${PORT_ROUNDS:-5}
for tool in runc iperf3 nsenter; do
    command -v "$tool" >/dev/null || { echo "$tool is required" >&2; exit 1; }
done
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
berth network create benchnet >/dev/null
# Docker beside, when a dockerd answers on its default socket: on its own bridge, and its
# published ports through its userland proxy.
DOCKER=
if command -v docker >/dev/null && timeout 10 env -u DOCKER_HOST docker info >/dev/null 2>&1; then
    DOCKER="env -u DOCKER_HOST docker"
    DOCKER_IMAGE=berth-bench-busybox:latest
    $DOCKER import "$WORK/busybox.tar" "$DOCKER_IMAGE" >/dev/null
    echo "== docker $($DOCKER version --format '{{.Server.Version}}') beside"
else
    echo "== docker: not present (no dockerd answering)"
fi

# ---------------------------------------------------------------- 1. latency
python3 - "$RES/engines.json" "$DOCKER_IMAGE" <<PYEOF
import json, sys
e = {
    "berth-bridge": {"argv": ["$BERTH", "run", "--rm", "busybox", "true"]},
    "berth-none": {"argv": ["$BERTH", "run", "--rm", "--network", "none", "busybox", "true"]},
    "berth-usernet": {"argv": ["$BERTH", "run", "--rm", "--network", "benchnet", "busybox", "true"]},
    "runc-default": {"argv": ["runc", "--root", "$RUNC_ROOT", "run", "--bundle", "$B_DEFAULT", "{id}"]},
}
if sys.argv[2]:
    e["docker-bridge"] = {"argv": ["env", "-u", "DOCKER_HOST", "docker", "run", "--rm", sys.argv[2], "true"]}
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
    print(f"  {n:<16} p50 {e['p50']:>7} ms  p90 {e['p90']:>7} ms  {e['p50'] / base:.2f}x runc p50")
PYEOF

# ---------------------------------------------------------------- 2. throughput
HOST_IP=$(ip -4 -o addr show scope global | awk '$2 !~ /^(berth|be|docker|br-)/ { split($4, a, "/"); print a[1]; exit }')
cid=$(berth run -d -p 15201:5201 -p 127.0.0.1:15202:5201 busybox sleep 3600)
pid=$(berth inspect -f '{{.State.Pid}}' "$cid")
cip=$(berth inspect -f '{{.NetworkSettings.IPAddress}}' "$cid")
# The bridge's own address: local too, but left to the DNAT path by the socket redirect
# (berth's bridges' addresses get no entries), so the same rounds show what the redirect
# saves.
gw=$(berth inspect -f '{{.NetworkSettings.Gateway}}' "$cid")
nsenter --net="/proc/$pid/ns/net" iperf3 -s -p 5201 -D --pidfile "$WORK/iperf3.pid"
EXTRA_PIDS="$(cat "$WORK/iperf3.pid" 2>/dev/null || true)"
for _ in $(seq 100); do iperf3 -c "$cip" -p 5201 -n 1K >/dev/null 2>&1 && break; sleep 0.1; done
DCIP=
if [ -n "$DOCKER" ]; then
    dcid=$($DOCKER run -d -p 25201:5201 -p 127.0.0.1:25202:5201 "$DOCKER_IMAGE" sleep 3600)
    dpid=$($DOCKER inspect -f '{{.State.Pid}}' "$dcid")
    DCIP=$($DOCKER inspect -f '{{.NetworkSettings.IPAddress}}' "$dcid")
    nsenter --net="/proc/$dpid/ns/net" iperf3 -s -p 5201 -D --pidfile "$WORK/iperf3-docker.pid"
    EXTRA_PIDS="$EXTRA_PIDS $(cat "$WORK/iperf3-docker.pid" 2>/dev/null || true)"
    for _ in $(seq 100); do iperf3 -c "$DCIP" -p 5201 -n 1K >/dev/null 2>&1 && break; sleep 0.1; done
fi
echo "== TCP throughput, $TPUT_ROUNDS rounds of ${TPUT_SECONDS} s each, interleaved (host $HOST_IP, container $cip)"
python3 - "$RES/throughput.json" "$TPUT_ROUNDS" "$TPUT_SECONDS" "$cip" "$HOST_IP" "$DCIP" "$TPUT_CPUS" "$gw" <<'PYEOF'
import json, statistics, subprocess, sys
out, rounds, secs, cip, host, dcip, cpus, gw = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6], sys.argv[7], sys.argv[8]
pin = ["-A", cpus] if cpus else []
targets = {"direct": (cip, 5201), "published-127.0.0.1": ("127.0.0.1", 15202),
           "published-host-address": (host, 15201), "published-bridge-address-dnat": (gw, 15201)}
if dcip:
    targets.update({"docker-direct": (dcip, 5201), "docker-published-127.0.0.1": ("127.0.0.1", 25202),
                    "docker-published-host-address": (host, 25201)})
res = {k: [] for k in targets}
for r in range(rounds):
    names = list(targets)[r % len(targets):] + list(targets)[:r % len(targets)]
    for n in names:
        ip, port = targets[n]
        j = json.loads(subprocess.run(["iperf3", "-c", ip, "-p", str(port), "-t", secs, "-J"] + pin,
                                      capture_output=True, text=True, check=True).stdout)
        gbps = j["end"]["sum_received"]["bits_per_second"] / 1e9
        res[n].append(round(gbps, 2))
    print(f"  round {r + 1}: " + "  ".join(f"{n}={res[n][-1]} Gbit/s" for n in names), flush=True)
med = {n: statistics.median(v) for n, v in res.items()}
# Each engine's published ports against a direct connection to its own container: the
# ratio of the medians, and the median of each round's own ratio (the rounds of a shared
# machine differ more from each other than the paths within a round).
base = lambda n: "docker-direct" if n.startswith("docker-") else "direct"
summary = {n: {"median_gbit_s": med[n], "runs": res[n],
               "ratio_to_direct": round(med[n] / med[base(n)], 3),
               "median_round_ratio": round(statistics.median(
                   a / b for a, b in zip(res[n], res[base(n)])), 3)} for n in res}
json.dump(summary, open(out, "w"), indent=2)
print(f"  (iperf3 {'-A ' + cpus if cpus else 'not pinned'})")
for n, s in summary.items():
    print(f"  {n:<30} median {s['median_gbit_s']:>7} Gbit/s  {s['ratio_to_direct']}x direct"
          f"  (round by round: {s['median_round_ratio']}x)")
PYEOF
kill "$(cat "$WORK/iperf3.pid")" 2>/dev/null || true
berth rm -f "$cid" >/dev/null
if [ -n "$DOCKER" ]; then
    kill "$(cat "$WORK/iperf3-docker.pid")" 2>/dev/null || true
    $DOCKER rm -f "$dcid" >/dev/null
fi

# ---------------------------------------------------------------- 3. 1000 ports
echo "== 1000 published ports vs one: $PORT_ROUNDS rounds, start time (berth run -d), berthd RSS"
$PY rss "$DAEMON_PID" --out "$RES/rss_before_ports.json"
python3 - "$RES/ports.json" "$PORT_ROUNDS" "$BERTH" "$DAEMON_PID" <<'PYEOF'
import json, os, statistics, subprocess, sys, time
out, rounds, berth, daemon = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
def rss(pid):
    for l in open(f"/proc/{pid}/status"):
        if l.startswith("VmRSS:"):
            return int(l.split()[1])
def processes():
    return sum(1 for d in os.listdir("/proc") if d.isdigit())
spec = {"one": ["-p", "30000:80"], "thousand": ["-p", "20000-20999:20000-20999"]}
t = {k: [] for k in spec}
rss_delta, procs = [], {k: [] for k in spec}
for r in range(rounds):
    for k in (["one", "thousand"] if r % 2 == 0 else ["thousand", "one"]):
        before_rss, before_procs = rss(daemon), processes()
        s = time.monotonic()
        cid = subprocess.run([berth, "run", "-d", *spec[k], "busybox", "sleep", "600"],
                             capture_output=True, text=True, check=True).stdout.strip()
        t[k].append(round((time.monotonic() - s) * 1000, 2))
        procs[k].append(processes() - before_procs)
        if k == "thousand":
            rss_delta.append(rss(daemon) - before_rss)
        subprocess.run([berth, "rm", "-f", cid], capture_output=True, check=True)
med = {k: statistics.median(v) for k, v in t.items()}
summary = {"start_ms": t, "median_ms": med, "ratio": round(med["thousand"] / med["one"], 2),
           "rss_delta_kib": rss_delta, "new_processes": procs}
json.dump(summary, open(out, "w"), indent=2)
print(f"  one port: median {med['one']} ms; 1000 ports: median {med['thousand']} ms "
      f"({summary['ratio']}x); berthd RSS +{statistics.median(rss_delta)} KiB (median); "
      f"processes added by a container: {procs}")
PYEOF
$PY rss "$DAEMON_PID" --out "$RES/rss_after_ports.json"
echo "== results in $RES (KEEP=1 keeps them)"
