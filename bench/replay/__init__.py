"""Replay of the Best Buy log week by week through the learning loop.

What is measured: whether the loop's promotion gate can be trusted. Each week
the shop has the searches of all earlier weeks; the loop retrains the
suggestion ranker on them (:func:`suggestions.services.retrain`, its newest
``SUGGESTIONS_HELDOUT_DAYS`` held out for the gate) and promotes or keeps; then
the week's own searches show which decision was right.

How, for each week *w* from ``--first-week`` on:

1. Import the searches of week *w − 1* (so history = weeks before *w*) and
   rebuild the suggestions (catalog from ``bestbuy/sku_name.tsv`` unless
   ``--no-catalog``).
2. ``retrain("suggestion_ranker")``: the challenger against the active version
   (the popularity order while none is active), on the held-out newest days.
3. Next week: MRR@10 over the 1..10-character prefixes of week *w*'s searches
   for the version active before the decision and the one active after it
   (offline, with the same candidate statistics the request path is served
   from). A promotion is *justified* when the new version is at least as good
   as the one it replaced on that week.
4. A deliberately broken challenger (labels shuffled within each group:
   ``retrain(..., options={"shuffle_labels": True})``) goes through the same
   gate; it must be rejected every week.

Prints one row per week and a verdict; exit status 1 when a promotion was not
justified or a broken challenger was promoted.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Sequence
from datetime import timedelta

from bench.common import (
    Stopwatch,
    add_common_arguments,
    command_line,
    django_environment,
    markdown_table,
    require_file,
    resolve_data_dir,
)
from bench.qac import load_catalog, read_searches


@contextlib.contextmanager
def _settings(overrides: dict):
    from django.test.utils import override_settings

    with override_settings(**overrides):
        yield


def next_week_mrr(version, stats, searches) -> float:
    """MRR@10 of a ranker version (``None``: the popularity order) on ``searches``,
    ranking the candidates of ``stats``."""
    import numpy as np

    from suggestions.ml.suggestion_ranker import RankerModel, evaluate, popularity_rank

    if version is None:
        return float(np.mean(evaluate(lambda p: popularity_rank(stats, p), searches)))
    model = RankerModel.load(version.artefact_uri)
    return float(np.mean(evaluate(lambda p: model.rank(stats, p), searches)))


def build_parser() -> argparse.ArgumentParser:
    """Command-line options of ``python -m bench.replay``."""
    parser = argparse.ArgumentParser(prog="python -m bench.replay", description=__doc__.split("\n\n")[0])
    add_common_arguments(parser)
    parser.add_argument("--first-week", type=int, default=3,
                        help="First week evaluated (0 = the log's first week; default 3).")
    parser.add_argument("--weeks", type=int, default=None, help="At most this many weeks (default: all).")
    parser.add_argument("--max-groups", type=int, default=40_000,
                        help="Cap on the ranker's training groups per retrain (default 40,000; time on 2 cores).")
    parser.add_argument("--heldout-days", type=float, default=None,
                        help="SUGGESTIONS_HELDOUT_DAYS of the loop (default: the setting, 14).")
    parser.add_argument("--gate-windows", type=int, default=None,
                        help="SUGGESTIONS_GATE_WINDOWS: the held-out days cut into this many spans, none of "
                        "which may get worse (default: the setting, 2).")
    parser.add_argument("--catalog", action=argparse.BooleanOptionalAction, default=True,
                        help="Load the log's products as the shop's catalog (default: on).")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the replay and print its report; exit status 1 when the gate failed."""
    args = build_parser().parse_args(argv)
    data_dir = resolve_data_dir(args.data_dir)
    data_file = require_file(data_dir / "bestbuy" / "train.csv", "The Best Buy search log")
    sku_file = require_file(data_dir / "bestbuy" / "sku_name.tsv", "The Best Buy product names") if args.catalog else None
    clock = Stopwatch()
    rows, failures = [], []
    overrides = {name: value for name, value in (("SUGGESTIONS_HELDOUT_DAYS", args.heldout_days),
                                                  ("SUGGESTIONS_GATE_WINDOWS", args.gate_windows)) if value is not None}
    with django_environment(keep=args.keep_tmp), _settings(overrides):
        from suggestions import learning, services
        from suggestions.ml.suggestion_ranker import Search
        from suggestions.models import ModelVersion, ModelVersionStatus

        searches, _dropped = read_searches(data_file)
        searches.sort(key=lambda s: (s.time, s.user, s.query))
        start = searches[0].time.replace(hour=0, minute=0, second=0, microsecond=0)
        weeks: dict[int, list] = {}
        for s in searches:
            weeks.setdefault((s.time - start).days // 7, []).append(s)
        if sku_file:
            load_catalog(sku_file)
        kind = learning.KINDS["suggestion_ranker"]
        imported = 0
        last = max(weeks)
        todo = [w for w in range(args.first_week, last + 1) if w in weeks]
        if args.weeks is not None:
            todo = todo[: args.weeks]
        for n, week in enumerate(todo, start=1):
            print(f"week {week} ({n}/{len(todo)}): import, build, retrain ×2 …", file=sys.stderr, flush=True)
            with clock.phase("import and build"):
                batch = [s for w in range(imported, week) for s in weeks.get(w, [])]
                services.import_search_history(
                    services.ImportedSearch(user=s.user, query=s.query, time=s.time) for s in batch)
                imported = week
                services.build_suggestions(include_catalog=bool(sku_file))
            before = ModelVersion.objects.filter(kind=kind.name, status=ModelVersionStatus.ACTIVE).first()
            with clock.phase("retrain"):
                report = services.retrain(kind.name, options={"max_groups": args.max_groups})
                broken = services.retrain(kind.name, options={"max_groups": args.max_groups,
                                                              "shuffle_labels": True})
            after = ModelVersion.objects.filter(kind=kind.name, status=ModelVersionStatus.ACTIVE).first()
            with clock.phase("next week"):
                stats = kind.stats(kind.searches(), kind.catalog())
                test = [Search(s.normalized, s.user, s.time) for s in weeks[week]]

                old, new = next_week_mrr(before, stats, test), next_week_mrr(after, stats, test)
            justified = (not report.promoted) or new >= old
            if not justified:
                failures.append(f"week {week}: promoted {report.version.version} scored {new:.4f} against "
                                f"{old:.4f} for the version it replaced")
            if broken.promoted:
                failures.append(f"week {week}: the broken challenger was promoted ({broken.gate.reason})")
            gate = report.gate
            rows.append([
                f"{week} ({(start + timedelta(days=7 * week)):%m-%d})", f"{len(batch):,}", f"{len(test):,}",
                f"{gate.challenger:.4f}", f"{gate.incumbent:.4f}" if gate.incumbent is not None else "–",
                f"{gate.ci_low:+.4f}…{gate.ci_high:+.4f}" if gate.ci_low is not None else "–",
                "promoted" if report.promoted else "kept",
                f"{old:.4f}", f"{new:.4f}", "yes" if justified else "**no**",
                f"{broken.gate.difference:+.4f} {'**promoted**' if broken.promoted else 'rejected'}",
            ])
    print("# Replay of the Best Buy log through the learning loop (suggestion ranker)\n")
    print(f"command: {command_line('bench.replay', argv)}")
    print(f"data: {data_file}; catalog: {sku_file or 'none'}; weeks from {start:%Y-%m-%d}; "
          f"settings: {overrides or 'defaults'}\n")
    print(markdown_table(
        ["week (start)", "new searches", "next-week searches", "challenger (held-out)", "active (held-out)",
         "95% CI of the gain", "decision", "before (next week)", "after (next week)", "justified",
         "broken challenger: gain, decision"], rows))
    print()
    if failures:
        print("FAILED:\n" + "\n".join(f"- {line}" for line in failures))
    else:
        print(f"PASSED: every promotion was at least as good as the version it replaced on the next week, "
              f"and the broken challenger was rejected in all {len(rows)} weeks.")
    print(f"\nwall time: {clock.summary()}")
    return 1 if failures else 0
