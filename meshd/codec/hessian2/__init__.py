"""Hessian 2 serialization in its two wire dialects, sans-IO.

- ``FinalReader`` / ``FinalEncoder``: final Hessian 2.0 (Caucho 4.x, Dubbo's hessian-lite, hessian.js 2.x);
  Dubbo2 bodies use it.
- ``DraftReader`` / ``DraftEncoder``: the Hessian 2.0 draft grammar (Caucho 3.1, sofa-hessian 3.x,
  hessian.js-1); Bolt bodies from SOFARPC and sofa-rpc-node use it. The lead bytes of the two grammars
  collide (``O``, ``V``, ``M``, ``R``, ``J``, ``K``, doubles, dates...), so each has its own 256-entry table.

A reader walks one body: ``read()`` builds the next value, ``skip()`` walks it without building it, and
both may be mixed on one body (class definitions, types and references are per body). Depth and the
total number of values are bounded (``values.DEFAULT_MAX_DEPTH`` / ``DEFAULT_MAX_VALUES``); every
malformed input raises :class:`HessianError` (a :class:`meshd.codec.base.ProtocolError`) and nothing
else. Encoders raise :class:`meshd.codec.base.EncodeError` for values Hessian cannot carry.

Python ↔ Hessian value mapping: see ``values`` and ``encoder``.
"""

from meshd.codec.hessian2.draft import DraftReader
from meshd.codec.hessian2.encoder import DraftEncoder, FinalEncoder, encode_draft, encode_final
from meshd.codec.hessian2.final import FinalReader
from meshd.codec.hessian2.reader import ClassDef, Reader
from meshd.codec.hessian2.values import (
    DEFAULT_MAX_DEPTH, DEFAULT_MAX_VALUES, HessianError, JavaDate, JavaObject, Long, MapKey, SkippedRef,
    TypedList, TypedMap,
)


def decode_final(data: bytes | bytearray) -> list:
    """Every value of a final-grammar body, in order."""
    return FinalReader(data).read_all()


def decode_draft(data: bytes | bytearray) -> list:
    """Every value of a draft-grammar body, in order."""
    return DraftReader(data).read_all()


__all__ = [
    "FinalReader", "DraftReader", "Reader", "ClassDef", "FinalEncoder", "DraftEncoder",
    "encode_final", "encode_draft", "decode_final", "decode_draft",
    "HessianError", "JavaObject", "TypedList", "TypedMap", "Long", "JavaDate", "MapKey", "SkippedRef",
    "DEFAULT_MAX_DEPTH", "DEFAULT_MAX_VALUES",
]
