"""docker-py (the Docker SDK for Python, from PyPI) against berthd: what this release of berth
applies works through it, and what berth does not apply is refused, never ignored.

Run by tests/e2e/tests/docker_py.rs as: python docker_py.py unix://SOCKET BIND_DIR
"""
import io
import os
import sys
import socket
import tarfile
import time

import docker

client = docker.DockerClient(base_url=sys.argv[1])
bind_dir = sys.argv[2]


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def refused(kwargs, words):
    try:
        client.containers.run("busybox", "true", remove=True, **kwargs)
    except docker.errors.APIError as e:
        check(e.status_code == 400, f"{kwargs}: {e.status_code} {e.explanation}")
        check(words in e.explanation, f"{kwargs}: {e.explanation!r} lacks {words!r}")
        return
    raise AssertionError(f"{kwargs} was accepted")


# run returns the output: docker-py reads it only when inspect names the json-file driver.
check(client.containers.run("busybox", "echo hi", remove=True) == b"hi\n", "run output")

# Binds: docker-py sends a Config.Volumes entry for each; the mode is Docker's grammar.
ro = {bind_dir: {"bind": "/x", "mode": "ro"}}
try:
    client.containers.run("busybox", "touch /x/f", remove=True, volumes=ro)
    raise AssertionError("a write through a read-only bind succeeded")
except docker.errors.ContainerError as e:
    check(b"Read-only file system" in e.stderr, repr(e.stderr))
rw = {bind_dir: {"bind": "/x", "mode": "rw"}}
client.containers.run("busybox", "sh -c 'echo data > /x/f'", remove=True, volumes=rw)
check(open(f"{bind_dir}/f").read() == "data\n", "a write through a rw bind")
refused({"volumes": {bind_dir: {"bind": "/x", "mode": "RO"}}}, "invalid mode: RO")

# Published ports (the daemon runs with a bridge of its own): a free host port for 80,
# as docker-py asks for it, shown back by the API.
web = client.containers.run("busybox", ["sleep", "60"], detach=True, ports={"80/tcp": None})
bindings = client.api.port(web.id, 80)
check(len(bindings) == 1 and bindings[0]["HostIp"] == "0.0.0.0"
      and int(bindings[0]["HostPort"]) > 0, f"ports: {bindings}")
web.reload()
check(web.attrs["NetworkSettings"]["IPAddress"].count(".") == 3, "an address on the bridge")
web.remove(force=True)
# sctp: published where the kernel has SCTP; elsewhere refused at start, naming why.
try:
    socket.socket(socket.AF_INET, socket.SOCK_STREAM, 132).close()
    kernel_sctp = True
except OSError:
    kernel_sctp = False
if kernel_sctp:
    s = client.containers.run("busybox", ["sleep", "60"], detach=True, ports={"80/sctp": None})
    s.reload()
    got = s.attrs["NetworkSettings"]["Ports"]["80/sctp"]
    check(len(got) == 1 and int(got[0]["HostPort"]) > 0, f"sctp ports: {got}")
    s.remove(force=True)
else:
    refused({"ports": {"80/sctp": 8080}}, "this host's kernel has no SCTP")
    # Refused at start, as Docker refuses a port it cannot bind: the container was made.
    for c in client.containers.list(all=True, filters={"status": "created"}):
        c.remove()

# A user-defined network (berth chooses its subnet): containers on it reach each other by
# name; a running container connected with an alias is reached by it; removed after.
net = client.networks.create("sdknet", driver="bridge", labels={"sdk": "1"})
check(net.attrs["Driver"] == "bridge" and net.attrs["Labels"] == {"sdk": "1"}
      and net.attrs["IPAM"]["Config"][0]["Subnet"].count(".") == 3, f"network: {net.attrs!r}")
srv = client.containers.run("busybox", ["nc", "-ll", "-p", "80", "-e", "echo", "pong"],
                            name="sdksrv", network="sdknet", detach=True)
out = client.containers.run("busybox", ["sh", "-c", "nc -w 2 sdksrv 80 </dev/null"],
                            network="sdknet", remove=True)
check(out == b"pong\n", f"by name: {out!r}")
cli = client.containers.run("busybox", ["sleep", "60"], name="sdkcli", network="sdknet",
                            detach=True)
other = client.containers.run("busybox", ["sleep", "60"], detach=True)
net.connect(other, aliases=["sdkother"])
net.reload()
check(other.id in net.attrs["Containers"], f"connected: {net.attrs['Containers']!r}")
code, out = cli.exec_run("nslookup sdkother")
other.reload()
ip = other.attrs["NetworkSettings"]["Networks"]["sdknet"]["IPAddress"]
check(code == 0 and ip.encode() in out, f"the alias: {out!r} {ip}")
net.disconnect(other)
for c in (srv, cli, other):
    c.remove(force=True)
check(client.networks.prune(filters={"label": "sdk=1"})["NetworksDeleted"] == ["sdknet"],
      "prune")
check(all(n.name != "sdknet" for n in client.networks.list()), "the network is gone")

# Not applied yet, so refused by name.
# Containers mount volumes as docker-py asks: a named one by dict, a Mount, a tmpfs; an
# anonymous one goes with the container.
from docker.types import Mount
out = client.containers.run(
    "busybox",
    "sh -c 'echo kept > /named/f; grep \" /t \" /proc/mounts; cat /m/f'",
    remove=True,
    volumes={"sdkdata": {"bind": "/named", "mode": "rw"}},
    mounts=[Mount("/m", "sdkdata", type="volume", read_only=True)],
    tmpfs={"/t": "size=1m"},
)
check(b"size=1024k" in out and out.endswith(b"kept\n"), f"tmpfs, and the named volume by Mount: {out!r}")
c = client.containers.create("busybox", "true", volumes=["/anon"])
mounts = {m["Destination"]: m for m in c.attrs["Mounts"]}
check(mounts["/anon"]["Type"] == "volume" and len(mounts["/anon"]["Name"]) == 64, f"mounts: {mounts}")
c.remove(v=True)
check(all(v.name != mounts["/anon"]["Name"] for v in client.volumes.list()), "rm v=True took the anonymous volume")
check(open(os.path.join(client.volumes.get("sdkdata").attrs["Mountpoint"], "f")).read() == "kept\n", "named volume data")
# system df as docker-py reads it: the volume's bytes and its users.
usage = {v["Name"]: v["UsageData"] for v in client.df()["Volumes"]}
check(usage.get("sdkdata") == {"Size": 5, "RefCount": 0}, f"df: {usage}")
client.volumes.get("sdkdata").remove()
refused({"mounts": [Mount("/x", "sdkdata", type="volume", driver_config=docker.types.DriverConfig("nfs"))]},
        "plugin \"nfs\" not found")

# Volumes, as docker-py scripts them: create, list by label, get, remove, prune; options
# berth does not apply are refused, never ignored.
vol = client.volumes.create("sdkvol", labels={"sdk": "1"})
check(vol.attrs["Driver"] == "local" and vol.attrs["Labels"] == {"sdk": "1"}, f"volume: {vol.attrs}")
check(os.path.isdir(vol.attrs["Mountpoint"]), f"mountpoint: {vol.attrs['Mountpoint']}")
check([v.name for v in client.volumes.list(filters={"label": "sdk=1"})] == ["sdkvol"], "volume list")
check(client.volumes.get("sdkvol").attrs["CreatedAt"] == vol.attrs["CreatedAt"], "volume get")
try:
    client.volumes.create("sdkopts", driver_opts={"type": "nfs", "device": ":/x"})
    check(False, "an nfs volume was accepted")
except docker.errors.APIError as e:
    check("not supported" in str(e), f"driver options: {e}")
check(all(v.name != "sdkopts" for v in client.volumes.list()), "no volume made of a refused create")
anon = client.volumes.create(labels={"com.docker.volume.anonymous": ""})
try:
    client.volumes.prune(filters={"all": ["false", "true"]})
    check(False, "two values of the all filter were taken")
except docker.errors.APIError as e:
    check("only one value is expected" in str(e), f"all twice: {e}")
check(client.volumes.get(anon.name) is not None, "nothing pruned by a refused prune")
pruned = client.volumes.prune()["VolumesDeleted"]
check(pruned == [anon.name], f"prune takes the anonymous volume only: {pruned}")
vol.remove()
try:
    client.volumes.get("sdkvol")
    check(False, "the removed volume is still there")
except docker.errors.NotFound:
    pass

# Applied: sysctls, host namespaces, devices, shm size.
out = client.containers.run(
    "busybox",
    "sh -c 'cat /proc/sys/net/ipv4/ip_forward; df -k /dev/shm | tail -1; ls /dev/mynull'",
    remove=True,
    sysctls={"net.ipv4.ip_forward": "1"},
    shm_size="32m",
    devices=["/dev/null:/dev/mynull:rwm"],
)
lines = out.decode().split("\n")
check(lines[0] == "1", f"sysctl: {out!r}")
check(lines[1].split()[1] == "32768", f"shm size: {out!r}")
check(lines[2] == "/dev/mynull", f"device: {out!r}")
with open("/proc/sys/kernel/hostname") as f:
    host_name = f.read().strip()
out = client.containers.run("busybox", "hostname", remove=True, uts_mode="host")
check(out.decode().strip() == host_name, f"uts host: {out!r}")

# A restart policy is acted on: on-failure:2 runs the command three times.
c = client.containers.run(
    "busybox", "false", detach=True, restart_policy={"Name": "on-failure", "MaximumRetryCount": 2}
)
deadline = time.monotonic() + 30
while True:
    c.reload()
    if c.status == "exited" and c.attrs["RestartCount"] == 2:
        break
    check(time.monotonic() < deadline, f"restarts: {c.status} {c.attrs['RestartCount']}")
    time.sleep(0.05)
check(c.attrs["HostConfig"]["LogConfig"]["Type"] == "json-file", "LogConfig.Type")
c.remove()

# exec, as docker-py and testcontainers use it: output, exit code, user, environment,
# working directory, stdout and stderr apart (demux), and a detached exec.
t0 = int(time.time())
c = client.containers.run("busybox", "sleep 600", detach=True)
r = c.exec_run("sh -c 'echo out; echo err >&2; exit 3'")
# Two pipes: their order in the combined output is not defined (nor is it with Docker).
check(r.exit_code == 3 and sorted(r.output.split(b"\n")) == [b"", b"err", b"out"], f"exec_run: {r!r}")
# Output that arrives together with the response head is not lost: docker-py reads the head
# through a buffered reader and the stream from the socket beneath it (a quick exec's output
# was lost at random before berthd waited for the head to be read).
for i in range(40):
    r = c.exec_run(["echo", str(i)])
    check(r.output == f"{i}\n".encode(), f"exec_run output lost: {r!r}")
r = c.exec_run(["id", "-u"], user="nobody")
check((r.exit_code, r.output) == (0, b"65534\n"), f"exec_run user: {r!r}")
r = c.exec_run("sh -c 'echo $X $(pwd)'", environment={"X": "y"}, workdir="/tmp")
check(r.output == b"y /tmp\n", f"exec_run env/workdir: {r!r}")
r = c.exec_run("sh -c 'echo out; echo err >&2'", demux=True)
check(r.output == (b"out\n", b"err\n"), f"exec_run demux: {r!r}")
r = c.exec_run("sh -c 'echo bg > /tmp/bg'", detach=True)
# docker-py inspects at once: still running (None) or already done (0).
check(r.exit_code in (None, 0) and not r.output, f"exec_run detach: {r!r}")
deadline = time.monotonic() + 30
while c.exec_run("cat /tmp/bg").output != b"bg\n":
    check(time.monotonic() < deadline, "the detached exec's file")
    time.sleep(0.05)
# attach with stdin: a container made with stdin_open reads what the socket sends.
c2 = client.containers.create("busybox", "cat", stdin_open=True)
sock = client.api.attach_socket(c2.id, params={"stdin": 1, "stdout": 1, "stream": 1})
c2.start()
sock._sock.sendall(b"through-the-socket\n")
sock._sock.shutdown(1)
got = b""
while b"through-the-socket" not in got:
    chunk = sock._sock.recv(4096)
    check(chunk != b"", f"attach socket closed early: {got!r}")
    got += chunk
sock.close()
c2.stop(timeout=1)
c2.remove()

# The rest of the interactive surface as docker-py calls it: put/get_archive (cp), stats,
# diff, export, commit (its body is `{}`), update and events replayed with since/until.
payload = b"sdk-data\n"
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w") as t:
    info = tarfile.TarInfo("sdk.txt")
    info.size = len(payload)
    t.addfile(info, io.BytesIO(payload))
check(c.put_archive("/tmp", buf.getvalue()) is True, "put_archive")
bits, stat = c.get_archive("/tmp/sdk.txt")
got = tarfile.open(fileobj=io.BytesIO(b"".join(bits))).extractfile("sdk.txt").read()
check(got == payload and stat["name"] == "sdk.txt" and stat["size"] == len(payload),
      f"get_archive: {got!r} {stat!r}")
s = c.stats(stream=False)
check(s["memory_stats"]["usage"] > 0 and s["pids_stats"]["current"] >= 1, f"stats: {s!r}")
changes = {d["Path"]: d["Kind"] for d in c.diff()}
check(changes.get("/tmp/sdk.txt") == 1 and changes.get("/tmp") == 0, f"diff: {changes!r}")
names = tarfile.open(fileobj=io.BytesIO(b"".join(c.export()))).getnames()
check("tmp/sdk.txt" in names and "bin/busybox" in names, f"export: {len(names)} entries")
img = c.commit(repository="sdk-commit", tag="v1", message="from the sdk", author="sdk",
               changes=["ENV SDK=1"])
out = client.containers.run("sdk-commit:v1", "sh -c 'cat /tmp/sdk.txt; echo $SDK'", remove=True)
check(out == payload + b"1\n", f"committed image: {out!r}")
check(img.history()[0]["Comment"] == "from the sdk", f"history: {img.history()[0]!r}")
client.images.remove("sdk-commit:v1")
c.update(mem_limit="64m", memswap_limit="128m", cpu_shares=512)
c.reload()
hc = c.attrs["HostConfig"]
check((hc["Memory"], hc["MemorySwap"], hc["CpuShares"]) == (64 << 20, 128 << 20, 512),
      f"update: {hc['Memory']} {hc['MemorySwap']} {hc['CpuShares']}")
actions = [e["Action"] for e in client.events(since=t0, until=int(time.time()) + 1, decode=True,
                                               filters={"container": c.id})]
for want in ("create", "start", "exec_create", "exec_start", "exec_die", "extract-to-dir", "archive-path", "commit",
             "export", "update"):
    check(any(a == want or a.startswith(want + ":") for a in actions), f"event {want}: {actions!r}")
c.remove(force=True)

# A build through docker-py: its context goes with a Content-Length (the docker CLI
# streams chunked), over the 2 MiB JSON bound; the image runs.
ctx_dir = os.path.join(bind_dir, "build-ctx")
os.makedirs(ctx_dir, exist_ok=True)
with open(os.path.join(ctx_dir, "Dockerfile"), "w") as f:
    f.write("FROM busybox\nCOPY blob /blob\nRUN wc -c < /blob > /size\nCMD [\"cat\", \"/size\"]\n")
with open(os.path.join(ctx_dir, "blob"), "wb") as f:
    f.write(os.urandom(3 << 20))
image, logs = client.images.build(path=ctx_dir, tag="pybuilt:1", rm=True)
lines = [l.get("stream", "") for l in logs]
check(any(l.startswith("Step 3/4 : RUN") for l in lines), f"build output: {lines!r}")
out = client.containers.run("pybuilt:1", remove=True)
check(out.strip() == str(3 << 20).encode(), f"built image: {out!r}")
try:
    client.images.build(fileobj=io.BytesIO(b"FROM busybox\nRUN exit 3\n"), forcerm=True)
    check(False, "a failing RUN built")
except docker.errors.BuildError as e:
    check("returned a non-zero code: 3" in str(e), f"build error: {e}")
client.images.remove("pybuilt:1")

# Nothing is left of the refused runs or of the finished ones.
check(client.containers.list(all=True) == [], "containers left behind")
print("docker-py: all checks passed")
