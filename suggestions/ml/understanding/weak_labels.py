"""Weak supervision for the understanding model: weak intent labels and composed intent queries.

Pure Python (no torch, no database).

* :func:`weak_intent`: the rules' answer
  (:func:`suggestions.nlp.rules.understand_with_rules`) refined by the shape of the gold
  or distant entity spans (only a brand: ``brand_lookup``; a price: ``price_deal``; a
  product type without brand or product name: ``category_browse``). Public NER data has
  entities but no intents; this gives every example one.
* :func:`template_examples`: composed customer-service, navigation, question and deal
  queries in English and Chinese, intent only: public NER data has almost none of these,
  so without them the intent head could only ever answer product intents.
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Sequence
from typing import Any

from ...nlp.types import Understanding
from .bio import Span
from .corpora import Example

logger = logging.getLogger(__name__)


def rules_understanding(text: str, gazetteer: Any, intents: Sequence[str],
                        entity_labels: Sequence[str]) -> Understanding | None:
    """The rules' understanding of ``text``, or None when the rules fail."""
    from ...nlp.rules import understand_with_rules

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
        from ...nlp.gazetteer import Gazetteer

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
    from ...nlp.labels import DEFAULT_ENTITY_LABELS

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
