"""Shared plumbing of the benchmarks: finding the data, a throwaway Django, tables.

* :func:`resolve_data_dir` finds the evaluation data: ``--data-dir``, else
  ``$SHOP_DATA_DIR``, else ``../shared/data`` relative to the repository root;
  :func:`require_file` ends the run with a clear message and exit status 2
  when a file is missing.
* :func:`django_environment` starts Django on :mod:`bench.settings` (or a
  benchmark's own settings module built on it) with a fresh SQLite database
  and tantivy directory in a temporary folder, runs the migrations, and
  removes the folder afterwards (unless asked to keep it).
* :class:`RedisServer` runs a private ``redis-server`` on a free loopback
  port (never the machine's shared one) that a fault test or benchmark may
  stop, kill and restart on the same port.
* :func:`markdown_table` and :func:`command_line` format what is printed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA_DIR = REPO_ROOT.parent / "shared" / "data"


def fail(message: str, status: int = 2) -> SystemExit:
    """Print ``error: message`` on stderr and return the ``SystemExit`` to raise.

    Args:
        message: What is wrong and how to fix it.
        status: Exit status (2: missing data or bad option).
    """
    print(f"error: {message}", file=sys.stderr)
    return SystemExit(status)


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--data-dir`` and ``--keep-tmp`` to a benchmark's parser."""
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="Folder of the shared evaluation data (default: $SHOP_DATA_DIR, else "
        "../shared/data relative to the repository root).",
    )
    parser.add_argument(
        "--keep-tmp",
        action="store_true",
        help="Keep the temporary database and index folder and print its path.",
    )


def resolve_data_dir(value: Path | None) -> Path:
    """The data folder to read: the option, else ``$SHOP_DATA_DIR``, else the default.

    Args:
        value: The ``--data-dir`` option, if given.

    Returns:
        The folder (not checked; see :func:`require_file`).
    """
    if value is not None:
        return value
    env = os.environ.get("SHOP_DATA_DIR")
    return Path(env) if env else DEFAULT_DATA_DIR


def require_file(path: Path, what: str) -> Path:
    """Return ``path`` when it is a file, else end the run with status 2.

    Args:
        path: The file the benchmark needs.
        what: Human description used in the message.

    Raises:
        SystemExit: The file does not exist (status 2, message on stderr).
    """
    if not path.is_file():
        raise fail(
            f"{what} not found at {path}. Point --data-dir (or SHOP_DATA_DIR) at the shared "
            "data folder (the one holding bestbuy/ and icecat/)."
        )
    return path


@contextlib.contextmanager
def django_environment(*, keep: bool = False, settings_module: str = "bench.settings") -> Iterator[Path]:
    """Run Django on :mod:`bench.settings` with throwaway state.

    Must be entered before anything imports Django models. Forces
    ``DJANGO_SETTINGS_MODULE`` so a real shop's database is never used.

    Args:
        keep: Leave the temporary folder in place (its path is printed).
        settings_module: A settings module that star-imports
            :mod:`bench.settings` and changes a few settings for one benchmark.

    Yields:
        The temporary folder holding the database and the indexes.
    """
    tmp = Path(tempfile.mkdtemp(prefix="shop-bench-"))
    os.environ["BENCH_TMP_DIR"] = str(tmp)
    os.environ["DJANGO_SETTINGS_MODULE"] = settings_module
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    try:
        yield tmp
    finally:
        from django.db import connections

        from suggestions.recall import reset_backends

        reset_backends()
        connections.close_all()
        if keep:
            print(f"(kept the temporary state in {tmp})")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


class RedisServer:
    """A private ``redis-server`` for faults: start, stop (or kill) and start again on one port.

    Nothing is persisted (no RDB, no AOF): a restart comes back empty, as a
    cache node that was replaced would. Use it as a context manager; the
    server is stopped on exit whatever state it is in.

    Args:
        workdir: Folder for the server's log.
        port: Port to listen on (default: a free one, chosen once).
        executable: ``redis-server`` to run (default: the one on ``PATH``).
    """

    def __init__(self, workdir: Path, *, port: int | None = None, executable: str | None = None) -> None:
        self.workdir = Path(workdir)
        self.port = port or free_port()
        self.executable = executable or shutil.which("redis-server") or "redis-server"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        """Start the server and wait until it accepts connections.

        Raises:
            RuntimeError: It exited or did not answer within ``timeout`` seconds.
        """
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = (self.workdir / "redis.log").open("ab")
        self.process = subprocess.Popen(
            [self.executable, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while not self.answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server on port {self.port} did not start; see {self.workdir / 'redis.log'}")
            time.sleep(0.05)

    def answers(self) -> bool:
        """True when the port answers ``PING`` with ``PONG``."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self, *, kill: bool = False) -> None:
        """Stop the server (``kill``: SIGKILL, as a crash) and wait until the port is closed."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.process = None

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def free_port() -> int:
    """A TCP port free on 127.0.0.1 at the time of the call."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Stopwatch:
    """Named phase timings, in seconds, in the order they ended."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.phases: list[tuple[str, float]] = []

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time the enclosed block as ``name``."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.phases.append((name, time.perf_counter() - start))

    def total(self) -> float:
        """Seconds since the stopwatch was created."""
        return time.perf_counter() - self.started

    def summary(self) -> str:
        """``"total 12.3 s (load 1.0 s, eval 11.3 s)"``; a phase timed several times is summed."""
        totals: dict[str, float] = {}
        for name, seconds in self.phases:
            totals[name] = totals.get(name, 0.0) + seconds
        parts = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in totals.items())
        return f"{self.total():.1f} s ({parts})" if parts else f"{self.total():.1f} s"


def command_line(module: str, argv: Sequence[str] | None = None) -> str:
    """The command as a reader can re-run it, e.g. ``python -m bench.qac --seed 1``."""
    args = list(sys.argv[1:] if argv is None else argv)
    return shlex.join(["python", "-m", module, *args])


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-flavoured markdown table; numeric cells right-aligned.

    Args:
        header: Column titles.
        rows: Cells, converted with ``str``.
    """
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    numeric = [
        any(row[i] for row in cells[1:]) and all(_looks_numeric(row[i]) for row in cells[1:] if row[i]) for i in range(len(header))
    ]

    def line(row: Sequence[str]) -> str:
        return "| " + " | ".join(
            c.rjust(w) if num else c.ljust(w) for c, w, num in zip(row, widths, numeric, strict=True)
        ) + " |"

    rule = "|" + "|".join(("-" * (w + 1) + ":") if num else ("-" * (w + 2)) for w, num in zip(widths, numeric, strict=True)) + "|"
    return "\n".join([line(cells[0]), rule, *(line(r) for r in cells[1:])])


def _looks_numeric(text: str) -> bool:
    stripped = text.replace(",", "").replace("%", "").strip()
    if stripped.startswith(("+", "-", "−")):
        stripped = stripped[1:]
    try:
        float(stripped)
    except ValueError:
        return False
    return True


DEVICE_CHOICES = ("cpu", "cuda", "auto")


def add_device_argument(parser: argparse.ArgumentParser, default: str = "cpu") -> None:
    """Add ``--device cpu|cuda|auto`` (resolve it with :func:`resolve_device`)."""
    parser.add_argument("--device", choices=DEVICE_CHOICES, default=default,
                        help=f"Where torch runs: cpu, cuda, or auto (cuda when available) (default {default}).")


def resolve_device(value: str) -> str:
    """``cpu`` or ``cuda`` for a ``--device`` value; never falls back silently.

    Args:
        value: ``cpu``, ``cuda`` or ``auto``.

    Raises:
        SystemExit: ``cuda`` was asked for and torch sees no CUDA device
            (status 2, the reason on stderr).
    """
    import torch

    if value == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if value == "cuda" and not torch.cuda.is_available():
        build = torch.version.cuda or "none (a CPU-only build)"
        raise fail(f"--device cuda: torch {torch.__version__} sees no CUDA device (its CUDA: {build}). "
                   "Use --device cpu, or run on a machine with a GPU and a CUDA build of torch.")
    return value


def device_text(device: str) -> str:
    """One line naming the device the figures come from."""
    import torch

    if device == "cuda":
        return f"cuda ({torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda})"
    return f"cpu ({os.cpu_count()} logical CPUs, {torch.get_num_threads()} torch threads, torch {torch.__version__})"


def synchronize(device: str) -> None:
    """Wait for queued GPU work (timings on ``cuda`` must end with it)."""
    if device == "cuda":
        import torch

        torch.cuda.synchronize()
