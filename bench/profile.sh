#!/usr/bin/env bash
# Where does the time of `berth run --rm --network none busybox true` go?
#
#  1. untraced: p50 of N runs of `run --rm`, of `run` (kept) and of the `rm` after it;
#  2. the shim's own phase timings (BERTH_SHIM_TIMING=1 in berthd's environment makes every
#     shim log them to <bundle>/shim.log; read from kept containers before `rm`);
#  3. one traced `run --rm`: strace -f on the CLI and, at the same time, strace -f attached to
#     berthd (which follows into the shim and the container), merged into one timeline of
#     milestones (API requests/responses, shim exec, mounts, clone, pivot_root, workload
#     exec/exit, unmount, cgroup removal, removal) plus the time spent in fsync/mount/etc.
#     strace slows every syscall, so read the traced figures as proportions.
#
# Environment: BUILD=1 (0: no cargo build), BIN_DIR, RUNS=10, KEEP=1 (keep the work dir and
# the raw traces).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
RUNS=${RUNS:-10}
if ! command -v strace >/dev/null; then
    echo "== installing strace"
    apt-get install -y strace >/dev/null
fi
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"

make_rootfs
start_daemon BERTH_SHIM_TIMING=1
berth import "$WORK/busybox.tar" busybox:latest >/dev/null
RUN=(run --network none busybox true)
for _ in 1 2 3; do berth run --rm "${RUN[@]:1}" >/dev/null; done

echo "== untraced, $RUNS runs each"
$PY timed --runs "$RUNS" --out "$RES/run_rm.json" -- "$BERTH" run --rm "${RUN[@]:1}"
$PY timed --runs "$RUNS" --out "$RES/create.json" -- "$BERTH" create "${RUN[@]:1}"
# shellcheck disable=SC2046
berth rm -f $(berth ps -aq) >/dev/null
: >"$RES/shimlogs.txt"
ids=()
run_kept=()
for _ in $(seq "$RUNS"); do
    t0=$(date +%s%N)
    id=$(berth run -d "${RUN[@]:1}")
    berth wait "$id" >/dev/null
    t1=$(date +%s%N)
    run_kept+=($(((t1 - t0) / 1000)))
    ids+=("$id")
    {
        echo "--- $id"
        cat "$EXEC/containers/$id/shim.log"
    } >>"$RES/shimlogs.txt"
done
# One `rm` per kept container, timed individually.
rm_us=()
for id in "${ids[@]}"; do
    t0=$(date +%s%N)
    berth rm "$id" >/dev/null
    t1=$(date +%s%N)
    rm_us+=($(((t1 - t0) / 1000)))
done
echo "run_kept_us ${run_kept[*]}" >"$RES/kept.txt"
echo "rm_us ${rm_us[*]}" >>"$RES/kept.txt"

echo "== one traced run --rm (strace --seccomp-bpf: only the listed syscalls stop)"
# berthd restarted under strace -f (follows into the shims and containers); the CLI under its
# own strace. Both with absolute timestamps, merged by timeline.py.
stop_daemon
DTRACE=$WORK/daemon.strace
CTRACE=$WORK/cli.strace
DAEMON_WRAP=(strace -f --seccomp-bpf -ttt -T -s 120 -o "$DTRACE"
    -e trace=execve,clone,clone3,vfork,exit_group,mount,umount2,pivot_root,fsync,fdatasync,accept4,rmdir,unlinkat,rename,seccomp,unshare,setns,mkdir,mkdirat)
start_daemon BERTH_SHIM_TIMING=1
for _ in 1 2; do berth run --rm "${RUN[@]:1}" >/dev/null; done
mark=$(date +%s.%N)
strace -f --seccomp-bpf -ttt -T -s 120 -o "$CTRACE" \
    -e trace=execve,connect,write,writev,sendto,read,readv,recvfrom,exit_group \
    "$BERTH" run --rm "${RUN[@]:1}"
sleep 0.3
stop_daemon

python3 "$HERE/timeline.py" --cli "$CTRACE" --daemon "$DTRACE" --since "$mark" \
    --shimlogs "$RES/shimlogs.txt" --kept "$RES/kept.txt" --run-rm "$RES/run_rm.json" \
    --create "$RES/create.json" --out "$HERE/results/profile.json"
