#!/usr/bin/env python3
"""The operator's container image, built without a Docker engine or a registry.

    hack/image/image.py base     bootstrap the Debian base image (once; cached) and print its name
    hack/image/image.py build    build the Dockerfile on it and print the image's name and size
                                 [--tag localhost/inferbudget:dev] [--base-image IMAGE]

The Dockerfile's own default base is the official Python slim image, for anyone with a registry. Machines
without one (this project's, CI's) use a Debian base made here instead: debootstrap (Debian package) installs
a minimal bookworm with python3 and its venv module into a directory, which is packed once into
$INFERBUDGET_CACHE_DIR/images (default ~/.cache/inferbudget/images) and imported into buildah's storage when
missing there. Builds use buildah (Debian package) with `--isolation chroot --storage-driver vfs`, which need
no daemon, no overlay filesystem and no user namespaces.

The base trusts the certificate authorities this machine added to its own store (/usr/local/share/
ca-certificates): pip in the build reaches PyPI through the same network path, and so through the same
TLS-inspecting proxy, if any, as pip on the host. Standard library only.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SUITE = "bookworm"  # Debian 12: Python 3.11, the version the Dockerfile's default base has
MIRROR = os.environ.get("INFERBUDGET_DEBIAN_MIRROR", "http://deb.debian.org/debian")
PACKAGES = ("python3", "python3-venv", "ca-certificates")
LOCAL_CAS = Path("/usr/local/share/ca-certificates")
DEFAULT_TAG = "localhost/inferbudget:dev"
# The same flags on every buildah call: vfs storage and chroot isolation work inside any container.
BUILDAH = ("buildah", "--storage-driver", "vfs")


class ImageError(Exception):
    """Something the user has to act on; printed without a traceback."""


def say(message: str) -> None:
    print(f"[image] {message}", file=sys.stderr, flush=True)


def cache_dir() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "inferbudget"
    return Path(os.environ.get("INFERBUDGET_CACHE_DIR") or default) / "images"


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """One bootstrap or build at a time across processes (parallel test sessions share the cache)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def run(*argv: str, quiet: bool = False) -> str:
    result = subprocess.run(argv, capture_output=quiet, text=True)
    if result.returncode != 0:
        detail = f":\n{result.stdout}{result.stderr}" if quiet else ""
        raise ImageError(f"{' '.join(argv)} exited {result.returncode}{detail}")
    return result.stdout or ""


def ensure_tools() -> None:
    """buildah and debootstrap from Debian's packages, installed when missing (as `make` installs its deps)."""
    missing = [package for package, command in (("buildah", "buildah"), ("debootstrap", "debootstrap"))
               if shutil.which(command) is None and not Path(f"/usr/sbin/{command}").exists()]
    if not missing:
        return
    if os.geteuid() != 0:
        raise ImageError(f"missing Debian packages {', '.join(missing)}: apt-get install -y {' '.join(missing)}")
    say(f"installing Debian packages: {' '.join(missing)}")
    run("apt-get", "update", "-qq")
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], check=True,
                   env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})


def _local_cas() -> list[Path]:
    return sorted(LOCAL_CAS.glob("*.crt")) if LOCAL_CAS.is_dir() else []


def base_key() -> str:
    """What the base is made of: a new key (and so a new bootstrap) when any of it changes."""
    recipe = json.dumps([SUITE, MIRROR, PACKAGES, [path.read_bytes().hex() for path in _local_cas()]])
    return hashlib.sha256(recipe.encode()).hexdigest()[:12]


def base_name() -> str:
    return f"localhost/inferbudget-base:{SUITE}-{base_key()}"


def image_exists(name: str) -> bool:
    return subprocess.run([*BUILDAH, "inspect", "--type", "image", name], capture_output=True).returncode == 0


def bootstrap_rootfs(archive: Path) -> None:
    """debootstrap a minimal Debian with python3 into a directory and pack it as a tar archive."""
    with tempfile.TemporaryDirectory(prefix="inferbudget-rootfs-", dir=archive.parent) as work:
        rootfs = Path(work) / "rootfs"
        say(f"debootstrap {SUITE} ({', '.join(PACKAGES)}) from {MIRROR}: a few minutes, once")
        run("debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE, str(rootfs), MIRROR,
            quiet=True)
        for ca in _local_cas():
            shutil.copy2(ca, rootfs / "usr/local/share/ca-certificates" / ca.name)
        run("chroot", str(rootfs), "update-ca-certificates", quiet=True)
        # pip's own certificate bundle would not include those; point it at the system store.
        (rootfs / "etc/pip.conf").write_text("[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n")
        for leftover in ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man",
                         "usr/share/info", "usr/share/locale", "var/log"):
            target = rootfs / leftover
            if target.is_dir():
                shutil.rmtree(target)
                target.mkdir()
        partial = archive.with_suffix(".partial")
        # Device nodes, /proc and /sys stay out: the runtime provides them.
        run("tar", "--numeric-owner", "--exclude=./dev/*", "--exclude=./proc/*", "--exclude=./sys/*",
            "-C", str(rootfs), "-cf", str(partial), ".", quiet=True)
        partial.rename(archive)


def ensure_base() -> str:
    """The name of the local Debian base image in buildah's storage, bootstrapping and importing it if needed."""
    ensure_tools()
    name = base_name()
    with file_lock(cache_dir() / "build.lock"):
        if image_exists(name):
            return name
        archive = cache_dir() / f"debian-{SUITE}-python3-{base_key()}.tar"
        if not archive.exists():
            started = time.monotonic()
            bootstrap_rootfs(archive)
            say(f"bootstrapped {archive.name} in {time.monotonic() - started:.0f}s")
        container = run(*BUILDAH, "from", "scratch", quiet=True).strip()
        try:
            run(*BUILDAH, "add", container, str(archive), "/", quiet=True)
            run(*BUILDAH, "config", "--env", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "--env", "LANG=C.UTF-8", "--cmd", "/bin/sh", container, quiet=True)
            run(*BUILDAH, "commit", "--rm", container, name, quiet=True)
        except ImageError:
            subprocess.run([*BUILDAH, "rm", container], capture_output=True)
            raise
        say(f"base image {name} imported from {archive}")
        return name


def build(tag: str = DEFAULT_TAG, base_image: str | None = None) -> str:
    """Builds the Dockerfile at the repository root as `tag`; returns the tag."""
    base = base_image or ensure_base()
    with file_lock(cache_dir() / "build.lock"):
        # No --layers: with vfs every cached layer is a whole copy of the filesystem, and the storage would
        # grow by a gigabyte per source change. pip's cache (a cache mount) keeps rebuilds from downloading.
        run(*BUILDAH, "bud", "--isolation", "chroot", "--build-arg", f"BASE_IMAGE={base}",
            "--tag", tag, "--file", str(ROOT / "Dockerfile"), str(ROOT))
        run(*BUILDAH, "rmi", "--prune", quiet=True)  # the image this tag named before, now untagged
    return tag


def size(name: str) -> str:
    """The image's unpacked size as buildah reports it, e.g. "374 MB"."""
    return str(json.loads(run(*BUILDAH, "images", "--json", name, quiet=True))[0]["size"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("base", help="bootstrap the Debian base image (cached) and print its name")
    build_parser = commands.add_parser("build", help="build the operator image and print its name")
    build_parser.add_argument("--tag", default=DEFAULT_TAG)
    build_parser.add_argument("--base-image", help="any image with python3 >= 3.11 and venv (default: local Debian)")
    args = parser.parse_args(argv)
    try:
        if args.command == "base":
            print(ensure_base())
        else:
            started = time.monotonic()
            tag = build(args.tag, args.base_image)
            say(f"built {tag} in {time.monotonic() - started:.0f}s: {size(tag)}")
            print(tag)
    except ImageError as error:
        say(str(error))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
