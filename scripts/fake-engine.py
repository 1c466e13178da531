#!/usr/bin/env python3
"""What a client sends: a fake Docker Engine API on a unix socket that logs every request.

Used to check that `berth` sends what the docker CLI sends for the same command line:

    scripts/fake-engine.py compare network create --subnet 10.9.0.0/24 n1
    scripts/fake-engine.py compare create --network n1 --network n2 --ip 10.1.0.5 busybox

runs the command through `docker` (on PATH) and `berth` (BERTH, default
target/debug/berth) against the fake engine, and prints SAME or the differences: requests
(method, path, JSON body; for a container create only its networking fields), stdout,
stderr ("berth" read as "docker") and exit status. Or serve alone and read the log:

    scripts/fake-engine.py serve /tmp/fake.sock /tmp/requests.jsonl

Answers are plausible for the network verbs and container create (API 1.44 unless
FAKE_API_VERSION says otherwise): a network named `missing*` does not exist, one named
`busy*` has active endpoints. docker's `network rm` inspects each network first (for
swarm's ingress network); `compare` leaves GETs of networks out.
"""
import json
import os
import re
import socketserver
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler

API_VERSION = os.environ.get("FAKE_API_VERSION", "1.44")
NET_ID = "3f1b2c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f809"
CTR_ID = "9e8d7c6b5a4f30291817161514131211100f0e0d0c0b0a090807060504030201"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    log_path = None

    def log_message(self, *args):
        pass

    def reply(self, status, body=None):
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Api-Version", API_VERSION)
        self.send_header("OSType", "linux")
        self.send_header("Content-Length", str(len(data)))
        if body is not None:
            self.send_header("Content-Type", "application/json")
        self.end_headers()
        if data and self.command != "HEAD":
            self.wfile.write(data)

    def handle_any(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        path = re.sub(r"^/v[0-9.]+", "", self.path)
        route = path.split("?")[0]
        if route != "/_ping":
            with open(self.log_path, "a") as f:
                f.write(json.dumps({"method": self.command, "path": path, "body": body}) + "\n")
        m = re.match(r"^/networks/([^/]+)(/.*)?$", route)
        name = m.group(1) if m else ""
        if route == "/_ping":
            self.reply(200, None)
        elif route == "/networks/create":
            self.reply(201, {"Id": NET_ID, "Warning": ""})
        elif route == "/networks/prune":
            self.reply(200, {"NetworksDeleted": ["net-a", "net-b"]})
        elif name.startswith("missing"):
            self.reply(404, {"message": f"network {name} not found"})
        elif name.startswith("busy"):
            self.reply(403, {"message": f"error while removing network: network {name} "
                                        f"id {NET_ID} has active endpoints"})
        elif m and m.group(2) in ("/connect", "/disconnect"):
            self.reply(200)
        elif m and self.command == "DELETE":
            self.reply(204)
        elif m and self.command == "GET":
            self.reply(200, {"Name": name, "Id": NET_ID, "Ingress": False, "Driver": "bridge"})
        elif route == "/containers/create":
            self.reply(201, {"Id": CTR_ID, "Warnings": []})
        else:
            self.reply(404, {"message": f"fake engine: no route for {self.command} {route}"})

    do_GET = do_POST = do_DELETE = do_HEAD = do_PUT = handle_any


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def get_request(self):
        sock, _ = super().get_request()
        return sock, ("fake", 0)

    def handle_error(self, request, client_address):
        # A client that hangs up early is no news.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def serve(sock, log):
    Handler.log_path = log
    if os.path.exists(sock):
        os.unlink(sock)
    return Server(sock, Handler)


def networking_fields(request):
    """A container create's networking fields only; other requests whole."""
    body = request["body"]
    if isinstance(body, dict) and "HostConfig" in body:
        hc = body["HostConfig"]
        body = {k: hc.get(k) for k in ("NetworkMode", "Links", "Dns", "DnsSearch", "DnsOptions")}
        body["MacAddress"] = request["body"].get("MacAddress")
        body["NetworkingConfig"] = request["body"].get("NetworkingConfig")
    return [request["method"], request["path"], body]


def compare(args):
    berth = os.environ.get("BERTH", "target/debug/berth")
    with tempfile.TemporaryDirectory() as tmp:
        sock, log = os.path.join(tmp, "engine.sock"), os.path.join(tmp, "requests.jsonl")
        server = serve(sock, log)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        results = {}
        for name, argv, env in [
            ("docker", ["docker"] + args, dict(os.environ, DOCKER_HOST=f"unix://{sock}")),
            ("berth", [berth, "-H", f"unix://{sock}"] + args, dict(os.environ)),
        ]:
            open(log, "w").close()
            p = subprocess.run(argv, env=env, capture_output=True, text=True,
                               stdin=subprocess.DEVNULL)
            requests = [json.loads(line) for line in open(log)]
            requests = [networking_fields(r) for r in requests
                        if not (r["method"] == "GET" and r["path"].startswith("/networks/"))]
            results[name] = {"requests": requests, "stdout": p.stdout,
                             "stderr": p.stderr.replace("berth", "docker"),
                             "status": p.returncode}
        server.shutdown()
    diffs = [k for k in results["docker"] if results["docker"][k] != results["berth"][k]]
    print(("DIFF " if diffs else "SAME ") + " ".join(args))
    for k in diffs:
        print(f"  {k} docker: {json.dumps(results['docker'][k])}")
        print(f"  {k} berth:  {json.dumps(results['berth'][k])}")
    return 1 if diffs else 0


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "compare":
        sys.exit(compare(sys.argv[2:]))
    if len(sys.argv) == 4 and sys.argv[1] == "serve":
        serve(sys.argv[2], sys.argv[3]).serve_forever()
    sys.exit(__doc__)
