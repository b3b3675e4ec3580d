"""The Elasticsearch-compatible test server, as a session fixture.

``es_url`` starts ``noida-db`` (an ES-8-compatible server from PyPI) with only
its Elasticsearch API on a free port and a throw-away data directory, waits
until it answers, yields its URL and stops it with SIGINT at the end of the
session. Without the executable, or when it does not come up, tests that use
the fixture skip locally and fail with ``CI=true`` (see
:func:`tests.plugins.services.require_service`). Tests should use a unique
index prefix each, since the server is shared by the whole session.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from tests.plugins.services import free_port, require_service

SERVER = "the Elasticsearch-compatible test server (pip install noida-db)"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


def _find_executable() -> str | None:
    # The venv's own copy first: PATH may hold another version or none.
    name = "noida-db.exe" if os.name == "nt" else "noida-db"
    candidate = os.path.join(os.path.dirname(sys.executable), name)
    if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
        return candidate
    return shutil.which("noida-db")


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _tail(path: str, limit: int = 2000) -> str:
    try:
        with open(path, "rb") as fh:
            return fh.read().decode("utf-8", "replace")[-limit:]
    except OSError:
        return ""


def _signal(process: subprocess.Popen, sig: int) -> None:
    # The executable is a launcher with the server as its child: signal the
    # whole process group we created for it, so neither is left behind.
    try:
        if os.name == "posix":
            os.killpg(process.pid, sig)
        else:  # pragma: no cover
            process.send_signal(sig)
    except (ProcessLookupError, PermissionError):
        pass


def _stop(process: subprocess.Popen) -> None:
    # SIGINT is the server's Ctrl-C: it saves and exits cleanly.
    _signal(process, signal.SIGINT)
    try:
        process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        _signal(process, signal.SIGKILL if os.name == "posix" else signal.SIGTERM)
        process.wait(timeout=STOP_TIMEOUT)


def _default_sigint() -> None:  # pragma: no cover - runs in the child
    # A shell script that starts pytest in the background makes it ignore
    # SIGINT, and children inherit that; the server must still hear Ctrl-C.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture(scope="session")
def es_url() -> Iterator[str]:
    """URL of a running Elasticsearch-compatible test server for this session."""
    executable = _find_executable()
    require_service(executable is not None, SERVER)
    assert executable is not None
    workdir = tempfile.mkdtemp(prefix="es-test-server-")
    data_dir = os.path.join(workdir, "data")
    log_path = os.path.join(workdir, "server.log")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [
                executable,
                "start",
                "--only",
                "elasticsearch",
                "--host",
                "127.0.0.1",
                "--elasticsearch-port",
                str(port),
                "--data-dir",
                data_dir,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=os.name == "posix",
            preexec_fn=_default_sigint if os.name == "posix" else None,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not _answers(url):
            if process.poll() is not None or time.monotonic() > deadline:
                _stop(process)
                require_service(False, f"{SERVER} at {url} (it did not start: {_tail(log_path)!r})")
            time.sleep(0.1)
        yield url
    finally:
        _stop(process)
        shutil.rmtree(workdir, ignore_errors=True)
