"""Default intents and entity labels, and how public datasets' tags map onto them.

Shops configure their own with ``SUGGESTIONS_INTENTS`` / ``SUGGESTIONS_ENTITY_LABELS``;
these are the defaults.
"""

from __future__ import annotations

DEFAULT_INTENTS: tuple[str, ...] = (
    "product_search",      # "nike running shoes"
    "brand_lookup",        # "nike"
    "category_browse",     # "running shoes"
    "price_deal",          # "cheap laptops", "tv deals", "under 100"
    "product_question",    # "is the iphone 15 waterproof"
    "customer_service",    # "where is my order", "return policy"
    "navigation",          # "login", "gift cards", "store locator"
)

DEFAULT_ENTITY_LABELS: tuple[str, ...] = (
    "brand", "product_type", "product_name", "model_number", "color", "size", "material",
    "price_range", "quantity", "audience",
    # Learned from the public data (QueryNER):
    "modifier", "condition", "occasion", "content", "origin", "shape", "time",
)

#: QueryNER (Amazon ESCI) entity types → our labels. A bijection, so F1 on the
#: dataset's own types equals F1 on ours.
QUERYNER_TO_LABEL: dict[str, str] = {
    "creator": "brand",
    "core_product_type": "product_type",
    "product_name": "product_name",
    "product_number": "model_number",
    "color": "color",
    "UoM": "size",
    "material": "material",
    "price": "price_range",
    "quantity": "quantity",
    "department": "audience",
    "modifier": "modifier",
    "condition": "condition",
    "occasion": "occasion",
    "content": "content",
    "origin": "origin",
    "shape": "shape",
    "time": "time",
}

#: Chinese e-commerce NER (Jie et al. 2019) tags → our labels.
JIE2019_TO_LABEL: dict[str, str] = {
    "HPPX": "brand",
    "HCCX": "product_type",
    "XH": "model_number",
    "MISC": "modifier",
}
