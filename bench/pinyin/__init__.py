"""``python -m bench.pinyin``: pinyin and initials input on real Chinese queries.

Data: ``zh/multicpr/train.query.txt`` (100,000 distinct Taobao queries, read
at run time from ``--data-dir``; never committed).

Protocol:

* Every query is normalised and indexed as a suggestion, weight 1 (each was
  searched once in this sample: there are no counts, so equal weights are
  ordered alphabetically, the backends' rule, which favours no one).
* The held-out queries are the ``--heldout-share`` (5%) of the queries with
  Chinese characters whose seeded BLAKE2 hash is lowest. They are indexed
  too (their rank must exist); the other 95% are the competition. Seed 0 is
  the development sample (its misses were read while the rules were
  written); seed 1 is the reported held-out sample.
* What a shopper types for a held-out query comes from a second converter
  (:mod:`bench.pinyin.reference`: a different phrase dictionary and
  segmenter), not from the app's own: **full** pinyin ("paoxie"),
  **initials** ("px": first letter of each syllable, Latin words whole), the
  last syllable cut short (**partial** "paoxi") and the syllables typed with
  spaces and only the first letter of the last one (**spaced** "pao x").
  A row "typed = the app's own reading" isolates collisions (queries sharing
  a reading) from reading disagreements.
* For each input the rank of the held-out query among the top 10 answers of
  ``backend.suggest(input, limit=10)``: S@1, S@10, MRR@10.
* Beside, on the same index and inputs: the app before pinyin
  (``SUGGESTIONS_PINYIN="off"``: text prefix only) and Most-Popular-Completion
  on per-character pinyin (each character's most common reading, no phrase
  dictionary, prefix on the full and initials keys, by weight).
* tantivy answers every held-out query on the full index. The
  Elasticsearch-compatible test server (``noida-db``, which scans every
  document per request) answers the first ``--es-sample`` held-out queries
  on a smaller index (those queries plus the first ``--es-index-size``
  queries), and tantivy answers the same inputs on the same smaller index,
  side by side.
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import hashlib
import multiprocessing
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

from bench.common import (
    Stopwatch,
    add_common_arguments,
    command_line,
    django_environment,
    fail,
    free_port,
    markdown_table,
    require_file,
    resolve_data_dir,
)

QUERY_FILE = Path("zh") / "multicpr" / "train.query.txt"
KINDS = ("full", "initials", "partial", "spaced")
TOP = 10


def read_queries(path: Path, limit: int | None = None) -> list[str]:
    """Distinct normalised queries of the ``id<TAB>query`` file, in file order."""
    from suggestions.text import normalize_query

    seen: dict[str, None] = {}
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            query = normalize_query(line.rstrip("\n").split("\t", 1)[-1])
            if query:
                seen.setdefault(query, None)
            if limit is not None and len(seen) >= limit:
                break
    return list(seen)


def heldout_sample(queries: list[str], share: float, seed: int) -> list[str]:
    """The held-out queries (see the protocol), in hash order."""
    from suggestions.nlp.pinyin import has_hanzi

    def digest(query: str) -> bytes:
        return hashlib.blake2b(f"{seed}:{query}".encode(), digest_size=8).digest()

    chinese = sorted((q for q in queries if has_hanzi(q)), key=digest)
    return chinese[: max(1, round(share * len(chinese)))]


def typed_inputs(tokens: list[tuple[str, bool]]) -> dict[str, str]:
    """The four inputs of one query from its reference ``(token, is_latin)`` list."""
    if not tokens:
        return {}
    words = [t for t, _latin in tokens]
    last = words[-1]
    inputs = {
        "full": "".join(words),
        # Latin words and numbers whole, syllables by their first letter.
        "initials": "".join(t if latin else t[0] for t, latin in tokens),
    }
    if len(last) > 1:
        inputs["partial"] = "".join(words[:-1]) + last[:-1]
    if len(words) > 1:
        inputs["spaced"] = " ".join([*words[:-1], last[0]])
    return inputs


class Ranks:
    """Ranks (1-based, 0 = not in the top 10) per input kind."""

    def __init__(self) -> None:
        self.ranks: dict[str, list[int]] = {kind: [] for kind in KINDS}

    def add(self, kind: str, rank: int) -> None:
        self.ranks[kind].append(rank)

    def row(self, kind: str) -> tuple[int, str, str, str]:
        ranks = self.ranks[kind]
        n = len(ranks)
        if not n:
            return (0, "–", "–", "–")
        s1 = sum(1 for r in ranks if r == 1) / n
        s10 = sum(1 for r in ranks if r) / n
        mrr = sum(1 / r for r in ranks if r) / n
        return (n, f"{s1:.2%}", f"{s10:.2%}", f"{mrr:.3f}")


def evaluate(suggest: Callable[[str], list[str]], cases: list[tuple[str, dict[str, str]]]) -> tuple[Ranks, list[float]]:
    """Rank of each held-out query for each of its inputs; latencies in ms."""
    ranks = Ranks()
    latencies = []
    for query, inputs in cases:
        for kind, typed in inputs.items():
            start = time.perf_counter()
            answer = suggest(typed)
            latencies.append((time.perf_counter() - start) * 1000)
            ranks.add(kind, answer.index(query) + 1 if query in answer else 0)
    return ranks, latencies


class PerCharacterMPC:
    """Most-Popular-Completion on per-character pinyin (the baseline)."""

    def __init__(self, queries: list[str]) -> None:
        from pypinyin import lazy_pinyin

        from suggestions.nlp.pinyin import has_hanzi

        cache: dict[str, str] = {}

        def reading(ch: str) -> str:
            if ch not in cache:
                cache[ch] = (lazy_pinyin(ch, errors="ignore") or [""])[0]
            return cache[ch]

        rows: list[tuple[str, str]] = []
        for query in queries:
            if not has_hanzi(query):
                continue
            full, initials, latin = [], [], []
            for ch in query + " ":
                if ch.isascii():
                    if ch.isalnum():
                        latin.append(ch)
                        continue
                    if latin:
                        full.append("".join(latin))
                        initials.append("".join(latin))
                        latin = []
                    continue
                if latin:
                    full.append("".join(latin))
                    initials.append("".join(latin))
                    latin = []
                syllable = reading(ch)
                if syllable:
                    full.append(syllable)
                    initials.append(syllable[0])
            rows.append(("".join(full), query))
            rows.append(("".join(initials), query))
        rows.sort()
        self.keys = [k for k, _q in rows]
        self.texts = [q for _k, q in rows]

    def suggest(self, typed: str) -> list[str]:
        key = "".join(ch for ch in typed.lower() if ch.isascii() and ch.isalnum())
        start = bisect.bisect_left(self.keys, key)
        found: set[str] = set()
        for i in range(start, len(self.keys)):
            if not self.keys[i].startswith(key):
                break
            found.add(self.texts[i])
        # Equal weights: alphabetical, as the backends order ties.
        return sorted(found)[:TOP]


@contextlib.contextmanager
def es_test_server() -> Iterator[str | None]:
    """``noida-db`` with only its Elasticsearch API on a free port; ``None``
    when the executable is missing or it does not come up."""
    executable = os.path.join(os.path.dirname(sys.executable), "noida-db")
    if not os.access(executable, os.X_OK):
        executable = shutil.which("noida-db") or ""
    if not executable:
        yield None
        return
    workdir = tempfile.mkdtemp(prefix="bench-pinyin-es-")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with open(os.path.join(workdir, "server.log"), "wb") as log:
        process = subprocess.Popen(
            [executable, "start", "--only", "elasticsearch", "--host", "127.0.0.1",
             "--elasticsearch-port", str(port), "--data-dir", os.path.join(workdir, "data")],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(url, timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                yield None
                return
            time.sleep(0.1)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)
        shutil.rmtree(workdir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.pinyin", description=__doc__.split("\n\n")[0])
    add_common_arguments(parser)
    parser.add_argument("--heldout-share", type=float, default=0.05, help="Share of Chinese queries held out (0.05).")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the held-out hash (0).")
    parser.add_argument("--limit", type=int, default=None, help="Index only the first N distinct queries.")
    parser.add_argument("--es-index-size", type=int, default=10000,
                        help="Queries indexed on the Elasticsearch-compatible test server (10000).")
    parser.add_argument("--es-sample", type=int, default=100,
                        help="Held-out queries asked of the Elasticsearch-compatible test server (0: skip it).")
    args = parser.parse_args(argv)
    if not 0 < args.heldout_share < 1:
        raise fail("--heldout-share must be between 0 and 1")
    path = require_file(resolve_data_dir(args.data_dir) / QUERY_FILE, "the Taobao query file (zh/multicpr)")
    clock = Stopwatch()
    with django_environment(keep=args.keep_tmp) as tmp:
        from django.test import override_settings

        from suggestions.nlp.pinyin import index_keys
        from suggestions.recall import SuggestionEntry
        from suggestions.recall.tantivy import TantivyRecallBackend

        with clock.phase("read"):
            queries = read_queries(path, args.limit)
            heldout = heldout_sample(queries, args.heldout_share, args.seed)
        with clock.phase("reference readings"):
            ctx = multiprocessing.get_context("spawn")
            with ctx.Pool(1) as pool:
                from bench.pinyin.reference import reference_tokens

                tokens = pool.apply(reference_tokens, (heldout,))
        cases = [(q, typed_inputs(t)) for q, t in zip(heldout, tokens, strict=True)]
        cases = [(q, inputs) for q, inputs in cases if inputs]
        own_cases = []
        entries = [SuggestionEntry(q, 1.0, "history") for q in queries]
        with clock.phase("index tantivy"):
            ours = TantivyRecallBackend("bench-pinyin", {"PATH": str(tmp / "tantivy-pinyin")})
            ours.replace_suggestions(entries)
        with clock.phase("own readings"):
            disagree = 0
            by_full: dict[str, int] = {}
            for query in queries:
                for key in index_keys(query).full[:1]:
                    by_full[key] = by_full.get(key, 0) + 1
            shared = 0
            for query, inputs in cases:
                keys = index_keys(query)
                own_tokens_full = keys.full[0]
                if inputs["full"] not in keys.full:
                    disagree += 1
                if by_full.get(own_tokens_full, 0) > 1:
                    shared += 1
                own_cases.append((query, {"full": own_tokens_full, "initials": keys.initials[0]}))
        with clock.phase("index baselines"):
            with override_settings(SUGGESTIONS_PINYIN="off"):
                before = TantivyRecallBackend("bench-before", {"PATH": str(tmp / "tantivy-before")})
                before.replace_suggestions(entries)
            mpc = PerCharacterMPC(queries)

        def texts_of(backend) -> Callable[[str], list[str]]:
            return lambda typed: [hit.text for hit in backend.suggest(typed, limit=TOP)]

        results: list[tuple[str, str, Ranks, list[float]]] = []
        with clock.phase("eval tantivy"):
            with override_settings(SUGGESTIONS_PINYIN="off"):
                results.append(("before: text prefix only", "tantivy", *evaluate(texts_of(before), cases)))
            results.append(("MPC on per-character pinyin", "in memory", *evaluate(mpc.suggest, cases)))
            results.append(("pinyin keys (this app)", "tantivy", *evaluate(texts_of(ours), cases)))
            own_ranks, _ = evaluate(texts_of(ours), own_cases)
        es_note = ""
        if args.es_sample > 0:
            with clock.phase("index + eval es"), es_test_server() as url:
                if url is None:
                    es_note = "the Elasticsearch-compatible test server (noida-db) is not available: skipped"
                else:
                    from suggestions.recall.elasticsearch import ElasticsearchRecallBackend

                    es = ElasticsearchRecallBackend("bench-es", {"HOSTS": [url], "INDEX_PREFIX": "benchpinyin",
                                                                 "TIMEOUT": 120, "WRITE_TIMEOUT": 600})
                    sample = cases[: args.es_sample]
                    subset = list(dict.fromkeys([q for q, _i in sample] + queries[: args.es_index_size]))
                    small = [SuggestionEntry(q, 1.0, "history") for q in subset]
                    es.replace_suggestions(small)
                    small_tantivy = TantivyRecallBackend("bench-small", {"PATH": str(tmp / "tantivy-small")})
                    small_tantivy.replace_suggestions(small)
                    label = f"pinyin keys (this app), {len(sample)} held out, {len(subset):,} indexed"
                    results.append((label, "ES test server", *evaluate(texts_of(es), sample)))
                    results.append((label, "tantivy", *evaluate(texts_of(small_tantivy), sample)))
                    es.close()

    print(f"# bench.pinyin: `{command_line('bench.pinyin', argv)}`\n")
    print(f"{len(queries):,} distinct queries indexed (weight 1 each); {len(cases):,} held out "
          f"({args.heldout_share:.0%} of the {sum(1 for _ in heldout) / args.heldout_share:,.0f} with Chinese "
          f"characters, seed {args.seed}).")
    print(f"Reference reading not among the app's keys: {disagree} of {len(cases)} ({disagree / len(cases):.2%}); "
          f"held-out queries whose reading another indexed query shares: {shared} ({shared / len(cases):.2%}).\n")
    rows = []
    for name, engine, ranks, latencies in results:
        for kind in KINDS:
            n, s1, s10, mrr = ranks.row(kind)
            if n:
                rows.append((name, engine, kind, n, s1, s10, mrr, f"{statistics.median(latencies):.2f}"))
    for kind in ("full", "initials"):
        n, s1, s10, mrr = own_ranks.row(kind)
        rows.append(("typed = the app's own reading", "tantivy", kind, n, s1, s10, mrr, ""))
    print(markdown_table(("method", "engine", "input", "n", "S@1", "S@10", "MRR@10", "median ms"), rows))
    if es_note:
        print(f"\n({es_note})")
    print(f"\nTargets: full pinyin S@1 ≥ 99%, initials S@10 ≥ 98%. Time: {clock.summary()}.")
    return 0
