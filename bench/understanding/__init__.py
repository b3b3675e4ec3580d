"""Query understanding benchmark: entity F1, intent accuracy and throughput.

``python -m bench.understanding [--device cpu|cuda] [--variants minilm-en,e5-en,e5-multi]
[--train missing|always|never] [--models-dir DIR] [--data-dir DIR]``

What is measured (see ``README.md`` beside this file for results and method):

1. **Entity micro-F1** (exact spans, seqeval-style) on QueryNER ``dev.jsonl``
   (English, 17 types) and Jie et al. 2019 ``dev.txt`` (Chinese, 4 types),
   mapped onto the app's labels (bijections, so the figures are the
   datasets' own):

   * the dictionary tagger (:class:`suggestions.ml.understanding.dictionary.DictionaryTagger`)
     fitted on the same train split, on the datasets' own tokens;
   * each fine-tuned variant of :mod:`bench.understanding.variants`, trained
     by the product's training code on the train splits only (never dev),
     through the production path (:meth:`UnderstandingModel.predict_words`
     on :func:`~suggestions.ml.understanding.words.model_words` words, BIO-constrained
     decoding, character spans compared with the gold character spans);
   * ensembles of trained variants (probabilities averaged per word).

   Trained models are cached in ``--models-dir`` (default
   ``<SUGGESTIONS_ENCODER_CACHE_DIR>/bench-understanding``, outside the
   repository) and reused unless ``--train always``.
2. **Intent accuracy** on ``intent_sample.jsonl`` (415 queries, built by
   :mod:`bench.understanding.build_intent_sample`, labels by rules of thumb):
   the rules (:func:`suggestions.nlp.rules.understand_with_rules` with the
   built-in gazetteer: the benchmark has no catalog) vs each model.
3. **Throughput** of :meth:`predict` (segmentation, tokenisation, forward,
   decoding) in queries per second at batch sizes 1 and 64 on QueryNER dev
   queries, on the chosen device.

The command, machine and date are printed first; each table says what it is.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

from bench.common import (
    Stopwatch,
    add_common_arguments,
    command_line,
    django_environment,
    markdown_table,
    require_file,
    resolve_data_dir,
)

HERE = Path(__file__).resolve().parent


def _machine(device: str) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import torch

    text = f"{cpu}, {os.cpu_count()} logical CPUs, torch {torch.__version__} ({torch.get_num_threads()} threads)"
    if device == "cuda" and torch.cuda.is_available():
        text += f", GPU {torch.cuda.get_device_name(0)}"
    try:
        load = os.getloadavg()[0]
        text += f", load average {load:.1f} at start"
    except OSError:
        pass
    return text


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from bench.understanding.variants import ENSEMBLES, VARIANTS

    parser = argparse.ArgumentParser(prog="python -m bench.understanding", description=__doc__.split("\n\n")[0])
    add_common_arguments(parser)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                        help="Where models train (when needed), predict and are timed (default cpu).")
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help=f"Comma-separated variants (default: {','.join(VARIANTS)}).")
    parser.add_argument("--ensembles", default=",".join(ENSEMBLES),
                        help="Comma-separated ensembles of trained variants ('' for none).")
    parser.add_argument("--train", choices=["missing", "always", "never"], default="missing",
                        help="Train variants missing from --models-dir (default), all, or none.")
    parser.add_argument("--models-dir", type=Path, default=None,
                        help="Where trained variants are cached (default: "
                             "<SUGGESTIONS_ENCODER_CACHE_DIR>/bench-understanding).")
    parser.add_argument("--throughput-seconds", type=float, default=5.0,
                        help="Seconds of timing per model and batch size (default 5).")
    parser.add_argument("--no-progress", action="store_true", help="Hide training progress bars.")
    parser.add_argument("--epochs", type=int, default=0,
                        help="Train the variants with this many epochs instead, as <variant>-<N>ep "
                             "(a shorter training on a busy CPU; default: each variant's own).")
    return parser.parse_args(argv)


def dictionary_baseline(data_dir: Path) -> dict[str, Any]:
    """DictionaryTagger fitted on each train split, F1 on its dev split."""
    from suggestions.ml.understanding.corpora import read_jie2019, read_queryner
    from suggestions.ml.understanding.dictionary import DictionaryTagger
    from suggestions.ml.understanding.metrics import micro_f1
    from suggestions.nlp.labels import JIE2019_TO_LABEL, QUERYNER_TO_LABEL

    out = {}
    for name, reader, mapping, train, dev in (
        ("queryner", read_queryner, QUERYNER_TO_LABEL, "queryner/train.jsonl", "queryner/dev.jsonl"),
        ("jie2019", read_jie2019, JIE2019_TO_LABEL, "zh/ecom_ner_jie2019/train.txt", "zh/ecom_ner_jie2019/dev.txt"),
    ):
        tagger = DictionaryTagger().fit(reader(data_dir / train, mapping))
        dev_examples = reader(data_dir / dev, mapping)
        predicted = tagger.predict_many([tokens for tokens, _ in dev_examples])
        out[name] = micro_f1([labels for _, labels in dev_examples], predicted)
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    data_dir = resolve_data_dir(args.data_dir)
    for rel in ("queryner/train.jsonl", "queryner/dev.jsonl", "zh/ecom_ner_jie2019/train.txt",
                "zh/ecom_ner_jie2019/dev.txt"):
        require_file(data_dir / rel, rel)
    sample_path = require_file(HERE / "intent_sample.jsonl", "intent sample (python -m bench.understanding.build_intent_sample)")
    print(f"command: {command_line('bench.understanding', argv)}")
    print(f"machine: {_machine(args.device)}")
    print(f"date: {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}")
    print()
    watch = Stopwatch()
    with django_environment(keep=args.keep_tmp):
        return _run(args, data_dir, sample_path, watch)


def _run(args: argparse.Namespace, data_dir: Path, sample_path: Path, watch: Stopwatch) -> int:
    from dataclasses import replace

    import torch

    from bench.understanding.variants import ENSEMBLES, VARIANTS, add_missing_prior, train_variant
    from suggestions.conf import app_settings
    from suggestions.ml.understanding.corpora import jie2019_examples, queryner_examples
    from suggestions.ml.understanding.model import EnsembleModel, UnderstandingModel
    from suggestions.ml.understanding.training import evaluate
    from suggestions.ml.understanding.words import model_words
    from suggestions.nlp.gazetteer import Gazetteer
    from suggestions.nlp.labels import DEFAULT_ENTITY_LABELS, DEFAULT_INTENTS
    from suggestions.nlp.rules import understand_with_rules

    models_dir = args.models_dir or Path(app_settings.ENCODER_CACHE_DIR) / "bench-understanding"
    names = [n.strip() for n in args.variants.split(",") if n.strip()]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise SystemExit(f"error: unknown variants {unknown}; known: {list(VARIANTS)}")
    variants = dict(VARIANTS)
    if args.epochs:
        # Shorter (or longer) trainings of the same variants, in their own folders.
        for n in names:
            v = VARIANTS[n]
            variants[f"{n}-{args.epochs}ep"] = replace(
                v, name=f"{n}-{args.epochs}ep", params={**v.params, "epochs": args.epochs},
                description=f"{v.description.split(', ')[0]}, as {n} but {args.epochs} epochs")
        names = [f"{n}-{args.epochs}ep" for n in names]

    with watch.phase("dictionary"):
        baseline = dictionary_baseline(data_dir)

    dev = {"queryner": queryner_examples(data_dir / "queryner/dev.jsonl", DEFAULT_ENTITY_LABELS),
           "jie2019": jie2019_examples(data_dir / "zh/ecom_ner_jie2019/dev.txt", DEFAULT_ENTITY_LABELS)}
    for examples in dev.values():
        for ex in examples:
            ex.words = model_words(ex.text)

    models: dict[str, Any] = {}
    trained: dict[str, dict[str, Any]] = {}
    for name in names:
        folder = models_dir / name
        exists = (folder / "understanding.json").is_file()
        if args.train == "always" or (args.train == "missing" and not exists):
            print(f"training {name} on {args.device} into {folder} …", flush=True)
            with watch.phase(f"train {name}"):
                train_variant(variants[name], folder, data_dir=data_dir, device=args.device,
                              progress=not args.no_progress, log=lambda line: print(f"  {line}", flush=True))
        elif not exists:
            print(f"skipping {name}: not trained in {folder} (--train never)")
            continue
        report_file = folder / "bench_training.json"
        trained[name] = json.loads(report_file.read_text()) if report_file.is_file() else {}
        models[name] = UnderstandingModel.load(folder, device=args.device)
        add_missing_prior(variants[name], folder, models[name], data_dir=data_dir)
    for ens_name in [e.strip() for e in args.ensembles.split(",") if e.strip()]:
        members = ENSEMBLES.get(ens_name)
        if members and all(m in models for m in members):
            models[ens_name] = EnsembleModel([models[m] for m in members], meta={"version": f"bench-{ens_name}"})

    # -- entity F1 ---------------------------------------------------------------------------
    rows = [["dictionary tagger (train split)", _fmt(baseline["queryner"]["f1"]),
             _fmt(baseline["queryner"]["precision"]), _fmt(baseline["queryner"]["recall"]), "–",
             _fmt(baseline["jie2019"]["f1"]), "–", "–", "–"]]
    with watch.phase("entity eval"):
        for name, model in models.items():
            q = evaluate(model, dev["queryner"])["entity"]
            members = ENSEMBLES.get(name, (name,))
            # An ensemble answers Chinese with the members that read it (EnsembleModel).
            chinese = any("jie2019" in variants[m].sources for m in members if m in variants)
            z = evaluate(model, dev["jie2019"])["entity"] if chinese else None
            prior, model._prior = model._prior, None  # ablation: BIO constraints only
            try:
                q0 = evaluate(model, dev["queryner"])["entity"]
                z0 = evaluate(model, dev["jie2019"])["entity"] if chinese else None
            finally:
                model._prior = prior
            seconds = sum(trained.get(m, {}).get("total_seconds", 0) for m in members)
            devices = {trained.get(m, {}).get("device", "?") for m in members}
            rows.append([name, _fmt(q["f1"]), _fmt(q["precision"]), _fmt(q["recall"]), _fmt(q0["f1"]),
                         _fmt(z["f1"]) if z else "– (not trained on Chinese)", _fmt(z0["f1"]) if z0 else "–",
                         f"{seconds / 60:.1f}" if seconds else "–", "/".join(sorted(devices))])
    print("## Entity micro-F1 on the dev splits (exact spans)\n")
    print(markdown_table(["system", "QueryNER F1", "P", "R", "QueryNER F1 w/o prior", "Jie2019 F1",
                          "Jie2019 F1 w/o prior", "train min", "trained on"], rows))
    print("\n(w/o prior: the same model decoded with the BIO constraints only, without the transition "
          "prior counted from its training data)")
    print()
    for name in names:
        if name in variants:
            print(f"- {name}: {variants[name].description}")
    print()

    # -- intent accuracy --------------------------------------------------------------------
    sample = [json.loads(line) for line in sample_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    gaz = Gazetteer()
    systems: dict[str, list[str]] = {"rules (built-in gazetteer)": [
        understand_with_rules(r["query"], gaz, intents=DEFAULT_INTENTS, entity_labels=DEFAULT_ENTITY_LABELS).intent
        for r in sample]}
    head_only: dict[str, list[str]] = {}
    with watch.phase("intent eval"):
        for name, model in models.items():
            systems[name] = [u.intent for u in model.predict([r["query"] for r in sample], batch_size=64)]
            model.keyword_intents = False  # ablation: the intent head alone
            try:
                head_only[f"{name} (intent head only)"] = [
                    u.intent for u in model.predict([r["query"] for r in sample], batch_size=64)]
            finally:
                model.keyword_intents = True
    groups = [("all", lambda r: True), ("en", lambda r: r["language"] == "en"),
              ("zh", lambda r: r["language"] == "zh"), ("wands", lambda r: r["origin"] == "wands"),
              ("queryner-dev", lambda r: r["origin"] == "queryner-dev"),
              ("composed", lambda r: r["origin"] == "composed")]
    rows = []
    for name, predicted in [*systems.items(), *head_only.items()]:
        row = [name]
        for _, keep in groups:
            pairs = [(r, p) for r, p in zip(sample, predicted, strict=True) if keep(r)]
            row.append(_fmt(sum(r["intent"] == p for r, p in pairs) / len(pairs)) if pairs else "–")
        rows.append(row)
    print(f"## Intent accuracy on intent_sample.jsonl ({len(sample)} queries)\n")
    print(markdown_table(["system", *[f"{g} (n={sum(1 for r in sample if k(r))})" for g, k in groups]], rows))
    print("\n(models: the intent head, overridden where a keyword settles the intent — customer service, "
          "navigation, questions, deals; \"intent head only\": without that override)")
    print()
    per_intent = []
    for intent in DEFAULT_INTENTS:
        idx = [i for i, r in enumerate(sample) if r["intent"] == intent]
        if idx:
            per_intent.append([intent, len(idx), *[_fmt(sum(systems[s][i] == intent for i in idx) / len(idx))
                                                   for s in systems]])
    print("Recall per intent:\n")
    print(markdown_table(["intent", "n", *systems], per_intent))
    print()

    # -- throughput --------------------------------------------------------------------------
    queries = [ex.text for ex in dev["queryner"]]
    rows = []
    with watch.phase("throughput"):
        for name, model in models.items():
            row = [name]
            for batch_size in (1, 64):
                model.predict(queries[:64], batch_size=batch_size)  # warm-up
                done, started = 0, time.perf_counter()
                while time.perf_counter() - started < args.throughput_seconds:
                    chunk = queries[done % len(queries):][:max(batch_size * 4, 64)]
                    model.predict(chunk, batch_size=batch_size)
                    done += len(chunk)
                if args.device == "cuda":
                    torch.cuda.synchronize()
                row.append(f"{done / (time.perf_counter() - started):.0f}")
            rows.append(row)
    print(f"## Throughput of predict() on {args.device} (queries/s, QueryNER dev queries)\n")
    print(markdown_table(["model", "batch 1", "batch 64"], rows))
    print()
    print(f"total {watch.summary()}")
    return 0
