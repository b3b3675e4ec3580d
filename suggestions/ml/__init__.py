"""Worker-only model code: the query understanding model, its training loop, evaluation and
base encoders (and, later, rankers, generators and embedders).

Contract: importing this package imports nothing heavy; its submodules that train or run
models import torch/transformers (the ``[ml]`` extra), so only Celery workers, management
commands, benchmarks and tests import them. Web processes never do (``tests/test_project.py``),
with one exception: :mod:`suggestions.ml.search_ranker` (numpy, LightGBM, rapidfuzz; never
torch), which a web process imports once a search ranker version is active, to rerank results.
The data readers, BIO decoding and metrics in :mod:`suggestions.ml.understanding` are pure
Python, so benchmarks and tests may use them without the extra.

Nothing here writes :class:`~suggestions.models.ModelVersion` rows or reads the shop's
history: :mod:`suggestions.learning` assembles training data from the database, calls the
training code here, registers the result and promotes it.
"""
