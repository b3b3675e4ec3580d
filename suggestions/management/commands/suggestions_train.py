"""``manage.py suggestions_train understanding``: one run of the learning loop
with the data sources and hyper-parameters given on the command line.

The same loop as ``suggestions_retrain`` and the nightly task
(:func:`suggestions.learning.retrain`): the new version is evaluated against the
active one on the same held-out queries and promoted only when better, else kept
as a rejected version. Runs in a worker environment with the ``[ml]`` extra
(torch, transformers); the web processes never import it. See
:mod:`suggestions.ml.understanding.training` for the weighting and metrics.
"""

from __future__ import annotations

import argparse

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = ("Train the query understanding model (entities + intent) from public data, the catalog, "
            "behaviour and merchandisers' corrections through the learning loop; promote it only when it "
            "beats the active version on the same held-out queries.")

    def add_arguments(self, parser):
        from suggestions.ml.understanding.dataset import ALL_SOURCES  # pure Python, no torch

        parser.add_argument("kind", choices=["understanding"], help="What to train.")
        parser.add_argument("--data", default=",".join(ALL_SOURCES),
                            help=f"Comma-separated data sources (default: all of {', '.join(ALL_SOURCES)}).")
        parser.add_argument("--data-dir", default=None,
                            help="Shared data folder for queryner/jie2019 (default: $SHOP_DATA_DIR, "
                                 "else ../shared/data relative to the project).")
        parser.add_argument("--base", default=None,
                            help="Encoder: en, multilingual, a folder or a hub name; comma-separated for an "
                                 "ensemble (default: SUGGESTIONS_UNDERSTANDING_BASE, en,multilingual).")
        parser.add_argument("--epochs", type=int, default=None, help="Epochs (default 4; 30 with --tiny).")
        parser.add_argument("--batch-size", type=int, default=32, help="Examples per step (default 32).")
        parser.add_argument("--lr", type=float, default=None,
                            help="Encoder learning rate (default 1e-4; 3e-3 with --tiny).")
        parser.add_argument("--head-lr", type=float, default=None,
                            help="Learning rate of the heads (default 1e-3, or --lr when larger).")
        parser.add_argument("--label-smoothing", type=float, default=0.0, help="Label smoothing (default 0).")
        parser.add_argument("--max-train", type=int, default=None,
                            help="At most this many training examples per source (quick iterations).")
        parser.add_argument("--seed", type=int, default=13, help="Random seed (default 13).")
        parser.add_argument("--phrase-features", action=argparse.BooleanOptionalAction, default=True,
                            help="Feed the network the phrase memory's tags (phrases the training data "
                                 "labels: catalog brands, public data, corrections) as input features "
                                 "(default: on).")
        parser.add_argument("--device", choices=["cpu", "cuda"], default=None,
                            help="Where to train (default: CUDA when available).")
        parser.add_argument("--tiny", action="store_true",
                            help="Train a tiny BERT with a tokenizer learnt in-process (tests, smoke runs).")
        parser.add_argument("--no-progress", action="store_true", help="Hide the progress bar.")

    def handle(self, *args, kind: str, **opts):
        from suggestions import services

        sources = [s.strip() for s in opts["data"].split(",") if s.strip()]
        tiny = opts["tiny"]
        lr = opts["lr"] if opts["lr"] is not None else (3e-3 if tiny else 1e-4)
        head_lr = opts["head_lr"] if opts["head_lr"] is not None else max(lr, 1e-3)
        params = dict(
            epochs=opts["epochs"] if opts["epochs"] is not None else (30 if tiny else 4),
            batch_size=opts["batch_size"], lr=lr, head_lr=head_lr,
            label_smoothing=opts["label_smoothing"], seed=opts["seed"], device=opts["device"],
            phrase_features=opts["phrase_features"],
        )
        options = {"sources": sources, "data_dir": opts["data_dir"], "base": opts["base"], "params": params,
                   "max_train": opts["max_train"], "tiny": tiny, "progress": not opts["no_progress"],
                   "progress_file": self.stderr._out}
        try:
            # Fails with the pip command when the [ml] extra is missing (ImproperlyConfigured).
            report = services.retrain(kind, options=options, log=lambda line: self.stdout.write(line))
        except services.RetrainBusy as exc:
            raise CommandError(f"{exc}; wait for it to finish (see Retrain runs in the admin).") from exc
        except (FileNotFoundError, ValueError, ImproperlyConfigured) as exc:
            raise CommandError(str(exc)) from exc
        version = report.version
        metrics = version.metrics
        lines = [f"Registered understanding {version.version} ({version.status}) at {version.artefact_uri}."]
        f1 = metrics.get("entity_f1")
        lines.append(f"held-out entity F1: {f1 if f1 is not None else 'n/a'}")
        for source, figures in sorted(metrics["heldout"]["per_source"].items()):
            lines.append(f"  {source}: F1 {figures['f1']} (P {figures['precision']}, R {figures['recall']}, "
                         f"{figures['gold']} gold spans)")
        for name, figures in sorted(metrics.get("dev", {}).items()):
            if figures:
                lines.append(f"  {name} dev: F1 {figures['f1']}")
        for key in ("intent_accuracy_weak", "intent_accuracy_labelled"):
            value = metrics["heldout"].get(key)
            if value is not None:
                lines.append(f"{key.replace('_', ' ')}: {value}")
        lines.append(version.decision)
        lines.append("Promoted: it is now the active understanding model." if report.promoted
                     else "Not promoted: the active version stays.")
        self.stdout.write(self.style.SUCCESS("\n".join(lines)))
