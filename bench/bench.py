#!/usr/bin/env python3
"""Measurement helpers for bench/run.sh (stdlib only).

Subcommands (each writes one JSON result file; run.sh merges them with `summary`):
  latency  interleaved rounds of container start-to-exit commands
  rss      VmRSS of one process
  shims    VmRSS / PSS of the berth-shim processes under a work directory
  timed    p50/p90 of repeated runs of one command
  parallel N copies of one command started at once: wall time and per-command p50/p99
  stats-streams  one `GET /containers/{id}/stats?stream=true` per container for a while:
           samples each, and the daemon's VmRSS meanwhile
  summary  table with targets, PASS/FAIL, and the merged JSON
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time


def percentile(samples, p):
    """Linear interpolation between closest ranks (numpy's default)."""
    s = sorted(samples)
    if not s:
        return None
    k = (len(s) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def stats(samples):
    if not samples:
        return {"n": 0}
    return {
        "n": len(samples),
        "p50": round(percentile(samples, 50), 2),
        "p90": round(percentile(samples, 90), 2),
        "min": round(min(samples), 2),
        "max": round(max(samples), 2),
        "mean": round(sum(samples) / len(samples), 2),
    }


def run_timed(argv, env=None):
    """Runs argv with stdio detached; returns (ms, returncode, stderr text)."""
    t0 = time.perf_counter()
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, env=env)
    ms = (time.perf_counter() - t0) * 1000.0
    return ms, p.returncode, p.stderr.decode(errors="replace").strip()


def write(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


# ---------------------------------------------------------------- latency

def cmd_latency(a):
    """engines file: {"name": {"argv": [...], "env": {...}}}; "{id}" in argv becomes a
    per-round unique id. Round r runs the engines rotated by r, so every engine takes
    every position equally often."""
    with open(a.engines) as f:
        engines = json.load(f)
    names = list(engines)
    samples = {n: [] for n in names}
    failures = {n: [] for n in names}
    total = a.warmup + a.rounds
    for r in range(total):
        k = r % len(names)
        order = names[k:] + names[:k]
        line = []
        for n in order:
            e = engines[n]
            argv = [x.replace("{id}", f"bb{os.getpid()}-{r}-{names.index(n)}") for x in e["argv"]]
            env = dict(os.environ, **e.get("env", {}))
            ms, rc, err = run_timed(argv, env)
            if rc != 0:
                failures[n].append({"round": r, "rc": rc, "stderr": err[-500:]})
                line.append(f"{n}=FAIL({rc})")
                print(f"  ! {n} round {r} exit {rc}: {err[-300:]}", file=sys.stderr)
                continue
            if r >= a.warmup:
                samples[n].append(ms)
            line.append(f"{n}={ms:.1f}")
        tag = "warm-up" if r < a.warmup else f"round {r - a.warmup + 1:>3}/{a.rounds}"
        print(f"  {tag}: " + "  ".join(line), flush=True)
    out = {n: dict(stats(samples[n]), samples=[round(x, 2) for x in samples[n]],
                   failures=failures[n], argv=engines[n]["argv"]) for n in names}
    write(a.out, {"rounds": a.rounds, "warmup": a.warmup, "engines": out})


# ---------------------------------------------------------------- memory

def status_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return None


def pss_kib(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def cmd_rss(a):
    rss = status_kib(a.pid, "VmRSS")
    out = {"pid": a.pid, "rss_kib": rss, "rss_mib": round(rss / 1024, 2),
           "pss_kib": pss_kib(a.pid)}
    if a.out:
        write(a.out, out)
    print(f"  pid {a.pid}: VmRSS {out['rss_mib']} MiB, Pss {out['pss_kib']} KiB")


def shim_pids(exe, work):
    """Processes whose executable is the shim binary and whose bundle is under `work`."""
    real = os.path.realpath(exe)
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            if os.path.realpath(f"/proc/{d}/exe") != real:
                continue
            with open(f"/proc/{d}/cmdline", "rb") as f:
                cmd = f.read().split(b"\0")
        except OSError:
            continue
        if any(work.encode() in c for c in cmd):
            pids.append(int(d))
    return pids


def cmd_shims(a):
    pids = shim_pids(a.exe, a.work)
    rss, pss = [], []
    for p in pids:
        try:
            r = status_kib(p, "VmRSS")
            s = pss_kib(p)
        except OSError:
            continue
        if r is not None and s is not None:
            rss.append(r)
            pss.append(s)
    n = len(rss)
    out = {
        "count": n,
        "rss_avg_mib": round(sum(rss) / n / 1024, 2) if n else None,
        "rss_max_mib": round(max(rss) / 1024, 2) if n else None,
        "pss_avg_mib": round(sum(pss) / n / 1024, 2) if n else None,
        "pss_max_mib": round(max(pss) / 1024, 2) if n else None,
        "rss_kib": rss,
        "pss_kib": pss,
    }
    write(a.out, out)
    print(f"  {n} shims: RSS avg {out['rss_avg_mib']} max {out['rss_max_mib']} MiB; "
          f"PSS avg {out['pss_avg_mib']} max {out['pss_max_mib']} MiB")


def cmd_shim_pids(a):
    for p in shim_pids(a.exe, a.work):
        print(p)


# ---------------------------------------------------------------- repeated command

def cmd_timed(a):
    samples, fails = [], 0
    for i in range(a.warmup + a.runs):
        ms, rc, err = run_timed(a.argv)
        if rc != 0:
            fails += 1
            print(f"  ! exit {rc}: {err[-300:]}", file=sys.stderr)
            continue
        if i >= a.warmup:
            samples.append(ms)
    out = dict(stats(samples), samples=[round(x, 2) for x in samples], failures=fails,
               argv=a.argv)
    write(a.out, out)
    print(f"  {' '.join(a.argv[:4])}...: p50 {out.get('p50')} ms, p90 {out.get('p90')} ms")


# ---------------------------------------------------------------- OCI bundles

def cmd_runc_default(a):
    """`runc spec`'s default, with /bin/true, no terminal, read-only root."""
    with open(a.config) as f:
        c = json.load(f)
    c["process"]["args"] = ["/bin/true"]
    c["process"]["terminal"] = False
    c["root"] = {"path": "rootfs", "readonly": True}
    write(a.config, c)


def cmd_berth_config(a):
    """Turns the config.json berth's shim wrote for a running container into one runc can
    run repeatedly; prints what changed."""
    with open(a.src) as f:
        c = json.load(f)
    changes = []
    old_root = c.get("root", {}).get("path")
    c.setdefault("root", {})["path"] = "rootfs"
    changes.append(f"root.path {old_root} -> <bundle>/rootfs (plain directory copy, "
                   f"readonly={c['root'].get('readonly', False)})")
    changes.append(f"process.args {c['process'].get('args')} -> ['/bin/true']")
    c["process"]["args"] = ["/bin/true"]
    if c["process"].get("terminal"):
        changes.append("process.terminal true -> false")
    c["process"]["terminal"] = False
    cg = c.get("linux", {}).pop("cgroupsPath", None)
    if cg:
        changes.append(f"linux.cgroupsPath {cg} removed (runc then uses /<id>, unique per round)")
    # Binds of files in the container's own directory (hostname, hosts, resolv.conf):
    # copy them into the bundle so the capture container can be removed.
    for m in c.get("mounts", []):
        src = m.get("source", "")
        if src.startswith(a.container_dir):
            base = os.path.basename(src)
            dst = os.path.join(a.bundle, "files", base)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            with open(src, "rb") as fi, open(dst, "wb") as fo:
                fo.write(fi.read())
            m["source"] = dst
            changes.append(f"mount {m.get('destination')}: source -> bundle copy files/{base}")
    for k in ("hooks",):
        if c.pop(k, None):
            changes.append(f"{k} removed")
    ns = [n.get("type") for n in c.get("linux", {}).get("namespaces", [])]
    changes.append(f"kept: namespaces {ns}, seccomp "
                   f"{'present' if c.get('linux', {}).get('seccomp') else 'ABSENT'}, "
                   f"{len(c.get('mounts', []))} mounts, "
                   f"{len(c['process'].get('capabilities', {}).get('bounding', []))} caps")
    write(os.path.join(a.bundle, "config.json"), c)
    with open(os.path.join(a.bundle, "CHANGES.txt"), "w") as f:
        f.write("\n".join(changes) + "\n")
    for ch in changes:
        print("    " + ch)


def cmd_api(a):
    """GET a path over the daemon's unix socket from this process (no process start-up in
    the figure): one connection per request, `Connection: close`, read to EOF."""
    import socket
    req = f"GET {a.path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
    samples, size = [], 0
    for i in range(a.warmup + a.runs):
        t0 = time.perf_counter()
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(a.socket)
        s.sendall(req)
        chunks = []
        while True:
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
        s.close()
        ms = (time.perf_counter() - t0) * 1000.0
        body = b"".join(chunks)
        if not body.startswith(b"HTTP/1.1 200"):
            print(f"  ! {body[:200]!r}", file=sys.stderr)
            continue
        size = len(body)
        if i >= a.warmup:
            samples.append(ms)
    out = dict(stats(samples), samples=[round(x, 2) for x in samples], bytes=size, path=a.path)
    write(a.out, out)
    print(f"  GET {a.path} (in-process): p50 {out.get('p50')} ms, p90 {out.get('p90')} ms, "
          f"{size} bytes")


def cmd_stats_streams(a):
    """Opens one stats stream per id (all at once, as `berth stats` does), reads them for
    `--seconds`, and reads the daemon's VmRSS every 0.5 s meanwhile."""
    import selectors
    import socket
    sel = selectors.DefaultSelector()
    samples = {}
    for cid in a.ids:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(a.socket)
        s.sendall(f"GET /v1.44/containers/{cid}/stats?stream=true HTTP/1.1\r\n"
                  "Host: x\r\n\r\n".encode())
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, cid)
        samples[cid] = 0
    rss = []
    end = time.monotonic() + a.seconds
    next_rss = time.monotonic()
    while time.monotonic() < end:
        if time.monotonic() >= next_rss:
            rss.append(status_kib(a.pid, "VmRSS"))
            next_rss += 0.5
        for key, _ in sel.select(timeout=0.1):
            data = key.fileobj.recv(65536)
            # One JSON sample per line ("read" appears once per sample).
            samples[key.data] += data.count(b'"read":')
    for key in list(sel.get_map().values()):
        key.fileobj.close()
    counts = list(samples.values())
    out = {
        "streams": len(counts),
        "seconds": a.seconds,
        "samples_min": min(counts) if counts else 0,
        "samples_max": max(counts) if counts else 0,
        "rss_max_mib": round(max(rss) / 1024, 2) if rss else None,
        "rss_kib": rss,
    }
    write(a.out, out)
    print(f"  {out['streams']} streams for {a.seconds} s: {out['samples_min']}-"
          f"{out['samples_max']} samples each; berthd VmRSS max {out['rss_max_mib']} MiB")


# ---------------------------------------------------------------- summary

def cmd_parallel(a):
    import threading
    results = [None] * a.n
    go = threading.Event()

    def one(i):
        go.wait()
        results[i] = run_timed(a.argv)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(a.n)]
    for t in threads:
        t.start()
    t0 = time.perf_counter()
    go.set()
    for t in threads:
        t.join()
    wall = (time.perf_counter() - t0) * 1000.0
    ok = [r[0] for r in results if r[1] == 0]
    fails = [r[2][-300:] for r in results if r[1] != 0]
    for f in fails[:5]:
        print(f"  ! {f}", file=sys.stderr)
    out = dict(stats(ok), p99=round(percentile(ok, 99), 2) if ok else None,
               wall_ms=round(wall, 1), n=a.n, failures=len(fails), argv=a.argv)
    print(f"  {a.n} at once: wall {out['wall_ms']} ms, per command p50 {out.get('p50')} "
          f"p99 {out['p99']} ms, {len(fails)} failed")
    write(a.out, out)


def cmd_throughput(a):
    """engines file as for `latency`; each engine moves `mib` MiB, `runs` rounds, the
    engines rotated each round as in `latency`. The rate is the volume over the whole wall
    time (start and exit included: conservative)."""
    with open(a.engines) as f:
        engines = json.load(f)
    names = list(engines)
    rates = {n: [] for n in names}
    fails = {n: 0 for n in names}
    for r in range(a.runs):
        k = r % len(names)
        line = []
        for n in names[k:] + names[:k]:
            env = dict(os.environ, **engines[n].get("env", {}))
            t0 = time.perf_counter()
            p = subprocess.run(engines[n]["argv"], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
            wall = time.perf_counter() - t0
            if p.returncode != 0:
                fails[n] += 1
                line.append(f"{n}=FAIL({p.returncode})")
                print(f"  ! {n}: {p.stderr[-300:]!r}", file=sys.stderr)
                continue
            rates[n].append(a.mib / wall)
            line.append(f"{n}={a.mib / wall:.1f}")
        print(f"  round {r + 1}/{a.runs} (MiB/s): " + "  ".join(line), flush=True)
    out = {n: dict(mib_per_s=[round(x, 1) for x in rates[n]], failures=fails[n],
                   median_mib_per_s=round(statistics.median(rates[n]), 1) if rates[n] else None,
                   argv=engines[n]["argv"]) for n in names}
    write(a.out, {"mib": a.mib, "runs": a.runs, "engines": out})


def load(d, name):
    p = os.path.join(d, name + ".json")
    if not os.path.exists(p):
        return None
    with open(p) as f:
        return json.load(f)


def cmd_summary(a):
    d = a.dir
    lat = load(d, "latency")
    exe = load(d, "exec")
    tty = load(d, "tty")
    par = load(d, "parallel")
    par_lc = load(d, "parallel_lc")
    idle = load(d, "berthd_idle")
    after = load(d, "berthd_after")
    shims = load(d, "shims")
    ps = load(d, "ps")
    api = load(d, "ps_api")
    inproc = load(d, "ps_api_inproc")
    meta = load(d, "meta") or {}
    rows, targets = [], []

    def verdict(ok):
        return "PASS" if ok else "FAIL"

    print()
    print("=" * 78)
    print(f"berth bench  {meta.get('date', '')}  commit {meta.get('commit', '?')}  "
          f"kernel {meta.get('kernel', '?')}")
    print(f"load average at start {meta.get('loadavg_start', '?')}, at end "
          f"{meta.get('loadavg_end', '?')} ({meta.get('cpus', '?')} CPUs; other work on the host "
          f"skews the latencies)")
    print("=" * 78)
    if lat:
        eng = lat["engines"]
        base = eng.get("runc-default", {}).get("p50")
        print(f"\nstart-to-exit latency, {lat['rounds']} interleaved rounds "
              f"(+{lat['warmup']} warm-up), ms")
        print(f"  {'engine':<16}{'p50':>9}{'p90':>9}{'min':>9}{'max':>9}{'x runc p50':>12}"
              f"{'fails':>7}")
        for n, e in eng.items():
            ratio = round(e["p50"] / base, 2) if base and e.get("p50") else None
            e["ratio_to_runc_default_p50"] = ratio
            print(f"  {n:<16}{e.get('p50', '-'):>9}{e.get('p90', '-'):>9}{e.get('min', '-'):>9}"
                  f"{e.get('max', '-'):>9}{(str(ratio) + 'x') if ratio else '-':>12}"
                  f"{len(e['failures']):>7}")
        if meta.get("docker") != "present":
            print("  docker: not present")
        b = eng.get("berth", {})
        if base and b.get("p50"):
            r = b["p50"] / base
            targets.append(("berth run p50 <= 0.5x runc-default p50",
                            f"{r:.2f}x ({b['p50']} / {base} ms)", verdict(r <= 0.5)))
        bb = eng.get("berth-bridge", {})
        if base and bb.get("p50"):
            r = bb["p50"] / base
            targets.append(("berth run on the default bridge p50 <= 0.6x runc-default p50",
                            f"{r:.2f}x ({bb['p50']} / {base} ms)", verdict(r <= 0.6)))
    if exe:
        eng = exe["engines"]
        be, rx = eng.get("berth-exec", {}), eng.get("runc-exec", {})
        print(f"\nexec latency, {exe['rounds']} interleaved rounds, ms")
        print(f"  {'engine':<16}{'p50':>9}{'p90':>9}{'min':>9}{'max':>9}{'fails':>7}")
        for n, e in eng.items():
            print(f"  {n:<16}{e.get('p50', '-'):>9}{e.get('p90', '-'):>9}{e.get('min', '-'):>9}"
                  f"{e.get('max', '-'):>9}{len(e['failures']):>7}")
        if be.get("p50") and rx.get("p50"):
            r = be["p50"] / rx["p50"]
            targets.append(("exec primitive p50 <= 0.25x runc exec p50",
                            f"{r:.2f}x ({be['p50']} / {rx['p50']} ms)", verdict(r <= 0.25)))
        cli, rr = eng.get("berth-exec-cli", {}), eng.get("runc-default", {})
        if cli.get("p50") and rr.get("p50"):
            r = cli["p50"] / rr["p50"]
            targets.append(("berth exec CTR true p50 <= 0.2x runc run p50",
                            f"{r:.2f}x ({cli['p50']} / {rr['p50']} ms)", verdict(r <= 0.2)))
        de = eng.get("docker-exec", {})
        if de.get("p50") and rr.get("p50"):
            print(f"  docker exec / runc run p50: {de['p50'] / rr['p50']:.2f}x")
    if tty:
        print(f"\n-t throughput, {tty['mib']} MiB through a terminal, {tty['runs']} rounds, MiB/s")
        for n, e in tty["engines"].items():
            print(f"  {n:<16} median {e['median_mib_per_s']}  {e['mib_per_s']}  "
                  f"{e['failures']} failed")
        b = tty["engines"].get("berth-t", {})
        bare = tty["engines"].get("bare-pty", {})
        if b.get("median_mib_per_s") is not None:
            ceiling = (f", bare pty {bare['median_mib_per_s']}"
                       if bare.get("median_mib_per_s") else "")
            targets.append((f"one -t session >= 100 MiB/s ({tty['mib']} MiB, terminal and log)",
                            f"median {b['median_mib_per_s']} MiB/s{ceiling}",
                            verdict(b["median_mib_per_s"] >= 100)))
    for name, p in (("own runtime", par), ("libcontainer", par_lc)):
        if p:
            print(f"\n{p['n']} started at once ({name}): wall {p['wall_ms']} ms, per container "
                  f"p50 {p.get('p50')} p99 {p.get('p99')} ms, {p['failures']} failed")
    if idle:
        targets.append(("berthd idle RSS <= 15 MiB", f"{idle['rss_mib']} MiB",
                        verdict(idle["rss_mib"] <= 15)))
    if shims and shims.get("count"):
        targets.append((f"shim RSS <= 1.5 MiB each ({shims['count']} running)",
                        f"avg {shims['rss_avg_mib']} / max {shims['rss_max_mib']} MiB",
                        verdict(shims["rss_max_mib"] <= 1.5)))
        targets.append((f"shim PSS <= 0.5 MiB each ({shims['count']} running)",
                        f"avg {shims['pss_avg_mib']} / max {shims['pss_max_mib']} MiB",
                        verdict(shims["pss_max_mib"] <= 0.5)))
    if ps and ps.get("p50") is not None:
        targets.append((f"berth ps -a, {meta.get('ps_containers', '?')} containers, <= 20 ms",
                        f"p50 {ps['p50']} / p90 {ps['p90']} ms", verdict(ps["p50"] <= 20)))
    print("\nmemory and ps")
    if idle:
        print(f"  berthd idle (after start + one ps): VmRSS {idle['rss_mib']} MiB, "
              f"Pss {round((idle.get('pss_kib') or 0) / 1024, 2)} MiB")
    if after:
        print(f"  berthd after the whole run:          VmRSS {after['rss_mib']} MiB")
    if shims:
        print(f"  berth-shim x{shims['count']}: RSS avg {shims['rss_avg_mib']} max "
              f"{shims['rss_max_mib']} MiB; PSS avg {shims['pss_avg_mib']} max "
              f"{shims['pss_max_mib']} MiB")
    if ps:
        print(f"  berth ps -a ({meta.get('ps_containers', '?')} containers, "
              f"{meta.get('ps_running', '?')} running): p50 {ps['p50']} p90 {ps['p90']} ms")
    if api:
        print(f"  GET /containers/json?all=1 (curl):    p50 {api['p50']} p90 {api['p90']} ms"
              f"  (includes curl's own start-up)")
    if inproc:
        print(f"  GET /containers/json?all=1 (python):  p50 {inproc['p50']} p90 {inproc['p90']} ms"
              f"  (in-process, no exec; {inproc['bytes']} bytes)")
    print("\ntargets")
    for t, v, ok in targets:
        print(f"  {t:<46}{v:<32}{ok}")
    print()
    merged = {
        "meta": meta,
        "latency": lat,
        "exec": exe,
        "tty": tty,
        "parallel": par,
        "parallel_libcontainer": par_lc,
        "berthd_idle": idle,
        "berthd_after": after,
        "shims": shims,
        "ps": ps,
        "ps_api": api,
        "ps_api_inproc": inproc,
        "targets": [{"target": t, "value": v, "result": ok} for t, v, ok in targets],
    }
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    write(a.out, merged)
    print(f"JSON: {a.out}")


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("latency")
    p.add_argument("--engines", required=True)
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--out", required=True)
    p.set_defaults(fn=cmd_latency)
    p = sub.add_parser("rss")
    p.add_argument("pid", type=int)
    p.add_argument("--out")
    p.set_defaults(fn=cmd_rss)
    p = sub.add_parser("shims")
    p.add_argument("--exe", required=True)
    p.add_argument("--work", required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(fn=cmd_shims)
    p = sub.add_parser("shim-pids")
    p.add_argument("--exe", required=True)
    p.add_argument("--work", required=True)
    p.set_defaults(fn=cmd_shim_pids)
    p = sub.add_parser("timed")
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--out", required=True)
    p.add_argument("argv", nargs=argparse.REMAINDER)
    p.set_defaults(fn=cmd_timed)
    p = sub.add_parser("parallel")
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--out", required=True)
    p.add_argument("argv", nargs=argparse.REMAINDER)
    p.set_defaults(fn=cmd_parallel)
    p = sub.add_parser("runc-default-config")
    p.add_argument("config")
    p.set_defaults(fn=cmd_runc_default)
    p = sub.add_parser("berth-config")
    p.add_argument("--src", required=True)
    p.add_argument("--container-dir", required=True)
    p.add_argument("--bundle", required=True)
    p.set_defaults(fn=cmd_berth_config)
    p = sub.add_parser("api")
    p.add_argument("--socket", required=True)
    p.add_argument("--path", required=True)
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--out", required=True)
    p.set_defaults(fn=cmd_api)
    p = sub.add_parser("throughput")
    p.add_argument("--mib", type=int, required=True)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--engines", required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(fn=cmd_throughput)
    p = sub.add_parser("stats-streams")
    p.add_argument("--socket", required=True)
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--out", required=True)
    p.add_argument("ids", nargs="+")
    p.set_defaults(fn=cmd_stats_streams)
    p = sub.add_parser("summary")
    p.add_argument("--dir", required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(fn=cmd_summary)
    a = ap.parse_args()
    if getattr(a, "argv", None) and a.argv[0] == "--":
        a.argv = a.argv[1:]
    a.fn(a)


if __name__ == "__main__":
    main()
