"""Keeping the recall backend's product index in step with the host's catalog.

Internal module; callers use the re-exports in :mod:`suggestions.services`.

Contracts:
* :func:`connect_product_signals` follows ``post_save`` / ``post_delete`` of
  ``get_adapter().get_model()``; with ``SUGGESTIONS_ADAPTER`` unset it
  connects nothing. Connecting twice is harmless (``dispatch_uid``).
* A change is sent to Celery only once its transaction commits
  (``transaction.on_commit``): a rolled-back save never reaches the index, and
  the worker never reads a row before it is visible. Task arguments are a
  list of product ids as text. ``SUGGESTIONS_INDEX_ON_SAVE = False`` turns
  this off (bulk imports, maintenance); rebuild afterwards.
* :func:`index_products` is idempotent and reads the product's *current*
  state: an id whose product is gone or no longer searchable
  (``to_document`` returns ``None``) is removed from the index. So tasks may
  run late, twice or out of order and still converge.
* :func:`rebuild_index` builds a new index version and swaps the alias only
  when it is complete; readers never see a half-built index. Changes saved
  while a rebuild runs go to the old live index and can be missed by the new
  one if their rows were read before the change: re-run, or they are picked
  up on the product's next save.
* Queryset ``update()``/``bulk_create()`` send no model signals, so they are
  not followed; run ``manage.py suggestions_rebuild_index`` after them.
* Backend errors surface as :class:`~suggestions.recall.RecallUnavailable`
  (the indexing tasks retry on it).
* Dense vectors follow the index: :func:`index_products` and
  :func:`rebuild_index` announce :data:`~suggestions.signals.products_indexed`,
  whose receiver sends ``suggestions.ml.embed_products`` (the ``gpu`` queue)
  when ``SUGGESTIONS_DENSE`` is on and the backend stores vectors;
  :func:`embed_products` embeds what is missing or changed, idempotently.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db import models
from django.db.models.signals import post_delete, post_save

from . import signals
from .adapter import get_adapter
from .conf import app_settings
from .recall import get_backend

logger = logging.getLogger(__name__)

_SAVE_UID = "shop_suggestions.index_on_save"
_DELETE_UID = "shop_suggestions.index_on_delete"


def _unique_text_ids(ids: Iterable[Any]) -> list[str]:
    # Text ids (the adapter contract), de-duplicated, order kept.
    return list(dict.fromkeys(str(i) for i in ids))


def _on_save(sender: type[models.Model], instance: models.Model, raw: bool = False, using: str | None = None, **kwargs: Any) -> None:
    # ``raw`` saves come from loaddata: fixtures are loaded as they are, and
    # the index is rebuilt afterwards.
    if raw:
        return
    enqueue_product_change(instance, deleted=False, using=using)


def _on_delete(sender: type[models.Model], instance: models.Model, using: str | None = None, **kwargs: Any) -> None:
    enqueue_product_change(instance, deleted=True, using=using)


def connect_product_signals() -> bool:
    """Follow saves and deletes of the adapter's product model.

    Called once from :meth:`SuggestionsConfig.ready`. Does nothing when
    ``SUGGESTIONS_ADAPTER`` is unset or cannot be loaded (the system checks
    report that).

    Returns:
        True when the receivers were connected.
    """
    if not app_settings.ADAPTER:
        return False
    try:
        model = get_adapter().get_model()
    except ImproperlyConfigured as exc:
        logger.warning("Product changes are not indexed: %s", exc)
        return False
    post_save.connect(_on_save, sender=model, dispatch_uid=_SAVE_UID, weak=False)
    post_delete.connect(_on_delete, sender=model, dispatch_uid=_DELETE_UID, weak=False)
    return True


def disconnect_product_signals() -> None:
    """Undo :func:`connect_product_signals` (tests, bulk maintenance scripts)."""
    post_save.disconnect(dispatch_uid=_SAVE_UID)
    post_delete.disconnect(dispatch_uid=_DELETE_UID)


def enqueue_product_change(instance: models.Model, deleted: bool = False, using: str | None = None) -> bool:
    """Schedule an index update for one product after the transaction commits.

    Announces :data:`~suggestions.signals.product_index_requested`; the app's receiver
    (:mod:`suggestions.receivers`) sends the Celery task from ``transaction.on_commit``.
    This module never imports the tasks: they call back into it through
    :mod:`suggestions.services`.

    Args:
        instance: The saved or deleted product.
        deleted: True when the product was deleted.
        using: Database alias of the transaction; defaults to the instance's.

    Returns:
        True when a task was scheduled, False when the kill switch
        ``SUGGESTIONS_INDEX_ON_SAVE`` is off, no adapter is configured or the
        instance has no primary key.
    """
    if not app_settings.INDEX_ON_SAVE or not app_settings.ADAPTER or instance.pk is None:
        return False
    signals.product_index_requested.send(sender=enqueue_product_change, ids=[str(instance.pk)],
                                         deleted=deleted, using=using or instance._state.db)
    return True


def index_products(ids: Iterable[Any], alias: str = "default") -> int:
    """Bring the given products' index entries up to date.

    Args:
        ids: Product primary keys (text or anything ``str()`` turns into one).
        alias: Recall backend alias.

    Returns:
        Number of documents written; ids whose product is gone or not
        searchable are deleted from the index instead.

    Raises:
        RecallUnavailable: The backend cannot be reached.
        ImproperlyConfigured: ``SUGGESTIONS_ADAPTER`` is unset.
    """
    wanted = _unique_text_ids(ids)
    if not wanted:
        return 0
    documents = get_adapter().get_documents(wanted)
    backend = get_backend(alias)
    if documents:
        backend.index_products(documents)
    found = {doc.id for doc in documents}
    gone = [i for i in wanted if i not in found]
    if gone:
        backend.delete_products(gone)
    if documents:
        signals.products_indexed.send(sender=index_products, ids=[d.id for d in documents], alias=alias)
    return len(documents)


def remove_products(ids: Iterable[Any], alias: str = "default") -> int:
    """Delete products from the index; unknown ids are ignored.

    Args:
        ids: Product primary keys.
        alias: Recall backend alias.

    Returns:
        Number of distinct ids asked to be removed.

    Raises:
        RecallUnavailable: The backend cannot be reached.
    """
    wanted = _unique_text_ids(ids)
    if wanted:
        get_backend(alias).delete_products(wanted)
    return len(wanted)


def rebuild_index(progress: Callable[[int], None] | None = None, alias: str = "default") -> str:
    """Index every searchable product into a new index version and swap it in.

    Args:
        progress: Called with the number of documents of each indexed batch.
        alias: Recall backend alias.

    Returns:
        Name of the new index version.

    Raises:
        RecallUnavailable: The backend cannot be reached.
        ImproperlyConfigured: ``SUGGESTIONS_ADAPTER`` is unset.
    """
    adapter = get_adapter()
    backend = get_backend(alias)
    documents = adapter.iter_documents(batch_size=app_settings.INDEX_BATCH_SIZE)
    version = backend.rebuild_products(documents, progress=progress)
    logger.debug("Rebuilt product index %r: version %s", alias, version)
    signals.products_indexed.send(sender=rebuild_index, ids=None, alias=alias)
    return version


def dense_active(alias: str = "default") -> bool:
    """Whether products of ``alias`` are to be embedded (``SUGGESTIONS_DENSE`` on,
    a backend that stores vectors)."""
    return bool(app_settings.DENSE) and get_backend(alias).supports_vectors


@dataclass(frozen=True)
class EmbedReport:
    """What :func:`embed_products` did: products embedded, vectors stored (products
    gone from the index are skipped), and whether ``limit`` left some for later."""

    embedded: int
    stored: int
    more: bool


#: Products embedded between two writes of the stored vectors (an embedded
#: engine rewrites its vector file on each write).
STORE_CHUNK = 1024


def embed_products(ids: Iterable[Any] | None = None, alias: str = "default", *,
                   progress: Callable[[int], None] | None = None, refresh: bool = False,
                   limit: int | None = None) -> EmbedReport:
    """Embed products and store their vectors in the backend (workers only).

    Args:
        ids: The products to embed; ``None``: every searchable product the
            backend holds no vector of (with ``refresh``, every one), and the
            vectors of products no longer in the catalog are dropped.
        alias: Recall backend alias.
        progress: Called with the number of products of each embedded batch.
        refresh: With ``ids=None``, re-embed products that already have a vector.
        limit: Embed at most this many (a task does a slice, then sends itself again).

    Returns:
        What was embedded and stored, and whether ``limit`` stopped it early.

    Raises:
        RecallUnavailable: The backend cannot be reached.
    """
    from . import dense

    backend = get_backend(alias)
    if not backend.supports_vectors:
        return EmbedReport(embedded=0, stored=0, more=False)
    model = app_settings.DENSE_ENCODER
    adapter = get_adapter()
    if ids is None:
        stored_ids = backend.vector_ids(model)
        have = set() if refresh else stored_ids
        documents: Iterable[Any] = (d for d in adapter.iter_documents(batch_size=app_settings.INDEX_BATCH_SIZE)
                                    if d.id not in have)
        current = {str(pk) for pk in adapter.get_queryset().values_list("pk", flat=True)}
        stale = sorted(stored_ids - current)
        if stale:
            backend.delete_products(stale)  # gone from the catalog: index entry and vector
    else:
        documents = adapter.get_documents(_unique_text_ids(ids))
    encoder = dense.get_encoder(model)
    size = max(1, app_settings.DENSE_BATCH_SIZE)
    stored, seen = 0, 0
    chunk_ids: list[str] = []
    chunk_vectors: list[Any] = []
    batch: list[Any] = []

    def embed() -> None:
        chunk_vectors.append(dense.embed_documents(batch, encoder))
        chunk_ids.extend(d.id for d in batch)
        if progress is not None:
            progress(len(batch))
        batch.clear()

    def store() -> int:
        import numpy as np

        count = backend.store_vectors(model, list(chunk_ids), np.vstack(chunk_vectors)) if chunk_ids else 0
        chunk_ids.clear()
        chunk_vectors.clear()
        return count

    for document in documents:
        if limit is not None and seen >= limit:
            break
        seen += 1
        batch.append(document)
        if len(batch) >= size:
            embed()
            if len(chunk_ids) >= STORE_CHUNK:
                stored += store()
    if batch:
        embed()
    stored += store()
    return EmbedReport(embedded=seen, stored=stored, more=limit is not None and seen >= limit)
