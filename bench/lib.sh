# Shared by bench/run.sh and bench/profile.sh (sourced; needs HERE and REPO set).
# Builds (unless BUILD=0), makes a private work directory with copies of the binaries,
# starts/stops a berthd on it, makes the busybox rootfs and image, and cleans up on exit.

BUILD=${BUILD:-1}
BIN_DIR=${BIN_DIR:-$(realpath "${CARGO_TARGET_DIR:-$REPO/target}")/release}
KEEP=${KEEP:-0}
PY="python3 $HERE/bench.py"

if [ "$(id -u)" != 0 ]; then
    echo "$0 needs root (containers)" >&2
    exit 1
fi
command -v python3 >/dev/null || { echo "python3 is required" >&2; exit 1; }
BUSYBOX=$(command -v busybox || true)
[ -n "$BUSYBOX" ] || { echo "busybox (busybox-static) is required" >&2; exit 1; }

if [ "$BUILD" = 1 ]; then
    echo "== scripts/build-release.sh"
    (cd "$REPO" && scripts/build-release.sh)
fi
for b in berthd berth berth-shim berth-shim-libcontainer; do
    [ -x "$BIN_DIR/$b" ] || { echo "$BIN_DIR/$b missing (BUILD=1?)" >&2; exit 1; }
done

# Short paths: shim sockets live at <exec-root>/containers/<64 hex>/shim.sock (108-byte limit).
WORK=$(mktemp -d /tmp/bb.XXXX)
ROOT=$WORK/root
EXEC=$WORK/run
SOCK=$WORK/s.sock
RUNC_ROOT=$WORK/runc
RES=$WORK/results
LOG=$WORK/berthd.log
mkdir -p "$RES" "$RUNC_ROOT" "$WORK/bin"
# A private copy: a parallel `cargo build` cannot swap the binaries mid-run (berthd finds
# berth-shim beside itself).
cp "$BIN_DIR"/{berthd,berth,berth-shim,berth-shim-libcontainer} "$WORK/bin/"
BIN_DIR=$WORK/bin
export BERTH_HOST=unix://$SOCK
BERTH="$BIN_DIR/berth"
DAEMON_PID=
DOCKER_IMAGE=
EXTRA_PIDS=
DAEMON_WRAP=()
DAEMON_ARGS=()
# A second daemon on the libcontainer runtime (start_lc_daemon), for comparisons.
LC_ROOT=$WORK/root-lc
LC_EXEC=$WORK/run-lc
LC_SOCK=$WORK/lc.sock
LC_PID=
LC_JOB=

berth() { "$BERTH" "$@"; }

stop_daemon() {
    [ -n "$DAEMON_PID" ] || return 0
    kill -TERM "$DAEMON_PID" 2>/dev/null || true
    for _ in $(seq 50); do
        kill -0 "$DAEMON_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$DAEMON_PID" 2>/dev/null || true
    wait 2>/dev/null || true
    DAEMON_PID=
}

cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    echo "== cleanup"
    for p in $EXTRA_PIDS; do
        kill -INT "$p" 2>/dev/null
    done
    if [ -n "$DAEMON_PID" ] && kill -0 "$DAEMON_PID" 2>/dev/null; then
        ids=$(timeout 20 "$BERTH" ps -aq 2>/dev/null)
        # shellcheck disable=SC2086
        [ -n "$ids" ] && timeout 120 "$BERTH" rm -f $ids >/dev/null 2>&1
        # User-defined networks: their bridges and tables go with them.
        timeout 60 "$BERTH" network prune -f >/dev/null 2>&1
    fi
    # The libcontainer daemon first: stop_daemon's `wait` waits for every job.
    if [ -n "$LC_PID" ] && kill -0 "$LC_PID" 2>/dev/null; then
        ids=$(BERTH_HOST=unix://$LC_SOCK timeout 20 "$BERTH" ps -aq 2>/dev/null)
        # shellcheck disable=SC2086
        [ -n "$ids" ] && BERTH_HOST=unix://$LC_SOCK timeout 120 "$BERTH" rm -f $ids >/dev/null 2>&1
    fi
    # By every pid it may have had.
    for p in $LC_PID $LC_JOB $(pgrep -f -- "--exec-root $LC_EXEC"); do
        kill -KILL "$p" 2>/dev/null
    done
    stop_daemon
    # The socket redirect's pins of this run's berthd (its programs detach with them).
    rm -rf "/sys/fs/bpf/berth-$(printf %s "$ROOT" | sha256sum | cut -c1-12)"
    # Whatever survived: container inits (pid files), then shims of this work directory.
    for f in "$EXEC"/containers/*/pid "$LC_EXEC"/containers/*/pid; do
        [ -f "$f" ] && kill -KILL "$(cat "$f")" 2>/dev/null
    done
    for p in $($PY shim-pids --exe "$BIN_DIR/berth-shim" --work "$WORK" 2>/dev/null); do
        kill -KILL "$p" 2>/dev/null
    done
    for id in $(runc --root "$RUNC_ROOT" list -q 2>/dev/null); do
        runc --root "$RUNC_ROOT" delete -f "$id" >/dev/null 2>&1
    done
    if [ -n "$DOCKER_IMAGE" ]; then
        env -u DOCKER_HOST docker rmi -f "$DOCKER_IMAGE" >/dev/null 2>&1
    fi
    sleep 0.2
    # Mounts below the work directory (container rootfs overlays), deepest first.
    awk -v w="$WORK" '$5 ~ "^"w {print $5}' /proc/self/mountinfo | sort -r |
        while read -r m; do umount -l "$m" 2>/dev/null; done
    # Cgroups of this run's containers only (normally their shims removed them).
    for d in "$EXEC"/containers/*/ "$LC_EXEC"/containers/*/; do
        [ -d "$d" ] && rmdir /sys/fs/cgroup/*/berth/"$(basename "$d")" 2>/dev/null
    done
    if [ "$KEEP" = 1 ]; then
        echo "kept $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'echo "interrupted"; exit 130' INT
trap 'exit 143' TERM

# start_daemon [VAR=value...]: the assignments go into berthd's environment (and so its
# shims'). DAEMON_WRAP=(cmd args...) runs berthd under that command (e.g. strace).
start_daemon() {
    local job p
    # Own session: a Ctrl-C reaches the script, which then removes the containers in order.
    env "$@" setsid "${DAEMON_WRAP[@]}" "$BIN_DIR/berthd" --root "$ROOT" --exec-root "$EXEC" \
        -H "unix://$SOCK" "${DAEMON_ARGS[@]}" </dev/null >>"$LOG" 2>&1 &
    job=$!
    DAEMON_PID=
    for _ in $(seq 200); do
        if [ -S "$SOCK" ] && berth version >/dev/null 2>&1; then
            # The berthd process itself (not setsid's fork or a wrapper).
            for p in $(pgrep -f -- "--exec-root $EXEC"); do
                if [ "$(readlink "/proc/$p/exe")" = "$(readlink -f "$BIN_DIR/berthd")" ]; then
                    DAEMON_PID=$p
                fi
            done
            [ -n "$DAEMON_PID" ] && return 0
        fi
        kill -0 "$job" 2>/dev/null || break
        sleep 0.05
    done
    echo "berthd did not come up:" >&2
    cat "$LOG" >&2
    exit 1
}

# start_lc_daemon: a second berthd with `--runtime libcontainer` on $LC_SOCK (its own root
# and exec-root, no bridge: berth0 is the first daemon's), with the busybox image imported;
# LC_PID is its pid.
start_lc_daemon() {
    setsid "$BIN_DIR/berthd" --root "$LC_ROOT" --exec-root "$LC_EXEC" -H "unix://$LC_SOCK" \
        --runtime libcontainer --bridge none --socket-redirect false </dev/null >>"$WORK/berthd-lc.log" 2>&1 &
    LC_JOB=$!
    for _ in $(seq 200); do
        if [ -S "$LC_SOCK" ] && BERTH_HOST=unix://$LC_SOCK berth version >/dev/null 2>&1; then
            LC_PID=$(pgrep -f -- "--exec-root $LC_EXEC" | head -1)
            BERTH_HOST=unix://$LC_SOCK berth import "$WORK/busybox.tar" busybox:latest >/dev/null
            return 0
        fi
        sleep 0.05
    done
    echo "berthd (libcontainer) did not come up:" >&2
    cat "$WORK/berthd-lc.log" >&2
    exit 1
}

# make_rootfs: $WORK/rootfs (static busybox, its applets, /etc/passwd, /etc/group; as the
# e2e harness builds it) and $WORK/busybox.tar of it.
make_rootfs() {
    echo "== busybox rootfs ($BUSYBOX)"
    RFS=$WORK/rootfs
    mkdir -p "$RFS"/{bin,etc,tmp,root,home,var,proc,sys,dev}
    chmod 1777 "$RFS/tmp"
    cp "$BUSYBOX" "$RFS/bin/busybox"
    for a in $("$BUSYBOX" --list); do
        [ "$a" = busybox ] || ln -s busybox "$RFS/bin/$a"
    done
    printf 'root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/usr/sbin:/bin/false\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$RFS/etc/passwd"
    printf 'root:x:0:\ndaemon:x:1:\ntty:x:5:\nnogroup:x:65534:\n' >"$RFS/etc/group"
    tar -C "$RFS" --owner=0 --group=0 -cf "$WORK/busybox.tar" .
}

commit=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git -C "$REPO" status --porcelain -- crates 2>/dev/null | head -1)
if [ -n "$dirty" ]; then commit="$commit+dirty"; fi
