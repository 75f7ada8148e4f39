#!/usr/bin/env python3
"""A real local Kubernetes control plane for inferbudget's end-to-end tests and demo.

    hack/cluster/cluster.py up       build what is missing, start the cluster, wait until it is usable
    hack/cluster/cluster.py status   each component's state; a crashed one with the tail of its log
    hack/cluster/cluster.py env      shell lines for KUBECONFIG and PATH:  eval "$(hack/cluster/cluster.py env)"
    hack/cluster/cluster.py down     stop exactly the processes `up` started
    hack/cluster/cluster.py build    only build (and cache) the binaries
    hack/cluster/cluster.py restart kube-apiserver   stop one component, start it again with the same flags,
                                                     ports and certificates, wait until it serves (fault tests)
    hack/cluster/cluster.py pause etcd | resume etcd  SIGSTOP / SIGCONT one component (a hung process)

No Docker engine and no network beyond package registries, so every component is built from the Go module
proxy (see k8s/go.mod and etcd/go.mod here) and run as a plain process on loopback: etcd, kube-apiserver,
kube-controller-manager, kube-scheduler and kwok, which plays the kubelet for fake GPU nodes (kwok/stages.yaml).

Binaries are cached by version in $INFERBUDGET_CACHE_DIR (default ~/.cache/inferbudget) together with Go's own
build and module caches, so only the first build is slow. Each cluster (--name, default "inferbudget") lives in
its own directory under $INFERBUDGET_STATE_DIR (default ~/.local/state/inferbudget/clusters) with its PKI,
kubeconfig, etcd data, picked ports, recorded pids and one log per component in logs/.

The nodes (--nodes, default 2) are kwok-gpu-<i>: 8 nvidia.com/gpu, 64 CPU, 512Gi memory, 110 pods each, no
taints. A scheduled pod becomes Running and Ready at once, except one labelled
inferbudget.io/test-never-ready: "true", which runs but never becomes Ready: a rollout that needs it cannot
progress (for tests of stuck rollouts and rollback).

Standard library only (plus the go and openssl commands), so the demo needs no virtualenv; the e2e tests import
this file to share the same code.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import functools
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

# Kubernetes and etcd versions are pinned by the wrapper modules' go.mod files (read below); these two are
# installed with `go install module@version`.
KWOK_VERSION = "v0.8.0"
HELM_VERSION = "v3.20.2"

DEFAULT_CLUSTER = "inferbudget"
DEFAULT_NODES = 2
# What one fake node offers: an 8-GPU inference server.
NODE_CAPACITY = {
    "cpu": "64",
    "memory": "512Gi",
    "pods": "110",
    "ephemeral-storage": "1Ti",
    "nvidia.com/gpu": "8",
}
SERVICE_CIDR = "10.96.0.0/16"
NODE_IP_PREFIX = "10.0.0."  # fake node i has InternalIP 10.0.0.<i+1>
POD_CIDR = "10.244.0.0/16"  # kwok hands out pod IPs from here
SERVICE_IP = "10.96.0.1"  # the first address of SERVICE_CIDR: the `kubernetes` Service
SA_ISSUER = "https://kubernetes.default.svc.cluster.local"


class ClusterError(Exception):
    """Something the user has to act on; printed without a traceback."""


def say(message: str) -> None:
    print(f"[cluster] {message}", file=sys.stderr, flush=True)


def elapsed(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def cache_dir() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "inferbudget"
    return Path(os.environ.get("INFERBUDGET_CACHE_DIR") or default)


def state_root() -> Path:
    default = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local/state") / "inferbudget/clusters"
    return Path(os.environ.get("INFERBUDGET_STATE_DIR") or default)


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Serialise `up`/`down` of one cluster, and builds, across processes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


# ---------------------------------------------------------------------------------------------------------
# Building the binaries


def required_version(gomod: Path, module: str) -> str:
    match = re.search(rf"^\s*(?:require\s+)?{re.escape(module)}\s+(v\S+)", gomod.read_text(), re.MULTILINE)
    if not match:
        raise ClusterError(f"{gomod} does not require {module}")
    return match.group(1)


KUBERNETES_VERSION = required_version(HERE / "k8s/go.mod", "k8s.io/kubernetes")
ETCD_VERSION = required_version(HERE / "etcd/go.mod", "go.etcd.io/etcd/server/v3")


@dataclass(frozen=True)
class Artifact:
    """Binaries built together from one pinned release, cached in bin/<name>-<version>/."""

    name: str
    version: str
    binaries: tuple[str, ...]

    @property
    def directory(self) -> Path:
        return cache_dir() / "bin" / f"{self.name}-{self.version}"

    def path(self, binary: str) -> Path:
        return self.directory / binary

    def is_built(self) -> bool:
        return all(self.path(binary).is_file() for binary in self.binaries)


KUBERNETES = Artifact(
    "kubernetes", KUBERNETES_VERSION, ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")
)
ETCD = Artifact("etcd", ETCD_VERSION, ("etcd",))
KWOK = Artifact("kwok", KWOK_VERSION, ("kwok",))
HELM = Artifact("helm", HELM_VERSION, ("helm",))
ARTIFACTS = (KUBERNETES, ETCD, KWOK, HELM)


def tool(binary: str) -> Path:
    """Path of a cached binary (kubectl, helm, kube-apiserver, ...); it exists once `build` has run."""
    for artifact in ARTIFACTS:
        if binary in artifact.binaries:
            return artifact.path(binary)
    raise KeyError(binary)


def go_env() -> dict[str, str]:
    cache = cache_dir() / "go"
    return {
        **os.environ,
        "GOTOOLCHAIN": "local",  # never download a toolchain; the pins all build with the machine's Go
        "GOCACHE": str(cache / "build"),
        "GOMODCACHE": str(cache / "mod"),
        "GOFLAGS": "-buildvcs=false",
        "CGO_ENABLED": "0",
    }


def version_ldflags(version: str, *packages: str) -> list[str]:
    """-X flags that stamp a Kubernetes-style version (so /version reports the release, as Helm expects)."""
    major, minor = version.lstrip("v").split(".")[:2]
    flags = []
    for package in packages:
        flags += [f"-X {package}.gitVersion={version}", f"-X {package}.gitMajor={major}",
                  f"-X {package}.gitMinor={minor}", f"-X {package}.gitTreeState=clean"]
    return flags


def build_commands(artifact: Artifact, out: Path) -> tuple[Path, list[str]]:
    """(working directory, go command) that builds `artifact` into directory `out`."""
    if artifact is KUBERNETES:
        ldflags = ["-s", "-w", *version_ldflags(artifact.version, "k8s.io/component-base/version",
                                                "k8s.io/client-go/pkg/version")]
        # One invocation for all four commands: they share most packages, so each is compiled once.
        packages = [f"k8s.io/kubernetes/cmd/{binary}" for binary in artifact.binaries]
        return HERE / "k8s", ["go", "build", "-v", "-trimpath", "-ldflags", " ".join(ldflags),
                              "-o", f"{out}/", *packages]
    if artifact is ETCD:
        ldflags = ["-s", "-w", f"-X go.etcd.io/etcd/api/v3/version.GitSHA={artifact.version}"]
        return HERE / "etcd", ["go", "build", "-v", "-trimpath", "-ldflags", " ".join(ldflags),
                               "-o", str(out / "etcd"), "go.etcd.io/etcd/server/v3"]
    if artifact is KWOK:
        return HERE, ["go", "install", "-v", "-trimpath", "-ldflags", "-s -w",
                      f"sigs.k8s.io/kwok/cmd/kwok@{artifact.version}"]
    if artifact is HELM:
        kube_major, kube_minor = KUBERNETES_VERSION.lstrip("v").split(".")[:2]
        ldflags = ["-s", "-w", f"-X helm.sh/helm/v3/internal/version.version={artifact.version}",
                   "-X helm.sh/helm/v3/internal/version.gitTreeState=clean",
                   f"-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor={kube_major}",
                   f"-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor={kube_minor}"]
        return HERE, ["go", "install", "-v", "-trimpath", "-ldflags", " ".join(ldflags),
                      f"helm.sh/helm/v3/cmd/helm@{artifact.version}"]
    raise KeyError(artifact.name)


def run_go_with_progress(label: str, cwd: Path, command: list[str], env: dict[str, str]) -> None:
    """Run a go build, printing a progress line every 15 s (packages compiled, modules downloaded), also while
    go prints nothing (a long download, a big package, the link)."""
    started = time.monotonic()
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, text=True)
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(line.rstrip("\n") for line in process.stdout or ()))
    reader.start()
    while True:
        try:
            process.wait(timeout=15)
            break
        except subprocess.TimeoutExpired:
            lines = list(output)
            downloads = sum(line.startswith("go: downloading") for line in lines)
            say(f"  {label}: {count_packages(lines)} packages compiled, {downloads} modules downloaded "
                f"({elapsed(time.monotonic() - started)}; last: {(lines or [''])[-1][:80]})")
    reader.join()
    if process.returncode != 0:
        raise ClusterError(f"building {label} failed:\n" + "\n".join(output[-40:]))
    say(f"built {label} in {elapsed(time.monotonic() - started)} ({count_packages(output)} packages compiled)")


def count_packages(go_output: list[str]) -> int:
    """`go build -v` prints each package as it compiles it: an import path, alone on its line."""
    return sum(1 for line in go_output if line and " " not in line)


def build(artifacts: tuple[Artifact, ...] = ARTIFACTS) -> None:
    """Build every missing artifact into the cache; a no-op when all are there."""
    if all(artifact.is_built() for artifact in artifacts):
        return
    if not shutil.which("go"):
        raise ClusterError("the `go` command is needed to build the cluster's binaries (Go 1.26 or newer)")
    with file_lock(cache_dir() / "build.lock"):
        for artifact in artifacts:
            if artifact.is_built():  # another process may have built it while we waited for the lock
                continue
            label = f"{artifact.name} {artifact.version}"
            say(f"building {label} into {artifact.directory} (first time only; cached afterwards)")
            artifact.directory.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f".{artifact.name}-", dir=artifact.directory.parent))
            staging.chmod(0o755)
            try:
                env = {**go_env(), "GOBIN": str(staging)}
                cwd, command = build_commands(artifact, staging)
                run_go_with_progress(label, cwd, command, env)
                shutil.rmtree(artifact.directory, ignore_errors=True)
                staging.rename(artifact.directory)  # atomic: a directory is there complete or not at all
            finally:
                shutil.rmtree(staging, ignore_errors=True)


# ---------------------------------------------------------------------------------------------------------
# Certificates and kubeconfigs


def openssl(*args: str, cwd: Path) -> None:
    if not shutil.which("openssl"):
        raise ClusterError("the `openssl` command is needed for the cluster's certificates (apt-get install openssl)")
    result = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise ClusterError(f"openssl {' '.join(args)} failed:\n{result.stderr}")


def make_pki(pki: Path) -> None:
    """A CA, the API server's serving certificate, one client certificate per identity, and the
    service-account signing key pair (RSA: what every token consumer understands)."""
    pki.mkdir(parents=True, exist_ok=True)
    make_ca(pki, "ca")
    serving_names = ["IP:127.0.0.1", f"IP:{SERVICE_IP}", "DNS:localhost", "DNS:kubernetes",
                     "DNS:kubernetes.default", "DNS:kubernetes.default.svc",
                     "DNS:kubernetes.default.svc.cluster.local"]
    issue_certificate(pki, "apiserver", "/CN=kube-apiserver", "serverAuth",
                      f"subjectAltName={','.join(serving_names)}")
    for name, subject in CLIENT_IDENTITIES.items():
        issue_certificate(pki, name, subject, "clientAuth")
    # The aggregation layer's own CA: a certificate from it lets the holder assert any user in request headers,
    # so it must not be the CA that signs ordinary client certificates.
    make_ca(pki, "front-proxy-ca")
    issue_certificate(pki, "front-proxy-client", "/CN=front-proxy-client", "clientAuth", ca="front-proxy-ca")
    openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "sa.key", cwd=pki)
    openssl("pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=pki)


# Who each client is. kwok acts for every fake kubelet at once (nodes, leases, pod status of all nodes), which
# the Node authorizer cannot express for one identity, so like the admin it is in system:masters.
CLIENT_IDENTITIES = {
    "admin": "/O=system:masters/CN=inferbudget-admin",
    "kube-controller-manager": "/CN=system:kube-controller-manager",
    "kube-scheduler": "/CN=system:kube-scheduler",
    "kwok": "/O=system:masters/CN=kwok-controller",
}


def make_ca(pki: Path, name: str) -> None:
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.crt", "-days", "3650", "-subj", f"/CN=inferbudget-{name}",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=pki)


def issue_certificate(pki: Path, name: str, subject: str, usage: str, *extensions: str, ca: str = "ca") -> None:
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject, cwd=pki)
    extfile = pki / f"{name}.ext"
    extfile.write_text("\n".join(["basicConstraints=critical,CA:FALSE",
                                  "keyUsage=critical,digitalSignature,keyEncipherment",
                                  f"extendedKeyUsage={usage}", *extensions]) + "\n")
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key", "-CAcreateserial",
            "-days", "3650", "-extfile", extfile.name, "-out", f"{name}.crt", cwd=pki)
    (pki / f"{name}.csr").unlink()
    extfile.unlink()


def write_kubeconfig(path: Path, server: str, pki: Path, identity: str, cluster: str) -> None:
    """A self-contained kubeconfig (certificates embedded), so it can be copied anywhere."""

    def data(name: str) -> str:
        return base64.b64encode((pki / name).read_bytes()).decode()

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster, "cluster": {"server": server,
                                                   "certificate-authority-data": data("ca.crt")}}],
        "users": [{"name": identity, "user": {"client-certificate-data": data(f"{identity}.crt"),
                                              "client-key-data": data(f"{identity}.key")}}],
        "contexts": [{"name": cluster, "context": {"cluster": cluster, "user": identity}}],
        "current-context": cluster,
    }
    path.write_text(json.dumps(config, indent=2) + "\n")  # JSON is YAML: every client reads it
    path.chmod(0o600)


# ---------------------------------------------------------------------------------------------------------
# Processes


def free_ports(count: int) -> list[int]:
    """Loopback ports that are free now (all held open together, so they are distinct)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def process_start_time(pid: int) -> int | None:
    """The kernel's start time of `pid`, or None if no live process has it. Together with the pid it names one
    process for good: a recycled pid has another start time. A zombie (exited, not yet reaped) counts as gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "; comm may contain spaces
    if fields[0] in ("Z", "X"):
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # reap it if it is our own child (the pytest fixture's case)
        return None
    return int(fields[19])


@dataclass
class Component:
    name: str
    pid: int
    start_time: int
    log: str

    def is_running(self) -> bool:
        return process_start_time(self.pid) == self.start_time

    def log_tail(self, lines: int = 25) -> str:
        try:
            text = Path(self.log).read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, grace: float = 15.0) -> None:
        if not self.is_running():
            return
        os.kill(self.pid, signal.SIGTERM)
        os.kill(self.pid, signal.SIGCONT)  # a paused (SIGSTOP) process acts on SIGTERM only once it runs again
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if not self.is_running():
                return
            time.sleep(0.1)
        if self.is_running():
            os.kill(self.pid, signal.SIGKILL)
            while self.is_running():
                time.sleep(0.05)


def wait_for(what: str, check: Callable[[], bool], timeout: float, watched: list[Component]) -> None:
    """Poll `check` until it holds; fail early, with the log tail, if a watched component dies."""
    deadline = time.monotonic() + timeout
    while True:
        for component in watched:
            if not component.is_running():
                raise ClusterError(f"{component.name} exited while waiting for {what}; "
                                   f"last lines of {component.log}:\n{component.log_tail()}")
        if check():
            return
        if time.monotonic() > deadline:
            raise ClusterError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.25)


# ---------------------------------------------------------------------------------------------------------
# The API server, from the outside


class Api:
    """Just enough of a Kubernetes client for bootstrapping, with the admin certificate."""

    def __init__(self, server: str, pki: Path) -> None:
        self.server = server
        self.context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        self.context.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.server + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, context=self.context, timeout=5) as response:
                return response.status, parse_body(response.read())
        except urllib.error.HTTPError as error:
            return error.code, parse_body(error.read())
        except (OSError, ssl.SSLError):
            return 0, None  # not listening (yet)

    def is_ready(self) -> bool:
        return self.request("GET", "/readyz")[0] == 200

    def exists(self, path: str) -> bool:
        return self.request("GET", path)[0] == 200

    def ready_nodes(self, names: list[str]) -> list[str]:
        status, nodes = self.request("GET", "/api/v1/nodes")
        if status != 200:
            return []
        ready = {node["metadata"]["name"] for node in nodes["items"]
                 if any(c["type"] == "Ready" and c["status"] == "True"
                        for c in node.get("status", {}).get("conditions", []))}
        return [name for name in names if name in ready]


def parse_body(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")


def serves_healthz(port: int) -> bool:
    """kube-controller-manager and kube-scheduler serve /healthz with a self-signed certificate of their own;
    this only asks whether they are up, so it does not verify it."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(f"https://127.0.0.1:{port}/healthz", context=context, timeout=5) as response:
            return bool(response.status == 200)
    except (OSError, ssl.SSLError):
        return False


def serves_etcd_health(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as response:
            return bool(json.loads(response.read()).get("health") == "true")
    except (OSError, ValueError):
        return False


def fake_node(index: int) -> dict[str, Any]:
    name = f"kwok-gpu-{index}"
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {"type": "kwok", "kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                       "kubernetes.io/arch": "amd64", "nvidia.com/gpu.present": "true"},
        },
        "spec": {},
        "status": {"capacity": NODE_CAPACITY, "allocatable": NODE_CAPACITY,
                   "addresses": [{"type": "InternalIP", "address": f"{NODE_IP_PREFIX}{index + 1}"},
                                 {"type": "Hostname", "address": name}]},
    }


# ---------------------------------------------------------------------------------------------------------
# One cluster

COMPONENT_ORDER = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
PORT_NAMES = ("etcd-client", "etcd-peer", "kube-apiserver", "kube-controller-manager", "kube-scheduler")


class Cluster:
    def __init__(self, name: str = DEFAULT_CLUSTER) -> None:
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", name):
            raise ClusterError(f"cluster name {name!r}: use lowercase letters, digits and dashes")
        self.name = name
        self.dir = state_root() / name
        self.pki = self.dir / "pki"
        self.logs = self.dir / "logs"
        self.kubeconfig = self.dir / "kubeconfig"
        self.state_file = self.dir / "cluster.json"

    # -- recorded state -----------------------------------------------------------------------------------

    def _load(self) -> dict[str, Any] | None:
        try:
            state: dict[str, Any] = json.loads(self.state_file.read_text())
        except FileNotFoundError:
            return None
        return state

    def _save(self, state: dict[str, Any]) -> None:
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2) + "\n")
        tmp.rename(self.state_file)

    def components(self, state: dict[str, Any] | None = None) -> list[Component]:
        state = state if state is not None else self._load()
        if not state:
            return []
        recorded = state.get("components", {})
        return [Component(name, **recorded[name]) for name in COMPONENT_ORDER if name in recorded]

    def api(self, state: dict[str, Any]) -> Api:
        return Api(f"https://127.0.0.1:{state['ports']['kube-apiserver']}", self.pki)

    def is_running(self) -> bool:
        """All five components are alive and the API server is ready."""
        state = self._load()
        components = self.components(state)
        return (state is not None and len(components) == len(COMPONENT_ORDER)
                and all(c.is_running() for c in components) and self.api(state).is_ready())

    # -- up -------------------------------------------------------------------------------------------------

    def up(self, nodes: int = DEFAULT_NODES, timeout: float = 180.0) -> None:
        started = time.monotonic()
        with file_lock(state_root() / f".{self.name}.lock"):
            if self.is_running():
                say(f"cluster {self.name!r} is already running")
                return
            if self._load() is not None:
                say(f"cluster {self.name!r} is partly down; restarting it from scratch")
                self._teardown()
            build()
            say(f"starting cluster {self.name!r}: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, "
                f"kwok with {nodes} GPU nodes")
            try:
                self._start(nodes, timeout)
            except BaseException:
                say(f"start failed; stopping what was started (logs stay in {self.logs})")
                self._teardown()
                raise
        say(f"cluster {self.name!r} is up in {elapsed(time.monotonic() - started)}; "
            f"KUBECONFIG={self.kubeconfig}")

    def _start(self, node_count: int, timeout: float) -> None:
        shutil.rmtree(self.logs, ignore_errors=True)
        # Every start is a fresh cluster: objects kept from an earlier run would come back with stale node
        # heartbeats, and the node controller would mark their pods NotReady for good (kwok readies a pod once).
        shutil.rmtree(self.dir / "etcd", ignore_errors=True)
        for directory in (self.dir, self.logs):
            directory.mkdir(parents=True, exist_ok=True)
        make_pki(self.pki)
        ports = dict(zip(PORT_NAMES, free_ports(len(PORT_NAMES)), strict=True))
        server = f"https://127.0.0.1:{ports['kube-apiserver']}"
        write_kubeconfig(self.kubeconfig, server, self.pki, "admin", self.name)
        for identity in ("kube-controller-manager", "kube-scheduler", "kwok"):
            write_kubeconfig(self.pki / f"{identity}.kubeconfig", server, self.pki, identity, self.name)
        nodes = [fake_node(index) for index in range(node_count)]
        node_names = [node["metadata"]["name"] for node in nodes]
        state: dict[str, Any] = {"name": self.name, "ports": ports, "nodes": node_names,
                                 "versions": {a.name: a.version for a in ARTIFACTS}, "components": {}}
        self._save(state)
        api = self.api(state)

        def launch(name: str, argv: list[str]) -> Component:
            component = self._launch(name, argv)
            state["components"][name] = {"pid": component.pid, "start_time": component.start_time,
                                         "log": component.log}
            self._save(state)  # recorded at once, so `down` can stop it whatever happens next
            return component

        etcd = launch("etcd", self._argv("etcd", ports))
        wait_for("etcd to be healthy", lambda: serves_etcd_health(ports["etcd-client"]), timeout, [etcd])
        apiserver = launch("kube-apiserver", self._argv("kube-apiserver", ports))
        wait_for("kube-apiserver /readyz", api.is_ready, timeout, [etcd, apiserver])
        running = [etcd, apiserver]
        running += [launch(name, self._argv(name, ports)) for name in COMPONENT_ORDER[2:]]
        for node in nodes:
            status, body = api.request("POST", "/api/v1/nodes", node)
            if status != 201:
                raise ClusterError(f"creating node {node['metadata']['name']} failed ({status}): {body}")
        for port_name in ("kube-controller-manager", "kube-scheduler"):
            wait_for(f"{port_name} /healthz", functools.partial(serves_healthz, ports[port_name]), timeout, running)
        wait_for("the default ServiceAccount in namespace default",
                 lambda: api.exists("/api/v1/namespaces/default/serviceaccounts/default"), timeout, running)
        wait_for(f"{node_count} kwok nodes to be Ready",
                 lambda: len(api.ready_nodes(node_names)) == node_count, timeout, running)

    def _launch(self, name: str, argv: list[str]) -> Component:
        log = self.logs / f"{name}.log"
        with log.open("ab") as out:
            # A session of its own: Ctrl-C in the terminal that ran `up` must not reach the cluster.
            process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                       cwd=self.dir, start_new_session=True)
        start_time = process_start_time(process.pid)
        if start_time is None:
            raise ClusterError(f"{name} exited at once; log {log}:\n{log.read_text(errors='replace')}")
        return Component(name, process.pid, start_time, str(log))

    def _argv(self, name: str, ports: dict[str, int]) -> list[str]:
        """The command line of one component: the same every time for the same ports, so a restarted component
        comes back exactly as it was (flags, certificates, data directory, port)."""
        argv: dict[str, Callable[[], list[str]]] = {
            "etcd": lambda: self._etcd_argv(ports),
            "kube-apiserver": lambda: self._apiserver_argv(ports),
            "kube-controller-manager": lambda: self._controller_manager_argv(ports),
            "kube-scheduler": lambda: self._scheduler_argv(ports),
            "kwok": self._kwok_argv,
        }
        return argv[name]()

    def _etcd_argv(self, ports: dict[str, int]) -> list[str]:
        client, peer = f"http://127.0.0.1:{ports['etcd-client']}", f"http://127.0.0.1:{ports['etcd-peer']}"
        return [str(tool("etcd")), "--name", self.name, "--data-dir", str(self.dir / "etcd"),
                "--listen-client-urls", client, "--advertise-client-urls", client,
                "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                "--initial-cluster", f"{self.name}={peer}",
                "--unsafe-no-fsync",  # a throwaway test cluster: durability buys nothing, fsyncs cost time
                "--log-level", "warn"]

    def _apiserver_argv(self, ports: dict[str, int]) -> list[str]:
        pki = self.pki
        return [str(tool("kube-apiserver")),
                "--etcd-servers", f"http://127.0.0.1:{ports['etcd-client']}",
                "--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1",
                "--secure-port", str(ports["kube-apiserver"]),
                "--tls-cert-file", str(pki / "apiserver.crt"), "--tls-private-key-file", str(pki / "apiserver.key"),
                "--client-ca-file", str(pki / "ca.crt"),
                # The aggregation layer (kube-controller-manager and kube-scheduler look its CA up to
                # authenticate requests; aggregated APIs such as a metrics adapter rely on it).
                "--requestheader-client-ca-file", str(pki / "front-proxy-ca.crt"),
                "--requestheader-allowed-names", "front-proxy-client",
                "--requestheader-username-headers", "X-Remote-User",
                "--requestheader-group-headers", "X-Remote-Group",
                "--requestheader-extra-headers-prefix", "X-Remote-Extra-",
                "--proxy-client-cert-file", str(pki / "front-proxy-client.crt"),
                "--proxy-client-key-file", str(pki / "front-proxy-client.key"),
                "--authorization-mode", "Node,RBAC",
                "--service-account-issuer", SA_ISSUER,
                "--service-account-key-file", str(pki / "sa.pub"),
                "--service-account-signing-key-file", str(pki / "sa.key"),
                "--service-cluster-ip-range", SERVICE_CIDR,
                # The apiserver would publish its own address as the `kubernetes` Service's endpoint; a
                # loopback address is not a valid endpoint, and nothing runs inside this cluster to use it.
                "--endpoint-reconciler-type", "none",
                "--allow-privileged=true",
                "--profiling=false"]

    def _controller_manager_argv(self, ports: dict[str, int]) -> list[str]:
        pki, kubeconfig = self.pki, str(self.pki / "kube-controller-manager.kubeconfig")
        return [str(tool("kube-controller-manager")),
                "--kubeconfig", kubeconfig, "--authentication-kubeconfig", kubeconfig,
                "--authorization-kubeconfig", kubeconfig,
                "--bind-address", "127.0.0.1", "--secure-port", str(ports["kube-controller-manager"]),
                "--leader-elect=false",
                "--use-service-account-credentials=true",  # each controller acts as its own ServiceAccount
                "--service-account-private-key-file", str(pki / "sa.key"),
                "--root-ca-file", str(pki / "ca.crt"),
                "--cluster-signing-cert-file", str(pki / "ca.crt"),
                "--cluster-signing-key-file", str(pki / "ca.key"),
                "--service-cluster-ip-range", SERVICE_CIDR,
                "--profiling=false"]

    def _scheduler_argv(self, ports: dict[str, int]) -> list[str]:
        kubeconfig = str(self.pki / "kube-scheduler.kubeconfig")
        return [str(tool("kube-scheduler")),
                "--kubeconfig", kubeconfig, "--authentication-kubeconfig", kubeconfig,
                "--authorization-kubeconfig", kubeconfig,
                "--bind-address", "127.0.0.1", "--secure-port", str(ports["kube-scheduler"]),
                "--leader-elect=false",
                "--profiling=false"]

    def _kwok_argv(self) -> list[str]:
        return [str(tool("kwok")),
                "--kubeconfig", str(self.pki / "kwok.kubeconfig"),
                "-c", str(HERE / "kwok/stages.yaml"),
                "--manage-nodes-with-annotation-selector", "kwok.x-k8s.io/node=fake",
                # Renew each node's Lease: without it the node controller sees no heartbeat for 40 s, marks the
                # nodes NotReady and their pods NotReady with them, and kwok readies the nodes but not the pods.
                "--node-lease-duration-seconds", "40",
                "--cidr", POD_CIDR]

    # -- down -----------------------------------------------------------------------------------------------

    def down(self) -> None:
        with file_lock(state_root() / f".{self.name}.lock"):
            if self._load() is None:
                say(f"cluster {self.name!r} is not up")
                return
            self._teardown()
        say(f"cluster {self.name!r} stopped (logs kept in {self.logs})")

    def _teardown(self) -> None:
        """Stop the recorded processes, newest first, and forget the cluster; keep its logs to read."""
        for component in reversed(self.components()):
            component.stop()
        for path in (self.dir / "etcd", self.pki, self.kubeconfig, self.state_file):
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)

    # -- status and env -------------------------------------------------------------------------------------

    def status(self) -> bool:
        """Print each component's state; True when all of them run."""
        state = self._load()
        if state is None:
            print(f"cluster {self.name!r}: not up")
            return False
        ports = state["ports"]
        healthy = self._health_checks(state)
        components = {component.name: component for component in self.components(state)}
        all_running = True
        print(f"cluster {self.name!r}  ({self.dir})")
        for name in COMPONENT_ORDER:
            component = components.get(name)
            port = ports.get("etcd-client" if name == "etcd" else name)
            where = f"127.0.0.1:{port}" if port else ""
            if component is None:
                all_running = False
                print(f"  {name:<24} not started")
            elif component.is_running():
                health = "healthy" if healthy[name]() else "NOT HEALTHY"
                all_running &= health == "healthy"
                print(f"  {name:<24} running  pid {component.pid:<7} {where:<16} {health}")
            else:
                all_running = False
                print(f"  {name:<24} EXITED   (was pid {component.pid}); last lines of {component.log}:")
                print("\n".join(f"      {line}" for line in component.log_tail().splitlines()))
        if components.get("kube-apiserver") and components["kube-apiserver"].is_running():
            ready = self.api(state).ready_nodes(state["nodes"])
            print(f"  nodes: {len(ready)}/{len(state['nodes'])} Ready ({', '.join(state['nodes'])})")
        print(f"  kubeconfig: {self.kubeconfig}\n  logs: {self.logs}")
        return all_running

    def _health_checks(self, state: dict[str, Any]) -> dict[str, Callable[[], bool]]:
        ports = state["ports"]
        return {
            "etcd": lambda: serves_etcd_health(ports["etcd-client"]),
            "kube-apiserver": self.api(state).is_ready,
            "kube-controller-manager": lambda: serves_healthz(ports["kube-controller-manager"]),
            "kube-scheduler": lambda: serves_healthz(ports["kube-scheduler"]),
            "kwok": lambda: True,  # serves nothing; alive is all one can ask
        }

    # -- faults (for the e2e fault tests) ---------------------------------------------------------------------

    def restart(self, name: str, timeout: float = 120.0) -> None:
        """Stop one component (SIGTERM) and start it again with the same flags, ports and certificates, as a
        supervisor restarts a process; return once it is healthy again. etcd keeps its data."""
        with file_lock(state_root() / f".{self.name}.lock"):
            state, component = self._recorded(name)
            component.stop()  # a no-op if it crashed: then this starts it again
            restarted = self._launch(name, self._argv(name, state["ports"]))
            state["components"][name] = {"pid": restarted.pid, "start_time": restarted.start_time,
                                         "log": restarted.log}
            self._save(state)
        wait_for(f"{name} to be healthy again", self._health_checks(state)[name], timeout, [restarted])
        say(f"restarted {name} (pid {restarted.pid})")

    def pause(self, name: str) -> None:
        """SIGSTOP one component: it keeps its sockets open but answers nothing, like a hung process or a
        stalled disk; its clients see timeouts, not refused connections."""
        os.kill(self._running(name)[1].pid, signal.SIGSTOP)
        say(f"paused {name}")

    def resume(self, name: str) -> None:
        os.kill(self._running(name)[1].pid, signal.SIGCONT)
        say(f"resumed {name}")

    @contextlib.contextmanager
    def paused(self, name: str) -> Iterator[None]:
        """`name` is paused inside the block and resumed when it ends, however it ends."""
        self.pause(name)
        try:
            yield
        finally:
            self.resume(name)

    def _recorded(self, name: str) -> tuple[dict[str, Any], Component]:
        state = self._load()
        component = next((c for c in self.components(state) if c.name == name), None) if state else None
        if state is None or component is None:
            raise ClusterError(f"cluster {self.name!r} is not up")
        return state, component

    def _running(self, name: str) -> tuple[dict[str, Any], Component]:
        state, component = self._recorded(name)
        if not component.is_running():
            raise ClusterError(f"{name} of cluster {self.name!r} is not running")
        return state, component

    def env(self) -> str:
        path = ":".join(str(tool(binary).parent) for binary in ("kubectl", "helm"))
        return f'export KUBECONFIG="{self.kubeconfig}"\nexport PATH="{path}:$PATH"\n'


# ---------------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("up", "down", "status", "env", "build", "restart", "pause", "resume"))
    parser.add_argument("component", nargs="?", choices=COMPONENT_ORDER, help="for restart, pause and resume")
    parser.add_argument("--name", default=os.environ.get("INFERBUDGET_CLUSTER", DEFAULT_CLUSTER),
                        help="cluster name (default $INFERBUDGET_CLUSTER or %(default)s)")
    parser.add_argument("--nodes", type=int, default=DEFAULT_NODES, help="fake GPU nodes (up; default %(default)s)")
    parser.add_argument("--timeout", type=float, default=180.0,
                        help="seconds to wait for each component (up; default %(default)s)")
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            build()
            return 0
        cluster = Cluster(args.name)
        if args.command == "up":
            cluster.up(nodes=args.nodes, timeout=args.timeout)
        elif args.command == "down":
            cluster.down()
        elif args.command == "status":
            return 0 if cluster.status() else 1
        elif args.command == "env":
            sys.stdout.write(cluster.env())
        elif args.component is None:
            parser.error(f"{args.command} needs a component: {', '.join(COMPONENT_ORDER)}")
        else:
            {"restart": cluster.restart, "pause": cluster.pause, "resume": cluster.resume}[args.command](
                args.component)
        return 0
    except ClusterError as error:
        say(f"error: {error}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
