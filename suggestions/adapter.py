"""How the host's products become search documents, and back.

A host shop subclasses :class:`ProductAdapter`, names it in
``SUGGESTIONS_ADAPTER`` and connects nothing else: the app follows the model's
saves and deletes itself (see :mod:`suggestions.receivers`).

Contract:
* ``get_queryset()`` returns every product that should be searchable.
* ``to_document(obj)`` returns a :class:`ProductDocument` whose ``id`` is the
  product's primary key as text; ``None`` means "not searchable" (e.g. hidden),
  and the product is removed from the index.
* ``get_model()`` is the product model, used for signals and content types.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db import models
from django.utils.module_loading import import_string

from .conf import app_settings


@dataclass(frozen=True)
class ProductDocument:
    """A product as the recall backends see it."""

    id: str
    title: str
    brand: str = ""
    product_type: str = ""
    model_number: str = ""
    description: str = ""
    attributes: dict[str, Any] = field(default_factory=dict)
    price: float | None = None
    url: str = ""
    image_url: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProductDocument:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


class ProductAdapter:
    """Base class for a host shop's adapter. Override the three methods."""

    def get_model(self) -> type[models.Model]:
        raise NotImplementedError

    def get_queryset(self) -> models.QuerySet:
        return self.get_model()._default_manager.all()

    def to_document(self, obj: models.Model) -> ProductDocument | None:
        raise NotImplementedError

    def iter_documents(self, batch_size: int = 500) -> Iterator[ProductDocument]:
        """All searchable documents, streamed in primary-key order."""
        for obj in self.get_queryset().order_by("pk").iterator(chunk_size=batch_size):
            doc = self.to_document(obj)
            if doc is not None:
                yield doc

    def count(self) -> int:
        return self.get_queryset().count()

    def get_documents(self, ids: list[str]) -> list[ProductDocument]:
        """Documents for the given ids, in the same order, skipping missing ones."""
        objs = {str(o.pk): o for o in self.get_queryset().filter(pk__in=ids)}
        docs = [self.to_document(objs[i]) for i in ids if i in objs]
        return [d for d in docs if d is not None]

    def fallback_search(self, query: str, limit: int) -> list[ProductDocument]:
        """Plain database search used when the recall backend is down."""
        qs = self.get_queryset().filter(**{f"{self.title_field}__icontains": query})[:limit]
        return [d for d in (self.to_document(o) for o in qs) if d is not None]

    #: Field used by :meth:`fallback_search`.
    title_field = "title"


@lru_cache(maxsize=4)
def _load_adapter(path: str) -> ProductAdapter:
    try:
        cls = import_string(path)
    except ImportError as exc:
        raise ImproperlyConfigured(f"SUGGESTIONS_ADAPTER {path!r} cannot be imported: {exc}") from exc
    return cls()


def get_adapter() -> ProductAdapter:
    """The configured adapter (one instance per process)."""
    path = app_settings.ADAPTER
    if not path:
        raise ImproperlyConfigured("Set SUGGESTIONS_ADAPTER to the import path of your ProductAdapter subclass.")
    return _load_adapter(path)
