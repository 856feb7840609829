"""The fuzz suite: every decoder meshd runs on bytes or text it did not write, under hostile input.

Layout:

- :mod:`.seeds` — real captured frames (``tests/fixtures/captures``: apache-dubbo-js → dubbo-remoting,
  sofa-rpc-node in both hessian grammars, and the frames quoted in docs/protocols.md) and the registry
  strings real SDKs write; every strategy starts from them.
- :mod:`.mutate` — hypothesis strategies that mutate seeds: bit flips, byte sets, truncation, insertion,
  deletion, splicing two seeds, and length fields overwritten with boundary values (0, -1, 2**31-1, ...),
  plus random splits of a stream into reads.
- :mod:`.bounds` — the hang guard (SIGALRM, per case) and the memory bound (tracemalloc peak).
- :mod:`.targets` — one plain function per decoder, ``check_<name>(data, ...)``: it runs the decoder and
  asserts the properties. The hypothesis tests (``test_fuzz_*.py``) and the atheris runner
  (``python -m tests.fuzz``) call the same functions.
- :mod:`.rig` — an in-process meshd (real listeners' protocol objects on in-memory transports) for the
  properties that need the proxy around the decoder.
- :mod:`.coverage_guided` — the same targets under atheris (libFuzzer), one process per target;
  ``__main__`` — the ``make fuzz`` runner over both engines.
- ``tests/e2e/test_garbage_traffic.py`` — the same idea against a running ``meshd run`` with real peers.

Properties, for every decoder:

1. only the codec's own error types escape (``CodecError``; ``URLError`` / ``DataError`` /
   ``InstanceError`` for registry data, as each parser documents);
2. memory stays bounded: a declared length never allocates (tracemalloc peak under a bound that
   depends on the input size only);
3. no input hangs a decoder (a wall-clock guard per case, generous: it catches loops, not slowness);
4. a bad frame costs at most its own connection: a stream decoder fed any split of a stream gives the
   same events and the same error as for one read, stays broken once broken (the same error again),
   recovers after ``FrameTooLarge``; module-level caches and fast paths never change an answer; in the
   proxy, a connection that sent garbage never changes what another connection gets.

Run lengths: ``make test`` runs the ``ci`` hypothesis profile (a few thousand cases per decoder);
``make fuzz FUZZ_SECONDS=3600`` runs ``python -m tests.fuzz``: rounds of the ``long`` profile with fresh
seeds, then atheris (coverage-guided, when it installs) over the same targets, for the time asked.
"""
