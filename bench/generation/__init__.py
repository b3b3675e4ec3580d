"""``python -m bench.generation``: refinement prediction on the Best Buy log,
the generator against the co-occurrence baseline, in the same run.

Data (read at run time, never committed): ``bestbuy/train.csv`` (the search
log) and ``bestbuy/sku_name.tsv`` (its products' names, the shop's catalog).

* Time split: the newest ``--heldout-days`` are held out, as the learning
  loop does (:class:`suggestions.generation.GeneratorKind`).
* Held-out units: the distinct in-session refinement pairs (q1 → q2, same
  shopper within ``--gap-minutes``; :mod:`suggestions.ml.generator.pairs`)
  of the held-out days.
* Baseline: for q1, its refinements in the training days that at least
  ``--min-users`` shoppers made (the k-gated co-occurrence list: what the shop
  can serve without a model), most shoppers first.
* Ours: the served list, that baseline list first, then the generator's
  constrained refinements; "generator alone" is reported too. The generator
  is trained on the training days' gated history pairs and the catalog's
  pairs (a catalog phrase or gated query found in a product title → it and
  the title's next words, and type → brand/attribute + type), decoding constrained to catalog words and
  gated query words. ``--model tiny`` (default): a config-built 2-layer GPT-2
  trained from scratch (seconds on a CPU); ``--model smollm2``: LoRA on
  SmolLM2-135M-Instruct (needs ``manage.py suggestions_prepare_generator``;
  about 1.5-5 s per step on a CPU).
* Hit@k matches texts as searches do (any word order, plurals folded);
  the 95% interval of ours − baseline is the loop's paired bootstrap.
* ``--device cpu|cuda|auto`` (default cpu): where the generator trains and
  generates; ``cuda`` on a machine without one is an error, never a silent
  CPU run. Generation speed is printed as refinements and tokens per second.
* Groundedness: share of generated candidates whose words all occur together
  in at least 3 products (the offline form of the results gate), and of those
  not already a training query (near-duplicates); generation speed on this
  machine.
"""

from __future__ import annotations

import argparse
import csv
import random
import shutil
import tempfile
import time
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

from bench.common import (
    add_common_arguments,
    add_device_argument,
    command_line,
    device_text,
    markdown_table,
    require_file,
    resolve_data_dir,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.generation", description=__doc__.split("\n\n")[0])
    add_common_arguments(parser)
    add_device_argument(parser)
    parser.add_argument("--heldout-days", type=float, default=14.0, help="Newest days held out (default 14).")
    parser.add_argument("--gap-minutes", type=float, default=30.0, help="Session gap of a refinement (default 30).")
    parser.add_argument("--min-users", type=int, default=3, help="k-anonymity gate of history pairs (default 3).")
    parser.add_argument("--model", choices=["tiny", "smollm2"], default="tiny", help="Generator base (default tiny).")
    parser.add_argument("--steps", type=int, default=None, help="Training steps (default: 1500 tiny, 150 smollm2).")
    parser.add_argument("--candidates", type=int, default=10, help="Refinements generated per seed (default 10).")
    parser.add_argument("--seed", type=int, default=13, help="Training seed (default 13).")
    return parser


def _fmt(x: float) -> str:
    return f"{x:.3f}"


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    data = resolve_data_dir(args.data_dir)
    log_file = require_file(data / "bestbuy" / "train.csv", "the Best Buy log")
    sku_file = require_file(data / "bestbuy" / "sku_name.tsv", "the Best Buy product names")
    from bench.common import django_environment, resolve_device

    args.device = resolve_device(args.device)
    with django_environment(keep=args.keep_tmp):
        folder = Path(tempfile.mkdtemp(prefix="bench-generation-"))
        try:
            return _run(args, argv, log_file, sku_file, folder)
        finally:
            if args.keep_tmp:
                print(f"models kept in {folder}")
            else:
                shutil.rmtree(folder, ignore_errors=True)


def _run(args, argv, log_file: Path, sku_file: Path, folder: Path) -> int:
    import numpy as np
    import torch

    from bench.common import synchronize
    from bench.qac import read_searches
    from suggestions.adapter import ProductDocument
    from suggestions.catalog_phrases import MatchIndex, mine_phrases
    from suggestions.learning import paired_bootstrap
    from suggestions.mining import history_text_allowed
    from suggestions.ml.generator.baseline import CooccurrenceBaseline
    from suggestions.ml.generator.metrics import hit_units, merged
    from suggestions.ml.generator.model import GeneratorModel, TrainParams, build_tiny_base
    from suggestions.ml.generator.pairs import (
        Search,
        catalog_phrase_pairs,
        gated_pairs,
        session_refinements,
        title_pairs,
        word_key,
    )
    from suggestions.text import normalize_query

    started = time.perf_counter()
    rows, _dropped = read_searches(log_file)
    searches = sorted((Search(r.normalized, r.user, r.time) for r in rows), key=lambda s: s.time)
    cut = searches[-1].time - timedelta(days=args.heldout_days)
    train = [s for s in searches if s.time < cut]
    heldout = [s for s in searches if s.time >= cut]
    history = gated_pairs(session_refinements(train, gap_minutes=args.gap_minutes), min_shoppers=args.min_users,
                          allowed=history_text_allowed)
    units = sorted(session_refinements(heldout, gap_minutes=args.gap_minutes))

    with sku_file.open(newline="", encoding="utf-8") as fh:
        names = [row[1] for row in csv.reader(fh, delimiter="\t") if len(row) >= 2 and row[1].strip()]
    docs = [ProductDocument(id=str(i), title=name) for i, name in enumerate(names)]
    index = MatchIndex()
    for doc in docs:
        index.add(doc)
    phrases = {text: p.rule for text, p in mine_phrases(docs, min_products=3).items()}
    titles = [normalize_query(n) for n in names]
    shoppers: dict[str, set[str]] = {}
    for s in train:
        if s.actor:
            shoppers.setdefault(s.query, set()).add(s.actor)
    gated = {q for q, who in shoppers.items() if len(who) >= args.min_users and history_text_allowed(q)}
    catalog = catalog_phrase_pairs(phrases) + title_pairs(titles, set(phrases) | gated)
    words = {w for t in list(phrases) + titles + sorted(gated) for w in t.split()}
    pairs = history + catalog
    baseline = CooccurrenceBaseline(history)

    torch.manual_seed(args.seed)
    random.seed(args.seed)
    if args.model == "tiny" and args.device == "cpu":
        torch.set_num_threads(1)
        base = build_tiny_base([t for p in pairs for t in (p.seed, p.target)] + sorted(words), folder / "base",
                               seed=args.seed, vocab_size=2000)
        params = TrainParams(steps=args.steps or 1500, lora=False, lr=3e-3, batch_size=32, seed=args.seed)
    else:
        from suggestions.ml.generator.base import resolve_base

        base = resolve_base(None, build=False)
        params = TrainParams(steps=args.steps or 150, seed=args.seed, batch_size=16)
    train_started = time.perf_counter()
    model = GeneratorModel.fit(base, pairs, folder / "model", params, device=args.device)
    synchronize(args.device)
    train_seconds = time.perf_counter() - train_started

    seeds = sorted({seed for seed, _t in units})
    gen_started = time.perf_counter()
    generated = dict(zip(seeds, model.generate(seeds, words, k=args.candidates), strict=True))
    synchronize(args.device)
    gen_seconds = time.perf_counter() - gen_started
    texts = [t for out in generated.values() for t, _s in out]
    tokens = sum(len(model.tokenizer.encode(" " + t, add_special_tokens=False)) + 1 for t in texts)

    systems = {
        "co-occurrence baseline (k-gated, no model)": lambda ss: [baseline.propose(s) for s in ss],
        "generator alone": lambda ss: [[t for t, _s in generated[s]] for s in ss],
        "ours: served list (mined, then generated)": lambda ss: [
            merged(baseline.propose(s), [t for t, _s in generated[s]]) for s in ss],
    }
    results = {name: np.asarray(hit_units(fn, units), dtype=np.float64).reshape(-1, 2) for name, fn in systems.items()}
    base_units = results["co-occurrence baseline (k-gated, no model)"]
    ours_units = results["ours: served list (mined, then generated)"]
    n = len(units)
    low, high = paired_bootstrap(ours_units[:, :1], base_units[:, :1], lambda sums, m: sums[..., 0] / max(m, 1),
                                 resamples=2000) if n else (0.0, 0.0)

    grounded = [t for t in texts if index.count(t) >= 3]
    training_keys = {word_key(q) for q in gated} | {word_key(p.target) for p in history}
    fresh = [t for t in grounded if word_key(t) not in training_keys]

    print(f"command: {command_line('bench.generation', argv)}")
    print(f"log: {len(searches):,} searches, {len(train):,} before {cut:%Y-%m-%d %H:%M} (training), "
          f"{len(heldout):,} held out ({args.heldout_days:g} newest days)")
    print(f"training pairs: {len(history)} gated history (k={args.min_users}), {len(catalog)} catalog "
          f"({len(names)} products); vocabulary {len(words):,} words")
    what = "config-built GPT-2, trained from scratch" if args.model == "tiny" else "SmolLM2-135M-Instruct, LoRA"
    print(f"generator: {args.model} ({what}), "
          f"{params.steps} steps in {train_seconds:.1f} s on {device_text(args.device)}")
    print(f"held-out refinement pairs (units): {n}")
    print()
    table = [(name, _fmt(float(r[:, 1].mean()) if n else 0.0), _fmt(float(r[:, 0].mean()) if n else 0.0))
             for name, r in results.items()]
    print(markdown_table(["system", "Hit@5", "Hit@10"], table))
    print()
    if n:
        diff = float(ours_units[:, 0].mean() - base_units[:, 0].mean())
        print(f"Hit@10 ours − baseline: {diff:+.3f} (95% paired-bootstrap CI {low:+.3f} to {high:+.3f}, n={n})")
    print()
    print(markdown_table(["groundedness and cost", "value"], [
        ("generated candidates", len(texts)),
        ("share whose words occur together in ≥ 3 products", _fmt(len(grounded) / len(texts)) if texts else "—"),
        ("share of those not already a training query", _fmt(len(fresh) / len(grounded)) if grounded else "—"),
        ("refinements per second (generation)", f"{len(texts) / gen_seconds:.1f}" if gen_seconds else "—"),
        ("tokens per second (generation)", f"{tokens / gen_seconds:.1f}" if gen_seconds else "—"),
    ]))
    print()
    examples = [(s, ", ".join(t for t, _ in generated[s][:4])) for s in seeds[:8]]
    print(markdown_table(["held-out seed", "generated (first 4)"], examples))
    print(f"\ntotal {time.perf_counter() - started:.1f} s")
    return 0
