#!/usr/bin/env python3
"""Merges the CLI and daemon straces of one `berth run --rm` (bench/profile.sh) into a
timeline of milestones and a table of phases; adds the shim's own timings and the untraced
figures. Stdlib only."""

import argparse
import json
import os
import re
import statistics

LINE = re.compile(r"^(\d+)\s+(\d+\.\d+)\s+(.*)$")
DUR = re.compile(r"<(\d+\.\d+)>\s*$")


def parse(path):
    """[(ts, pid, text, dur)] in file order; `<... resumed>` lines keep their own time."""
    out = []
    with open(path, errors="replace") as f:
        for line in f:
            m = LINE.match(line.rstrip("\n"))
            if not m:
                continue
            d = DUR.search(m.group(3))
            out.append((float(m.group(2)), int(m.group(1)), m.group(3),
                        float(d.group(1)) if d else 0.0))
    return out


def cli_milestones(ev):
    ms = []
    pending = {}
    for ts, pid, text, dur in ev:
        if text.startswith("execve(") and not ms:
            ms.append((ts, "cli: process start (execve)"))
        m = re.search(r'(?:writev?|sendto)\(\d+, .*?"(GET|POST|HEAD|DELETE) (/[^ ?"\\]*)', text)
        if m:
            path = re.sub(r"/v1\.\d+", "", m.group(2))
            path = re.sub(r"[0-9a-f]{64}", "ID", path)
            what = path.rsplit("/", 1)[-1] or path
            pending_key = what
            pending[pending_key] = ts
            ms.append((ts, f"cli: -> {m.group(1)} {path}"))
            continue
        m = re.search(r'"HTTP/1\.1 (\d+)', text)
        if m and (text.startswith("recvfrom(") or text.startswith("read(")
                  or "resumed>" in text):
            ms.append((ts + dur, f"cli: <- {m.group(1)} response"))
            continue
        if "StatusCode" in text:
            ms.append((ts + dur, "cli: <- wait result (container exited and removed)"))
            continue
        if text.startswith("exit_group("):
            ms.append((ts, "cli: exit_group"))
    return ms


def daemon_milestones(ev, since, shim_exe="berth-shim"):
    ms = []
    agg = {}
    shim_pids, workload = set(), None
    seen_overlay = False
    for ts, pid, text, dur in ev:
        if ts < since:
            continue
        name = text.split("(", 1)[0]
        if name in ("fsync", "fdatasync", "mount", "umount2", "rename", "unlinkat", "rmdir",
                    "clone", "clone3", "execve", "pivot_root", "seccomp", "unshare", "setns",
                    "mkdir", "mkdirat"):
            who = "shim+container" if pid in shim_pids or pid == workload else "berthd"
            a = agg.setdefault(f"{who}: {name}", [0, 0.0])
            a[0] += 1
            a[1] += dur
        if text.startswith("execve(") and shim_exe in text.split(",", 1)[0]:
            shim_pids.add(pid)
            ms.append((ts, "berthd: exec berth-shim"))
        elif text.startswith("execve(") and shim_pids and workload is None:
            workload = pid
            ms.append((ts, "container: execve of the workload"))
        elif re.match(r"clone3?\(", text) and pid in shim_pids:
            m = re.search(r"= (\d+)", text)
            if m:
                shim_pids.add(int(m.group(1)))
                if "CLONE_PARENT" in text:
                    ms.append((ts, "libcontainer: clone of the container init"))
                elif "flags=0" in text or "SIGCHLD" in text:
                    ms.append((ts, f"shim: fork (pid {m.group(1)})"))
        elif text.startswith('mount("overlay"') and not seen_overlay:
            seen_overlay = True
            ms.append((ts, "shim: overlay rootfs mounted"))
        elif text.startswith("pivot_root("):
            ms.append((ts, "container: pivot_root"))
        elif re.match(r"(unshare|setns)\(", text) and pid in shim_pids:
            ms.append((ts + dur, f"container: {text.split(' =')[0][:70]} ({1000 * dur:.2f} ms)"))
        elif text.startswith("seccomp("):
            ms.append((ts, "container: seccomp filter loaded"))
        elif text.startswith("+++ exited") and pid == workload:
            ms.append((ts, "container: workload exited"))
        elif text.startswith("umount2(") and "rootfs" in text and pid in shim_pids and "= 0" in text:
            ms.append((ts + dur, "shim: rootfs unmounted"))
        elif 'exit.json' in text and text.startswith("rename("):
            ms.append((ts, "shim: exit.json written"))
        elif text.startswith("+++ exited") and pid in shim_pids and pid != workload:
            ms.append((ts, f"process {pid} (shim side) exited"))
        elif (text.startswith("unlinkat(AT_FDCWD") and "AT_REMOVEDIR" in text
              and re.search(r"/run/containers/[0-9a-f]{64}\"", text) and pid not in shim_pids):
            ms.append((ts + dur, "berthd: bundle directory removed (end of --rm)"))
        elif (text.startswith("unlinkat(AT_FDCWD") and "AT_REMOVEDIR" in text
              and "/root/containers/" in text and pid not in shim_pids):
            ms.append((ts + dur, "berthd: container directory removed"))
    # Also: the first workload pid exit is what the shim waits for.
    return ms, agg


def shim_phases(path):
    """Medians of the shim's BERTH_SHIM_TIMING lines over all kept runs (ms)."""
    runs, cur = [], None
    pat = re.compile(r"timing: (.+?) (?:at|after|took) ([\d.]+)(ns|µs|us|ms|s)$")
    scale = {"ns": 1e-6, "µs": 1e-3, "us": 1e-3, "ms": 1.0, "s": 1000.0}
    with open(path, errors="replace") as f:
        for line in f:
            line = line.strip()
            if line.startswith("---"):
                cur = {}
                runs.append(cur)
                continue
            m = pat.match(line)
            if m and cur is not None:
                cur[m.group(1)] = float(m.group(2)) * scale[m.group(3)]
    keys = []
    for r in runs:
        for k in r:
            if k not in keys:
                keys.append(k)
    return {k: round(statistics.median([r[k] for r in runs if k in r]), 2) for k in keys}, len(runs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cli", required=True)
    ap.add_argument("--daemon", required=True)
    ap.add_argument("--since", type=float, default=0.0)
    ap.add_argument("--shimlogs")
    ap.add_argument("--kept")
    ap.add_argument("--run-rm")
    ap.add_argument("--create")
    ap.add_argument("--out")
    a = ap.parse_args()

    result = {}
    print("\n== untraced (p50 of the runs)")
    if a.run_rm:
        r = json.load(open(a.run_rm))
        print(f"  berth run --rm ... true:             p50 {r['p50']} ms  p90 {r['p90']} ms")
        result["run_rm"] = r
    if a.create:
        r = json.load(open(a.create))
        print(f"  berth create ...:                    p50 {r['p50']} ms  p90 {r['p90']} ms")
        result["create"] = r
    if a.kept:
        for line in open(a.kept):
            k, *vals = line.split()
            vals = [int(v) / 1000.0 for v in vals]
            if vals:
                label = {"run_kept_us": "berth run -d ... + berth wait", "rm_us": "berth rm (exited)"}[k]
                print(f"  {label + ':':<37}p50 {statistics.median(vals):.2f} ms")
                result[k] = vals

    if a.shimlogs:
        phases, n = shim_phases(a.shimlogs)
        print(f"\n== shim phases (BERTH_SHIM_TIMING=1, median of {n} runs, ms since the shim "
              f"began creating; `reported` and `done` count from its start)")
        prev = 0.0
        notes = {
            "seccomp filter ready": "read spec, resolve user/caps, precompiled seccomp BPF",
            "config written": "OCI config.json built and written (libcontainer)",
            "built": "libcontainer create: cgroups, namespaces, mounts, pivot_root, init waits",
            "checked": "user, groups and working directory resolved in the image",
            "cgroup created": "v2: the cgroup made before the clone (CLONE_INTO_CGROUP)",
            "cgroup planned": "v1: its directories named (made after the clone)",
            "cgroup made": "v1: cgroup dirs and limits, while the init mounts",
            "spawned": "init cloned into its namespaces, pid file written",
            "init go": "init: /proc, /dev, /sys mounted, the shim's go received",
            "init joined cgroup": "init: 0 into each v1 tasks file",
            "init mounts done": "init: cgroup views, /etc files, binds, devices",
            "init pivoted": "init: pivot_root, old root detached",
            "init masked": "init: masked and read-only paths",
            "execve": "init: rlimits, seccomp, capabilities, user; execve",
            "started": "workload execve confirmed (exec-status pipe EOF)",
            "reported": "pid reported to berthd",
        }
        timed = sorted(
            (v, k) for k, v in phases.items() if k not in ("teardown", "done"))
        for v, k in timed:
            print(f"  {k:<22} at {v:>7.2f}  (+{v - prev:6.2f})  {notes.get(k, '')}")
            prev = v
        if "teardown" in phases:
            print(f"  {'teardown':<22} took {phases['teardown']:>5.2f}  cgroup rmdirs, state dir, "
                  f"rootfs unmount")
        if "done" in phases:
            print(f"  {'done':<22} at {phases['done']:>7.2f}  (workload ran and exited, "
                  f"waiters answered)")
        result["shim_phases_ms"] = phases

    cli = parse(a.cli)
    dmn = parse(a.daemon)
    cm = cli_milestones(cli)
    t0 = cm[0][0] if cm else a.since
    dm, agg = daemon_milestones(dmn, t0)
    events = sorted(cm + dm)
    print("\n== one traced `berth run --rm` (strace --seccomp-bpf; only a few syscalls stop, "
          "so\n   the inflation is small but not zero). ms since the CLI's execve:")
    prev = t0
    rows = []
    for ts, what in events:
        print(f"  {1000 * (ts - t0):8.2f}  (+{1000 * (ts - prev):6.2f})  {what}")
        rows.append({"t_ms": round(1000 * (ts - t0), 3), "event": what})
        prev = ts
    result["timeline"] = rows

    def first(pred, after=0.0):
        for ts, what in events:
            if ts >= after and pred(what):
                return ts
        return None

    # Phases between milestones.
    p = {}
    c_first_req = first(lambda w: w.startswith("cli: ->"))
    create_req = first(lambda w: "containers/create" in w)
    create_resp = first(lambda w: w.startswith("cli: <-"), create_req or 0)
    start_req = first(lambda w: w.endswith("/start"))
    shim_exec = first(lambda w: w == "berthd: exec berth-shim")
    overlay = first(lambda w: "overlay rootfs" in w)
    init_clone = first(lambda w: "clone of the container init" in w)
    wl_exec = first(lambda w: "execve of the workload" in w)
    start_resp = first(lambda w: w.startswith("cli: <- 2"), start_req or 0)
    wl_exit = first(lambda w: "workload exited" in w)
    exitjson = first(lambda w: "exit.json" in w)
    removed = first(lambda w: "bundle directory removed" in w)
    wait_res = first(lambda w: "wait result" in w)
    cli_exit = first(lambda w: w == "cli: exit_group")

    def span(name, a_, b_):
        if a_ is not None and b_ is not None:
            p[name] = round(1000 * (b_ - a_), 2)

    span("1 CLI process start to first request (exec, parse, runtime)", t0, c_first_req)
    span("2 _ping + create request to create response (daemon: snapshot, record, fsyncs)",
         c_first_req, create_resp)
    span("3 attach + wait requests until start is sent", create_resp, start_req)
    span("4 start request to shim exec (etc files, spec.json, fsyncs, spawn)", start_req, shim_exec)
    span("5 shim exec to overlay mounted (shim start-up, spec, fork)", shim_exec, overlay)
    span("6 overlay mounted to init clone (libcontainer: cgroups, namespaces: INTER process)",
         overlay, init_clone)
    span("7 init clone to workload execve (mounts, pivot_root, caps, seccomp)", init_clone, wl_exec)
    span("8 workload execve to start response at the CLI (report, state.json fsync)",
         wl_exec, start_resp)
    span("9 workload run + exit (true)", wl_exec, wl_exit)
    span("10 workload exit to exit.json (shim teardown: cgroups, umount)", wl_exit, exitjson)
    span("11 exit.json to bundle removed (berthd: record exit, remove container)", exitjson, removed)
    span("12 removed to wait result at the CLI", removed, wait_res)
    span("13 wait result to CLI exit", wait_res, cli_exit)
    span("total (CLI execve to exit_group)", t0, cli_exit)
    print("\n== phases of the traced run (ms), largest first")
    total = p.pop("total (CLI execve to exit_group)", None)
    for k, v in sorted(p.items(), key=lambda kv: -kv[1]):
        print(f"  {v:8.2f}  {k}")
    if total is not None:
        print(f"  {total:8.2f}  total, CLI execve to exit (traced)")
        p["total"] = total
    result["phases_ms"] = p
    print("\n== syscall totals in the traced run (count, ms inside the syscall)")
    for k, (n, t) in sorted(agg.items(), key=lambda kv: -kv[1][1]):
        print(f"  {k:<34}{n:>5}  {1000 * t:8.2f} ms")
    result["syscalls"] = {k: {"count": n, "ms": round(1000 * t, 3)} for k, (n, t) in agg.items()}
    if a.out:
        os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
        with open(a.out, "w") as f:
            json.dump(result, f, indent=2)
        print(f"\nJSON: {a.out}")


if __name__ == "__main__":
    main()
