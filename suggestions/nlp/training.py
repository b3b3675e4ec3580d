"""Training the understanding model: data assembly, the training loop, evaluation,
and registering the result as a :class:`~suggestions.models.ModelVersion`.

Imported only by the ``suggestions_train`` command, Celery GPU workers, the
benchmark and tests (it imports torch).

Data sources (``--data``), all mapped onto the shop's entity labels and intents:

``queryner``
    QueryNER (Amazon ESCI queries, English, 17 types) ``train.jsonl`` only;
    its ``dev.jsonl`` is never trained on.
``jie2019``
    Chinese e-commerce NER (Jie et al. 2019), ``train.txt`` only, labelled
    per character.
``catalog``
    Distant supervision: the catalog gazetteer tags the shop's searched
    queries (``SearchEvent.normalized_query``) and product titles.
``behaviour``
    Distant supervision: the brand and product type of the products clicked
    after a query (``ProductClick`` → adapter documents) label the query's
    spans that spell them.
``corrections``
    Merchandisers' labels (``QueryLabel``): weight ``CORRECTION_WEIGHT`` in
    the loss, seen :data:`CORRECTION_REPEAT` times per epoch, always in the
    training split, and they replace every other example of the same
    normalised query. A labelled query therefore changes the next model's
    answer for it.
``templates``
    Composed customer-service, navigation, question and deal queries in
    English and Chinese (:func:`template_examples`), intent only: public NER
    data has almost none of these, so without them the intent head could
    only ever answer product intents.

Intent labels are weak: the rules' answer (:func:`suggestions.nlp.rules.understand_with_rules`)
refined by the shape of the gold entities of the public data (only a brand:
``brand_lookup``; a price: ``price_deal``; a product type without brand or
product name: ``category_browse``), and merchandisers' intents (weighted).

Held-out split: deterministic by a hash of the normalised query (10% by
default), so the same query is on the same side in every run; corrections
always train. Metrics: entity micro-F1 on exact character spans, overall and
per source, intent agreement with the (weak) held-out intents, and accuracy on
held-out reviewed intents (confirmed/imported labels) when there are any.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import random
import re
import shutil
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import torch

from .labels import JIE2019_TO_LABEL, QUERYNER_TO_LABEL
from .model import (
    IGNORE_INDEX,
    SCHEDULES,
    EnsembleModel,
    UnderstandingModel,
    build_tiny_base,
    count_parameters,
    has_han,
    model_words,
    pad_batch,
    spans_to_word_tags,
    transition_prior,
)
from .segment import Token
from .types import Understanding

logger = logging.getLogger(__name__)

ALL_SOURCES = ("queryner", "jie2019", "catalog", "behaviour", "corrections", "templates")
PUBLIC_SOURCES = ("queryner", "jie2019")

#: Times a correction is repeated per epoch (on top of its loss weight), so
#: that even one correction among thousands of examples is learnt.
CORRECTION_REPEAT = 3

#: Share of the non-correction examples held out for evaluation, in percent.
HELDOUT_PERCENT = 10

Span = tuple[str, int, int]  # (label, start, end) in characters


@dataclass
class Example:
    """One training or evaluation query.

    Attributes:
        text: the text the spans index.
        spans: gold or distant entity spans; None means "no entity supervision"
            (the tag loss ignores the example).
        intent: intent label, or None.
        source: data source name.
        weight: weight of the example's tag loss.
        intent_weight: weight of its intent loss (0: none).
        key: normalised form (dedup, split, override by corrections).
        heldout_ok: may go to the held-out split (False for corrections).
    """

    text: str
    spans: list[Span] | None
    intent: str | None = None
    source: str = ""
    weight: float = 1.0
    intent_weight: float = 1.0
    key: str = ""
    heldout_ok: bool = True
    words: list[Token] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.key:
            from ..text import normalize_query

            self.key = normalize_query(self.text)


@dataclass
class TrainingData:
    """Assembled examples and what they came from."""

    train: list[Example]
    heldout: list[Example]
    counts: dict[str, dict[str, int]]
    window_start: datetime | None = None
    window_end: datetime | None = None
    dev: dict[str, list[Example]] = field(default_factory=dict)


@dataclass
class TrainParams:
    """Hyper-parameters of one training run (stored in the version's notes)."""

    epochs: int = 4
    batch_size: int = 32
    lr: float = 5e-5
    head_lr: float | None = None
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    schedule: str = "linear"
    label_smoothing: float = 0.0
    intent_loss_weight: float = 0.5
    dropout: float = 0.1
    max_length: int = 128
    freeze_embeddings: str = "auto"  # "auto" | "yes" | "no"
    seed: int = 13
    device: str | None = None
    grad_clip: float = 1.0
    #: Phrase-memory input features (:mod:`suggestions.nlp.phrases`); on by
    #: default: +5.8 entity F1 points on Jie2019 dev with multilingual-e5-small,
    #: -0.1 to +0.9 on QueryNER dev (bench/understanding/README.md).
    phrase_features: bool = True
    #: Folds of the jackknifed phrase-memory features (phrase-feature models only).
    phrase_folds: int = 5

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


# -- public data -------------------------------------------------------------------------


def bio_spans(tags: Sequence[str], offsets: Sequence[tuple[int, int]], mapping: dict[str, str] | None = None
              ) -> list[Span]:
    """Character spans of a BIO sequence over tokens with offsets (lenient decoding).

    Args:
        tags: BIO tags per token.
        offsets: ``(start, end)`` per token.
        mapping: Dataset type → our label; unmapped types are dropped.
    """
    spans: list[Span] = []
    current: list[Any] | None = None
    for tag, (start, end) in zip(tags, offsets, strict=True):
        kind = tag[2:] if tag[:2] in ("B-", "I-") else None
        if kind is not None and (tag.startswith("B-") or current is None or current[0] != kind):
            if current:
                spans.append(tuple(current))  # type: ignore[arg-type]
            current = [kind, start, end]
        elif kind is not None:
            current[2] = end  # type: ignore[index]
        else:
            if current:
                spans.append(tuple(current))  # type: ignore[arg-type]
            current = None
    if current:
        spans.append(tuple(current))  # type: ignore[arg-type]
    if mapping is not None:
        spans = [(mapping[k], s, e) for k, s, e in spans if k in mapping]
    return spans


def load_queryner(path: str | os.PathLike[str], labels: Sequence[str]) -> list[Example]:
    """QueryNER rows as examples: text = tokens joined by one space.

    Args:
        path: ``train.jsonl`` or ``dev.jsonl``.
        labels: The shop's entity labels (others are dropped).
    """
    known = set(labels)
    mapping = {k: v for k, v in QUERYNER_TO_LABEL.items() if v in known}
    out = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            row = json.loads(line)
            tokens, tags = row["tokens"], row["labels"]
            offsets, pos = [], 0
            for tok in tokens:
                offsets.append((pos, pos + len(tok)))
                pos += len(tok) + 1
            text = " ".join(tokens)
            out.append(Example(text=text, spans=bio_spans(tags, offsets, mapping), source="queryner"))
    return out


def load_jie2019(path: str | os.PathLike[str], labels: Sequence[str]) -> list[Example]:
    """Jie et al. (2019) sentences as examples (one character per line, blank line between).

    Whitespace characters (the file has a few ideographic spaces) are kept as
    spaces so offsets stay one per line.
    """
    known = set(labels)
    mapping = {k: v for k, v in JIE2019_TO_LABEL.items() if v in known}
    out: list[Example] = []
    chars: list[str] = []
    tags: list[str] = []

    def flush() -> None:
        if chars:
            text = "".join(chars)
            offsets = [(i, i + 1) for i in range(len(chars))]
            out.append(Example(text=text, spans=bio_spans(tags, offsets, mapping), source="jie2019"))
        chars.clear()
        tags.clear()

    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.rstrip("\n")
            if not line.strip():
                flush()
                continue
            char, _, tag = line.rpartition(" ")
            char = char[:1] if char and not char.isspace() else " "
            chars.append(char)
            tags.append(tag or "O")
    flush()
    return out


def resolve_data_dir(value: str | os.PathLike[str] | None = None) -> Path:
    """The shared data folder: the option, else ``$SHOP_DATA_DIR``, else ``../shared/data``
    relative to the project (``settings.BASE_DIR``, else the working directory)."""
    if value:
        return Path(value)
    env = os.environ.get("SHOP_DATA_DIR")
    if env:
        return Path(env)
    try:
        from django.conf import settings

        base = Path(getattr(settings, "BASE_DIR", "."))
    except Exception:  # noqa: BLE001 - outside Django
        base = Path(".")
    return base.resolve().parent / "shared" / "data"


# -- weak intents ------------------------------------------------------------------------


def rules_understanding(text: str, gazetteer: Any, intents: Sequence[str],
                        entity_labels: Sequence[str]) -> Understanding | None:
    """The rules' understanding of ``text``, or None when the rules fail."""
    from .rules import understand_with_rules

    try:
        return understand_with_rules(text, gazetteer, intents=intents, entity_labels=entity_labels)
    except Exception:  # noqa: BLE001 - weak labels are best effort
        logger.debug("rules failed on %r", text, exc_info=True)
        return None


_PRODUCTISH = {"brand", "product_name", "model_number"}


def weak_intent(text: str, spans: Sequence[Span] | None, intents: Sequence[str], *,
                gazetteer: Any = None, entity_labels: Sequence[str] = ()) -> str | None:
    """A weak intent label: the rules' intent, refined by the entity spans.

    The rules decide non-product intents (customer service, navigation,
    questions, deals: cue words). For product intents, gold or distant spans
    know more than the rules do (an unknown brand): a brand alone is a brand
    lookup, a price a deal, a product type without brand/name/model a category.

    Args:
        text: The query.
        spans: Its gold or distant spans (None: unknown).
        intents: The shop's intents.
        gazetteer: Gazetteer the rules tag with (default: built-in lists only,
            so that no Django setting is needed).
        entity_labels: The shop's entity labels.
    """
    if gazetteer is None:
        from .gazetteer import Gazetteer

        gazetteer = _builtin_gazetteer(Gazetteer)
    ruled = rules_understanding(text, gazetteer, intents, entity_labels or _all_labels())
    intent = ruled.intent if ruled is not None else None
    product_intents = {"product_search", "brand_lookup", "category_browse", None}
    if spans and intent in product_intents:
        labels = {s[0] for s in spans}
        covered = sum(e - s for _, s, e in spans)
        alnum = sum(1 for ch in text if not ch.isspace())
        if "price_range" in labels:
            intent = "price_deal"
        elif labels == {"brand"} and covered >= 0.8 * alnum:
            intent = "brand_lookup"
        elif "product_type" in labels and not labels & _PRODUCTISH:
            intent = "category_browse"
        elif labels & _PRODUCTISH or "product_type" in labels:
            intent = "product_search"
    if intent is None:
        intent = "product_search"
    return intent if intent in intents else None


_BUILTIN: list[Any] = []


def _builtin_gazetteer(cls: Any) -> Any:
    if not _BUILTIN:
        _BUILTIN.append(cls())
    return _BUILTIN[0]


def _all_labels() -> tuple[str, ...]:
    from .labels import DEFAULT_ENTITY_LABELS

    return DEFAULT_ENTITY_LABELS


# -- composed intent queries -------------------------------------------------------------

# Written for training only; the benchmark's intent sample uses its own wordings
# (bench/understanding/build_intent_sample.py) so that it does not test memory.
_TEMPLATES: dict[str, dict[str, list[str]]] = {
    "customer_service": {
        "en": ["track my order", "order status", "where is my package", "my order has not arrived",
               "cancel order", "how do i return an item", "refund status", "exchange a {type}",
               "damaged {type} received", "warranty claim for {brand} {type}", "contact customer service",
               "talk to an agent", "shipping cost", "delivery time to {city}", "change delivery address",
               "missing item in my order", "return label", "price match policy", "{brand} warranty",
               "how long does shipping take", "wrong item delivered", "i want a refund"],
        "zh": ["我的订单到哪了", "查询物流", "怎么退货", "申请退款", "退款进度", "联系客服", "人工客服",
               "修改收货地址", "取消订单", "发票怎么开", "{type}坏了怎么保修", "运费多少", "多久能到货",
               "{brand}售后电话", "换货流程", "少发了一件", "发错货了"],
    },
    "navigation": {
        "en": ["login", "sign in", "my account", "create account", "shopping cart", "checkout",
               "wishlist", "order history", "store locator", "stores near me", "gift cards", "help",
               "contact us", "careers", "newsletter", "reset password", "{brand} store", "weekly ad",
               "my coupons", "track order page", "sitemap", "about us"],
        "zh": ["登录", "注册", "我的账户", "购物车", "结算", "收藏夹", "我的订单", "附近门店", "礼品卡",
               "帮助中心", "联系我们", "优惠券", "会员中心", "修改密码", "积分商城", "{brand}旗舰店"],
    },
    "product_question": {
        "en": ["is the {brand} {type} waterproof", "does the {type} come with a charger",
               "how to clean a {type}", "what size {type} do i need", "can i use a {type} outdoors",
               "{brand} {type} vs {brand2} {type}", "which {type} is best for {use}",
               "how long does a {type} battery last", "is {brand} {type} compatible with {brand2}",
               "how many watts does a {type} use", "difference between {type} and {type2}",
               "what is the best {type}", "how do i set up my {brand} {type}", "are {type}s safe for kids"],
        "zh": ["{type}怎么用", "{brand}{type}防水吗", "{type}哪个牌子好", "{type}和{type2}有什么区别",
               "{brand}{type}怎么样", "{type}能用多久", "{type}支持快充吗", "{type}怎么清洗",
               "{type}适合{use_zh}吗", "{brand}和{brand2}哪个好"],
    },
    "price_deal": {
        "en": ["cheap {type}", "{type} deals", "{type} on sale", "{type} under {price}", "{brand} {type} discount",
               "best price {type}", "{type} clearance", "discount {type}", "{type} coupon", "{type} below {price} dollars",
               "affordable {type}", "{brand} sale", "black friday {type}", "{type} less than {price}"],
        "zh": ["便宜的{type}", "{type}优惠", "{type}打折", "{price}元以下的{type}", "{brand}{type}特价",
               "{type}促销", "{type}清仓", "{type}优惠券", "平价{type}", "{price}以内{type}"],
    },
}
_FILL = {
    "type": ["laptop", "printer", "tv", "headphones", "toner", "monitor", "phone", "camera", "keyboard",
             "mattress", "sofa", "vacuum", "blender", "router", "tablet", "speaker", "drill", "lamp"],
    "type2": ["tablet", "desktop", "earbuds", "projector", "scanner"],
    "brand": ["hp", "samsung", "apple", "sony", "lenovo", "dell", "logitech", "canon", "bosch", "philips"],
    "brand2": ["asus", "lg", "acer", "epson", "brother"],
    "city": ["boston", "london", "berlin", "toronto"],
    "use": ["gaming", "travel", "students", "the office"],
    "price": ["50", "100", "200", "300", "500", "1000"],
}
_FILL_ZH = {
    "type": ["笔记本电脑", "打印机", "电视", "耳机", "手机", "相机", "键盘", "床垫", "沙发", "吸尘器",
             "路由器", "平板", "音箱", "电钻", "台灯", "空调", "冰箱"],
    "type2": ["平板电脑", "台式机", "投影仪"],
    "brand": ["华为", "小米", "苹果", "联想", "海尔", "美的", "索尼", "佳能"],
    "brand2": ["三星", "格力", "戴尔"],
    "use_zh": ["学生", "老人", "办公", "游戏"],
    "price": ["100", "500", "1000", "2000"],
}
_SLOT_RE = re.compile(r"\{(\w+)\}")


def template_examples(intents: Sequence[str], *, per_template: int = 3, seed: int = 13) -> list[Example]:
    """Composed queries for the intents the public data lacks (intent supervision only)."""
    rng = random.Random(seed)
    out: list[Example] = []
    seen: set[str] = set()
    for intent, by_lang in _TEMPLATES.items():
        if intent not in intents:
            continue
        for lang, templates in by_lang.items():
            fill = _FILL_ZH if lang == "zh" else _FILL
            for template in templates:
                n = per_template if _SLOT_RE.search(template) else 1
                for _ in range(n):
                    text = _SLOT_RE.sub(lambda m, f=fill: rng.choice(f[m.group(1)] if m.group(1) in f else _FILL[m.group(1)]),
                                        template)
                    if text in seen:
                        continue
                    seen.add(text)
                    out.append(Example(text=text, spans=None, intent=intent, source="templates"))
    return out


# -- the shop's own data (Django) ----------------------------------------------------------


def _normalized(text: str) -> str:
    from ..text import normalize_query

    return normalize_query(text)


def catalog_examples(gazetteer: Any, *, max_queries: int = 5000, max_titles: int = 3000,
                     labels: Sequence[str] = ()) -> tuple[list[Example], list[datetime]]:
    """Distant supervision: the gazetteer tags searched queries and product titles.

    Only queries with at least one tagged span become examples (an untagged
    query says nothing reliable: the gazetteer does not know every word).

    Returns:
        ``(examples, timestamps of the search events used)``.
    """
    from django.db.models import Count, Max, Min

    from ..models import SearchEvent

    known = set(labels)
    out: list[Example] = []
    times: list[datetime] = []
    rows = (SearchEvent.objects.exclude(normalized_query="").values("normalized_query")
            .annotate(n=Count("id"), first=Min("created_at"), last=Max("created_at"))
            .order_by("-n")[:max_queries])
    for row in rows:
        text = row["normalized_query"]
        spans = [(e.label, e.start, e.end) for e in gazetteer.tag(text) if not known or e.label in known]
        if spans:
            out.append(Example(text=text, spans=spans, source="catalog"))
            times += [row["first"], row["last"]]
    try:
        from ..adapter import get_adapter
        from ..conf import app_settings

        docs = get_adapter().iter_documents() if app_settings.ADAPTER else iter(())
    except Exception:  # noqa: BLE001 - no catalog: queries only
        docs = iter(())
    for n, doc in enumerate(docs):
        if n >= max_titles:
            break
        text = _normalized(doc.title)
        spans = [(e.label, e.start, e.end) for e in gazetteer.tag(text) if not known or e.label in known]
        if spans:
            out.append(Example(text=text, spans=spans, source="catalog"))
    return out, times


def _find_phrase(text: str, phrase: str) -> list[tuple[int, int]]:
    """Where ``phrase`` occurs in ``text`` as whole words (case-insensitive)."""
    phrase = _normalized(phrase)
    if not phrase:
        return []
    han = any("\u4e00" <= ch <= "\u9fff" for ch in phrase)
    pattern = re.escape(phrase) if han else rf"(?<!\w){re.escape(phrase)}s?(?!\w)"
    return [(m.start(), m.end()) for m in re.finditer(pattern, text)]


def behaviour_examples(*, max_queries: int = 5000) -> tuple[list[Example], list[datetime]]:
    """Distant supervision from clicks: a query's spans that spell the brand or
    the product type of a product clicked after it.

    Returns:
        ``(examples, timestamps of the clicks used)``.
    """
    from django.contrib.contenttypes.models import ContentType

    from ..adapter import get_adapter
    from ..conf import app_settings
    from ..models import ProductClick

    if not app_settings.ADAPTER:
        return [], []
    adapter = get_adapter()
    product_ct = ContentType.objects.get_for_model(adapter.get_model())
    clicks: dict[str, set[str]] = defaultdict(set)
    times: dict[str, list[datetime]] = defaultdict(list)
    for query, object_id, created in (ProductClick.objects.filter(content_type=product_ct).exclude(query="")
                                      .values_list("query", "object_id", "created_at")
                                      .order_by("-created_at")[: max_queries * 10]):
        key = _normalized(query)
        if key and (key in clicks or len(clicks) < max_queries):
            clicks[key].add(object_id)
            times[key].append(created)
    ids = sorted({i for s in clicks.values() for i in s})
    docs = {}
    for first in range(0, len(ids), 500):
        for doc in adapter.get_documents(ids[first:first + 500]):
            docs[doc.id] = doc
    out: list[Example] = []
    used: list[datetime] = []
    for query, product_ids in clicks.items():
        spans: list[Span] = []
        taken: list[tuple[int, int]] = []
        for pid in sorted(product_ids):
            doc = docs.get(pid)
            if doc is None:
                continue
            for label, value in (("brand", doc.brand), ("product_type", doc.product_type)):
                for start, end in _find_phrase(query, value or ""):
                    if all(end <= a or start >= b for a, b in taken):
                        spans.append((label, start, end))
                        taken.append((start, end))
        if spans:
            out.append(Example(text=query, spans=sorted(spans, key=lambda s: s[1]), source="behaviour"))
            used += times[query]
    return out, used


def correction_examples(weight: float, intents: Sequence[str]) -> list[Example]:
    """Merchandisers' labels as heavily weighted examples (always trained on).

    A ``corrected`` label's entity list is authoritative (an empty list means
    "no entities"); its intent, when set, too. ``confirmed`` / ``imported``
    labels may be held out for evaluation like other data.
    """
    from ..models import QueryLabel, QueryLabelSource

    out = []
    for label in QueryLabel.objects.all().order_by("pk"):
        spans = []
        for ent in label.entities or []:
            try:
                spans.append((str(ent["label"]), int(ent["start"]), int(ent["end"])))
            except (KeyError, TypeError, ValueError):
                continue
        intent = label.intent if label.intent in intents else None
        corrected = label.source == QueryLabelSource.CORRECTED
        out.append(Example(
            text=label.query, spans=spans, intent=intent, source="corrections", weight=weight,
            intent_weight=weight if intent else 0.0, key=label.normalized_query or _normalized(label.query),
            heldout_ok=not corrected,
        ))
    return out


# -- assembly --------------------------------------------------------------------------------


def heldout_bucket(key: str) -> int:
    """Stable bucket 0..99 of a normalised query (same side of the split in every run)."""
    return int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest(), "big") % 100


def assemble(
    sources: Sequence[str],
    *,
    entity_labels: Sequence[str],
    intents: Sequence[str],
    data_dir: str | os.PathLike[str] | None = None,
    max_train: int | None = None,
    seed: int = 13,
    correction_weight: float = 5.0,
    heldout_percent: int = HELDOUT_PERCENT,
    with_dev: bool = True,
    gazetteer: Any = None,
    log: Callable[[str], None] | None = None,
) -> TrainingData:
    """Collect the examples of the named sources, split them, attach weak intents.

    Args:
        sources: Names from :data:`ALL_SOURCES`.
        entity_labels: The shop's entity labels.
        intents: The shop's intents.
        data_dir: Shared data folder (public sources); see :func:`resolve_data_dir`.
        max_train: Cap on the training examples of each non-correction source.
        seed: Seed of the sampling under ``max_train``.
        correction_weight: Loss weight of corrections.
        heldout_percent: Share of each source held out.
        with_dev: Also load the public dev sets (for reporting only).
        gazetteer: Gazetteer of the catalog source and of the rules' weak
            intents (default: built from the catalog for ``catalog``, else the
            built-in lists).
        log: Receives progress lines.

    Raises:
        FileNotFoundError: a public source's file is missing.
        ValueError: an unknown source name.
    """
    say = log or (lambda _m: None)
    unknown = set(sources) - set(ALL_SOURCES)
    if unknown:
        raise ValueError(f"unknown data sources: {', '.join(sorted(unknown))} (known: {', '.join(ALL_SOURCES)})")
    root = resolve_data_dir(data_dir)
    by_source: dict[str, list[Example]] = {}
    dev: dict[str, list[Example]] = {}
    times: list[datetime] = []
    files = {"queryner": ("queryner/train.jsonl", "queryner/dev.jsonl", load_queryner),
             "jie2019": ("zh/ecom_ner_jie2019/train.txt", "zh/ecom_ner_jie2019/dev.txt", load_jie2019)}
    for name in sources:
        if name in files:
            train_file, dev_file, loader = files[name]
            path = root / train_file
            if not path.is_file():
                raise FileNotFoundError(f"{name}: {path} not found (set --data-dir or SHOP_DATA_DIR)")
            by_source[name] = loader(path, entity_labels)
            if with_dev and (root / dev_file).is_file():
                dev[name] = loader(root / dev_file, entity_labels)
        elif name == "catalog":
            if gazetteer is None:
                gazetteer = _training_gazetteer()
            by_source[name], used = catalog_examples(gazetteer, labels=entity_labels)
            times += used
        elif name == "behaviour":
            by_source[name], used = behaviour_examples()
            times += used
        elif name == "corrections":
            by_source[name] = correction_examples(correction_weight, intents)
        elif name == "templates":
            by_source[name] = template_examples(intents, seed=seed)
        say(f"{name}: {len(by_source[name])} examples")

    corrections = {ex.key: ex for ex in by_source.get("corrections", [])}
    rng = random.Random(seed)
    train: list[Example] = []
    heldout: list[Example] = []
    counts: dict[str, dict[str, int]] = {}
    for name, examples in by_source.items():
        # Corrections replace every other example of their query.
        if name != "corrections":
            examples = [ex for ex in examples if ex.key not in corrections]
        # Distant sources may repeat a query: keep its first example.
        if name in ("catalog", "behaviour", "templates"):
            seen: set[str] = set()
            examples = [ex for ex in examples if not (ex.key in seen or seen.add(ex.key))]
        tr = [ex for ex in examples if not ex.heldout_ok or heldout_bucket(ex.key) >= heldout_percent]
        ho = [ex for ex in examples if ex.heldout_ok and heldout_bucket(ex.key) < heldout_percent]
        if max_train is not None and name != "corrections" and len(tr) > max_train:
            tr = rng.sample(tr, max_train)
            ho = ho[: max(1, max_train // 9)] if ho else ho
        train += tr
        heldout += ho
        counts[name] = {"train": len(tr), "heldout": len(ho)}
    for ex in train + heldout + [e for d in dev.values() for e in d]:
        if ex.intent is None and ex.source != "corrections":
            ex.intent = weak_intent(ex.text, ex.spans, intents, gazetteer=gazetteer,
                                    entity_labels=entity_labels)
        if ex.intent is None:
            ex.intent_weight = 0.0
        ex.words = model_words(ex.text)
    times = [t for t in times if t is not None]
    return TrainingData(train=train, heldout=heldout, counts=counts, dev=dev,
                        window_start=min(times) if times else None, window_end=max(times) if times else None)


def _training_gazetteer() -> Any:
    """A gazetteer fresh from the catalog and labels when an adapter is configured,
    else the process's (built-in lists at least)."""
    from ..conf import app_settings
    from .gazetteer import build_gazetteer, get_gazetteer

    if app_settings.ADAPTER:
        try:
            return build_gazetteer(save=False)
        except Exception:  # noqa: BLE001 - fall back to the saved one
            logger.warning("cannot build the gazetteer from the catalog", exc_info=True)
    return get_gazetteer()


# -- training ------------------------------------------------------------------------------


def _batches(lengths: Sequence[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Length-bucketed batches: shuffle, sort within windows of 50 batches, shuffle batches."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    window = batch_size * 50
    batches = []
    for first in range(0, len(order), window):
        chunk = sorted(order[first:first + window], key=lambda i: lengths[i])
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def fit(
    model: UnderstandingModel,
    train: Sequence[Example],
    params: TrainParams,
    *,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    progress_file: Any = None,
) -> dict[str, Any]:
    """Fine-tune ``model`` on ``train`` (in place).

    Tag loss: cross-entropy on each word's first sub-token, weighted by the
    example's ``weight``; intent loss: cross-entropy weighted by
    ``intent_weight``; total = tag + ``intent_loss_weight`` × intent.

    Returns:
        ``{"steps", "seconds", "final_loss", "trainable_parameters"}``.
    """
    from tqdm import tqdm

    say = log or (lambda _m: None)
    torch.manual_seed(params.seed)
    rng = random.Random(params.seed)
    network = model.network
    embeddings = network.encoder.get_input_embeddings()
    freeze = params.freeze_embeddings == "yes" or (
        params.freeze_embeddings == "auto" and embeddings.weight.numel() > 20_000_000)
    embeddings.weight.requires_grad_(not freeze)
    model.meta["frozen_embeddings"] = bool(freeze)

    examples: list[Example] = []
    for ex in train:
        examples += [ex] * (CORRECTION_REPEAT if ex.source == "corrections" else 1)
    encoded = model.encoder.encode_many([ex.words for ex in examples])
    tag_ids = []
    word_tags: list[list[str] | None] = []
    for ex in examples:
        if ex.spans is None:
            tag_ids.append([IGNORE_INDEX] * len(ex.words))
            word_tags.append(None)
        else:
            tags = spans_to_word_tags(ex.words, ex.spans, model.entity_labels)
            tag_ids.append([model.tag_to_id[t] for t in tags])
            word_tags.append(tags)
    model.set_transition_prior(transition_prior(
        [t for ex, t in zip(examples, word_tags, strict=True) if t is not None and not has_han(ex.words)],
        model.tags))
    if model.reads_phrases:
        from .phrases import jackknife_tags

        texts = [[w.text for w in ex.words] for ex in examples]
        features, model.phrases = jackknife_tags(texts, word_tags, [ex.key for ex in examples],
                                                 folds=params.phrase_folds)
        encoded = [enc.with_features(model.feature_ids(words, tags))
                   for enc, words, tags in zip(encoded, texts, features, strict=True)]
        say(f"phrase memory: {len(model.phrases)} phrases ({params.phrase_folds}-fold features for training)")
    intent_ids = [model.intents.index(ex.intent) if ex.intent in model.intents else 0 for ex in examples]
    weights = [ex.weight for ex in examples]
    intent_weights = [ex.intent_weight if ex.intent in model.intents else 0.0 for ex in examples]

    head_lr = params.head_lr or params.lr
    decay, no_decay, heads = [], [], []
    for name, p in network.named_parameters():
        if not p.requires_grad:
            continue
        if not name.startswith("encoder."):
            heads.append(p)
        elif p.ndim < 2 or "LayerNorm" in name or "layer_norm" in name:
            no_decay.append(p)
        else:
            decay.append(p)
    optimizer = torch.optim.AdamW([
        {"params": decay, "weight_decay": params.weight_decay, "lr": params.lr},
        {"params": no_decay, "weight_decay": 0.0, "lr": params.lr},
        {"params": heads, "weight_decay": 0.0, "lr": head_lr},
    ])
    base_lrs = [g["lr"] for g in optimizer.param_groups]
    steps_per_epoch = math.ceil(len(examples) / params.batch_size)
    total = max(1, steps_per_epoch * params.epochs)
    warmup = int(total * params.warmup_ratio)
    schedule = SCHEDULES[params.schedule]
    tag_loss_fn = torch.nn.CrossEntropyLoss(reduction="none", ignore_index=IGNORE_INDEX,
                                            label_smoothing=params.label_smoothing)
    intent_loss_fn = torch.nn.CrossEntropyLoss(reduction="none", label_smoothing=params.label_smoothing)
    device = model.device
    say(f"training on {len(train)} examples ({len(examples)} with repeats), {params.epochs} epochs, "
        f"{total} steps, device {device}, {count_parameters(network, True) / 1e6:.1f}M trainable parameters"
        f"{' (word embeddings frozen)' if freeze else ''}")
    started = time.perf_counter()
    step = 0
    running = None
    bar = tqdm(total=total, desc="training", unit="step", disable=not progress, file=progress_file,
               mininterval=1.0)
    network.train()
    try:
        lengths = [len(e.input_ids) for e in encoded]
        for _epoch in range(params.epochs):
            for batch_idx in _batches(lengths, params.batch_size, rng):
                batch = pad_batch([encoded[i] for i in batch_idx], model.encoder.pad_id,
                                  tags=[tag_ids[i] for i in batch_idx])
                ids = batch["input_ids"].to(device)
                mask = batch["attention_mask"].to(device)
                labels = batch["labels"].to(device)
                features = batch.get("feature_ids")
                tag_logits, intent_logits = network(ids, mask,
                                                    features.to(device) if features is not None else None)
                per_token = tag_loss_fn(tag_logits.reshape(-1, tag_logits.shape[-1]), labels.reshape(-1))
                w = torch.tensor([weights[i] for i in batch_idx], device=device).unsqueeze(1)
                w = (w * (labels != IGNORE_INDEX)).reshape(-1)
                tag_loss = (per_token * w).sum() / w.sum().clamp(min=1e-6)
                iw = torch.tensor([intent_weights[i] for i in batch_idx], device=device)
                loss = tag_loss
                if params.intent_loss_weight > 0 and float(iw.sum()) > 0:
                    it = torch.tensor([intent_ids[i] for i in batch_idx], device=device)
                    intent_loss = (intent_loss_fn(intent_logits, it) * iw).sum() / iw.sum()
                    loss = loss + params.intent_loss_weight * intent_loss
                factor = schedule(step, total, warmup)
                for group, base in zip(optimizer.param_groups, base_lrs, strict=True):
                    group["lr"] = base * factor
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if params.grad_clip:
                    torch.nn.utils.clip_grad_norm_([p for p in network.parameters() if p.requires_grad],
                                                   params.grad_clip)
                optimizer.step()
                step += 1
                value = float(loss.detach())
                running = value if running is None else 0.95 * running + 0.05 * value
                bar.update(1)
                if step % 20 == 0:
                    bar.set_postfix(loss=f"{running:.3f}")
    finally:
        bar.close()
        network.eval()
    seconds = time.perf_counter() - started
    say(f"trained {step} steps in {seconds:.0f} s (loss {running:.3f})" if running is not None else "no steps")
    return {"steps": step, "seconds": round(seconds, 1), "final_loss": round(running or 0.0, 4),
            "trainable_parameters": count_parameters(network, True)}


# -- evaluation ------------------------------------------------------------------------------


def span_f1(gold: Sequence[Iterable[Span]], pred: Sequence[Iterable[Span]]) -> dict[str, float]:
    """Micro precision/recall/F1 over exact ``(label, start, end)`` spans, per document."""
    tp = n_gold = n_pred = 0
    for g, p in zip(gold, pred, strict=True):
        gs, ps = set(g), set(p)
        tp += len(gs & ps)
        n_gold += len(gs)
        n_pred += len(ps)
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4),
            "gold": n_gold, "predicted": n_pred}


def evaluate(model: Any, examples: Sequence[Example], *, batch_size: int = 64) -> dict[str, Any]:
    """Entity F1 (exact character spans) overall and per source, intent agreement.

    Args:
        model: An :class:`UnderstandingModel` (or anything with ``predict_words``).
        examples: Held-out examples (their ``words`` set).

    Returns:
        ``{"entity": {...}, "per_source": {...}, "intent_accuracy_weak",
        "intent_accuracy_labelled", "n"}``.
    """
    if not examples:
        return {"entity": None, "per_source": {}, "intent_accuracy_weak": None,
                "intent_accuracy_labelled": None, "n": 0}
    words = [ex.words or model_words(ex.text) for ex in examples]
    predicted = model.predict_words([ex.text for ex in examples], words, batch_size)
    supervised = [(ex, u) for ex, u in zip(examples, predicted, strict=True) if ex.spans is not None]
    per_source: dict[str, Any] = {}
    for source in sorted({ex.source for ex, _ in supervised}):
        pairs = [(ex, u) for ex, u in supervised if ex.source == source]
        per_source[source] = span_f1([ex.spans for ex, _ in pairs],
                                     [[(e.label, e.start, e.end) for e in u.entities] for _, u in pairs])
    overall = span_f1([ex.spans for ex, _ in supervised],
                      [[(e.label, e.start, e.end) for e in u.entities] for _, u in supervised]) if supervised else None
    weak = [(ex, u) for ex, u in zip(examples, predicted, strict=True) if ex.intent and ex.source != "corrections"]
    labelled = [(ex, u) for ex, u in zip(examples, predicted, strict=True) if ex.intent and ex.source == "corrections"]

    def accuracy(pairs: list[tuple[Example, Understanding]]) -> float | None:
        return round(sum(ex.intent == u.intent for ex, u in pairs) / len(pairs), 4) if pairs else None

    return {"entity": overall, "per_source": per_source, "intent_accuracy_weak": accuracy(weak),
            "intent_accuracy_labelled": accuracy(labelled), "n": len(examples)}


# -- the whole job ---------------------------------------------------------------------------


def new_version_label() -> str:
    """Timestamp-based version label, unique per kind (a suffix is added on a clash)."""
    from django.utils import timezone

    from ..models import ModelVersion

    base = timezone.now().strftime("%Y%m%d-%H%M%S")
    label, n = base, 1
    while ModelVersion.objects.filter(kind="understanding", version=label).exists():
        n += 1
        label = f"{base}-{n}"
    return label


def choose_base(base: str | None) -> str:
    """``--base`` as given, else ``SUGGESTIONS_UNDERSTANDING_BASE``."""
    from ..conf import app_settings

    return base or app_settings.UNDERSTANDING_BASE


def train_understanding(
    *,
    sources: Sequence[str] = ALL_SOURCES,
    data_dir: str | None = None,
    base: str | None = None,
    params: TrainParams | None = None,
    max_train: int | None = None,
    tiny: bool = False,
    promote_if_better: bool = False,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    progress_file: Any = None,
) -> dict[str, Any]:
    """Assemble data, train, evaluate, save and register a candidate ModelVersion.

    Args:
        sources: Data sources (see the module docstring).
        data_dir: Shared data folder for the public sources.
        base: Encoder spec (``en``, ``multilingual``, folder, hub name);
            default: see :func:`choose_base`. Several specs separated by
            commas train one member each on the same data and register their
            :class:`~suggestions.nlp.model.EnsembleModel`. Ignored with ``tiny``.
        params: Hyper-parameters.
        max_train: Cap per source (quick iterations).
        tiny: Train a tiny BERT whose tokenizer is learnt from the training
            texts (tests, smoke runs).
        promote_if_better: Promote when the new model's held-out entity F1
            beats the active version's on the same held-out examples (or its
            stored metric when it cannot be loaded); with no active version,
            promote.
        progress: Show a tqdm bar.
        log: Receives progress lines.

    Returns:
        A report: ``version`` (the ModelVersion), ``metrics``, ``promoted``,
        ``artefact``, ``seconds``.
    """
    from ..conf import app_settings
    from ..models import ModelVersion, ModelVersionStatus
    from ..moderation import promote_model_version
    from .encoders import require_ml, resolve_encoder

    require_ml()
    say = log or (lambda _m: None)
    params = params or TrainParams()
    started = time.perf_counter()
    entity_labels, intents = app_settings.ENTITY_LABELS, app_settings.INTENTS
    gazetteer = _training_gazetteer()
    data = assemble(sources, entity_labels=entity_labels, intents=intents, data_dir=data_dir,
                    max_train=max_train, seed=params.seed, correction_weight=app_settings.CORRECTION_WEIGHT,
                    gazetteer=gazetteer, log=say)
    if not data.train:
        raise ValueError("no training examples: name data sources that have data (--data)")
    version = new_version_label()
    tmp_base = None
    if tiny:
        tmp_base = tempfile.mkdtemp(prefix="tiny-base-")
        bases = [("tiny", build_tiny_base([ex.text for ex in data.train], tmp_base, seed=params.seed))]
    else:
        specs = [b.strip() for b in choose_base(base).split(",") if b.strip()]
        bases = [(spec, resolve_encoder(spec)) for spec in specs]
    members = []
    fit_reports = []
    try:
        for spec, path in bases:
            say(f"base encoder: {spec} ({path})")
            member = UnderstandingModel.from_base(path, entity_labels, intents, device=params.device,
                                                  max_length=params.max_length, dropout=params.dropout,
                                                  phrase_features=params.phrase_features,
                                                  meta={"version": version, "base": spec})
            member_train = data.train
            if len(bases) > 1 and not member.handles_han:
                # In an ensemble, Chinese queries skip a member whose tokenizer reads
                # Han characters as [UNK] (EnsembleModel): it learns nothing from them.
                member_train = [ex for ex in data.train if not has_han(ex.words)]
                say(f"{spec}: {len(data.train) - len(member_train)} examples with Han characters left to "
                    f"the members that read them")
            fit_reports.append(fit(member, member_train, params, progress=progress, log=say,
                                   progress_file=progress_file))
            members.append(member)
    finally:
        if tmp_base:
            shutil.rmtree(tmp_base, ignore_errors=True)
    base_spec = ",".join(spec for spec, _ in bases)
    model: Any = members[0] if len(members) == 1 else EnsembleModel(
        members, meta={"version": version, "base": base_spec})
    fit_report = fit_reports[0] if len(fit_reports) == 1 else {
        "members": fit_reports, "seconds": round(sum(r["seconds"] for r in fit_reports), 1)}
    say("evaluating on the held-out split")
    heldout = evaluate(model, data.heldout)
    metrics: dict[str, Any] = {
        "entity_f1": heldout["entity"]["f1"] if heldout["entity"] else None,
        "heldout": heldout,
        "dev": {name: evaluate(model, examples)["entity"] for name, examples in data.dev.items()},
        "counts": data.counts,
        "train": fit_report,
    }
    artefact = Path(app_settings.MODEL_DIR) / "understanding" / version
    model.meta.update({"metrics": metrics, "params": params.as_dict(), "sources": list(sources)})
    model.save(artefact)
    notes = json.dumps({"base": base_spec, "base_paths": [p for _, p in bases] if not tiny else "tiny (in-process)",
                        "data": list(sources), "max_train": max_train, "params": params.as_dict()},
                       sort_keys=True, default=str)
    row = ModelVersion.objects.create(
        kind="understanding", version=version, artefact_uri=str(artefact), metrics=metrics,
        training_window_start=data.window_start, training_window_end=data.window_end,
        status=ModelVersionStatus.CANDIDATE, notes=notes,
    )
    promoted = False
    if promote_if_better:
        active = ModelVersion.objects.filter(kind="understanding", status=ModelVersionStatus.ACTIVE).first()
        ours = metrics["entity_f1"] or 0.0
        theirs = None
        if active is not None:
            theirs = _active_score(active, data.heldout)
            metrics["compared_with"] = {"version": active.version, "entity_f1": theirs}
            row.metrics = metrics
            row.save(update_fields=["metrics"])
        if active is None or theirs is None or ours > theirs:
            promote_model_version(row)
            promoted = True
        say(f"active version {active.version if active else '(none)'}: F1 {theirs}; ours {ours}: "
            f"{'promoted' if promoted else 'kept as candidate'}")
    return {"version": row, "metrics": metrics, "promoted": promoted, "artefact": str(artefact),
            "seconds": round(time.perf_counter() - started, 1)}


def _active_score(active: Any, heldout: Sequence[Example]) -> float | None:
    """The active version's entity F1 on today's held-out examples (fair
    comparison), else its stored metric."""
    from .registry import load_model

    try:
        model = load_model(active.artefact_uri)
        result = evaluate(model, heldout)["entity"]
        if result is not None:
            return result["f1"]
    except Exception:  # noqa: BLE001 - fall back to the stored figure
        logger.warning("cannot evaluate the active model %s; using its stored metric", active.version,
                       exc_info=True)
    value = (active.metrics or {}).get("entity_f1")
    return float(value) if value is not None else None


def summarize_counts(examples: Iterable[Example]) -> dict[str, int]:
    """Examples per source."""
    return dict(Counter(ex.source for ex in examples))
