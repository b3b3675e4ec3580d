"""The refinement generator: a small causal language model, LoRA-fine-tuned on
refinement pairs (a query → a narrower query), decoding constrained to the
shop's words.

Worker-only (imports torch inside :mod:`.model`). The pieces, each written once
and shared by the learning loop (:class:`suggestions.generation.GeneratorKind`),
the generation task and ``bench/generation``:

* :mod:`.pairs`: refinement pairs from search sessions and what counts as a
  refinement (pure Python).
* :mod:`.baseline`: the co-occurrence baseline (no model).
* :mod:`.metrics`: refinement Hit@k.
* :mod:`.decoding`: the word trie behind constrained decoding.
* :mod:`.model`: the model (training, saving, loading, batched generation).
"""
