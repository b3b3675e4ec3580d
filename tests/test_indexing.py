"""Following product changes into the recall index: signals, on_commit, tasks,
services and the rebuild command (eager Celery, real tantivy backend)."""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import transaction

from catalog.models import Product
from suggestions import indexing, services, tasks
from suggestions.adapter import ProductDocument
from suggestions.recall import BaseRecallBackend, RecallUnavailable, get_backend
from tests.factories import ProductFactory

pytestmark = pytest.mark.django_db


def search_ids(query: str) -> list[str]:
    return [hit.id for hit in get_backend().search_products(query, limit=50).hits]


class DownBackend(BaseRecallBackend):
    """A backend whose engine is unreachable; counts the calls it refused."""

    calls = 0

    def _down(self, *args: Any, **kwargs: Any) -> Any:
        type(self).calls += 1
        raise RecallUnavailable("engine is down (test)")

    rebuild_products = index_products = delete_products = search_products = count_products = _down


class RecordingBackend(BaseRecallBackend):
    """An in-memory backend that records what it was asked to do."""

    indexed: list[str] = []
    deleted: list[str] = []

    def index_products(self, documents: Iterable[ProductDocument]) -> None:
        type(self).indexed.extend(d.id for d in documents)

    def delete_products(self, ids: Iterable[str]) -> None:
        type(self).deleted.extend(ids)


@pytest.fixture
def down_backend(settings):
    DownBackend.calls = 0
    settings.SUGGESTIONS_RECALL_BACKENDS = {"default": {"BACKEND": "tests.test_indexing.DownBackend", "OPTIONS": {}}}
    return DownBackend


@pytest.fixture
def recording_backend(settings):
    RecordingBackend.indexed, RecordingBackend.deleted = [], []
    settings.SUGGESTIONS_RECALL_BACKENDS = {"default": {"BACKEND": "tests.test_indexing.RecordingBackend", "OPTIONS": {}}}
    return RecordingBackend


# --- save / update / delete ------------------------------------------------------------


def test_saved_product_becomes_searchable(django_capture_on_commit_callbacks) -> None:
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        product = ProductFactory(title="Zyxwq ZQ-100 toner cartridge", brand="Zyxwq")

    assert len(callbacks) == 1
    assert search_ids("zyxwq") == [str(product.pk)]
    doc = get_backend().search_products("zyxwq").hits[0].document
    assert doc.brand == "Zyxwq" and doc.product_type == "toner cartridge"


def test_nothing_is_sent_before_commit(django_capture_on_commit_callbacks) -> None:
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        ProductFactory(title="Quokkal QK-1 projector lamp")
    # The task is only sent by the on_commit callback.
    assert len(callbacks) == 1
    assert search_ids("quokkal") == []

    callbacks[0]()
    assert len(search_ids("quokkal")) == 1


def test_update_changes_the_indexed_title(django_capture_on_commit_callbacks) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        product = ProductFactory(title="Wombatix WB-7 network adapter")
    with django_capture_on_commit_callbacks(execute=True):
        product.title = "Numbatix WB-7 network adapter"
        product.save()

    assert search_ids("wombatix") == []
    assert search_ids("numbatix") == [str(product.pk)]
    assert get_backend().count_products() == 1


def test_delete_removes_from_index(django_capture_on_commit_callbacks) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        keep = ProductFactory(title="Bilbyx BX-1 backpack")
        gone = ProductFactory(title="Bilbyx BX-2 backpack")
    assert sorted(search_ids("bilbyx")) == sorted([str(keep.pk), str(gone.pk)])

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        gone.delete()

    assert len(callbacks) == 1
    assert search_ids("bilbyx") == [str(keep.pk)]


def test_rolled_back_save_sends_nothing(django_capture_on_commit_callbacks) -> None:
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(RuntimeError), transaction.atomic():
            ProductFactory(title="Dingox DX-1 mouse")
            raise RuntimeError("abort")
    assert callbacks == []
    assert search_ids("dingox") == []


def test_kill_switch_enqueues_nothing(settings, django_capture_on_commit_callbacks) -> None:
    settings.SUGGESTIONS_INDEX_ON_SAVE = False
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        product = ProductFactory(title="Possumo PS-3 keyboard")
        product.title = "Possumo PS-4 keyboard"
        product.save()
        product.delete()
    assert callbacks == []
    assert get_backend().count_products() == 0


def test_no_adapter_enqueues_nothing(settings, django_capture_on_commit_callbacks) -> None:
    settings.SUGGESTIONS_ADAPTER = ""
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        ProductFactory()
    assert callbacks == []
    assert indexing.connect_product_signals() is False


def test_connect_is_idempotent(django_capture_on_commit_callbacks) -> None:
    assert indexing.connect_product_signals() is True
    assert indexing.connect_product_signals() is True
    with django_capture_on_commit_callbacks() as callbacks:
        ProductFactory()
    assert len(callbacks) == 1


def test_enqueue_sends_text_ids(recording_backend, django_capture_on_commit_callbacks, monkeypatch) -> None:
    sent: list[tuple[str, Any]] = []
    monkeypatch.setattr(tasks.update_products, "delay", lambda ids: sent.append(("update", ids)))
    monkeypatch.setattr(tasks.delete_products, "delay", lambda ids: sent.append(("delete", ids)))
    with django_capture_on_commit_callbacks(execute=True):
        product = ProductFactory()
        pk = product.pk
        product.delete()
    # JSON primitives only: a list of text ids.
    assert sent == [("update", [str(pk)]), ("delete", [str(pk)])]


@pytest.mark.django_db(transaction=True)
def test_on_commit_with_real_transactions() -> None:
    with transaction.atomic():
        product = ProductFactory(title="Quollix QX-9 label printer")
        # Still inside the transaction: nothing reached the index yet.
        assert search_ids("quollix") == []
    assert search_ids("quollix") == [str(product.pk)]

    product.delete()
    assert search_ids("quollix") == []


# --- services ---------------------------------------------------------------------------


def test_index_products_removes_gone_and_unsearchable_ids(settings) -> None:
    settings.SUGGESTIONS_INDEX_ON_SAVE = False
    visible = ProductFactory(title="Kowari KW-1 scanner")
    hidden = ProductFactory(title="Kowari KW-2 scanner")
    services.index_products([visible.pk, str(hidden.pk), str(hidden.pk)])
    assert len(search_ids("kowari")) == 2

    hidden.title = ""  # the adapter's to_document() now returns None
    hidden.save()
    gone_id = str(visible.pk)
    visible.delete()

    assert services.index_products([gone_id, str(hidden.pk)]) == 0
    assert search_ids("kowari") == []
    assert services.index_products([]) == 0


def test_remove_products_ignores_unknown_ids(settings) -> None:
    settings.SUGGESTIONS_INDEX_ON_SAVE = False
    product = ProductFactory(title="Tuatara TT-1 webcam")
    services.index_products([str(product.pk)])
    assert services.remove_products([str(product.pk), "999999", str(product.pk)]) == 2
    assert search_ids("tuatara") == []


def test_index_products_uses_backend_contract(recording_backend, settings) -> None:
    settings.SUGGESTIONS_INDEX_ON_SAVE = False
    product = ProductFactory()
    assert services.index_products([str(product.pk), "424242"]) == 1
    assert recording_backend.indexed == [str(product.pk)]
    assert recording_backend.deleted == ["424242"]


# --- tasks -------------------------------------------------------------------------------


def test_task_names_and_routes() -> None:
    from shop_search.celery import app

    for name in ("suggestions.index.update_products", "suggestions.index.delete_products", "suggestions.index.rebuild"):
        assert name in app.tasks
        assert app.amqp.router.route({}, name)["queue"].name == "default"


def test_tasks_call_services(settings) -> None:
    settings.SUGGESTIONS_INDEX_ON_SAVE = False
    product = ProductFactory(title="Echidnor EC-5 stylus pen")
    assert tasks.update_products.delay([str(product.pk)]).get() == 1
    assert search_ids("echidnor") == [str(product.pk)]
    assert tasks.delete_products.delay([str(product.pk)]).get() == 1
    assert search_ids("echidnor") == []
    version = tasks.rebuild_index.delay().get()
    assert version
    assert search_ids("echidnor") == [str(product.pk)]


def test_update_task_retries_when_backend_is_down(down_backend, settings, monkeypatch) -> None:
    from shop_search.celery import app

    settings.SUGGESTIONS_INDEX_ON_SAVE = False
    product = ProductFactory()
    # Without propagation, eager mode runs the retries at once: the first
    # try plus max_retries=5, then the task fails with the backend's error.
    monkeypatch.setitem(app.conf, "task_eager_propagates", False)
    result = tasks.update_products.delay([str(product.pk)])
    assert result.state == "FAILURE"
    assert isinstance(result.result, RecallUnavailable)
    assert down_backend.calls == 6


# --- rebuild command -------------------------------------------------------------------


def _rebuild(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("suggestions_rebuild_index", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_rebuild_command_prints_version_count_and_progress(settings) -> None:
    settings.SUGGESTIONS_INDEX_ON_SAVE = False
    settings.SUGGESTIONS_INDEX_BATCH_SIZE = 2
    ProductFactory.create_batch(4, brand="Platypo")
    ProductFactory(title=" ")  # not searchable: counted by the adapter, not indexed
    assert get_backend().count_products() == 0

    out, err = _rebuild()

    assert "Rebuilt product index 'default': version products-v" in out
    assert "4 products indexed" in out
    assert "Indexing (default)" in err and "4/5" in err
    assert len(search_ids("platypo")) == 4

    # A second rebuild swaps in a new version with the same content.
    out2, err2 = _rebuild("--no-progress", "--backend", "default")
    assert out2 != out and "4 products indexed" in out2
    assert err2 == ""
    assert Product.objects.count() == 5


def test_rebuild_command_without_adapter(settings) -> None:
    settings.SUGGESTIONS_ADAPTER = ""
    with pytest.raises(CommandError, match="SUGGESTIONS_ADAPTER is not set"):
        _rebuild("--no-progress")


def test_rebuild_command_unknown_alias() -> None:
    with pytest.raises(CommandError, match="no alias 'nope'"):
        _rebuild("--backend", "nope")


def test_rebuild_command_backend_down(down_backend) -> None:
    ProductFactory()
    with pytest.raises(CommandError, match="unavailable"):
        _rebuild("--no-progress")
