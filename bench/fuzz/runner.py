"""Schema-driven fuzzing of the API, shared by ``tests/test_fuzz.py`` and ``python -m bench.fuzz``.

Contract:

* :func:`load_schema` reads the OpenAPI document the app itself serves
  (drf-spectacular, ``/api/suggestions/schema/``), either from a WSGI
  application in this process or from a running server's URL.
* :func:`fuzz_operation` sends ``max_examples`` requests generated from one
  operation of that schema by schemathesis (Hypothesis underneath), in one
  generation mode: ``positive`` (requests the schema allows) or ``negative``
  (requests it forbids). The run is reproducible: a fixed Hypothesis seed, no
  example database, no shrinking. It never stops at the first problem: every
  response is classified and added to a :class:`FuzzReport`.
* A response is a **server error** when its status is 5xx (schemathesis'
  ``not_a_server_error``), and a **schema violation** when its status code is
  not documented for the operation, its content type is not the documented
  one, or its body does not validate against the documented response schema.
  Requests the transport could not send at all are counted as
  ``transport_errors`` (a 5xx-equivalent: the server closed or broke the
  connection).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import hypothesis
import hypothesis.errors
import schemathesis
from hypothesis import HealthCheck, Phase
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

#: Where the app serves its OpenAPI document (JSON) in the demo project.
SCHEMA_PATH = "/api/suggestions/schema/?format=json"

#: Checks whose failure is a schema violation (documented status, content type, body).
SCHEMA_CHECKS = [status_code_conformance, content_type_conformance, response_schema_conformance]

#: Both generation modes: what the schema allows, and what it forbids.
MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)

#: Examples kept per kind of problem (the first ones seen).
KEPT_EXAMPLES = 5


@dataclass
class FuzzReport:
    """What a fuzz run sent and what came back.

    Attributes:
        sent: Requests sent, by operation label (``"GET /api/suggestions/suggest/"``).
        statuses: Status codes received, by operation label.
        server_errors: Number of 5xx answers.
        schema_violations: Number of answers that broke the documented schema.
        transport_errors: Requests that got no HTTP answer at all.
        examples: The first few problems, each a readable text with a curl command.
    """

    sent: Counter = field(default_factory=Counter)
    statuses: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    server_errors: int = 0
    schema_violations: int = 0
    transport_errors: int = 0
    examples: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        """Requests sent over all operations."""
        return sum(self.sent.values())

    @property
    def problems(self) -> int:
        """Server errors, schema violations and transport errors together."""
        return self.server_errors + self.schema_violations + self.transport_errors

    def keep(self, text: str) -> None:
        if len(self.examples) < KEPT_EXAMPLES:
            self.examples.append(text)


def load_schema(*, app: Any = None, base_url: str | None = None, seed: int = 1):
    """The app's OpenAPI schema, loaded for schemathesis.

    Args:
        app: A WSGI application to call in this process (e.g. Django's
            ``get_wsgi_application()``).
        base_url: Instead, a running server (``http://127.0.0.1:8000``).
        seed: Seed recorded in the schemathesis configuration.

    Returns:
        The loaded schema; iterate over it with :func:`operations`.
    """
    config = schemathesis.Config.from_dict({"seed": seed, "generation": {"database": "none"}})
    if app is not None:
        schema = schemathesis.openapi.from_wsgi(SCHEMA_PATH, app, config=config)
    elif base_url is not None:
        schema = schemathesis.openapi.from_url(base_url.rstrip("/") + SCHEMA_PATH, config=config)
    else:
        raise ValueError("load_schema needs app or base_url")
    # schemathesis leaves out the operation its schema was read from; the
    # schema endpoint is public too, so it is fuzzed like the others.
    schema.location = None
    return schema


def operations(schema) -> list:
    """Every operation of ``schema``, sorted by label; a broken operation raises."""
    found = []
    for result in schema.get_all_operations():
        found.append(result.ok())
    return sorted(found, key=lambda op: op.label)


def _failure_text(case, response, error: FailureGroup, base_url: str | None) -> str:
    titles = "; ".join(sorted({failure.title for failure in error.exceptions}))
    try:
        curl = case.as_curl_command(base_url=base_url)
    except Exception:  # noqa: BLE001 - a report must never fail on its example
        curl = repr(case)
    body = response.content[:300] if response is not None else b""
    return f"{case.operation.label} -> {getattr(response, 'status_code', '?')}: {titles}\n  {curl}\n  body: {body!r}"


def fuzz_operation(operation, mode: GenerationMode, report: FuzzReport, *, max_examples: int,
                   seed: int, base_url: str | None = None, session: Any = None,
                   on_response: Callable[[Any, Any], None] | None = None) -> None:
    """Send up to ``max_examples`` generated requests to ``operation``; add what came back to ``report``.

    Hypothesis may send fewer when it runs out of distinct inputs (an
    operation without parameters has one, and no negative request at all);
    :attr:`FuzzReport.sent` counts what was really sent.

    Args:
        operation: One operation of :func:`operations`.
        mode: ``GenerationMode.POSITIVE`` or ``GenerationMode.NEGATIVE``.
        report: Where the figures are added.
        max_examples: Most requests to generate.
        seed: Hypothesis seed: the same seed sends the same requests.
        base_url: The running server (``None``: the schema's WSGI app).
        session: A ``requests.Session`` to reuse against ``base_url``.
        on_response: Called with ``(case, response)`` after each answer.
    """
    label = operation.label

    @hypothesis.seed(seed)
    @hypothesis.settings(
        max_examples=max_examples,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
    def run(case) -> None:
        report.sent[label] += 1
        try:
            response = case.call(base_url=base_url, session=session) if base_url else case.call()
        except Exception as exc:  # noqa: BLE001 - a dropped connection is a result, not a crash
            report.transport_errors += 1
            report.statuses[label]["no answer"] += 1
            report.keep(f"{label}: no answer ({type(exc).__name__}: {exc})\n  {case!r}")
            return
        report.statuses[label][response.status_code] += 1
        for checks, kind in (([not_a_server_error], "server_errors"), (SCHEMA_CHECKS, "schema_violations")):
            try:
                case.validate_response(response, checks=checks)
            except FailureGroup as error:
                setattr(report, kind, getattr(report, kind) + 1)
                report.keep(_failure_text(case, response, error, base_url))
        if on_response is not None:
            on_response(case, response)

    try:
        run()
    except hypothesis.errors.Unsatisfiable:
        # An operation without parameters or body has no request its schema forbids.
        if not mode.is_negative:
            raise


def fuzz(schema, report: FuzzReport, *, max_examples: int, seed: int,
         modes: Iterable[GenerationMode] = MODES, base_url: str | None = None, session: Any = None) -> None:
    """:func:`fuzz_operation` for every operation of ``schema`` in every mode."""
    for operation in operations(schema):
        for mode in modes:
            fuzz_operation(operation, mode, report, max_examples=max_examples, seed=seed,
                           base_url=base_url, session=session)
