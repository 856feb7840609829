"""Write coalescing: per batch by default, per event-loop iteration in a running meshd (``defer``)."""

from __future__ import annotations

import asyncio

from integration.transport import FakeTransport
from meshd import writebatch


def test_without_deferral_a_batch_writes_once_at_its_end_and_other_writes_go_straight_through():
    t = FakeTransport()
    writebatch.write(t, b"a")
    assert t.out == [b"a"]
    writebatch.begin()
    writebatch.write(t, b"b")
    writebatch.begin()
    writebatch.write(t, b"c")
    writebatch.end()
    assert t.out == [b"a"], "the outermost end writes"
    writebatch.end()
    assert t.out == [b"a", b"bc"]


def test_deferred_writes_of_one_loop_iteration_go_out_together_in_order():
    async def run():
        loop = asyncio.get_running_loop()
        one, two = FakeTransport(), FakeTransport()
        writebatch.defer(True)
        try:
            def read_a():                     # two "reads" handled in the same iteration
                writebatch.begin()
                writebatch.write(one, b"1")
                writebatch.end()
                writebatch.write(two, b"x")

            def read_b():
                writebatch.write(one, b"2")
                writebatch.write(two, b"y")
            loop.call_soon(read_a)
            loop.call_soon(read_b)
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            assert one.out == [b"12"] and two.out == [b"xy"], "one write per transport per iteration"

            writebatch.write(one, b"3")
            assert one.out == [b"12"], "held until the iteration ends"
            writebatch.close(one)             # closing writes what is held first
            assert one.out == [b"12", b"3"] and one.closed
            writebatch.write(two, b"z")
            writebatch.write(one, b"lost")    # a transport closed meanwhile is not written to
        finally:
            writebatch.defer(False)           # what a stopping meshd does: whatever is held is written
        assert two.out == [b"xy", b"z"] and one.out == [b"12", b"3"]
        writebatch.write(two, b"now")
        assert two.out[-1] == b"now", "not deferred any more"
    asyncio.run(run())


def test_deferral_without_a_running_loop_holds_nothing_back():
    t = FakeTransport()
    writebatch.defer(True)
    try:
        writebatch.write(t, b"a")
        assert t.out == [b"a"]
        writebatch.begin()
        writebatch.write(t, b"b")
        writebatch.end()
        assert t.out == [b"a", b"b"]
    finally:
        writebatch.defer(False)
