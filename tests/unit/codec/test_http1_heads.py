"""``http1.whole_head``: the head at the start of a read, only when it is exactly the bytes the parser read."""

from __future__ import annotations

import httptools
from hypothesis import given
from hypothesis import strategies as st

from meshd.codec.http1 import whole_head

_TOKEN = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyzABC-0123456789"), min_size=1, max_size=10)
_VALUE = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7e), max_size=16)
_HEADERS = st.lists(st.tuples(_TOKEN, _VALUE), max_size=6)


def _head(method: str, url: str, headers: list[tuple[str, str]]) -> bytes:
    return (f"{method} {url} HTTP/1.1\r\n" + "".join(f"{n}: {v}\r\n" for n, v in headers) + "\r\n").encode()


class _Parsed:
    def __init__(self) -> None:
        self.url, self.headers, self.done = b"", 0, False

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers += 1

    def on_headers_complete(self) -> None:
        self.done = True


@given(method=st.sampled_from(["GET", "PUT", "OPTIONS"]), url=st.from_regex(r"/[a-z0-9/?=]{0,12}", fullmatch=True),
       headers=_HEADERS, rest=st.binary(max_size=30))
def test_the_head_the_parser_read_is_found_and_nothing_past_it(method, url, headers, rest):
    head = _head(method, url, headers)
    data = head + rest
    parsed = _Parsed()
    parser = httptools.HttpRequestParser(parsed)
    try:
        parser.feed_data(head)
    except httptools.HttpParserError:
        return                                # not a head httptools accepts: never forwarded
    assert parsed.done
    first = len(method) + len(parsed.url) + 10
    assert whole_head(data, parsed.headers, method.encode(), first) == head
    assert whole_head(data, parsed.headers + 1, method.encode(), first) is None, "a header it did not see"
    assert whole_head(b"\r\n" + data, parsed.headers, method.encode(), first) is None, "an empty line first"
    assert whole_head(data[:len(head) - 1], parsed.headers, method.encode(), first) is None, "not whole yet"
    assert whole_head(data, parsed.headers, method.encode(), first + 1) is None, "a target split across reads"


def test_bare_line_feeds_and_other_starts_are_refused():
    assert whole_head(b"GET / HTTP/1.1\nHost: a\r\n\r\n", 1, b"GET") is None
    assert whole_head(b"HTTP/1.1 200 OK\r\nA: b\r\n\r\n", 1, b"HTTP/1.1 ") == b"HTTP/1.1 200 OK\r\nA: b\r\n\r\n"
    assert whole_head(b"HTTP/1.0 200 OK\r\nA: b\r\n\r\n", 1, b"HTTP/1.1 ") is None
    assert whole_head(b"", 0, b"GET") is None
