"""The query understanding model (entities and intent) and everything that trains and
evaluates it.

Pure Python (no torch): :mod:`.corpora` (the ``Example`` type and the QueryNER / Jie2019
readers), :mod:`.bio` (BIO tags ↔ spans), :mod:`.metrics` (span F1), :mod:`.words` (the
words the model tags), :mod:`.dictionary` (the dictionary-tagger baseline),
:mod:`.phrases` (the phrase memory), :mod:`.weak_labels` (weak intents, composed intent
queries), :mod:`.dataset` (assembling and splitting the examples).

torch: :mod:`.model` (the network, inference, save/load), :mod:`.training` (the training
loop, evaluation, one whole training run), :mod:`.registry` (the per-process loaded model
of the active version; imports torch lazily).
"""
