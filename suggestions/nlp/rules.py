"""Rule-based query understanding: the synchronous fallback of the request path.

:func:`understand_with_rules` tags entities with the gazetteer
(:mod:`.gazetteer`) and picks an intent from keywords and entities, in English
and Chinese. It is what a query gets before (or without) a trained model, and
what the request path uses when the model's answer is not cached yet, so it
must stay cheap: no torch/transformers import, no database access (the
gazetteer is a file loaded once per process), jieba only for Chinese text.

Intent rules, first match wins:

1. ``customer_service``: a customer-service keyword ("where is my order",
   "refund", "return policy", 退货, 客服, 订单 …);
2. ``navigation``: a site-navigation keyword ("login", "cart", "gift card",
   "store locator", 登录, 购物车 …);
3. ``product_question``: starts with a question word (is/are/does/do/can/how/
   what/which/why/will, and where/when/should/could/would/who), ends with "?",
   or has a Chinese question marker (吗, 怎么, 如何, 多少, 哪个 …). "can", "will",
   "do", "could", "would" count only before a pronoun or article ("can i …",
   not "can opener");
4. ``price_deal``: a deal keyword (cheap, deals, sale, clearance, coupon,
   便宜, 优惠, 特价 …) or a ``price_range`` entity;
5. ``brand_lookup``: the query is only brand entities (plus filler such as
   "official", 旗舰店);
6. ``category_browse``: product types, optionally with audience, colour, size
   or material modifiers, and no brand, model or product name;
7. ``product_search`` otherwise.

Keywords are *strong* (the intent holds whatever else the query says: "track
my order") or *weak* (only when every brand, product type, model number or
product name entity lies inside the keyword: "shipping" is customer service,
but "shipping boxes", "receipt printer" or "hp cart" is a product search). A
keyword inside a longer product entity is part of a name, not a keyword
("deal" in a product name "deal or no deal").

Confidence heuristic (documented figures, not calibrated probabilities):
strong keyword 0.9, weak keyword 0.75, question 0.85 (0.9 with "?"),
price_deal 0.9 with a deal keyword and 0.85 from a price entity alone,
brand_lookup 0.9, category_browse 0.8, product_search 0.7 when entities were
found and 0.6 when nothing was recognised; 0.5 when the rule's intent is not
configured and the first configured intent is used instead; 0.0 for an empty
query.

Entity scores of catalog brands and product types are the precision such a
tag had on labelled queries (:func:`calibrated_entities`): a product type of
one word followed by another word of the query ("camera" in "camera bag") is
right about one time in five, a multi-word type ("digital camera") two times
in three. Search boosts only the tags it can trust
(``SUGGESTIONS_FALLBACK_MIN_SCORE``, :func:`suggestions.services.apply_understanding`).

Contract: the result is an :class:`~suggestions.nlp.types.Understanding` with
``source="rules"``, entity offsets into the query as given, ``intent`` one of
``SUGGESTIONS_INTENTS`` and entity labels among ``SUGGESTIONS_ENTITY_LABELS``
(labels the shop did not configure are dropped before the intent rules run).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .gazetteer import Gazetteer, fold, get_gazetteer
from .language import detect_language
from .segment import tokenize
from .types import Entity, Understanding

__all__ = ["understand_with_rules", "keyword_intent", "keyword_hits", "is_question", "KeywordHit",
           "calibrated_entities"]

CUSTOMER_SERVICE = "customer_service"
NAVIGATION = "navigation"
PRODUCT_QUESTION = "product_question"
PRICE_DEAL = "price_deal"
BRAND_LOOKUP = "brand_lookup"
CATEGORY_BROWSE = "category_browse"
PRODUCT_SEARCH = "product_search"

CONF_STRONG = 0.9
CONF_WEAK = 0.75
CONF_QUESTION = 0.85
CONF_QUESTION_MARK = 0.9
CONF_DEAL_KEYWORD = 0.9
CONF_DEAL_PRICE = 0.85
CONF_BRAND = 0.9
CONF_CATEGORY = 0.8
CONF_SEARCH_ENTITIES = 0.7
CONF_DEFAULT = 0.6
CONF_FALLBACK = 0.5

STRONG, WEAK = "strong", "weak"

_KEYWORDS: dict[str, tuple[str, str]] = {}


def _register(intent: str, strength: str, phrases: str) -> None:
    for phrase in phrases.split("|"):
        phrase = phrase.strip()
        if phrase:
            _KEYWORDS[phrase] = (intent, strength)


_register(CUSTOMER_SERVICE, STRONG, """
    where is my order|where's my order|track my order|track order|order tracking|tracking number|
    order status|my order|my orders|order history|cancel order|cancel my order|refund|refunds|
    return policy|returns policy|return an item|return my|returns|customer service|customer support|
    customer care|contact us|help desk|warranty claim|claim warranty|shipping policy|shipping cost|
    shipping costs|shipping time|delivery time|delivery status|late delivery|missing package|
    damaged item|price match|track package|track my package|contact info|contact information|
    退货|退款|换货|退换|物流|查物流|客服|人工客服|联系客服|订单|我的订单|取消订单|投诉|售后|发货|到货|
    没收到|七天无理由|退货地址|运单号""")
_register(CUSTOMER_SERVICE, WEAK, """
    order|orders|tracking|return|shipping|delivery|cancel|cancellation|exchange|invoice|receipt|
    complaint|warranty|help|快递|发票|保修|运费""")
_register(NAVIGATION, STRONG, """
    login|log in|log-in|sign in|sign-in|signin|sign up|signup|sign out|log out|logout|
    create account|my account|account settings|checkout|check out|wishlist|wish list|
    my cart|shopping cart|gift card|gift cards|e-gift card|egift card|store locator|find a store|
    store hours|stores near me|forgot password|reset password|change password|
    登录|登陆|注册|购物车|我的账户|我的账号|账户|账号|结算|收藏夹|我的收藏|礼品卡|门店|附近门店|密码|
    退出登录""")
_register(NAVIGATION, WEAK, "account|cart|basket|register|password|near me|store|stores|locations|hours")
_register(PRICE_DEAL, STRONG, """
    cheap|cheaper|cheapest|inexpensive|affordable|budget|low cost|low price|lowest price|best price|
    best deal|best deals|deal|deals|sale|on sale|sales|discount|discounts|discounted|clearance|
    coupon|coupons|promo|promo code|promotion|promotions|bargain|bargains|black friday|
    cyber monday|prime day|free shipping|markdown|
    便宜|实惠|优惠|特价|打折|折扣|促销|优惠券|清仓|秒杀|包邮|降价|低价|划算|性价比|满减|团购|双十一|双11""")
_register(PRODUCT_QUESTION, STRONG, """
    吗|怎么|如何|多少|哪个|哪款|哪种|哪些|什么|为什么|是否|能否|能不能|可不可以|有没有|好不好|怎么样|
    区别|对比""")

_HAN_START = re.compile(r"[\u3400-\u9fff]")


def _keyword_regex(phrases: Iterable[str]) -> re.Pattern[str]:
    """One pattern finding the longest keyword phrase at the leftmost position.

    The phrases are laid out as a trie (``track(?:\\s+my\\s+order|\\s+order)``),
    so at each position the engine follows the query's own characters instead of
    trying two hundred alternatives one by one. At a position the phrases that
    can match all lie on one path of the trie, and a node tries its
    continuations before ending a phrase there, so the longest phrase wins, as
    it did when the alternatives were listed longest first. Latin phrases must
    start and end at a word boundary; Han phrases match anywhere.
    """
    end = ""  # a trie key that no character is
    roots: dict[bool, dict] = {True: {}, False: {}}
    for phrase in phrases:
        latin = not _HAN_START.match(phrase)
        node = roots[latin]
        for i, word in enumerate(phrase.split()):
            for unit in ([r"\s+"] if i else []) + [re.escape(ch) for ch in word]:
                node = node.setdefault(unit, {})
        node[end] = True

    def body(node: dict, latin: bool) -> str:
        branches = [unit + body(child, latin) for unit, child in node.items() if unit != end]
        if end in node:
            branches.append(r"(?![a-z0-9])" if latin else "")
        return branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"

    parts = []
    if roots[True]:
        parts.append(r"(?<![a-z0-9])" + body(roots[True], True))
    if roots[False]:
        parts.append(body(roots[False], False))
    return re.compile("|".join(parts))


_KEYWORD_RE = _keyword_regex(_KEYWORDS)

_QUESTION_STARTERS = frozenset("is are does how what which why where when should who whats what's hows".split())
# Starters that are also nouns or names ("can opener", "will ferrell"): a
# question only before a pronoun or an article.
_WEAK_STARTERS = frozenset("can will do could would".split())
_AFTER_WEAK_STARTER = frozenset(
    "i you we it they this that these those the a an my your our he she there not".split()
)

#: Words that may accompany a brand in a brand lookup ("hp official store").
BRAND_FILLERS = frozenset("the official store shop brand products website site online 官方 旗舰店 官网 品牌 正品 专卖店 的".split())
#: Words that may accompany product types in a category browse ("shoes for men").
CATEGORY_FILLERS = frozenset("the a an and or for with in of 's 的 款 和".split())
#: Entity labels that make a query about specific products.
PRODUCT_LABELS = frozenset({"brand", "product_type", "model_number", "product_name"})
#: Modifiers allowed with product types in a category browse.
CATEGORY_MODIFIERS = frozenset({"audience", "color", "size", "material"})


@dataclass(frozen=True)
class KeywordHit:
    """A keyword of an intent found in the query (offsets into the query)."""

    intent: str
    strength: str
    start: int
    end: int


def keyword_hits(folded: str) -> list[KeywordHit]:
    """Intent keywords in folded text (:func:`~.gazetteer.fold`), leftmost-longest.

    Args:
        folded: The folded query.

    Returns:
        Non-overlapping hits in order.
    """
    out = []
    for m in _KEYWORD_RE.finditer(folded):
        intent, strength = _KEYWORDS[" ".join(m.group().split())]
        out.append(KeywordHit(intent, strength, m.start(), m.end()))
    return out


def is_question(folded: str, words: Sequence[str]) -> tuple[bool, float]:
    """Whether an English query reads as a question.

    Args:
        folded: The folded query.
        words: Its Latin-script words, folded.

    Returns:
        ``(is_question, confidence)``.
    """
    stripped = folded.rstrip()
    if stripped.endswith(("?", "？")):
        return True, CONF_QUESTION_MARK
    if not words:
        return False, 0.0
    first = words[0]
    if first in _QUESTION_STARTERS:
        return True, CONF_QUESTION
    if first in _WEAK_STARTERS and len(words) > 1 and words[1] in _AFTER_WEAK_STARTER:
        return True, CONF_QUESTION
    return False, 0.0


def _inside(entity: Entity, hit: KeywordHit) -> bool:
    return hit.start <= entity.start and entity.end <= hit.end


def _shadows(entity: Entity, hit: KeywordHit) -> bool:
    """A longer entity containing the keyword: the keyword is part of a name."""
    return entity.start <= hit.start and hit.end <= entity.end and entity.end - entity.start > hit.end - hit.start


def _uncovered_words(tokens, entities: Sequence[Entity], fillers: frozenset[str]) -> list[str]:
    """Folded tokens with characters outside every entity, fillers excluded."""
    covered = set()
    for e in entities:
        covered.update(range(e.start, e.end))
    out = []
    for tok in tokens:
        if all(i in covered for i in range(tok.start, tok.end)):
            continue
        word = fold(tok.text)
        if word in fillers:
            continue
        out.append(word)
    return out


# Precision of the gazetteer's catalog tags, by the shape of the tag in the query:
# exact-span agreement with the brand (``creator``) and ``core_product_type``
# labels of QueryNER's *train* split, tagged with the Icecat catalog's gazetteer
# (``python -m bench.search_quality`` prints them for train and for dev, the
# held-out check; bench/RESULTS.md, "Understanding in search"). A "free" word is one no other entity covers and
# that is no filler; a common type names at least COMMON_TYPE_PRODUCTS products.
#: A brand first in the query or after other entities only ("dell laptop").
SCORE_BRAND_LEADING = 0.82
#: A brand after a free word ("case for dell"; often part of a product name).
SCORE_BRAND_AFTER_WORD = 0.34
#: A product type of several words ("digital camera", "mouse pad").
SCORE_TYPE_PHRASE = 0.67
#: A common one-word type that ends the query ("gaming keyboard").
SCORE_TYPE_HEAD = 0.53
#: Any other one-word type: followed by a free word ("camera" in "camera bag"),
#: or named on few products ("card" in "sd card").
SCORE_TYPE_WORD = 0.21
#: Products a one-word type must name to count as common.
COMMON_TYPE_PRODUCTS = 5


def calibrated_entities(entities: Sequence[Entity], tokens, gazetteer: Gazetteer) -> tuple[Entity, ...]:
    """``entities`` with the scores of catalog brands and product types set to
    the precision measured for tags of their shape (see the ``SCORE_*`` constants).

    Tags from merchandisers' labels, built-in words and regex rules keep their score.

    Args:
        entities: The gazetteer's tags of the query.
        tokens: The query's tokens (:func:`~.segment.tokenize`).
        gazetteer: The gazetteer that tagged it (for the source and the
            product count of a phrase).
    """
    covered: set[int] = set()
    for e in entities:
        covered.update(range(e.start, e.end))
    free = [t for t in tokens if not all(i in covered for i in range(t.start, t.end))
            and fold(t.text) not in CATEGORY_FILLERS]
    out = []
    for e in entities:
        entry = gazetteer.lookup(e.text) if e.label in ("brand", "product_type") else None
        if entry is None or entry.source != "catalog":
            out.append(e)
            continue
        if e.label == "brand":
            score = SCORE_BRAND_AFTER_WORD if any(t.end <= e.start for t in free) else SCORE_BRAND_LEADING
        elif len(e.text.split()) > 1:
            score = SCORE_TYPE_PHRASE
        elif entry.count >= COMMON_TYPE_PRODUCTS and not any(t.start >= e.end for t in free):
            score = SCORE_TYPE_HEAD
        else:
            score = SCORE_TYPE_WORD
        out.append(Entity(label=e.label, text=e.text, start=e.start, end=e.end, value=e.value, score=score))
    return tuple(out)


#: Intents a keyword settles (see :func:`keyword_intent`).
KEYWORD_INTENTS = frozenset({CUSTOMER_SERVICE, NAVIGATION, PRODUCT_QUESTION, PRICE_DEAL})
#: Rule confidence from which a keyword's intent overrides a model's.
KEYWORD_OVERRIDE_CONFIDENCE = 0.85


def keyword_intent(query: str, entities: Sequence[Entity] = (), *, tokens: Sequence[Any] | None = None
                   ) -> tuple[str, float] | None:
    """The intent a keyword settles in ``query``, if one does confidently.

    Customer service and navigation phrases ("track my order", "sign in"),
    questions ("how to …", a question mark, 吗) and deal words or a price
    range: where the rules are as good as or better than the trained models
    (bench/understanding/README.md). A keyword inside a longer product entity
    ("Return of the Jedi") does not count.

    Args:
        query: The query as typed.
        entities: Entities found in it (a model's or the gazetteer's).
        tokens: ``tokenize(query)`` when the caller has it already.

    Returns:
        ``(intent, confidence)`` with confidence ≥ :data:`KEYWORD_OVERRIDE_CONFIDENCE`, or None.
    """
    if not query or not query.strip():
        return None
    intent, confidence = _decide(fold(query), tokenize(query) if tokens is None else tokens, entities)
    if intent in KEYWORD_INTENTS and confidence >= KEYWORD_OVERRIDE_CONFIDENCE:
        return intent, confidence
    return None


def understand_with_rules(
    query: str,
    gazetteer: Gazetteer | None = None,
    *,
    intents: Sequence[str] | None = None,
    entity_labels: Sequence[str] | None = None,
) -> Understanding:
    """Understand a query with keywords, the gazetteer and regex rules.

    Args:
        query: The query as typed.
        gazetteer: The gazetteer to tag with; the process's
            (:func:`~.gazetteer.get_gazetteer`) by default.
        intents: Allowed intents; ``SUGGESTIONS_INTENTS`` by default.
        entity_labels: Allowed entity labels; ``SUGGESTIONS_ENTITY_LABELS`` by default.

    Returns:
        The understanding (``source="rules"``).
    """
    if intents is None or entity_labels is None:
        from ..conf import app_settings

        intents = app_settings.INTENTS if intents is None else intents
        entity_labels = app_settings.ENTITY_LABELS if entity_labels is None else entity_labels
    query = query or ""
    language = detect_language(query)
    if not query.strip():
        return Understanding(query=query, language=language, intent=intents[0] if intents else PRODUCT_SEARCH,
                             confidence=0.0, source="rules")

    gaz = gazetteer if gazetteer is not None else get_gazetteer()
    allowed = set(entity_labels)
    tokens = tokenize(query)
    entities = calibrated_entities([e for e in gaz.tag(query) if e.label in allowed], tokens, gaz)
    folded = fold(query)

    intent, confidence = _decide(folded, tokens, entities)
    if intent not in intents:
        intent, confidence = (intents[0], CONF_FALLBACK) if intents else (intent, confidence)
    return Understanding(
        query=query,
        language=language,
        intent=intent,
        confidence=confidence,
        entities=entities,
        source="rules",
        tokens=tuple(t.text for t in tokens),
    )


def _decide(folded: str, tokens, entities: Sequence[Entity]) -> tuple[str, float]:
    product_entities = [e for e in entities if e.label in PRODUCT_LABELS]
    hits = [h for h in keyword_hits(folded) if not any(_shadows(e, h) for e in product_entities)]

    def fired(intent: str) -> float:
        best = 0.0
        for hit in hits:
            if hit.intent != intent:
                continue
            if hit.strength == STRONG:
                return CONF_STRONG
            if all(_inside(e, hit) for e in product_entities):
                best = CONF_WEAK
        return best

    for intent in (CUSTOMER_SERVICE, NAVIGATION):
        conf = fired(intent)
        if conf:
            return intent, conf

    words = [fold(t.text) for t in tokens if not _HAN_START.match(t.text)]
    question, conf = is_question(folded, words)
    if question:
        return PRODUCT_QUESTION, conf
    if fired(PRODUCT_QUESTION):  # Chinese markers
        return PRODUCT_QUESTION, CONF_QUESTION

    if fired(PRICE_DEAL):
        return PRICE_DEAL, CONF_DEAL_KEYWORD
    if any(e.label == "price_range" for e in entities):
        return PRICE_DEAL, CONF_DEAL_PRICE

    labels = {e.label for e in entities}
    if labels == {"brand"} and not _uncovered_words(tokens, entities, BRAND_FILLERS):
        return BRAND_LOOKUP, CONF_BRAND
    if ("product_type" in labels and labels <= CATEGORY_MODIFIERS | {"product_type"}
            and not _uncovered_words(tokens, entities, CATEGORY_FILLERS)):
        return CATEGORY_BROWSE, CONF_CATEGORY
    return PRODUCT_SEARCH, CONF_SEARCH_ENTITIES if entities else CONF_DEFAULT
