"""The understanding network in ONNX Runtime, int8 (``SUGGESTIONS_UNDERSTANDING_QUANTIZE="onnx-int8"``).

Imported only by workers, commands, benchmarks and tests (it imports torch to
export the network).

When a worker loads a model in this mode, :func:`onnx_int8_runtime` exports the
float network (encoder, both heads and their softmax) with torch's ONNX
exporter, quantises every ``MatMul`` with ONNX Runtime's dynamic int8
quantisation (weights int8 per output channel, activations uint8 per tensor at
run time, as torch's ``int8`` mode) and opens an ONNX Runtime session on it, in
memory: nothing is written next to the saved model, and the saved folder stays
the one artefact of a version. ``python -m bench.understanding_speed --modes
off,int8,onnx-int8`` measures the speed and entity F1 of all three
(``bench/RESULTS.md``, "int8 in ONNX Runtime").

Contracts:

* :func:`onnx_int8_runtime` returns None (logged; the caller keeps the torch
  model) when ``onnxruntime``/``onnx`` are not installed, when the export or
  the quantisation fails, or when the exported float graph does not reproduce
  the torch network on a check batch (padding included) within
  :data:`EXPORT_TOLERANCE`: a wrong export never serves.
* :meth:`UnderstandingModel.quantize <suggestions.ml.understanding.model.UnderstandingModel.quantize>`
  releases the torch encoder once the session exists (the check needed it
  until then): a worker does not hold the model twice.
* :meth:`OnnxNetwork.__call__` takes the padded batch of
  :func:`~suggestions.ml.understanding.model.pad_batch` (any batch size and
  length) and returns tag probabilities ``[batch, length, tags]`` and intent
  probabilities ``[batch, intents]`` as float32 numpy arrays.
* The session runs on ``threads`` intra-op threads (the caller passes torch's
  thread count, so ``torch.set_num_threads`` governs both runtimes).
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

logger = logging.getLogger(__name__)

#: Largest difference of a probability between the exported float graph and
#: torch on the check batch; above it the export is refused.
EXPORT_TOLERANCE = 1e-3
OPSET = 17
INSTALL_HINT = 'pip install "django-shop-suggestions[onnx]"'


def available() -> bool:
    """Whether ONNX Runtime and the ``onnx`` package (its quantiser needs it) import."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
        import onnxruntime.quantization  # noqa: F401
    except ImportError:
        return False
    return True


class _Probabilities(nn.Module):
    """The network with its softmaxes: the graph ONNX Runtime runs."""

    def __init__(self, network: nn.Module, features: bool) -> None:
        super().__init__()
        self.network = network
        self.features = features

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                feature_ids: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        tag_logits, intent_logits = self.network(input_ids, attention_mask,
                                                 feature_ids if self.features else None)
        return tag_logits.softmax(-1), intent_logits.softmax(-1)


def _check_batch(vocab_size: int, features: int, *, rows: int, length: int, seed: int) -> dict[str, torch.Tensor]:
    """Random ids with padded rows (so the traced graph keeps the attention mask)."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, max(6, vocab_size), (rows, length), generator=generator)
    mask = torch.ones_like(ids)
    for row in range(1, rows):
        mask[row, max(2, length - 2 * row):] = 0
    batch = {"input_ids": ids, "attention_mask": mask}
    if features:
        batch["feature_ids"] = torch.randint(0, features, (rows, length), generator=generator) * mask
    return batch


@contextlib.contextmanager
def _evaluating(network: nn.Module) -> Iterator[_Probabilities]:
    """The network with its softmaxes, in eval mode; its training flag put back after."""
    was_training = network.training
    wrapper = _Probabilities(network, getattr(network, "feature_embeddings", None) is not None)
    wrapper.eval()
    try:
        yield wrapper
    finally:
        network.train(was_training)


def _quantiser_advice(record: logging.LogRecord) -> bool:
    """False for the quantiser's own root-logger records below ERROR."""
    return record.levelno >= logging.ERROR or "onnxruntime" not in record.pathname.replace("\\", "/")


class OnnxNetwork:
    """An ONNX Runtime session on the exported, int8-quantised network."""

    def __init__(self, session: Any, input_names: list[str]) -> None:
        self.session = session
        self.input_names = input_names

    def __call__(self, batch: dict[str, torch.Tensor]) -> tuple[np.ndarray, np.ndarray]:
        feeds = {name: batch[name].numpy() for name in self.input_names}
        tag_probs, intent_probs = self.session.run(None, feeds)
        return tag_probs, intent_probs


def _session(model: bytes | str, threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, threads)
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only: its optimiser's notes are not the shop's business
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def export(network: nn.Module, folder: Path, *, features: int, vocab_size: int) -> tuple[Path, list[str]]:
    """Write the float network (with softmaxes) as ``folder/float.onnx``.

    Exported with eager attention (a plain pattern of matrix products that
    ONNX Runtime fuses), in eval mode; the network's attention implementation
    and training flag are restored afterwards.
    """
    names = ["input_ids", "attention_mask"] + (["feature_ids"] if features else [])
    encoder = getattr(network, "encoder", None)
    attention = getattr(getattr(encoder, "config", None), "_attn_implementation", None)
    switch = attention not in (None, "eager") and hasattr(encoder, "set_attn_implementation")
    batch = _check_batch(vocab_size, features, rows=3, length=9, seed=0)
    dynamic = {name: {0: "batch", 1: "length"} for name in names}
    dynamic.update(tag_probs={0: "batch", 1: "length"}, intent_probs={0: "batch"})
    path = folder / "float.onnx"
    try:
        if switch:
            encoder.set_attn_implementation("eager")
        with _evaluating(network) as wrapper, warnings.catch_warnings(), torch.inference_mode(False), \
                torch.no_grad():
            # The TorchScript exporter: the dynamo one needs onnxscript and traces
            # transformers' mask helpers less predictably.
            warnings.simplefilter("ignore")
            torch.onnx.export(wrapper, tuple(batch[n] for n in names), str(path), dynamo=False,
                              input_names=names, output_names=["tag_probs", "intent_probs"],
                              dynamic_axes=dynamic, opset_version=OPSET)
    finally:
        if switch:
            encoder.set_attn_implementation(attention)
    return path, names


def max_difference(network: nn.Module, runtime: Any, names: list[str], *, features: int,
                   vocab_size: int) -> float:
    """Largest probability difference between ``runtime`` and torch on a new check batch
    (another batch size and length than the export's, padded rows included)."""
    batch = _check_batch(vocab_size, features, rows=5, length=13, seed=1)
    with _evaluating(network) as wrapper, torch.inference_mode():
        expected = [t.numpy() for t in wrapper(*(batch[n] for n in names))]
    got = runtime.run(None, {n: batch[n].numpy() for n in names})
    return float(max(np.abs(e - g).max() for e, g in zip(expected, got, strict=True)))


def onnx_int8_runtime(network: nn.Module, *, features: int, vocab_size: int, threads: int,
                      reduce_range: bool) -> OnnxNetwork | None:
    """Export ``network``, check the export, quantise it to int8 and open a session.

    Args:
        network: The float :class:`~suggestions.ml.understanding.model.UnderstandingNetwork`, on the CPU.
        features: Number of phrase-feature ids the network reads (0: none).
        vocab_size: Rows of the network's input embeddings (the check batches' ids stay below it).
        threads: Intra-op threads of the session.
        reduce_range: Quantise weights over 7 bits (for CPUs without VNNI,
            whose 16-bit sums can saturate), as torch's ``reduce_range``.

    Returns:
        The runtime, or None when ONNX Runtime is missing, the export or the
        quantisation fails, or the export is wrong (logged).
    """
    if not available():
        logger.warning("suggestions: onnx-int8 needs onnxruntime and onnx (%s); the model stays in torch",
                       INSTALL_HINT)
        return None
    try:
        return _build(network, features=features, vocab_size=vocab_size, threads=threads,
                      reduce_range=reduce_range)
    except Exception:  # noqa: BLE001 - any failure here leaves the torch model serving
        logger.exception("suggestions: the ONNX export or quantisation failed; the model stays in torch")
        return None


def _build(network: nn.Module, *, features: int, vocab_size: int, threads: int,
           reduce_range: bool) -> OnnxNetwork | None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory(prefix="suggestions-onnx-") as tmp:
        folder = Path(tmp)
        path, names = export(network, folder, features=features, vocab_size=vocab_size)
        difference = max_difference(network, _session(str(path), threads), names, features=features,
                                    vocab_size=vocab_size)
        if not difference <= EXPORT_TOLERANCE:
            logger.error("suggestions: the ONNX export differs from the torch network by %.2g "
                         "(tolerance %.0e); the model stays in torch", difference, EXPORT_TOLERANCE)
            return None
        quantized = folder / "int8.onnx"
        # The quantiser logs its advice ("consider pre-processing") on the root
        # logger: dropped, the rest of the process's records kept.
        root = logging.getLogger()
        root.addFilter(_quantiser_advice)
        try:
            quantize_dynamic(str(path), str(quantized), weight_type=QuantType.QInt8, per_channel=True,
                             reduce_range=reduce_range, op_types_to_quantize=["MatMul"])
        finally:
            root.removeFilter(_quantiser_advice)
        session = _session(quantized.read_bytes(), threads)
    return OnnxNetwork(session, names)
