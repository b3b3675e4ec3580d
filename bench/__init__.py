"""Benchmarks of the suggestions app on real public data, each against a baseline.

* ``python -m bench.qac``: query auto-completion on the Best Buy search log
  (MRR@10 and Success@1/5/10 of :func:`suggestions.services.suggest` against
  Most-Popular-Completion).
* ``python -m bench.search_quality``: product search on the Icecat catalog with
  human relevance judgments (nDCG@10 of :func:`suggestions.services.search`
  against plain BM25 over titles).

Every run works in a throwaway SQLite database and tantivy directory in a
temporary folder, and reads the evaluation data at run time from ``--data-dir``
(default ``$SHOP_DATA_DIR`` or ``../shared/data`` next to the repository). The
data is never copied into the repository.
"""
