"""Speed of the understanding model, float32 vs int8, through the workers' path.

``python -m bench.understanding_speed [--device cpu|cuda|auto] [--variants minilm-en-ph,e5-en-ph]
[--modes off,int8] [--threads 2] [--repeats 5] [--models-dir DIR] [--data-dir DIR]
[--train missing|never]``

Each model (every variant, and the ensemble of all of them, the product's
default shape: MiniLM + multilingual-e5-small) is loaded once per
quantisation by :func:`suggestions.ml.understanding.registry.load_model`, the
function the workers load models with (so ``int8`` is what
``SUGGESTIONS_UNDERSTANDING_QUANTIZE="int8"`` gives a worker, the catalog
gazetteer attached as in a worker), and measured in the same process, on the
same queries:

* **throughput** of :meth:`predict` (segmentation, tokenisation, forward,
  BIO-constrained decoding, gazetteer values, keyword intents) in queries per
  second at batch sizes 1 and 64 on QueryNER dev queries, on ``--threads``
  torch threads; the quantisations take turns within every repeat (so load
  from other processes hits them alike) and the table gives the median of
  ``--repeats`` repeats and the median of the per-repeat ratios to float32;
* the **forward pass alone** at batch 64 (:meth:`forward_words`: tokenisation
  and the network, no decoding), to show how much of the time the network is;
* **entity micro-F1** (exact spans) on the whole QueryNER dev split, and its
  difference to the float32 model.

``onnx-int8`` is the network exported to ONNX Runtime and quantised to int8
there (:mod:`suggestions.ml.understanding.onnx_runtime`; needs the ``[onnx]``
extra), what ``SUGGESTIONS_UNDERSTANDING_QUANTIZE="onnx-int8"`` gives a worker;
its load time (export, check, quantisation) is printed.

``--modes`` also takes two ablations the product does not offer (the model is
loaded with :meth:`UnderstandingModel.load` and quantised by
:func:`~suggestions.ml.understanding.model.quantize_encoder`, not through the
registry): ``int8-per-tensor``, the same int8 quantisation with one weight
scale per matrix instead of per output channel, and ``int8-7bit``, with
activations quantised over 7 bits (torch's ``reduce_range`` default) where the
product's ``int8`` uses all 8 on a CPU with VNNI.

``--device cuda`` loads and trains on the GPU; int8 is a CPU quantisation
(the workers run float32 on a GPU), so there only ``off`` is measured and
the other modes are dropped with a note. ``--variants tiny-en`` is a
config-built 2-layer BERT (hidden 64, WordPiece vocabulary learned from the
QueryNER train queries) trained one epoch on 2,000 QueryNER train queries
plus the intent templates: no base encoder package is needed (the short mode
of ``bench/gpu.sh``); its F1 is far below the real variants'.

Variants are the ones of :mod:`bench.understanding.variants`, cached in
``--models-dir`` (the same folder ``python -m bench.understanding`` uses) and
trained there when missing (``--train missing``, the default; 5 to 15 minutes
per English variant on 2 cores). The load average is printed at the start and
the end: other processes share the machine.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import time
from pathlib import Path
from typing import Any

from bench.common import (
    Stopwatch,
    add_common_arguments,
    add_device_argument,
    command_line,
    device_text,
    django_environment,
    markdown_table,
    require_file,
    resolve_data_dir,
    resolve_device,
    synchronize,
)

DEFAULT_VARIANTS = "minilm-en-ph,e5-en-ph"
#: --modes values of the ablations (not SUGGESTIONS_UNDERSTANDING_QUANTIZE values), as
#: quantize_encoder arguments: one weight scale per matrix; 7-bit activations.
ABLATIONS = {"int8-per-tensor": {"per_channel": False}, "int8-7bit": {"full_range": False}}
#: --variants value of the config-built variant (no base encoder package needed).
TINY = "tiny-en"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.understanding_speed",
                                     description=__doc__.split("\n\n")[0])
    add_common_arguments(parser)
    add_device_argument(parser)
    parser.add_argument("--variants", default=DEFAULT_VARIANTS,
                        help=f"Comma-separated variants of bench.understanding, or {TINY!r} "
                             f"(default {DEFAULT_VARIANTS}); with several, their ensemble is measured too.")
    parser.add_argument("--modes", default="off,int8",
                        help="Comma-separated quantisations (SUGGESTIONS_UNDERSTANDING_QUANTIZE values); "
                             "the first is the reference of the ratios and F1 differences (default off,int8).")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2).")
    parser.add_argument("--repeats", type=int, default=5, help="Timing repeats per model and mode (default 5).")
    parser.add_argument("--queries", type=int, default=640,
                        help="Queries per timing repeat at batch 64 (default 640; batch 1 times a fifth).")
    parser.add_argument("--train", choices=["missing", "never"], default="missing",
                        help="Train variants missing from --models-dir (default) or skip them.")
    parser.add_argument("--models-dir", type=Path, default=None,
                        help="Where trained variants are cached (default: "
                             "<SUGGESTIONS_ENCODER_CACHE_DIR>/bench-understanding, as bench.understanding).")
    return parser.parse_args(argv)


def _load_text() -> str:
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "unknown"
    return f"{one:.2f}, {five:.2f}, {fifteen:.2f} (1, 5, 15 min)"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    data_dir = resolve_data_dir(args.data_dir)
    require_file(data_dir / "queryner/dev.jsonl", "queryner/dev.jsonl")
    import torch

    from suggestions.ml.understanding.model import full_range_supported

    torch.set_num_threads(args.threads)
    vnni = full_range_supported()
    args.device = resolve_device(args.device)
    print(f"command: {command_line('bench.understanding_speed', argv)}")
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "?") if Path("/proc/cpuinfo").is_file() else "?"
    print(f"machine: {cpu}, {os.cpu_count()} logical CPUs, torch {torch.__version__}, "
          f"{torch.get_num_threads()} torch threads, quantized engine {torch.backends.quantized.engine}, "
          f"int8 activations over {8 if vnni else 7} bits (VNNI {'yes' if vnni else 'no'})")
    print(f"device: {device_text(args.device)}")
    print(f"date: {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}")
    print(f"load average at start: {_load_text()}")
    print()
    watch = Stopwatch()
    with django_environment(keep=args.keep_tmp):
        status = _run(args, data_dir, watch)
    print(f"load average at end: {_load_text()}")
    print(f"total {watch.summary()}")
    return status


def _variants(models_dir: Path, data_dir: Path, names: list[str]) -> dict[str, Any]:
    """The benchmark's variants, with the config-built one when asked for (its base built once)."""
    from bench.understanding.variants import VARIANTS, Variant

    variants = dict(VARIANTS)
    if TINY in names:
        base = models_dir / f"{TINY}-base"
        if not (base / "config.json").is_file():
            import json

            from suggestions.ml.understanding.model import build_tiny_base

            lines = (data_dir / "queryner/train.jsonl").read_text(encoding="utf-8").splitlines()
            texts = [json.loads(line).get("query", "") for line in lines if line.strip()]
            build_tiny_base(texts, base, hidden=64, layers=2, heads=2, vocab_size=3000, seed=13)
        variants[TINY] = Variant(TINY, str(base), ("queryner", "templates"),
                                 {"lr": 5e-3, "head_lr": 5e-3, "epochs": 1, "phrase_features": False},
                                 max_train=2000, description="config-built BERT (2 layers, hidden 64), 1 epoch")
    return variants


def _ensure_models(args: argparse.Namespace, data_dir: Path, models_dir: Path, names: list[str],
                   variants: dict[str, Any]) -> dict[str, Path]:
    """Folders of the trained variants and, with several, of their ensemble."""
    from bench.understanding.variants import add_missing_prior, train_variant
    from suggestions.ml.understanding.model import EnsembleModel, UnderstandingModel

    folders: dict[str, Path] = {}
    for name in names:
        folder = models_dir / name
        if not (folder / "understanding.json").is_file():
            if args.train == "never":
                print(f"skipping {name}: not trained in {folder} (--train never)")
                continue
            print(f"training {name} on {args.device} into {folder} …", flush=True)
            train_variant(variants[name], folder, data_dir=data_dir, device=args.device, progress=False,
                          log=lambda line: print(f"  {line}", flush=True))
        add_missing_prior(variants[name], folder, UnderstandingModel.load(folder, device="cpu"), data_dir=data_dir)
        folders[name] = folder
    if len(folders) > 1:
        name = "+".join(folders)
        folder = models_dir / name
        if not (folder / "understanding.json").is_file():
            members = [UnderstandingModel.load(f, device="cpu") for f in folders.values()]
            EnsembleModel(members, meta={"version": f"bench-{name}"}).save(folder)
        folders[name] = folder
    return folders


def _load(registry: Any, folder: Path, mode: str, device: str) -> Any:
    """The model as a worker loads it, or an ablation."""
    if mode not in ABLATIONS:
        return registry.load_model(str(folder), device=device, quantize=mode)
    from suggestions.ml.understanding.model import (
        EnsembleModel,
        UnderstandingModel,
        quantize_encoder,
    )

    model = UnderstandingModel.load(folder, device="cpu")
    for member in model.members if isinstance(model, EnsembleModel) else [model]:
        quantize_encoder(member.network, "int8", **ABLATIONS[mode])
        member.meta["quantized"] = "int8"
    return model


def _rate(call: Any, queries: list[str], device: str) -> float:
    synchronize(device)
    started = time.perf_counter()
    call(queries)
    synchronize(device)
    return len(queries) / (time.perf_counter() - started)


def _run(args: argparse.Namespace, data_dir: Path, watch: Stopwatch) -> int:
    from bench.understanding.variants import VARIANTS
    from suggestions.conf import app_settings
    from suggestions.ml.understanding import registry
    from suggestions.ml.understanding.corpora import queryner_examples
    from suggestions.ml.understanding.model import QUANTIZE_MODES
    from suggestions.ml.understanding.training import evaluate
    from suggestions.ml.understanding.words import model_words
    from suggestions.nlp.labels import DEFAULT_ENTITY_LABELS

    names = [n.strip() for n in args.variants.split(",") if n.strip()]
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    known = [*VARIANTS, TINY]
    unknown = [n for n in names if n not in known] + [m for m in modes if m not in (*QUANTIZE_MODES, *ABLATIONS)]
    if unknown or not modes:
        raise SystemExit(f"error: unknown variants or modes {unknown}; variants: {known}, "
                         f"modes: {[*QUANTIZE_MODES, *ABLATIONS]}")
    if args.device != "cpu" and modes != ["off"]:
        print(f"note: int8 (torch or ONNX Runtime) is for the CPU; on {args.device} only 'off' (float32) is measured "
              f"(dropped: {', '.join(m for m in modes if m != 'off')})")
        modes = ["off"]
    models_dir = args.models_dir or Path(app_settings.ENCODER_CACHE_DIR) / "bench-understanding"
    with watch.phase("train/prepare"):
        variants = _variants(models_dir, data_dir, names)
        folders = _ensure_models(args, data_dir, models_dir, names, variants)
    dev = queryner_examples(data_dir / "queryner/dev.jsonl", DEFAULT_ENTITY_LABELS)
    for ex in dev:
        ex.words = model_words(ex.text)
    texts = [ex.text for ex in dev]
    n64, n1 = max(64, args.queries), max(8, args.queries // 5)

    speed_rows, f1_rows = [], []
    for name, folder in folders.items():
        registry.reset()
        loaded = {}
        with watch.phase("load"):
            for mode in modes:
                started = time.perf_counter()
                loaded[mode] = _load(registry, folder, mode, args.device)
                print(f"loaded {name} ({mode}) in {time.perf_counter() - started:.1f} s", flush=True)
        for mode, model in loaded.items():
            if model.quantized != (mode if mode in QUANTIZE_MODES else "int8"):
                print(f"note: {name} asked for {mode!r} runs {model.quantized!r}")
            model.predict(texts[:64], batch_size=64)  # warm-up
            model.predict(texts[:8], batch_size=1)
        rates: dict[tuple[str, str], list[float]] = {(m, k): [] for m in modes for k in ("b1", "b64", "fwd")}
        with watch.phase("timing"):
            for r in range(args.repeats):
                chunk64 = [texts[(r * n64 + i) % len(texts)] for i in range(n64)]
                chunk1 = [texts[(r * n1 + i) % len(texts)] for i in range(n1)]
                words64 = [model_words(q) for q in chunk64]
                for mode, model in loaded.items():
                    rates[(mode, "b1")].append(
                        _rate(lambda qs, m=model: m.predict(qs, batch_size=1), chunk1, args.device))
                    rates[(mode, "b64")].append(
                        _rate(lambda qs, m=model: m.predict(qs, batch_size=64), chunk64, args.device))
                    rates[(mode, "fwd")].append(
                        _rate(lambda qs, m=model, w=words64: m.forward_words(w, 64), chunk64, args.device))
        with watch.phase("entity F1"):
            f1 = {mode: evaluate(model, dev)["entity"]["f1"] for mode, model in loaded.items()}
        ref = modes[0]
        for mode in modes:
            row = [name, mode]
            for kind in ("b1", "b64", "fwd"):
                median = statistics.median(rates[(mode, kind)])
                row.append(f"{median:.0f}")
                if kind != "fwd":
                    ratios = [a / b for a, b in zip(rates[(mode, kind)], rates[(ref, kind)], strict=True)]
                    row.append("–" if mode == ref else f"{statistics.median(ratios):.2f}")
            row.append(" ".join(f"{v:.0f}" for v in rates[(mode, "b64")]))
            speed_rows.append(row)
            f1_rows.append([name, mode, f"{f1[mode]:.4f}",
                            "–" if mode == ref else f"{f1[mode] - f1[ref]:+.4f}",
                            "–" if mode == ref else ("yes" if abs(f1[mode] - f1[ref]) <= 0.005 else "NO")])
        del loaded
        registry.reset()

    where = f"{args.threads} torch threads" if args.device == "cpu" else args.device
    print(f"## Throughput of predict() through registry.load_model, {where} "
          f"(queries/s, median of {args.repeats} repeats; ratio: median of per-repeat ratios to {modes[0]})\n")
    print(markdown_table(["model", "quantisation", "batch 1", "ratio b1", "batch 64", "ratio b64",
                          "forward only b64", "batch 64 repeats"], speed_rows))
    print(f"\n(batch 64: {n64} queries per repeat; batch 1: {n1}; forward only: tokenisation and the "
          "network, no decoding)\n")
    print(f"## Entity micro-F1 on QueryNER dev ({len(dev)} queries, exact spans)\n")
    print(markdown_table(["model", "quantisation", "F1", f"Δ F1 vs {modes[0]}", "within 0.005"], f1_rows))
    print()
    return 0
