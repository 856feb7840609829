"""Cross-check our hessian readers and writers against the JavaScript oracles (run with node):
hessian.js-1 for the draft grammar (Bolt bodies), hessian.js 2.x for the final grammar (Dubbo bodies).

Inputs: the bodies captured from real peers (tests/fixtures/captures) and a seeded batch of values our
encoders write. JSON is the common ground: objects compare by fields, map keys as strings, binaries as hex,
dates as milliseconds, longs beyond 2^53 as decimal strings (the oracles' own conventions).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import random
import string
from pathlib import Path
from typing import Any

import pytest

from integration import peers
from meshd.codec import bolt, dubbo
from meshd.codec.base import NEED_DATA
from meshd.codec.hessian2 import JavaObject, decode_draft, decode_final, encode_draft, encode_final

pytestmark = pytest.mark.peers
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
CAPTURES = Path(__file__).resolve().parents[2] / "fixtures" / "captures"


def capture_streams(name: str) -> dict[tuple[int, str], bytes]:
    out: dict[tuple[int, str], bytes] = {}
    for conn, tag, data in peers.read_tap_log(CAPTURES / name):
        out[(conn, tag)] = out.get((conn, tag), b"") + data
    return out


def oracle(dialect: str, bodies: list[bytes]) -> list[dict[str, Any]]:
    proc = peers.run_node("hessian_decode", "--dialect", dialect, "--batch",
                          input=json.dumps([b.hex() for b in bodies]).encode(), timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["results"]


def js_shape(value: Any) -> Any:
    """Our decoded value in the oracle's JSON conventions."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value if abs(value) < 2**53 else str(value)     # Number.isSafeInteger
    if isinstance(value, float):
        return value
    if isinstance(value, (bytes, bytearray)):
        return {"$binary": bytes(value).hex()}
    if isinstance(value, dt.datetime):
        return {"$date": round((value - EPOCH).total_seconds() * 1000)}
    if isinstance(value, dict):                       # JavaObject included: JS objects keep the fields only
        return {str(k): js_shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [js_shape(v) for v in value]
    raise TypeError(type(value))


def same(ours: Any, theirs: Any) -> bool:
    if isinstance(ours, bool) or isinstance(theirs, bool):
        return ours is theirs
    if {type(ours), type(theirs)} == {str, int}:       # longs beyond 2^53: the oracles differ (string or number)
        return str(ours) == str(theirs)
    if isinstance(ours, (int, float)) and isinstance(theirs, (int, float)):
        return ours == theirs or math.isclose(ours, theirs, rel_tol=1e-15)
    if isinstance(ours, list) and isinstance(theirs, list):
        return len(ours) == len(theirs) and all(same(a, b) for a, b in zip(ours, theirs))
    if isinstance(ours, dict) and isinstance(theirs, dict):
        return ours.keys() == theirs.keys() and all(same(ours[k], theirs[k]) for k in ours)
    return ours == theirs


def random_value(rng: random.Random, depth: int = 0) -> Any:
    kinds = ["null", "bool", "int", "long", "double", "string", "binary", "date"]
    if depth < 3:
        kinds += ["list", "map", "object"] * 2
    kind = rng.choice(kinds)
    if kind == "null":
        return None
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "int":
        return rng.choice([0, -16, 47, 48, -2048, 2047, 262143, -262144, rng.randint(-2**31, 2**31 - 1)])
    if kind == "long":
        return rng.choice([2**31, -2**31 - 1, 2**40, 2**53, rng.randint(-2**53, 2**53)])
    if kind == "double":
        return rng.choice([0.0, 1.0, -1.0, 127.0, -32768.0, 0.5, 1.25, 3.141592653589793, 1e-10, 1e300,
                           rng.uniform(-1e6, 1e6), float(rng.randint(-40000, 40000))])
    if kind == "string":
        alphabet = string.ascii_letters + "z{|}~\u00e9\u4e16\u754c\U0001F600 "
        return "".join(rng.choice(alphabet) for _ in range(rng.choice([0, 1, 5, 31, 32, 200, 1100])))
    if kind == "binary":
        return bytes(rng.randrange(256) for _ in range(rng.choice([0, 3, 15, 16, 300])))
    if kind == "date":
        return EPOCH + dt.timedelta(milliseconds=rng.randint(0, 4_000_000_000_000))
    if kind == "list":
        return [random_value(rng, depth + 1) for _ in range(rng.randint(0, 9))]
    if kind == "map":
        return {"".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(1, 6))): random_value(rng, depth + 1)
                for _ in range(rng.randint(0, 5))}
    fields = {name: random_value(rng, depth + 1) for name in rng.sample(["a", "bb", "name", "items", "v"], rng.randint(0, 5))}
    return JavaObject(rng.choice(["com.example.A", "com.example.B"]), fields)




def _batch(seed: int) -> list[Any]:
    rng = random.Random(seed)
    return [random_value(rng) for _ in range(3)]


BATCH = [_batch(seed) for seed in range(150)]


@pytest.mark.parametrize("dialect,encode,decode", [("draft", encode_draft, decode_draft),
                                                   ("final", encode_final, decode_final)])
def test_oracles_read_what_we_write(peers_dir, dialect, encode, decode):
    bodies = [encode(*vals) for vals in BATCH]
    results = oracle(dialect, bodies)
    for vals, body, result in zip(BATCH, bodies, results):
        assert "error" not in result, (result, vals)
        assert same(js_shape(decode(body)), result["values"]), (vals, result["values"])
        assert same(js_shape(vals), result["values"])


def _bolt_contents(name: str) -> list[bytes]:
    out = []
    for data in capture_streams(name).values():
        dec = bolt.BoltDecoder()
        dec.receive_data(data)
        while (ev := dec.next_event()) is not NEED_DATA:
            if hasattr(ev, "content") and ev.content():
                out.append(ev.content())
    return out


def _dubbo_bodies() -> list[bytes]:
    out = []
    for data in capture_streams("dubbo_js_to_sofa_dubbo.tap").values():
        dec = dubbo.DubboDecoder()
        dec.receive_data(data)
        while (ev := dec.next_event()) is not NEED_DATA:
            out.append(bytes(ev.frame[16:]))
    return out


@pytest.mark.parametrize("dialect,bodies,decode", [
    ("draft", _bolt_contents("sofa_node_bolt_draft.tap"), decode_draft),
    ("final", _bolt_contents("sofa_node_bolt_final.tap"), decode_final),
    ("final", _dubbo_bodies(), decode_final),
], ids=["bolt-draft-captures", "bolt-final-captures", "dubbo-captures"])
def test_we_read_captured_bodies_as_the_oracles_do(peers_dir, dialect, bodies, decode):
    assert bodies
    for body, result in zip(bodies, oracle(dialect, bodies)):
        assert "error" not in result, result
        ours = js_shape(decode(body))
        theirs = result["values"]
        # hessian.js-1 turns a Java exception object into an Error: compare its message
        ours = [{"$error": v["detailMessage"]} if isinstance(v, dict) and {"detailMessage", "stackTrace"} <= v.keys()
                and isinstance(t, dict) and "$error" in t else v for v, t in zip(ours, theirs)]
        for o, t in zip(ours, theirs):
            if isinstance(t, dict) and "$error" in t:
                assert t["$error"].endswith(o["$error"])
            else:
                assert same(o, t), (o, t)
        assert len(ours) == len(theirs)
