"""Build ``dist/wheelhouse/``: what ``bench/gpu.sh`` installs on a machine that has
Python, torch and transformers and nothing else of ours (``make wheelhouse``).

``python bench/wheelhouse.py [--out dist/wheelhouse] [--limit-mb 60]``

* the project's wheel (installed there with ``--no-deps``);
* the wheels of ``bench/gpu-requirements.txt`` and of everything they depend
  on, as pip resolves them, except the packages that torch and transformers
  (at the versions of ``requirements.txt``) bring themselves: the GPU machine
  has those, and its CUDA build of torch must not be replaced;
* ``requirements.txt`` (the pinned list to install) and ``assumed.txt``
  (what is left to the machine).

Fails (status 1) when the folder is over ``--limit-mb`` megabytes or when a
torch-side package slipped into it. Runs pip with this interpreter.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = REPO_ROOT / "bench" / "gpu-requirements.txt"
#: What the GPU machine brings (its own builds; never in the wheelhouse).
PROVIDED = ("torch", "transformers")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pinned(path: Path) -> list[str]:
    """The requirement lines of a requirements file."""
    return [line.split("#", 1)[0].strip() for line in path.read_text().splitlines()
            if line.split("#", 1)[0].strip()]


def provided_pins() -> list[str]:
    """torch and transformers pinned as the demo install pins them."""
    pins = {canonical(line.split("==")[0]): line for line in pinned(REPO_ROOT / "requirements.txt") if "==" in line}
    pins["torch"] = "torch==2.13.0"  # installed first by the Makefile, not listed in requirements.txt
    return [pins[name] for name in PROVIDED]


def resolve(requirements: list[str]) -> dict[str, str]:
    """name → version of everything pip would install for ``requirements`` (nothing is installed)."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--dry-run", "--ignore-installed",
                        "--report", str(report), *requirements], check=True)
        data = json.loads(report.read_text())
    return {canonical(item["metadata"]["name"]): item["metadata"]["version"] for item in data["install"]}


def size_mb(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.iterdir() if f.is_file()) / 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/wheelhouse.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "dist" / "wheelhouse")
    parser.add_argument("--limit-mb", type=float, default=60.0)
    args = parser.parse_args(argv)

    wanted = resolve(pinned(REQUIREMENTS))
    assumed = resolve(provided_pins())
    needed = {name: version for name, version in wanted.items() if name not in assumed}
    leaked = sorted(set(needed) & {canonical(p) for p in PROVIDED})
    if leaked:
        print(f"error: {leaked} would be in the wheelhouse", file=sys.stderr)
        return 1
    if args.out.exists():
        shutil.rmtree(args.out)
    args.out.mkdir(parents=True)
    pins = [f"{name}=={version}" for name, version in sorted(needed.items())]
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(args.out),
                    *pins], check=True)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(args.out), str(REPO_ROOT)], check=True)
    (args.out / "requirements.txt").write_text("\n".join(pins) + "\n")
    (args.out / "assumed.txt").write_text(
        "# Left to the GPU machine (torch, transformers and what they bring):\n"
        + "\n".join(f"{name}=={version}" for name, version in sorted(assumed.items())) + "\n")
    wheels = sorted(args.out.glob("*.whl"))
    for wheel in wheels:
        print(f"{wheel.stat().st_size / 1e6:8.2f} MB  {wheel.name}")
    total = size_mb(args.out)
    print(f"{len(wheels)} wheels in {args.out}: {total:.1f} MB (limit {args.limit_mb:g} MB)")
    if total > args.limit_mb:
        print(f"error: the wheelhouse is {total:.1f} MB, over {args.limit_mb:g} MB", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
