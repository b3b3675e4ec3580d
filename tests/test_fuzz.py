"""Property-based fuzzing of every API operation from the app's own OpenAPI schema.

schemathesis reads the schema drf-spectacular serves and generates requests
for each operation, in both modes: *positive* (what the schema allows) and
*negative* (what it forbids). They go to the demo project's WSGI application
in this process, anonymously and without a CSRF token, as a shopper's browser
sends them (the API enforces CSRF on signed-in requests only). Every answer
must:

* not be a 5xx;
* have a status code the schema documents for the operation, the documented
  content type, and a body that validates against the documented schema.

The run is bounded and reproducible (:data:`MAX_EXAMPLES` requests per
operation and mode, a fixed Hypothesis seed, no example database, no
shrinking), so it belongs in the normal suite. The long run of the same
machinery is ``python -m bench.fuzz`` (:mod:`bench.fuzz.runner`).

A generator that only ever produced rejected requests would test little:
each operation must also have answered at least one positive request with a
2xx, and every operation with parameters or a body at least one negative
request with a 4xx.
"""

from __future__ import annotations

import pytest
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from schemathesis import GenerationMode

from bench.fuzz.runner import FuzzReport, fuzz_operation, load_schema, operations
from catalog.models import Product
from suggestions import services

pytestmark = pytest.mark.django_db

#: Requests per operation and mode: enough to reach the validators' edges, small enough for CI.
MAX_EXAMPLES = 30
SEED = 20261201

#: Every operation of the schema; ``test_every_operation_is_fuzzed`` fails when one is added.
OPERATIONS = [
    "DELETE /api/suggestions/history/",
    "GET /api/suggestions/history/",
    "GET /api/suggestions/schema/",
    "GET /api/suggestions/search/",
    "GET /api/suggestions/suggest/",
    "GET /api/suggestions/trending/",
    "GET /api/suggestions/understand/",
    "POST /api/suggestions/events/",
]

#: Operations that take no input: there is no request their schema forbids, so no negative run.
WITHOUT_INPUT = {"DELETE /api/suggestions/history/", "GET /api/suggestions/history/"}


@pytest.fixture
def schema():
    """The served schema, with a small catalog, history and suggestions behind it.

    The WSGI handler closes the database connection at the end of each request
    (``close_old_connections``); inside the test's transaction that would close
    it under the test, as Django's own test client knows: it is disconnected
    here too while the fuzzer sends its requests.
    """
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    for title, brand, kind, price in [
        ("Anker USB Cable 1m", "Anker", "cable", "9.99"),
        ("Belkin USB Cable 2m", "Belkin", "cable", "14.50"),
        ("Logitech Laptop Stand", "Logitech", "stand", "49.00"),
        ("HP LaserJet Toner 85A", "HP", "toner", "59.00"),
    ]:
        Product.objects.create(title=title, brand=brand, product_type=kind, price=price)
    services.rebuild_index()
    for n in range(4):
        services.search("usb cable", session_key=f"fuzz-shopper-{n}")
    services.build_suggestions()
    try:
        yield load_schema(app=get_wsgi_application(), seed=SEED)
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def _by_label(schema, label: str):
    found = [op for op in operations(schema) if op.label == label]
    assert found, f"{label} is not in the schema"
    return found[0]


def test_every_operation_is_fuzzed(schema):
    assert [op.label for op in operations(schema)] == OPERATIONS


CASES = [
    pytest.param(label, mode, id=f"{label}-{mode}")
    for label in OPERATIONS
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if not (mode is GenerationMode.NEGATIVE and label in WITHOUT_INPUT)
]


@pytest.mark.parametrize(("label", "mode"), CASES)
def test_generated_requests_get_documented_answers(schema, label, mode):
    report = FuzzReport()
    fuzz_operation(_by_label(schema, label), mode, report, max_examples=MAX_EXAMPLES, seed=SEED)
    statuses = dict(report.statuses[label])
    details = "\n\n".join(report.examples)
    assert report.server_errors == 0, f"{report.server_errors} server errors; {statuses}\n{details}"
    assert report.schema_violations == 0, f"{report.schema_violations} schema violations; {statuses}\n{details}"
    assert report.transport_errors == 0, details
    assert report.sent[label] > 0
    codes = [code for code in statuses if isinstance(code, int)]
    if mode is GenerationMode.POSITIVE:
        assert any(200 <= code < 300 for code in codes), f"no positive request was accepted: {statuses}"
    else:
        assert any(400 <= code < 500 for code in codes), f"no negative request was refused: {statuses}"
