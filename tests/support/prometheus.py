"""A real Prometheus (the Debian package's binary) started for a test or the demo, on loopback.

Scrape targets are read from a file_sd JSON file, so a test adds targets without restarting Prometheus.
"""

import json
import shutil
import socket
import subprocess
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import yaml
from tests.support.scripts import wait_until


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Prometheus:
    url: str
    process: subprocess.Popen[bytes]
    targets_file: Path
    log: Path

    def scrape(self, *addresses: str) -> None:
        """Scrape these host:port targets (labels come from the target itself: honor_labels)."""
        self.targets_file.write_text(json.dumps([{"targets": list(addresses)}]))

    def targets(self) -> list[str]:
        return [address for group in json.loads(self.targets_file.read_text()) for address in group["targets"]]

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def start(directory: Path, scrape_interval: str = "1s", port: int | None = None,
          rule_files: list[Path] | None = None) -> Prometheus:
    binary = shutil.which("prometheus")
    if binary is None:
        raise RuntimeError("prometheus is not installed: `apt-get install -y prometheus` (make test does it)")
    directory.mkdir(parents=True, exist_ok=True)
    targets = directory / "targets.json"
    targets.write_text("[]")
    config = {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
        "scrape_configs": [{"job_name": "fleet", "honor_labels": True,
                            "file_sd_configs": [{"files": [str(targets)], "refresh_interval": "1s"}]}],
        "rule_files": [str(path) for path in rule_files or []],
    }
    (directory / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = port or free_port()
    log = directory / "prometheus.log"
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            [binary, f"--config.file={directory / 'prometheus.yml'}", f"--storage.tsdb.path={directory / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}", "--web.enable-lifecycle"],
            stdout=log_file, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    prometheus = Prometheus(url, process, targets, log)
    try:
        wait_until("Prometheus to be ready", lambda: process.poll() is not None or _ready(url), 60)
    except TimeoutError:
        prometheus.stop()
        raise
    if process.poll() is not None:
        raise RuntimeError(f"Prometheus exited: {log.read_text()[-2000:]}")
    return prometheus
