"""Value objects of query understanding. Pure Python: importing this module
never imports torch or transformers.

Contract: an :class:`Understanding` is what every understanding path returns
(rules/gazetteer fallback, transformer models, cached answers). Entity offsets
are character offsets into ``Understanding.query`` (the query as given, not
normalised), ``start`` inclusive and ``end`` exclusive.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Entity:
    """A span of the query that names something.

    Attributes:
        label: entity label, one of the shop's configured labels (e.g. ``brand``).
        text: the span as it appears in the query.
        start: character offset of the span's first character.
        end: character offset just past the span.
        value: normalised value (e.g. the catalog's brand spelling, or a price
            range such as ``{"max": 100}`` rendered as text ``"<=100"``).
        score: confidence in [0, 1].
    """

    label: str
    text: str
    start: int
    end: int
    value: str = ""
    score: float = 1.0


@dataclass(frozen=True)
class Understanding:
    """What a query means.

    Attributes:
        query: the query as given.
        language: ``"en"``, ``"zh"`` or ``"mixed"``.
        intent: one of the shop's configured intents (e.g. ``product_search``).
        confidence: confidence of the intent in [0, 1].
        entities: spans, sorted by ``start``, non-overlapping.
        source: which path produced it: ``"rules"`` or ``"model:<version>"``.
        tokens: the segmentation used (words; for Chinese, jieba's segments).
    """

    query: str
    language: str
    intent: str
    confidence: float
    entities: tuple[Entity, ...] = ()
    source: str = "rules"
    tokens: tuple[str, ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["entities"] = [asdict(e) for e in self.entities]
        data["tokens"] = list(self.tokens)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Understanding:
        return cls(
            query=data["query"], language=data["language"], intent=data["intent"],
            confidence=float(data["confidence"]),
            entities=tuple(Entity(**e) for e in data.get("entities", ())),
            source=data.get("source", "rules"), tokens=tuple(data.get("tokens", ())),
        )

    def entities_of(self, label: str) -> list[Entity]:
        return [e for e in self.entities if e.label == label]
