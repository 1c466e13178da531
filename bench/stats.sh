#!/usr/bin/env bash
# `berth stats` targets: `berth stats --no-stream` with CONTAINERS running containers
# (end to end, the command's wall time; target ≤ 200 ms) and berthd's VmRSS while one stats
# stream per container runs (target ≤ 20 MiB). See bench/README.md. Needs root.
#
# Environment:
#   CONTAINERS=50   running containers
#   RUNS=20         timed `berth stats --no-stream` runs (after 2 uncounted ones)
#   SECONDS_STREAMED=10  how long the streams run
#   BUILD=1         0: do not run scripts/build-release.sh
#   BIN_DIR=DIR     where berthd/berth/berth-shim are (default: <repo>/target/release)
#   KEEP=1          keep the work directory
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
CONTAINERS=${CONTAINERS:-50}
RUNS=${RUNS:-20}
SECONDS_STREAMED=${SECONDS_STREAMED:-10}
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"

make_rootfs
start_daemon
berth import "$WORK/busybox.tar" busybox:latest >/dev/null
echo "== $CONTAINERS running containers"
for _ in $(seq "$CONTAINERS"); do
    berth run -d --network none busybox sleep 600 >/dev/null
done
ids=$(berth ps -q --no-trunc)
[ "$(echo "$ids" | wc -l)" = "$CONTAINERS" ] || { echo "not all containers run" >&2; exit 1; }
rows=$(berth stats --no-stream --format '{{.Name}}' | wc -l)
[ "$rows" = "$CONTAINERS" ] || { echo "berth stats showed $rows rows" >&2; exit 1; }

echo "== berth stats --no-stream ($RUNS runs)"
$PY timed --runs "$RUNS" --out "$RES/stats-no-stream.json" -- "$BERTH" stats --no-stream
echo "== $CONTAINERS stats streams for $SECONDS_STREAMED s"
$PY rss "$DAEMON_PID"
# shellcheck disable=SC2086
$PY stats-streams --socket "$SOCK" --pid "$DAEMON_PID" --seconds "$SECONDS_STREAMED" \
    --out "$RES/stats-streams.json" $ids
$PY rss "$DAEMON_PID"

python3 - "$RES" <<'EOF'
import json, sys
res = sys.argv[1]
t = json.load(open(f"{res}/stats-no-stream.json"))
s = json.load(open(f"{res}/stats-streams.json"))
ok = lambda b: "PASS" if b else "FAIL"
print(f"berth stats --no-stream, {s['streams']} containers: p50 {t['p50']} ms, "
      f"max {t['max']} ms (target <= 200 ms p50): {ok(t['p50'] <= 200)}")
print(f"berthd VmRSS with {s['streams']} streams: max {s['rss_max_mib']} MiB "
      f"(target <= 20 MiB): {ok(s['rss_max_mib'] <= 20)}")
EOF
