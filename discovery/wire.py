"""Codecs the daemon lends to sources that speak an RPC protocol to their registry (SOFARegistry: Bolt + hessian2).

:mod:`discovery` imports nothing of meshd, yet a SOFARegistry session server speaks exactly what meshd's data
plane speaks. So the daemon passes its own codecs in (:attr:`discovery.source.SourceContext.bolt`), behind the
:class:`BoltWire` protocol below, and the source never sees meshd's types: it builds Java values with
:meth:`BoltWire.obj` / :meth:`BoltWire.long`, and reads decoded values as plain ``dict`` (an object's fields, a
map), ``list``, ``str``, ``int``, ``bool`` and ``None``, asking :meth:`BoltWire.class_of` for an object's class.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol


class BoltMessage(NamedTuple):
    """One Bolt frame, decoded.

    ``kind`` is ``request``, ``oneway``, ``response``, ``heartbeat`` or ``heartbeat_ack``; or ``broken``, the
    last message a decoder ever gives, when the stream cannot be framed any further (``error`` says why: close
    the connection). ``value`` is the content (hessian2) of a request or response; ``error`` is set instead when
    the frame was whole but its content could not be read (another codec, bad hessian): that frame is lost, the
    stream is not.
    """

    kind: str
    request_id: int
    class_name: str
    value: Any
    status: int = 0
    error: str = ""


class BoltDecoder(Protocol):
    def feed(self, data: bytes) -> list[BoltMessage]:
        """The messages complete after ``data`` (ending with a ``broken`` one when the stream is)."""


class BoltWire(Protocol):
    """Bolt v1 with hessian2 contents, as sofa-bolt's ``RpcClient`` / ``RpcServer`` send plain objects."""

    def obj(self, class_name: str, fields: dict[str, Any]) -> Any:
        """A Java object to encode; ``fields`` in the order Java's serializer writes them."""

    def long(self, value: int) -> Any:
        """A Java ``long`` / ``java.lang.Long`` (a plain int encodes as ``int``)."""

    def class_of(self, value: Any) -> str | None:
        """The Java class of a decoded object, None for anything else."""

    def request(self, request_id: int, value: Any, timeout_ms: int) -> bytes:
        """A two-way request frame whose class is ``value``'s and whose content is ``value``."""

    def response(self, request_id: int, value: Any, status: int = 0) -> bytes:
        """The response frame to ``request_id`` carrying ``value``; status only (no class, no content) when
        ``value`` is None."""

    def heartbeat(self, request_id: int) -> bytes: ...

    def heartbeat_ack(self, request_id: int) -> bytes: ...

    def decoder(self, max_frame_size: int) -> BoltDecoder: ...
