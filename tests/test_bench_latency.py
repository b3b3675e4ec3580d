"""The load benchmark's server shape: every gunicorn worker gets its share of wrk's connections."""

from __future__ import annotations

import argparse

import pytest

from bench.latency.__main__ import server_shape


def _args(**kw):
    base = {"worker_class": "gthread", "workers": 2, "threads": 4}
    return argparse.Namespace(**{**base, **kw})


@pytest.mark.parametrize(("connections", "expected"), [(16, (8, 4)), (8, (4, 3)), (4, (2, 1)), (5, (3, 2))])
def test_each_worker_is_capped_at_its_share_and_keeps_connections_alive(connections, expected):
    worker_connections, threads = server_shape(_args(), connections)
    assert (worker_connections, threads) == expected
    assert worker_connections * 2 >= connections  # every connection finds a worker
    assert threads < worker_connections  # gthread keeps connections alive only then


def test_no_cap_where_it_cannot_balance():
    assert server_shape(_args(), 2) == (None, 4)
    assert server_shape(_args(worker_class="sync"), 16) == (None, 4)
