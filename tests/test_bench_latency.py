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


def _fake_valgrind(tmp_path, per_request, base=1_000_000, fail_at=None):
    """A stand-in for valgrind: prints callgrind's summary line, its total growing with --count."""
    script = tmp_path / "valgrind"
    script.write_text(
        "#!/usr/bin/env python3\n"
        "import sys\n"
        "args = sys.argv[1:]\n"
        "endpoint, n = args[args.index('--inner') + 1], int(args[args.index('--count') + 1])\n"
        f"if {fail_at!r} == endpoint:\n"
        "    print('Traceback: the counted run broke', file=sys.stderr); sys.exit(3)\n"
        f"per = {per_request!r}[endpoint]\n"
        f"print(f'==7== I   refs:      {{{base} + per * n:,}}', file=sys.stderr)\n")
    script.chmod(0o755)
    return str(script)


def test_instruction_counts_are_the_difference_of_two_runs_per_request(tmp_path, capsys):
    from bench.latency import instructions

    fake = _fake_valgrind(tmp_path, {"suggest": 2_500, "trivial": 1_000})
    assert instructions.main(["--valgrind", fake, "--requests", "50", "--warmup", "10"]) == 0
    out = capsys.readouterr().out
    assert "suggest:    0.003 M instructions/request" in out  # 2,500 per request, start-up cancelled
    assert "trivial/suggest instruction ratio: 0.400" in out


def test_a_failed_counted_run_is_an_error_with_its_output(tmp_path):
    from bench.latency import instructions

    fake = _fake_valgrind(tmp_path, {"suggest": 2_500, "trivial": 1_000}, fail_at="trivial")
    with pytest.raises(SystemExit, match=r"(?s)counted run of trivial .* failed .*the counted run broke"):
        instructions.main(["--valgrind", fake])
    with pytest.raises(SystemExit):
        instructions.parse_args(["--requests", "0"])
