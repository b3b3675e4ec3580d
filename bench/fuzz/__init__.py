"""``python -m bench.fuzz``: schema-generated requests to every API operation, a long run.

The machinery of ``tests/test_fuzz.py`` (:mod:`bench.fuzz.runner`: schemathesis
reading the OpenAPI schema the app serves, positive and negative requests,
checks for 5xx and for answers the schema does not document) run for many
more requests: ``--requests`` (default 10,000), in rounds of
``--per-round`` requests per operation and mode, each round with the next
Hypothesis seed so that rounds send different requests.

Against a running server with ``--base-url`` (any deployment of the demo
project), or in this process (the default) on a throwaway SQLite database
with a slice of the Icecat catalog, a few searches and the suggestions built
from them (:mod:`bench.fuzz.settings`).

Printed: requests and status codes by operation, server errors, schema
violations, requests that got no answer, with the first few examples (a curl
command each), and the share of *positive* requests (allowed by the schema)
that were refused with a 4xx: rules the validators enforce but the schema
does not state. Exit status 1 on any server error, schema violation or
unanswered request.
"""
