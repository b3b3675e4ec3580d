"""Build ``intent_sample.jsonl``, the intent benchmark's labelled queries.

``python -m bench.understanding.build_intent_sample [--data-dir DIR]``

There is no public intent-labelled e-commerce query set here, so the sample is
assembled from three parts and labelled by the rules of thumb below (not by
annotators). It is a sanity check of the intent head against the rules, not a
gold standard:

1. **WANDS** (``wands/query.csv``, MIT): every other one of the 480 real
   Wayfair queries (240). Rule of thumb: a deal word ("cheap", "sale",
   "under", …) → ``price_deal``; a leading question word → ``product_question``;
   a query of at most three words whose last word (singular) is a word of its
   human-assigned product class → ``category_browse`` ("turquoise pillows",
   class "Accent Pillows"); anything else → ``product_search``.
2. **QueryNER dev** (query text Apache-2.0): the queries whose every token is
   labelled ``creator`` (a brand alone) → ``brand_lookup`` (10). Dev only:
   the models never train on dev.
3. **Composed** queries written for this sample, English and Chinese, for the
   intents the public data lacks (customer service, navigation, questions,
   deals) plus brand, category and product searches in Chinese. They were
   written separately from the training templates of
   :func:`suggestions.ml.understanding.weak_labels.template_examples`, with other wordings,
   but by the same author: expect the model's accuracy on them to be
   optimistic.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
from pathlib import Path

from bench.common import add_common_arguments, require_file, resolve_data_dir

HERE = Path(__file__).resolve().parent
SAMPLE = HERE / "intent_sample.jsonl"

_DEAL = re.compile(r"\b(cheap|cheapest|sale|deals?|discount|clearance|under \$?\d+|below \$?\d+|coupon)\b")
_QUESTION = re.compile(r"^(how|what|which|is|are|can|does|do|why|should)\b")

COMPOSED: dict[str, dict[str, list[str]]] = {
    "customer_service": {
        "en": ["where's my package", "order hasn't shipped yet", "how to return a sofa", "return window",
               "refund not received", "cancel my purchase", "damaged on arrival", "customer support phone number",
               "chat with support", "change my shipping address", "package marked delivered but not here",
               "how do i get a refund", "exchange for a different size", "late delivery", "order tracking number",
               "missing parts in my order", "return shipping label", "warranty repair", "speak to a representative",
               "why was my order cancelled"],
        "zh": ["订单还没发货", "快递到哪里了", "我要退款", "退换货流程", "客服电话", "收到的商品破损",
               "怎么申请售后", "修改订单地址", "退货运费谁出", "催一下发货"],
    },
    "navigation": {
        "en": ["log in", "my orders", "account settings", "view cart", "sign up", "store hours", "find a store",
               "gift card balance", "wish list", "saved items", "payment methods", "password reset",
               "email preferences", "rewards program", "order history page", "contact page", "shipping policy page",
               "careers page", "affiliate program", "help center"],
        "zh": ["登录账号", "我的购物车", "会员积分", "查看订单", "收货地址管理", "门店地址", "礼品卡余额",
               "账户设置", "帮助中心", "注册会员"],
    },
    "product_question": {
        "en": ["how do you assemble a bookshelf", "is memory foam good for back pain", "what size rug for a living room",
               "can you wash a down comforter", "how long do led bulbs last", "which vacuum is best for pet hair",
               "does a standing desk help posture", "is teak good for outdoor furniture",
               "what is the difference between a duvet and a comforter", "how high to hang curtains",
               "are air fryers healthy", "can a mattress be too firm", "how to clean a microfiber couch",
               "what wattage microwave do i need", "is bamboo flooring waterproof", "do i need a box spring",
               "which printer has the cheapest ink", "how many lumens for a bedroom", "what is a sectional sofa",
               "should i get a queen or king bed"],
        "zh": ["空气炸锅好用吗", "乳胶枕头怎么洗", "哪种床垫对腰好", "扫地机器人值得买吗", "实木家具怎么保养",
               "电热水壶多少瓦合适", "羽绒被可以水洗吗", "沙发选什么颜色好", "投影仪和电视哪个好", "空调怎么省电"],
    },
    "price_deal": {
        "en": ["cheap bookshelves", "sofa sale", "dining table clearance", "rugs under 100", "discount mattresses",
               "lamp deals", "cheapest office chair", "bed frames on sale", "coupon for furniture",
               "outdoor furniture clearance", "tv stand under 200", "budget gaming chair", "memorial day mattress sale",
               "discounted area rugs", "affordable dressers", "desk deals", "cheap curtains", "printer ink discount",
               "laptop under 500", "clearance bedding"],
        "zh": ["便宜的书架", "沙发特价", "床垫打折", "500元以内的台灯", "餐桌清仓", "优惠的电视", "办公椅促销",
               "低价窗帘", "空调优惠券", "100元以下的地毯"],
    },
    "brand_lookup": {
        "en": ["ikea", "dyson", "le creuset", "kitchenaid", "the north face", "patagonia", "lego", "nintendo",
               "garmin", "yeti", "crocs", "ray-ban", "levi's", "cuisinart", "serta"],
        "zh": ["华为", "小米", "海尔", "美的", "格力", "联想", "李宁", "安踏", "九阳", "苏泊尔"],
    },
    "category_browse": {
        "zh": ["沙发", "办公椅", "床垫", "台灯", "蓝牙耳机", "儿童书桌", "电饭煲", "笔记本电脑", "女士连衣裙", "不锈钢炒锅"],
    },
    "product_search": {
        "zh": ["华为mate60手机壳", "小米空气净化器滤芯", "海尔冰箱bcd-216", "美的电饭煲mb-fb40", "联想小新pro14",
               "李宁跑步鞋男款", "苹果iphone15充电器", "戴森v12吸尘器", "格力空调1.5匹挂机", "九阳豆浆机dj13"],
    },
}


def _singular(word: str) -> str:
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def wands_intent(query: str, query_class: str) -> str:
    """The rule of thumb for a WANDS query (see the module docstring)."""
    q = query.lower().strip()
    if _DEAL.search(q):
        return "price_deal"
    if _QUESTION.match(q):
        return "product_question"
    words = q.split()
    class_words = {_singular(w) for w in re.findall(r"[a-z]+", query_class.lower())}
    if words and len(words) <= 3 and _singular(words[-1]) in class_words:
        return "category_browse"
    return "product_search"


def build(data_dir: Path) -> list[dict[str, str]]:
    """The sample's rows: ``{"query", "intent", "language", "origin"}``."""
    rows: list[dict[str, str]] = []
    wands = require_file(data_dir / "wands" / "query.csv", "WANDS queries")
    with open(wands, encoding="utf-8") as fh:
        for i, row in enumerate(csv.DictReader(fh, delimiter="\t")):
            if i % 2 == 0:
                rows.append({"query": row["query"], "intent": wands_intent(row["query"], row["query_class"]),
                             "language": "en", "origin": "wands"})
    queryner = require_file(data_dir / "queryner" / "dev.jsonl", "QueryNER dev")
    with open(queryner, encoding="utf-8") as fh:
        for line in fh:
            item = json.loads(line)
            if item["labels"] and all(t.endswith("-creator") for t in item["labels"]):
                rows.append({"query": " ".join(item["tokens"]), "intent": "brand_lookup", "language": "en",
                             "origin": "queryner-dev"})
    for intent, by_language in COMPOSED.items():
        for language, queries in by_language.items():
            rows += [{"query": q, "intent": intent, "language": language, "origin": "composed"} for q in queries]
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    rows = build(resolve_data_dir(args.data_dir))
    SAMPLE.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    print(f"wrote {len(rows)} queries to {SAMPLE.name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
