"""docker-py (the Docker SDK for Python, from PyPI) against berthd and a registry: login
with a wrong password, then the right one; push with streamed, decoded progress; pull.
Prints the digests it saw for the Rust side to compare with the registry's own.

Run by tests/e2e/tests/docker_py.rs as:
    python docker_py_registry.py unix://SOCKET REGISTRY USER PASSWORD
"""
import sys

import docker

client = docker.DockerClient(base_url=sys.argv[1])
registry, user, password = sys.argv[2:5]


def check(cond, what):
    if not cond:
        raise AssertionError(what)


# A wrong password: Docker's 401, in words that say so.
try:
    client.login(username=user, password="wrong", registry=registry, reauth=True)
    raise AssertionError("a wrong password logged in")
except docker.errors.APIError as e:
    check(e.status_code == 401, f"status {e.status_code}: {e.explanation}")
    check("unauthorized" in e.explanation.lower(), repr(e.explanation))

answer = client.login(username=user, password=password, registry=registry, reauth=True)
check(answer.get("Status") == "Login Succeeded", repr(answer))

# Push: docker-py sends the credentials login kept; progress as decoded JSON lines, the
# manifest's digest in the last one's aux.
repo = f"{registry}/py/busybox"
check(client.images.get("busybox:latest").tag(repo, "1"), "tag")
events = list(client.images.push(repo, tag="1", stream=True, decode=True))
errors = [e for e in events if "error" in e or "errorDetail" in e]
check(not errors, f"push errors: {errors}")
check(any(e.get("status") == "Pushed" for e in events), f"no layer pushed: {events}")
digests = [e["aux"]["Digest"] for e in events if "aux" in e]
check(len(digests) == 1, f"aux: {events}")
print(f"pushed {digests[0]}")

# Pull it back, the local tag gone first (busybox:latest keeps the layers).
client.images.remove(f"{repo}:1")
image = client.images.pull(repo, tag="1")
check(f"{repo}:1" in image.tags, repr(image.tags))
print(f"pulled {' '.join(image.attrs['RepoDigests'])}")
# A tag the registry lacks: docker-py's NotFound.
try:
    client.images.pull(repo, tag="nope")
    raise AssertionError("a missing tag was pulled")
except docker.errors.NotFound as e:
    check("manifest unknown" in e.explanation, repr(e.explanation))
print("all checks passed")
