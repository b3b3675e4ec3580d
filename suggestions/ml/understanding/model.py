"""The query understanding model: one transformer encoder, two heads.

Imported only by Celery workers, management commands, benchmarks and tests:
it imports torch and transformers, which web processes never load.

Architecture (joint, see ``bench/understanding/README.md`` for the measurement
behind the choice): an encoder (MiniLM, multilingual-e5-small, or any
``AutoModel``) whose last hidden states feed

* a token-classification head: BIO tags over the shop's entity labels,
  predicted on the first sub-token of each word (other sub-tokens are
  ignored in the loss, label ``-100``);
* a sequence-classification head: the intent, from the masked mean of the
  hidden states.

Optionally (``phrase_features``) the encoder also reads, for every sub-token,
an embedding of the BIO tag the phrase memory (:mod:`suggestions.ml.understanding.phrases`:
the phrases the training data labels, fitted at training time and saved with
the model as ``phrases.json``) gives its word.

Words (what gets a tag) come from
:func:`~suggestions.ml.understanding.words.model_words` (Han text: one word per
character); BIO tags are decoded into spans by
:func:`~suggestions.ml.understanding.bio.decode_bio` after a BIO-constrained
Viterbi pass over the per-word probabilities (:func:`viterbi_bio`).

Contracts:

* :meth:`UnderstandingModel.predict` returns one
  :class:`~suggestions.nlp.types.Understanding` per query, in input order,
  whatever the internal length-bucketing; entity offsets index the query as
  given; ``source`` is ``"model:<version>"``.
* :meth:`UnderstandingModel.save` writes a plain folder (``config.json``,
  ``model.safetensors``, tokenizer files, ``understanding.json``, and
  ``phrases.json`` for phrase-feature models) that
  :meth:`UnderstandingModel.load` reads with no network and no access to the
  base model it was trained from.
* :meth:`UnderstandingModel.quantize` (``int8``: dynamic int8 quantisation
  of the encoder's linear layers, CPU only) changes the inference speed, not
  the interface; the workers apply ``SUGGESTIONS_UNDERSTANDING_QUANTIZE`` when
  they load a model (:mod:`~suggestions.ml.understanding.registry`). A
  quantised model is for inference only and refuses :meth:`~UnderstandingModel.save`.
"""

from __future__ import annotations

import functools
import gc
import json
import logging
import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ...nlp.language import detect_language
from ...nlp.segment import Token, tokenize
from ...nlp.types import Entity, Understanding
from .bio import bio_tags, decode_bio
from .words import has_han, model_words

logger = logging.getLogger(__name__)

#: Name of the metadata file in a saved model folder.
META_FILE = "understanding.json"
WEIGHTS_FILE = "model.safetensors"
FORMAT_VERSION = 1

#: Label of sub-tokens and padding that take no part in the loss.
IGNORE_INDEX = -100


def bio_transitions(tags: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Allowed BIO transitions ``[from, to]`` and allowed first tags.

    ``I-x`` may only follow ``B-x`` or ``I-x``; a sequence may not start with ``I-x``.
    """
    n = len(tags)
    allowed = torch.ones((n, n), dtype=torch.bool)
    for j, to in enumerate(tags):
        if to.startswith("I-"):
            for i, frm in enumerate(tags):
                allowed[i, j] = frm != "O" and frm[2:] == to[2:]
    start = torch.tensor([not t.startswith("I-") for t in tags])
    return allowed, start


def viterbi_bio(probs: torch.Tensor, allowed: torch.Tensor, start: torch.Tensor,
                prior: torch.Tensor | None = None) -> list[int]:
    """Most probable tag sequence that is valid BIO (a CRF-free constrained decode).

    Per-word argmax can produce ``O I-brand`` or ``B-color I-brand``; forbidding
    such transitions and choosing the best valid path over the per-word
    probabilities gains 1-2 F1 points on QueryNER dev (see the benchmark README).

    Args:
        probs: ``[words, tags]`` probabilities.
        allowed: From :func:`bio_transitions`.
        start: From :func:`bio_transitions`.
        prior: Optional ``[from, to]`` log-scores added to the transitions
            (:func:`transition_prior_matrix`).

    Returns:
        Tag ids, one per word.
    """
    if probs.shape[0] == 0:
        return []
    return _viterbi(_as_array(probs), bio_penalty(allowed, prior), _as_array(start))


def bio_penalty(allowed: Any, prior: Any = None) -> np.ndarray:
    """The decoder's ``[from, to]`` transition log-scores: 0 where allowed,
    -1e9 where not, plus ``prior`` (float32)."""
    penalty = np.where(_as_array(allowed), np.float32(0.0), np.float32(-1e9))
    if prior is not None:
        penalty = penalty + _as_array(prior)
    return penalty


def _viterbi(probs: np.ndarray, penalty: np.ndarray, start: np.ndarray) -> list[int]:
    """:func:`viterbi_bio` on arrays, with the transition scores of :func:`bio_penalty`."""
    # numpy, not torch: a query has a handful of words and a few dozen tags, and
    # torch's per-operation dispatch cost more than the arithmetic (the decode
    # was a third of predict()'s time); float32 throughout, as the network's output.
    logp = np.log(np.maximum(probs, np.float32(1e-9)))
    score = np.where(start, logp[0], np.float32(-1e9))
    columns = np.arange(penalty.shape[1])
    back = []
    for t in range(1, logp.shape[0]):
        candidates = score[:, None] + penalty
        index = candidates.argmax(0)  # the first best, as torch's max(0)
        back.append(index)
        score = candidates[index, columns] + logp[t]
    path = [int(score.argmax())]
    for index in reversed(back):
        path.append(int(index[path[-1]]))
    return path[::-1]


def _as_array(values: Any) -> np.ndarray:
    """A CPU tensor's data as a numpy array (no copy), or ``values`` as an array."""
    return values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values)


def transition_prior(tag_sequences: Iterable[Sequence[str]], tags: Sequence[str], *,
                     smoothing: float = 0.1) -> dict[str, float]:
    """How often the training data starts a new span of a type right after one
    of the same type, as log-probabilities: ``{"B-x>B-x": …, "I-x>B-x": …}``.

    Per-word probabilities cannot tell "beer glass" as one product type from
    two adjacent ones ("beer" and "glass"), and models trained per word split
    such phrases far more often than annotators do (adjacent same-type spans
    are under 1% of QueryNER's training spans). Adding these log-probabilities
    to the decoder's transitions (an HMM-style transition prior, estimated by
    counting, no training) gains 0.5-1.1 F1 points on QueryNER dev for every
    model and ensemble measured (see the benchmark README).

    Only for text without Han characters (:data:`PRIOR_SCOPE`): on Chinese,
    tagged per character, the same prior (counted from Chinese or from all
    data) costs 1.5-3 points on Jie2019 dev, so it is counted from and applied
    to the other examples and queries only.

    Args:
        tag_sequences: BIO tags per training example (without Han characters).
        tags: The model's tag set (:func:`bio_tags`).
        smoothing: Added to every transition count.
    """
    index = {t: i for i, t in enumerate(tags)}
    counts = torch.full((len(tags), len(tags)), float(smoothing))
    for seq in tag_sequences:
        ids = [index[t] for t in seq if t in index]
        for a, b in zip(ids, ids[1:], strict=False):
            counts[a, b] += 1
    logp = (counts / counts.sum(1, keepdim=True)).log()
    prior = {}
    for i, frm in enumerate(tags):
        if frm == "O":
            continue
        to = f"B-{frm[2:]}"
        prior[f"{frm}>{to}"] = round(float(logp[i, index[to]]), 4)
    return prior


#: What the stored transition prior was counted from and is applied to.
PRIOR_SCOPE = "text without Han characters"


def transition_prior_matrix(prior: dict[str, float] | None, tags: Sequence[str]) -> torch.Tensor | None:
    """The ``[from, to]`` matrix of a :func:`transition_prior` (None when there is none)."""
    if not prior:
        return None
    index = {t: i for i, t in enumerate(tags)}
    matrix = torch.zeros((len(tags), len(tags)))
    for key, value in prior.items():
        frm, _, to = key.partition(">")
        if frm in index and to in index:
            matrix[index[frm], index[to]] = float(value)
    return matrix


#: Values of ``SUGGESTIONS_UNDERSTANDING_QUANTIZE``: ``off`` (float32), ``int8``
#: (torch's dynamic int8 quantisation of the encoder's linear layers) or
#: ``onnx-int8`` (the network exported to ONNX Runtime and quantised there:
#: :mod:`~suggestions.ml.understanding.onnx_runtime`); the last two on the CPU only.
QUANTIZE_MODES = ("off", "int8", "onnx-int8")


def full_range_supported() -> bool:
    """Whether this CPU multiplies int8 with 32-bit accumulation (VNNI).

    Without VNNI, fbgemm sums pairs of uint8 × int8 products in saturating
    16-bit lanes, which is why torch quantises dynamic activations to 7 bits
    (``reduce_range``); with VNNI (AVX512-VNNI, AVX-VNNI) the sums are 32-bit
    and the full 8 bits are safe.
    """
    check = getattr(torch.cpu, "_is_vnni_supported", None)
    try:
        return bool(check()) if check is not None else False
    except RuntimeError:
        return False


@functools.cache
def _full_range_linear() -> type:
    """torch's dynamic int8 ``Linear`` with its input quantised over 8 bits, not 7."""
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    class FullRangeDynamicLinear(DynamicLinear):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = torch.ops.quantized.linear_dynamic(x, self._packed_params._packed_params, reduce_range=False)
            return y.to(x.dtype)

        def _get_name(self) -> str:
            return "FullRangeDynamicQuantizedLinear"

    return FullRangeDynamicLinear


def quantize_encoder(network: UnderstandingNetwork, mode: str, *, per_channel: bool = True,
                     full_range: bool | None = None) -> bool:
    """Quantise ``network``'s encoder in place for CPU inference.

    ``int8``: :func:`torch.ao.quantization.quantize_dynamic` on every
    ``nn.Linear`` of the encoder, weights stored in int8 with one scale per
    output channel, activations quantised per tensor at run time (so a
    query's probabilities move slightly, in the 4th decimal, with the queries
    it is batched with); embeddings, layer norms and the two small heads stay
    float32. Activations use all 8 bits where the CPU has VNNI
    (:func:`full_range_supported`), 7 bits elsewhere (torch's default,
    ``reduce_range``). On QueryNER dev, 7-bit activations cost the default
    ensemble 0.0075 entity F1 (0.023 in another training), 8-bit ones
    nothing (+0.0019); one scale per weight matrix (``per_channel=False``)
    cost MiniLM 0.013 more (``python -m
    bench.understanding_speed``, see ``bench/RESULTS.md``). The network can no
    longer be trained or saved.

    Args:
        network: A network in eval mode, on the CPU.
        mode: One of :data:`QUANTIZE_MODES`.
        per_channel: One weight scale per output channel (the default) or per matrix.
        full_range: Quantise activations over 8 bits (True) or 7 (False); None
            (the default): 8 where :func:`full_range_supported`. True on a CPU
            without VNNI risks saturated sums: a wrong network, not an error.

    Returns:
        Whether the encoder was quantised (False for ``off``, or when this torch
        has no dynamic quantisation: logged, the model stays float).

    Raises:
        ValueError: an unknown mode.
    """
    if mode not in QUANTIZE_MODES:
        raise ValueError(f"unknown quantisation {mode!r}; known: {', '.join(QUANTIZE_MODES)}")
    if mode == "off":
        return False
    if mode != "int8":
        raise ValueError(f"{mode!r} is not a torch quantisation: UnderstandingModel.quantize runs it")
    import warnings

    if full_range is None:
        full_range = full_range_supported()
    try:
        with warnings.catch_warnings():
            # torch.ao.quantization announces its move to torchao; it still works
            # in the pinned torch (and the except below keeps a float model if not).
            warnings.simplefilter("ignore")
            from torch.ao.quantization import (
                default_dynamic_qconfig,
                per_channel_dynamic_qconfig,
                quantize_dynamic,
            )

            qconfig = per_channel_dynamic_qconfig if per_channel else default_dynamic_qconfig
            mapping = {nn.Linear: _full_range_linear()} if full_range else None
            quantize_dynamic(network.encoder, {nn.Linear: qconfig}, dtype=torch.qint8, mapping=mapping,
                             inplace=True)
    except (ImportError, AttributeError, RuntimeError) as exc:
        logger.warning("suggestions: int8 quantisation unavailable in torch %s (%s); the model stays float32",
                       torch.__version__, exc)
        return False
    return True


def pick_device(device: str | None = None) -> torch.device:
    """``device`` if given, else CUDA when available, else CPU."""
    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class UnderstandingNetwork(nn.Module):
    """Encoder + BIO tag head + intent head (joint model)."""

    def __init__(self, encoder: nn.Module, n_tags: int, n_intents: int, dropout: float = 0.1,
                 n_features: int = 0) -> None:
        super().__init__()
        self.encoder = encoder
        hidden = encoder.config.hidden_size
        self.dropout = nn.Dropout(dropout)
        self.tag_head = nn.Linear(hidden, n_tags)
        self.intent_head = nn.Linear(hidden, n_intents)
        # Phrase-memory features (see suggestions.ml.understanding.phrases): one embedding per
        # BIO tag, added to the sub-token embeddings. Zero-initialised, so training
        # starts from the pretrained encoder's exact behaviour.
        self.feature_embeddings: nn.Embedding | None = None
        if n_features:
            self.feature_embeddings = nn.Embedding(n_features, hidden)
            nn.init.zeros_(self.feature_embeddings.weight)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                feature_ids: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Tag logits ``[batch, length, tags]`` and intent logits ``[batch, intents]``.

        ``feature_ids`` (``[batch, length]``, 0 = no feature) is required when
        the network has feature embeddings.
        """
        if self.encoder is None:
            raise RuntimeError("this network runs in ONNX Runtime (onnx-int8); its torch encoder was released")
        if self.feature_embeddings is not None:
            if feature_ids is None:
                raise ValueError("this network reads phrase features: pass feature_ids")
            embeds = self.encoder.get_input_embeddings()(input_ids) + self.feature_embeddings(feature_ids)
            hidden = self.encoder(inputs_embeds=embeds, attention_mask=attention_mask).last_hidden_state
        else:
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        tag_logits = self.tag_head(self.dropout(hidden))
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        intent_logits = self.intent_head(self.dropout(pooled))
        return tag_logits, intent_logits


@dataclass
class Encoded:
    """A query turned into model input.

    Attributes:
        words: the words that get tags.
        input_ids: sub-token ids with the special tokens.
        word_index: per word, the position of the sub-token that carries its
            tag, or -1 when truncation cut the word off.
        piece_words: per sub-token, the index of its word (-1 for special tokens).
        feature_ids: per sub-token, its phrase-feature id (models with a
            phrase memory), else None.
    """

    words: list[Token]
    input_ids: list[int]
    word_index: list[int]
    piece_words: list[int] = field(default_factory=list)
    feature_ids: list[int] | None = None

    def with_features(self, word_features: Sequence[int]) -> Encoded:
        """A copy whose sub-tokens carry their word's feature id."""
        ids = [word_features[w] if w >= 0 else 0 for w in self.piece_words]
        return Encoded(self.words, self.input_ids, self.word_index, self.piece_words, ids)


class SubwordEncoder:
    """Turns words into sub-token ids with a transformers tokenizer, word by word.

    Encoding words one by one (cached) instead of the whole string gives every
    word its own sub-tokens, so each word has a first sub-token to carry its
    tag. With SentencePiece tokenizers a word glued to the previous one
    (Chinese characters) drops the bare ``"▁"`` piece the tokenizer prepends:
    per-character Chinese input would otherwise be twice as long.
    """

    def __init__(self, tokenizer: Any, max_length: int) -> None:
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.cls_id = _first_id(tokenizer, "cls_token_id", "bos_token_id")
        self.sep_id = _first_id(tokenizer, "sep_token_id", "eos_token_id")
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        meta = tokenizer.convert_tokens_to_ids("▁")
        self.metaspace_id = meta if isinstance(meta, int) and meta != tokenizer.unk_token_id else None
        self._cache: dict[str, list[int]] = {}

    def _pieces(self, words: Iterable[str]) -> None:
        missing = list({w for w in words if w not in self._cache})
        if missing:
            encoded = self.tokenizer(missing, add_special_tokens=False)["input_ids"]
            for word, ids in zip(missing, encoded, strict=True):
                self._cache[word] = list(ids) or [self.tokenizer.unk_token_id]
            if len(self._cache) > 200_000:  # bounded memory in long-lived workers
                self._cache.clear()

    def encode_many(self, word_lists: Sequence[Sequence[Token]]) -> list[Encoded]:
        """Encode many word lists (one tokenizer call for all new words)."""
        self._pieces(w.text for words in word_lists for w in words)
        return [self._encode(list(words)) for words in word_lists]

    def _encode(self, words: list[Token]) -> Encoded:
        ids = [self.cls_id]
        piece_words = [-1]
        index: list[int] = []
        limit = self.max_length - 1
        prev_end = None
        for word in words:
            pieces = self._cache.get(word.text)
            if pieces is None:
                self._pieces([word.text])
                pieces = self._cache[word.text]
            glued = prev_end is not None and word.start == prev_end
            prev_end = word.end
            head = 0
            if self.metaspace_id is not None and len(pieces) > 1 and pieces[0] == self.metaspace_id:
                if glued:
                    pieces = pieces[1:]
                else:
                    head = 1  # tag the word's first real piece, not the bare "▁"
            if len(ids) + len(pieces) > limit:
                index.append(-1)
                continue
            index.append(len(ids) + head)
            piece_words.extend([len(index) - 1] * len(pieces))
            ids.extend(pieces)
        ids.append(self.sep_id)
        piece_words.append(-1)
        return Encoded(words=words, input_ids=ids, word_index=index, piece_words=piece_words)


def _first_id(tokenizer: Any, *names: str) -> int:
    for name in names:
        value = getattr(tokenizer, name, None)
        if value is not None:
            return int(value)
    raise ValueError(f"tokenizer has none of {names}")


def pad_batch(items: Sequence[Encoded], pad_id: int, tags: Sequence[Sequence[int]] | None = None
              ) -> dict[str, torch.Tensor]:
    """Pad a batch to its longest member.

    Args:
        items: Encoded queries.
        pad_id: Padding token id.
        tags: Per item, a tag id per word (``IGNORE_INDEX`` for unlabelled);
            turned into sub-token labels on the words' tagged sub-tokens.

    Returns:
        ``input_ids``, ``attention_mask``, ``feature_ids`` when the items carry
        phrase features and, with ``tags``, ``labels``.
    """
    # Filled in numpy (a row from a list costs a microsecond there, several in
    # torch) and shared with torch without a copy.
    length = max(len(e.input_ids) for e in items)
    input_ids = np.full((len(items), length), pad_id, dtype=np.int64)
    mask = np.zeros((len(items), length), dtype=np.int64)
    features = None
    if items[0].feature_ids is not None:
        features = np.zeros((len(items), length), dtype=np.int64)
        for row, enc in enumerate(items):
            if enc.feature_ids is None:
                raise ValueError("mixed batch: some items carry phrase features, some do not")
            features[row, : len(enc.feature_ids)] = enc.feature_ids
    labels = np.full((len(items), length), IGNORE_INDEX, dtype=np.int64) if tags is not None else None
    for row, enc in enumerate(items):
        input_ids[row, : len(enc.input_ids)] = enc.input_ids
        mask[row, : len(enc.input_ids)] = 1
        if labels is not None:
            for word, position in enumerate(enc.word_index):
                if position >= 0:
                    labels[row, position] = tags[row][word]  # type: ignore[index]
    out = {"input_ids": torch.from_numpy(input_ids), "attention_mask": torch.from_numpy(mask)}
    if features is not None:
        out["feature_ids"] = torch.from_numpy(features)
    if labels is not None:
        out["labels"] = torch.from_numpy(labels)
    return out


class _Predictor:
    """Decoding shared by single models and ensembles: per-word tag
    probabilities → BIO-constrained spans with character offsets, intent.

    Subclasses provide ``tags``, ``intents``, ``version``, ``gazetteer``,
    ``_transitions``, ``_prior`` and ``forward_words``.
    """

    tags: list[str]
    intents: tuple[str, ...]
    gazetteer: Any
    #: Let a keyword that settles the intent (``rules.keyword_intent``: customer
    #: service, navigation, questions, deals) override the intent head.
    keyword_intents: bool = True
    _transitions: tuple[torch.Tensor, torch.Tensor]
    _prior: torch.Tensor | None = None

    @property
    def version(self) -> str:
        raise NotImplementedError

    def forward_words(self, word_lists: Sequence[Sequence[Token]], batch_size: int = 64
                      ) -> list[tuple[np.ndarray, np.ndarray]]:
        raise NotImplementedError

    def predict_words(self, queries: Sequence[str], word_lists: Sequence[Sequence[Token]],
                      batch_size: int = 64) -> list[Understanding]:
        """Like :meth:`predict` with the words given (e.g. a dataset's own tokens)."""
        outputs = self.forward_words(word_lists, batch_size)
        # A live gazetteer (the registry's) is looked up once per batch, not per query.
        current = getattr(self.gazetteer, "current", None)
        gazetteer = current() if current is not None else self.gazetteer
        return [self._understanding(q, words, tag_p, intent_p, gazetteer)
                for q, words, (tag_p, intent_p) in zip(queries, word_lists, outputs, strict=True)]

    def predict(self, queries: Sequence[str], batch_size: int | None = None) -> list[Understanding]:
        """Understand queries.

        Args:
            queries: Queries as typed (not normalised); offsets refer to them.
            batch_size: Queries per forward pass (default
                ``SUGGESTIONS_UNDERSTANDING_BATCH_SIZE``, else 64).

        Returns:
            One :class:`Understanding` per query, in input order.
        """
        if batch_size is None:
            batch_size = _configured_batch_size()
        queries = list(queries)
        return self.predict_words(queries, [model_words(q) for q in queries], batch_size)

    def _decode_tables(self, han: bool) -> tuple[np.ndarray, np.ndarray]:
        """The decoder's transition scores and allowed first tags, for text with or
        without Han characters (the transition prior applies to the latter only),
        computed once per prior (kept with the prior they were computed from, so a
        new ``_prior`` is never decoded with the old one's tables)."""
        tables = self.__dict__.setdefault("_tables", {})
        prior = None if han else self._prior
        cached = tables.get(han)
        if cached is None or cached[0] is not prior:
            allowed, start = self._transitions
            cached = tables[han] = (prior, bio_penalty(allowed, prior), _as_array(start))
        return cached[1], cached[2]

    def _understanding(self, query: str, words: Sequence[Token], tag_probs: np.ndarray,
                       intent_probs: np.ndarray, gazetteer: Any) -> Understanding:
        probs = _as_array(tag_probs)
        path = _viterbi(probs, *self._decode_tables(has_han(words))) if len(words) else []
        best_p = probs[np.arange(len(path)), path].tolist() if path else []
        tags = [self.tags[i] for i in path]
        spans = decode_bio(tags)
        # Catalog spellings only for the spans found (the lookup is a quarter of the decode's cost).
        known = self._gazetteer_values(query, gazetteer) if spans else {}
        entities = []
        for label, first, last in spans:
            start, end = words[first].start, words[last - 1].end
            score = sum(best_p[first:last]) / (last - first)
            text = query[start:end]
            value = known.get((start, end, label)) or text
            entities.append(Entity(label=label, text=text, start=start, end=end, value=value,
                                   score=round(score, 4)))
        intent_i = int(intent_probs.argmax())
        intent, confidence = self.intents[intent_i], float(intent_probs[intent_i])
        tokens = tokenize(query)
        if self.keyword_intents:
            from ...nlp.rules import keyword_intent

            settled = keyword_intent(query, entities, tokens=tokens)
            if settled is not None and settled[0] in self.intents:
                intent, confidence = settled
        return Understanding(
            query=query, language=detect_language(query), intent=intent,
            confidence=round(confidence, 4), entities=tuple(entities),
            source=f"model:{self.version}", tokens=tuple(t.text for t in tokens),
        )

    def _gazetteer_values(self, query: str, gazetteer: Any) -> dict[tuple[int, int, str], str]:
        """Canonical values (catalog spellings, parsed prices) of the spans
        ``gazetteer`` finds in ``query`` with the same label."""
        if gazetteer is None:
            return {}
        try:
            found = gazetteer.tag(query)
        except Exception:  # noqa: BLE001 - normalisation is optional, never fatal
            return {}
        return {(ent.start, ent.end, ent.label): ent.value for ent in found if ent.value}


class UnderstandingModel(_Predictor):
    """A trained (or freshly initialised) understanding model, ready to predict.

    Attributes:
        network: the torch module.
        tokenizer: its transformers tokenizer.
        entity_labels: entity labels the tag head knows.
        intents: intents the intent head knows.
        meta: what :meth:`save` stores besides the weights (version, base,
            training parameters, metrics).
        device: where the network runs.
        gazetteer: optional object with ``tag(text) -> [Entity]`` used to
            normalise entity values (catalog spellings).
    """

    def __init__(self, network: UnderstandingNetwork, tokenizer: Any, entity_labels: Sequence[str],
                 intents: Sequence[str], *, meta: dict[str, Any] | None = None,
                 device: str | torch.device | None = None, max_length: int = 128) -> None:
        self.network = network
        self.tokenizer = tokenizer
        self.entity_labels = tuple(entity_labels)
        self.intents = tuple(intents)
        self.tags = bio_tags(self.entity_labels)
        self.tag_to_id = {t: i for i, t in enumerate(self.tags)}
        self._transitions = bio_transitions(self.tags)
        self.meta = dict(meta or {})
        self.meta.setdefault("max_length", max_length)
        self._prior = transition_prior_matrix(self.meta.get("transition_prior"), self.tags)
        self.encoder = SubwordEncoder(tokenizer, int(self.meta["max_length"]))
        self.device = pick_device(str(device) if device is not None else None)
        self.network.to(self.device)
        self.network.eval()
        self.gazetteer: Any = None
        #: The phrase memory whose tags the network reads (``phrase_features``
        #: models; set by training or loaded with the folder), else None.
        self.phrases: Any = None
        #: The ONNX Runtime network that answers instead of ``network``
        #: (``onnx-int8``), else None.
        self.runtime: Any = None

    @property
    def quantized(self) -> str:
        """How the network runs: ``off`` (float32) or a :data:`QUANTIZE_MODES` value."""
        return str(self.meta.get("quantized") or "off")

    def quantize(self, mode: str) -> bool:
        """Quantise the encoder for inference: ``int8`` with torch
        (:func:`quantize_encoder`), ``onnx-int8`` by exporting the network to
        ONNX Runtime (:func:`~suggestions.ml.understanding.onnx_runtime.onnx_int8_runtime`,
        which then answers :meth:`forward_words`; without onnxruntime, or when
        the export does not reproduce the network, the model stays float32, logged).

        Only on the CPU (quantised kernels are CPU kernels): on another device
        the model stays float32, logged. Quantising twice is a no-op.

        Returns:
            Whether the model now runs quantised in ``mode``.
        """
        if mode not in QUANTIZE_MODES:
            raise ValueError(f"unknown quantisation {mode!r}; known: {', '.join(QUANTIZE_MODES)}")
        if mode == "off" or self.quantized == mode:
            return self.quantized == mode != "off"
        if self.quantized != "off":
            raise ValueError(f"model already quantised ({self.quantized}); load it again for {mode!r}")
        if self.device.type != "cpu":
            logger.info("suggestions: %s quantisation is for the CPU; the model on %s stays float32",
                        mode, self.device)
            return False
        self.network.eval()
        if mode == "onnx-int8":
            from .onnx_runtime import onnx_int8_runtime

            self.runtime = onnx_int8_runtime(
                self.network, features=len(self.tags) if self.reads_phrases else 0,
                vocab_size=self.network.encoder.get_input_embeddings().num_embeddings,
                threads=torch.get_num_threads(),
                reduce_range=not full_range_supported())
            if self.runtime is None:
                return False
            # The session answers from now on and holds its own copy of the weights:
            # release the float encoder rather than keep the model twice.
            self.network.encoder = None
            gc.collect()
            self.meta["quantized"] = mode
            return True
        if quantize_encoder(self.network, mode):
            self.meta["quantized"] = mode
            return True
        return False

    def set_transition_prior(self, prior: dict[str, float] | None) -> None:
        """Use (and save with the model) a :func:`transition_prior` when decoding."""
        self.meta["transition_prior"] = dict(prior) if prior else None
        self.meta["transition_prior_scope"] = PRIOR_SCOPE
        self._prior = transition_prior_matrix(prior, self.tags)

    @property
    def reads_phrases(self) -> bool:
        """Whether the network takes phrase-memory features."""
        return self.network.feature_embeddings is not None

    # -- construction --------------------------------------------------------------

    @classmethod
    def from_base(cls, base: str, entity_labels: Sequence[str], intents: Sequence[str], *,
                  device: str | None = None, max_length: int = 128, dropout: float = 0.1,
                  phrase_features: bool = False, meta: dict[str, Any] | None = None) -> UnderstandingModel:
        """A new model on a pretrained encoder (heads freshly initialised).

        Args:
            base: A folder or hub name ``AutoModel``/``AutoTokenizer`` load
                (resolve specs with :func:`suggestions.ml.encoders.resolve_encoder`).
            entity_labels: Entity labels to tag.
            intents: Intents to classify.
            device: ``cpu``/``cuda``; default: CUDA when available.
            max_length: Sub-tokens per query, special tokens included.
            dropout: Dropout before the heads.
            phrase_features: Give the network phrase-memory inputs
                (:mod:`suggestions.ml.understanding.phrases`); training fits the memory.
            meta: Extra metadata to store.
        """
        from transformers import AutoModel, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(base)
        # float32 whatever the checkpoint's dtype: training and CPU inference want it.
        encoder = AutoModel.from_pretrained(base).float()
        n_tags = len(bio_tags(entity_labels))
        network = UnderstandingNetwork(encoder, n_tags, len(intents), dropout,
                                       n_features=n_tags if phrase_features else 0)
        return cls(network, tokenizer, entity_labels, intents, device=device, max_length=max_length,
                   meta={"base": base, "dropout": dropout, "phrase_features": bool(phrase_features),
                         **(meta or {})})

    def save(self, folder: str | os.PathLike[str]) -> Path:
        """Write the model into ``folder`` (created if needed).

        The frozen word-embedding matrix (when training froze it) is stored in
        float16: it is a copy of the base's and, for multilingual-e5-small,
        96M parameters that would otherwise take 384 MB per version.
        """
        from safetensors.torch import save_file

        if self.quantized != "off":
            raise ValueError("a quantised model cannot be saved: save the float model and quantise at load")
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().to("cpu").contiguous() for k, v in self.network.state_dict().items()}
        half = self.meta.get("frozen_embeddings") and self.meta.get("store_frozen_fp16", True)
        halved = []
        if half:
            for name, tensor in state.items():
                if name.endswith("word_embeddings.weight"):
                    state[name] = tensor.half()
                    halved.append(name)
        save_file(state, str(out / WEIGHTS_FILE), metadata={"format": "pt"})
        self.network.encoder.config.save_pretrained(str(out))
        self.tokenizer.save_pretrained(str(out))
        if self.reads_phrases:
            if self.phrases is None:
                raise ValueError("a phrase-feature model needs its phrase memory (train it first)")
            from .phrases import PHRASES_FILE

            (out / PHRASES_FILE).write_text(json.dumps(self.phrases.to_json(), ensure_ascii=False))
        meta = {
            **self.meta,
            "format": FORMAT_VERSION,
            "entity_labels": list(self.entity_labels),
            "tags": self.tags,
            "intents": list(self.intents),
            "float16_tensors": halved,
            "segmentation": "segment.tokenize; Han text: characters, letter/digit runs",
        }
        (out / META_FILE).write_text(json.dumps(meta, indent=2, ensure_ascii=False, default=str))
        return out

    @classmethod
    def load(cls, folder: str | os.PathLike[str], *, device: str | None = None) -> Any:
        """Load a folder written by :meth:`save` or :meth:`EnsembleModel.save`
        (offline; no base model needed).

        Returns:
            An :class:`UnderstandingModel`, or an :class:`EnsembleModel` when
            the folder holds one.

        Raises:
            FileNotFoundError: the folder is not a saved understanding model.
        """
        from safetensors.torch import load_file
        from transformers import AutoConfig, AutoModel, AutoTokenizer

        folder = Path(folder)
        meta_path = folder / META_FILE
        if not meta_path.is_file():
            raise FileNotFoundError(f"{folder} is not an understanding model ({META_FILE} missing)")
        meta = json.loads(meta_path.read_text())
        if meta.get("ensemble"):
            members = [cls.load(folder / name, device=device) for name in meta["ensemble"]]
            meta["path"] = str(folder)
            return EnsembleModel(members, meta=meta)
        config = AutoConfig.from_pretrained(str(folder))
        encoder = AutoModel.from_config(config)
        phrase_features = bool(meta.get("phrase_features"))
        network = UnderstandingNetwork(encoder, len(meta["tags"]), len(meta["intents"]),
                                       float(meta.get("dropout", 0.1)),
                                       n_features=len(meta["tags"]) if phrase_features else 0)
        state = load_file(str(folder / WEIGHTS_FILE))
        state = {k: (v.float() if v.is_floating_point() else v) for k, v in state.items()}
        network.load_state_dict(state)
        tokenizer = AutoTokenizer.from_pretrained(str(folder))
        meta["path"] = str(folder)
        model = cls(network, tokenizer, meta["entity_labels"], meta["intents"], meta=meta, device=device)
        if phrase_features:
            from .phrases import PHRASES_FILE, PhraseMemory

            phrases_path = folder / PHRASES_FILE
            if not phrases_path.is_file():
                raise FileNotFoundError(f"{folder} reads phrase features but has no {PHRASES_FILE}")
            model.phrases = PhraseMemory.from_json(json.loads(phrases_path.read_text()))
        return model

    @property
    def version(self) -> str:
        """Version label (``meta["version"]``), ``"unversioned"`` before registration."""
        return str(self.meta.get("version") or "unversioned")

    # -- inference -----------------------------------------------------------------

    @property
    def handles_han(self) -> bool:
        """Whether the tokenizer knows Chinese characters (MiniLM's maps them to ``[UNK]``)."""
        cached = self.meta.get("handles_han")
        if cached is None:
            ids = self.tokenizer("的是手机品牌颜色", add_special_tokens=False)["input_ids"]
            unk = self.tokenizer.unk_token_id
            cached = bool(ids) and sum(i == unk for i in ids) / len(ids) < 0.5
            self.meta["handles_han"] = cached
        return bool(cached)

    def encode(self, word_lists: Sequence[Sequence[Token]]) -> list[Encoded]:
        """Encode word lists into model input (with phrase features when the network reads them)."""
        encoded = self.encoder.encode_many(word_lists)
        if not self.reads_phrases:
            return encoded
        if self.phrases is None:
            raise ValueError("this model reads phrase features but has no phrase memory")
        return [enc.with_features(self.feature_ids([w.text for w in words]))
                for enc, words in zip(encoded, word_lists, strict=True)]

    def feature_ids(self, words: Sequence[str], tags: Sequence[str] | None = None) -> list[int]:
        """Per word, its phrase-feature id: the id of its phrase-memory BIO tag
        (``O`` = 0 = no feature). ``tags`` overrides the memory's tags (training)."""
        if tags is None:
            tags = self.phrases.tags(words)
        return [self.tag_to_id.get(t, 0) for t in tags]

    def forward_words(self, word_lists: Sequence[Sequence[Token]], batch_size: int = 64
                      ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Tag probabilities per word ``[words, tags]`` and intent probabilities, per
        input (float32 numpy arrays).

        Inputs are sorted by length into buckets so each batch pads little;
        results come back in input order.
        """
        encoded = self.encode(word_lists)
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i].input_ids))
        results: list[Any] = [None] * len(encoded)
        self.network.eval()
        with torch.inference_mode():
            for first in range(0, len(order), max(1, batch_size)):
                chunk = order[first:first + batch_size]
                batch = pad_batch([encoded[i] for i in chunk], self.encoder.pad_id)
                if self.runtime is not None:
                    tag_probs, intent_probs = self.runtime(batch)
                else:
                    features = batch.get("feature_ids")
                    tag_logits, intent_logits = self.network(
                        batch["input_ids"].to(self.device), batch["attention_mask"].to(self.device),
                        features.to(self.device) if features is not None else None)
                    # numpy from here on: per query the work is a few small arrays,
                    # where torch's per-operation cost outweighs the arithmetic.
                    tag_probs = tag_logits.float().softmax(-1).cpu().numpy()
                    intent_probs = intent_logits.float().softmax(-1).cpu().numpy()
                for row, i in enumerate(chunk):
                    index = np.asarray(encoded[i].word_index, dtype=np.int64)
                    per_word = np.zeros((len(index), len(self.tags)), dtype=np.float32)
                    per_word[:, 0] = 1.0  # truncated words: "O"
                    kept = index >= 0
                    if kept.any():
                        per_word[kept] = tag_probs[row, index[kept]]
                    results[i] = (per_word, intent_probs[row])
        return results

class EnsembleModel(_Predictor):
    """Several understanding models whose per-word tag and intent
    probabilities are averaged before decoding.

    Members must share entity labels and intents. A member whose tokenizer
    does not know Chinese (English MiniLM) sits out on queries with Han
    characters, so an English model never dilutes the multilingual one's
    Chinese answers. Ensembling MiniLM with multilingual-e5-small gains about
    2 F1 points on QueryNER dev for twice the inference cost (see the
    benchmark README).
    """

    def __init__(self, members: Sequence[UnderstandingModel], *, meta: dict[str, Any] | None = None) -> None:
        if not members:
            raise ValueError("an ensemble needs members")
        first = members[0]
        for m in members[1:]:
            if m.entity_labels != first.entity_labels or m.intents != first.intents:
                raise ValueError("ensemble members must share entity labels and intents")
        if not any(m.handles_han for m in members):
            logger.info("no ensemble member handles Chinese; Chinese queries use all members")
        self.members = list(members)
        self.entity_labels = first.entity_labels
        self.intents = first.intents
        self.tags = first.tags
        self._transitions = first._transitions
        priors = [m._prior for m in members if m._prior is not None]
        self._prior = torch.stack(priors).mean(0) if priors else None
        self.meta = dict(meta or {})
        self._gazetteer: Any = None

    @property
    def gazetteer(self) -> Any:
        return self._gazetteer

    @gazetteer.setter
    def gazetteer(self, value: Any) -> None:
        self._gazetteer = value

    @property
    def version(self) -> str:
        return str(self.meta.get("version") or self.members[0].version)

    @property
    def device(self) -> torch.device:
        return self.members[0].device

    @property
    def quantized(self) -> str:
        """The members' quantisation (``off`` unless every member runs quantised)."""
        modes = {m.quantized for m in self.members}
        return modes.pop() if len(modes) == 1 else "off"

    def quantize(self, mode: str) -> bool:
        """Quantise every member (:meth:`UnderstandingModel.quantize`)."""
        results = [member.quantize(mode) for member in self.members]
        return all(results)

    def forward_words(self, word_lists: Sequence[Sequence[Token]], batch_size: int = 64
                      ) -> list[tuple[np.ndarray, np.ndarray]]:
        han = [has_han(words) for words in word_lists]
        any_han_member = any(m.handles_han for m in self.members)
        sums: list[Any] = [None] * len(word_lists)
        counts = [0] * len(word_lists)
        for member in self.members:
            if member.handles_han or not any_han_member:
                chosen = list(range(len(word_lists)))
            else:
                chosen = [i for i, h in enumerate(han) if not h]
            if not chosen:
                continue
            outputs = member.forward_words([word_lists[i] for i in chosen], batch_size)
            for i, (tag_p, intent_p) in zip(chosen, outputs, strict=True):
                if sums[i] is None:
                    sums[i] = [tag_p.copy(), intent_p.copy()]
                else:
                    sums[i][0] += tag_p
                    sums[i][1] += intent_p
                counts[i] += 1
        return [(s[0] / n, s[1] / n) for s, n in zip(sums, counts, strict=True)]

    def save(self, folder: str | os.PathLike[str]) -> Path:
        """Write each member into ``folder/member-<i>`` and the ensemble's metadata."""
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        names = []
        for i, member in enumerate(self.members):
            name = f"member-{i}"
            member.save(out / name)
            names.append(name)
        meta = {**{k: v for k, v in self.meta.items() if k != "path"}, "format": FORMAT_VERSION,
                "ensemble": names, "entity_labels": list(self.entity_labels), "tags": self.tags,
                "intents": list(self.intents)}
        (out / META_FILE).write_text(json.dumps(meta, indent=2, ensure_ascii=False, default=str))
        return out


def _configured_batch_size() -> int:
    try:
        from ...conf import app_settings

        return app_settings.UNDERSTANDING_BATCH_SIZE
    except Exception:  # noqa: BLE001 - Django not configured (scripts): the default
        return 64


# -- tiny models for tests ---------------------------------------------------------------


def build_tiny_base(texts: Iterable[str], folder: str | os.PathLike[str], *, hidden: int = 32,
                    layers: int = 2, heads: int = 2, vocab_size: int = 600, seed: int = 0) -> str:
    """Create a tiny BERT with a WordPiece tokenizer trained on ``texts``.

    For tests and ``suggestions_train --tiny``: saves and reloads offline in
    about 100 KB, trains in seconds on CPU.

    Args:
        texts: Text the tokenizer's vocabulary is learned from.
        folder: Where to save the base model (``from_pretrained``-loadable).
        hidden: Hidden size.
        layers: Transformer layers.
        heads: Attention heads.
        vocab_size: WordPiece vocabulary size (upper bound).
        seed: Seed of the weight initialisation.

    Returns:
        ``str(folder)``.
    """
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True, handle_chinese_chars=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(list(texts), trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=specials))
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                                   cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=tok.get_vocab_size(), hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=heads, intermediate_size=hidden * 2, max_position_embeddings=128)
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    BertModel(config).save_pretrained(str(out))
    fast.save_pretrained(str(out))
    return str(out)


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of (trainable) parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def warmup_linear(step: int, total: int, warmup: int) -> float:
    """Learning-rate factor: linear warm-up, then linear decay to zero."""
    if step < warmup:
        return (step + 1) / max(1, warmup)
    return max(0.0, (total - step) / max(1, total - warmup))


def cosine_schedule(step: int, total: int, warmup: int) -> float:
    """Learning-rate factor: linear warm-up, then cosine decay to zero."""
    if step < warmup:
        return (step + 1) / max(1, warmup)
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


SCHEDULES: dict[str, Callable[[int, int, int], float]] = {
    "linear": warmup_linear,
    "cosine": cosine_schedule,
}
