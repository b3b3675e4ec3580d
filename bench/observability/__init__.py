"""What the Prometheus metrics cost the suggest path.

``python -m bench.observability`` times, in one process on the same data:

* each request-path update on its own (a labelled counter increment, a
  histogram observation, the ``observed`` timer around a call): nanoseconds per
  call, median of rounds;
* a warm ``GET suggest/`` through the whole DRF view (Django's test client,
  in process: no network), with ``SUGGESTIONS_METRICS`` on and off, rounds
  interleaved so that machine noise hits both alike: median microseconds per
  request and the difference.

Prints a markdown table and the command line; the figures go to
bench/RESULTS.md.
"""
