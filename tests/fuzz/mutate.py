"""Hypothesis strategies that mutate seeds, and random splits of a stream into reads.

:func:`mutated` draws a seed and applies 0-6 mutations (0: the real bytes as captured). The mutations are
what breaks decoders in practice: bit flips and byte sets, truncation, insertion and deletion, splicing
the tail of another seed (a frame boundary in the wrong place), repeating a range (pipelined frames), and
overwriting a length field — a known one of the seed, or any 1/2/4/8 bytes — with a boundary value.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from hypothesis import strategies as st

from tests.fuzz.seeds import Seed

MUTATION_COUNTS = (0, 1, 1, 1, 2, 2, 3, 4, 6)
"""How many mutations a case gets: mostly few, so that most of a real stream survives to reach deep states."""
OPS = ("flip", "set", "cut", "insert", "delete", "splice", "repeat", "length", "boundary")


def boundary_values(width: int, room: int, limit: int) -> list[int]:
    """Values worth writing into a ``width``-byte length field: 0, 1, the sign edges, all ones, the bytes
    actually left (``room``) and one more, and the frame limit and one more."""
    top = 1 << (8 * width)
    values = {0, 1, top // 2 - 1, top // 2, top - 1, room, room + 1, limit, limit + 1, 0x7F, 0x80, 0xFF}
    return sorted(v for v in values if 0 <= v < top)


@st.composite
def mutated(draw: Callable[..., Any], seeds: Sequence[Seed], limit: int = 4096, max_ops: int = 6) -> bytes:
    seed = draw(st.sampled_from(seeds))
    data = bytearray(seed.data)
    lengths = list(seed.lengths)
    for _ in range(draw(st.sampled_from(MUTATION_COUNTS)) if max_ops >= 6 else draw(st.integers(0, max_ops))):
        op = draw(st.sampled_from(OPS))
        if not data:
            data += draw(st.binary(min_size=1, max_size=16))
            continue
        i = draw(st.integers(0, len(data) - 1))
        if op == "flip":
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "set":
            data[i] = draw(st.integers(0, 255))
        elif op == "cut":
            del data[i:]
        elif op == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del data[i:i + draw(st.integers(1, 16))]
        elif op == "splice":
            other = draw(st.sampled_from(seeds)).data
            data[i:] = other[draw(st.integers(0, max(len(other) - 1, 0))):]
        elif op == "repeat":
            j = draw(st.integers(i, len(data)))
            data[j:j] = data[i:j] * draw(st.integers(1, 3))
        else:
            if op == "length" and lengths:
                at, width = draw(st.sampled_from(lengths))
            else:
                at, width = i, draw(st.sampled_from((1, 2, 4, 8)))
            if at + width > len(data):
                continue
            value = draw(st.sampled_from(boundary_values(width, len(data) - at - width, limit)))
            data[at:at + width] = value.to_bytes(width, "big")
    return bytes(data)


def seeds_or_random(seeds: Sequence[Seed], limit: int = 4096, max_size: int = 2048) -> st.SearchStrategy[bytes]:
    """Mostly mutated seeds, sometimes plain random bytes (the decoder must not trust the seeds' shape)."""
    return st.one_of(*[mutated(seeds, limit)] * 7, st.binary(max_size=max_size))


# Read sizes for a stream: one read, a few random sizes (cycled), or one byte at a time (slow-loris).
chunkings = st.one_of(st.just([]), st.lists(st.integers(1, 96), min_size=1, max_size=8), st.just([1]))


def split(data: bytes, chunks: Sequence[int]) -> list[bytes]:
    """``data`` cut into reads of the sizes in ``chunks`` (cycled); ``[]`` means one read."""
    if not chunks:
        return [data] if data else []
    out, pos, i = [], 0, 0
    while pos < len(data):
        n = max(1, chunks[i % len(chunks)])
        out.append(data[pos:pos + n])
        pos += n
        i += 1
    return out


text_ops = ("replace", "insert", "delete", "cut", "dup")
NASTY = ["", ":", "::", "/", "//", "?", "&", "=", "@", "[", "]", "[::1]", "%", "%zz", "%ff", "%C3%A9", "+", "*",
         "\x00", " ", "\u00b2", "\u0661\u0662", "\uff11", "\U0001f600", "-1", "0", "65536", "99999999999",
         "9" * 5000, "1e309", "nan", "NaN", "+5", "0x10", "%ED%A0%80"]


@st.composite
def mutated_text(draw: Callable[..., Any], seeds: Sequence[str], max_ops: int = 5) -> str:
    """A registry string mutated at random places with separators, escapes, odd digits and huge numbers."""
    text = draw(st.sampled_from(seeds))
    for _ in range(draw(st.integers(0, max_ops))):
        op = draw(st.sampled_from(text_ops))
        i = draw(st.integers(0, len(text)))
        piece = draw(st.one_of(st.sampled_from(NASTY), st.text(max_size=6)))
        if op == "replace":
            text = text[:i] + piece + text[i + draw(st.integers(1, 8)):]
        elif op == "insert":
            text = text[:i] + piece + text[i:]
        elif op == "delete":
            text = text[:i] + text[i + draw(st.integers(1, 8)):]
        elif op == "cut":
            text = text[:i]
        else:
            j = draw(st.integers(i, len(text)))
            text = text[:j] + text[i:j] + text[j:]
    return text
