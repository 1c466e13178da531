#!/usr/bin/env bash
# `berth volume export` / `import` against GNU tar on the same data in the same run (issue
# 15, backup and restore; target: berth at least 0.9x tar's throughput both ways). See
# bench/README.md. Needs root.
#
# The data: SIZE_MIB (default 1024) of mixed files in a volume: half in four large files,
# half in small ones (4-60 KiB, 100 directories). Each round (ROUNDS, default 3, after one
# uncounted warm-up that also fills the page cache) times, in an order rotated by round:
#   export  berth volume export V | cat >/dev/null   vs   tar -C DIR -cf - . | cat >/dev/null
#   export  berth volume export V >/dev/null         vs   tar -C DIR -cf - . >/dev/null
#   import  berth volume import NEW ARCHIVE          vs   tar -C NEWDIR -xf ARCHIVE
# GNU tar notices an archive that is /dev/null and then reads no file content at all
# (its `dev_null_output`): the `>/dev/null` pair is shown as asked, the `| cat` pair is
# the fair one (both read and write every byte). ARCHIVE is GNU tar's own (`tar -cf`);
# each import goes into a fresh empty volume or directory, removed untimed.
#
# Environment:
#   SIZE_MIB=1024  the volume's size
#   ROUNDS=3       timed rounds
#   BUILD=1        0: do not run scripts/build-release.sh
#   BIN_DIR=DIR    where berthd/berth/berth-shim are (default: <repo>/target/release)
#   KEEP=1         keep the work directory
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
SIZE_MIB=${SIZE_MIB:-1024}
ROUNDS=${ROUNDS:-3}
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"

start_daemon
berth volume create bench >/dev/null
DATA=$ROOT/volumes/bench/_data
echo "== $SIZE_MIB MiB of mixed files in volume bench"
python3 - "$DATA" "$SIZE_MIB" <<'EOF'
import os, random, sys
root, size = sys.argv[1], int(sys.argv[2]) << 20
rng = random.Random(15)
block = rng.randbytes(1 << 20)
def fill(path, n):
    with open(path, "wb") as f:
        while n > 0:
            k = min(n, len(block))
            off = rng.randrange(0, len(block) - k + 1)
            f.write(block[off:off + k])
            n -= k
big = size // 2
for i in range(4):
    fill(f"{root}/big{i}.bin", big // 4)
left, n = size - big, 0
while left > 0:
    d = f"{root}/d{n % 100:02d}"
    os.makedirs(d, exist_ok=True)
    k = min(left, rng.randrange(4, 61) << 10)
    fill(f"{d}/f{n}", k)
    left -= k
    n += 1
print(f"{n} small files, 4 large")
EOF
tar -C "$DATA" -cf "$WORK/gnu.tar" .
ls -l "$WORK/gnu.tar" | awk '{printf "archive: %d MiB\n", $5 / 1048576}'

python3 - "$BERTH" "$DATA" "$WORK" "$ROUNDS" "$RES/volume.json" <<'EOF'
import json, os, shutil, statistics, subprocess, sys, time
berth, data, work, rounds, out = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
archive = f"{work}/gnu.tar"
seq = [0]

def sh(cmd):
    subprocess.run(cmd, shell=True, check=True)

def fresh_volume():
    seq[0] += 1
    name = f"imp{seq[0]}"
    sh(f"{berth} volume create {name} >/dev/null")
    return name

def fresh_dir():
    seq[0] += 1
    d = f"{work}/x{seq[0]}"
    os.mkdir(d)
    return d

cases = {
    "export|cat berth": (None, lambda _: f"{berth} volume export bench | cat >/dev/null", None),
    "export|cat tar": (None, lambda _: f"tar -C {data} -cf - . | cat >/dev/null", None),
    "export>null berth": (None, lambda _: f"{berth} volume export bench >/dev/null", None),
    "export>null tar": (None, lambda _: f"tar -C {data} -cf - . >/dev/null", None),
    "import berth": (fresh_volume, lambda v: f"{berth} volume import {v} {archive}",
                     lambda v: sh(f"{berth} volume rm {v} >/dev/null")),
    "import tar": (fresh_dir, lambda d: f"tar -C {d} -xf {archive}",
                   lambda d: shutil.rmtree(d)),
}
times = {k: [] for k in cases}
names = list(cases)
for r in range(rounds + 1):
    order = names[r % len(names):] + names[:r % len(names)]
    for k in order:
        setup, cmd, teardown = cases[k]
        arg = setup() if setup else None
        t0 = time.perf_counter()
        sh(cmd(arg))
        dt = time.perf_counter() - t0
        if teardown:
            teardown(arg)
        if r > 0:
            times[k].append(dt)
res = {k: round(statistics.median(v), 3) for k, v in times.items()}
json.dump({"seconds": res, "all": times}, open(out, "w"), indent=1)
ok = lambda b: "PASS" if b else "FAIL"
for what in ["export|cat", "export>null", "import"]:
    b, t = res[f"{what} berth"], res[f"{what} tar"]
    ratio = t / b
    note = " (tar skips reading into /dev/null)" if what == "export>null" else ""
    print(f"{what:12} berth {b:7.3f} s   tar {t:7.3f} s   berth/tar throughput {ratio:.2f}x "
          f"(target >= 0.9x): {ok(ratio >= 0.9)}{note}")
EOF
