"""TLS material (no sockets): SAN patterns, certificate checks, SNI choice, rotation that keeps the last good set."""

from __future__ import annotations

import os
import shutil

import pytest

from integration.certs import TestPKI
from meshd.tls.certs import CertError, inspect_pair
from meshd.tls.context import ClientTls, ServerTls
from meshd.tls.san import check_pattern, identity, matches

SPIFFE = "spiffe://cluster.local/ns/default/sa/"


@pytest.mark.parametrize("san, pattern, ok", [
    (("URI", SPIFFE + "client"), SPIFFE + "*", True),
    (("URI", SPIFFE + "client/extra"), SPIFFE + "*", False),         # "*" is one path segment
    (("URI", "SPIFFE://Cluster.Local/ns/default/sa/client"), SPIFFE + "*", True),   # scheme and authority: any case
    (("URI", SPIFFE + "Client"), SPIFFE + "client", False),          # the path is exact
    (("URI", "spiffe://other.local/ns/default/sa/client"), SPIFFE + "*", False),
    (("DNS", "a.example.com"), "*.example.com", True),
    (("DNS", "a.b.example.com"), "*.example.com", False),           # one label
    (("DNS", "A.Example.com"), "a.example.com", True),
    (("DNS", "a.example.com"), SPIFFE + "*", False),                # a DNS SAN never matches a URI pattern
])
def test_san_patterns(san, pattern, ok):
    assert matches([san], [pattern]) is ok


@pytest.mark.parametrize("pattern", ["", "a b", "spiffe://", "*a.example.com", "a..example.com"])
def test_bad_san_patterns_are_named(pattern):
    with pytest.raises(ValueError):
        check_pattern(pattern)


def test_identity_prefers_the_spiffe_id():
    cert = {"subject": ((("commonName", "client"),),), "subjectAltName": (("DNS", "c.example.com"),
                                                                          ("URI", SPIFFE + "client"))}
    assert identity(cert) == SPIFFE + "client"
    assert identity({"subject": ((("commonName", "client"),),)}) == "client"


def test_certificate_checks_name_the_file_and_the_reason(tmp_path):
    pki = TestPKI(tmp_path)
    good = pki.leaf("good", dns=["a.example.com"])
    info = inspect_pair(good.cert, good.key, now=__import__("time").time())
    assert info.sans == ("DNS:a.example.com",) and info.dns_names == ("a.example.com",) and info.serial
    for leaf, words in ((pki.leaf("old", dns=["a"], days=-1), "expired at"),
                        (pki.leaf("later", dns=["a"], starts_in_days=1, days=3), "is not valid before"),
                        (pki.mismatched("wrong", dns=["a"]), "does not match certificate")):
        with pytest.raises(CertError) as err:
            inspect_pair(leaf.cert, leaf.key, now=__import__("time").time())
        assert words in str(err.value) and os.path.basename(leaf.cert).split(".")[0] in str(err.value)
    with pytest.raises(CertError, match="unreadable"):
        inspect_pair(str(tmp_path / "missing.pem"), good.key, now=0)


def test_sni_picks_exact_then_wildcard_then_first(tmp_path):
    pki = TestPKI(tmp_path)
    a, b, wild = (pki.leaf("a", dns=["a.example.com"]), pki.leaf("b", dns=["b.example.com"]),
                  pki.leaf("wild", dns=["*.svc.example.com"]))
    tls = ServerTls("listener:x", [(a.cert, a.key), (b.cert, b.key), (wild.cert, wild.key)])
    contexts = {name: tls.pick(name) for name in ("a.example.com", "B.example.com", "x.svc.example.com",
                                                  "y.z.svc.example.com", "other.org", None)}
    assert contexts["a.example.com"] is tls.context                  # the first is also the default
    assert contexts["B.example.com"] is not tls.context and contexts["B.example.com"] is tls.pick("b.example.com")
    assert contexts["x.svc.example.com"] not in (tls.context, contexts["B.example.com"])
    assert contexts["y.z.svc.example.com"] is tls.context and contexts["other.org"] is tls.context


def test_rotation_applies_a_good_set_and_keeps_the_old_one_otherwise(tmp_path):
    pki = TestPKI(tmp_path / "pki")
    live = tmp_path / "live"
    live.mkdir()
    first = pki.leaf("first", dns=["a.example.com"])
    cert, key = str(live / "cert.pem"), str(live / "key.pem")
    shutil.copy(first.cert, cert)
    shutil.copy(first.key, key)
    tls = ServerTls("listener:x", [(cert, key)])
    serial, context = tls.certs[0].serial, tls.context
    assert not tls.changed()

    bad = pki.mismatched("bad", dns=["a.example.com"])
    shutil.copy(bad.cert, cert)
    shutil.copy(bad.key, key)
    assert tls.changed() and tls.reload() is False
    assert "does not match" in tls.last_error and tls.certs[0].serial == serial and tls.context is context
    assert not tls.changed()                        # the failed state is remembered: no reload loop

    second = pki.leaf("second", dns=["a.example.com"])
    shutil.copy(second.cert, cert)
    shutil.copy(second.key, key)
    os.utime(cert, ns=(os.stat(cert).st_mtime_ns + 10**9,) * 2)
    assert tls.reload() is True and tls.last_error == "" and tls.certs[0].serial != serial
    assert tls.context is not context and tls.status()["certificates"][0]["serial"] == tls.certs[0].serial


def test_a_first_load_that_fails_fails_loudly(tmp_path):
    pki = TestPKI(tmp_path)
    old = pki.leaf("old", dns=["a"], days=-1)
    with pytest.raises(CertError, match="tls listener:x: certificate .*old.pem expired"):
        ServerTls("listener:x", [(old.cert, old.key)])


def test_peer_admission_and_client_verify_san(tmp_path):
    pki = TestPKI(tmp_path)
    server = pki.leaf("server", dns=["a.example.com"])
    tls = ServerTls("l", [(server.cert, server.key)], client_ca=pki.ca_path, require_client_cert=True,
                    allowed_sans=[SPIFFE + "*"])
    good = {"subjectAltName": (("URI", SPIFFE + "client"),)}
    assert tls.admit(good) == (SPIFFE + "client", "")
    assert tls.admit({"subjectAltName": (("URI", "spiffe://x/y"),)}) == ("", "san_not_allowed")
    assert tls.admit(None) == ("", "no_client_cert")
    client = ClientTls("c", ca=pki.ca_path, verify_san=[SPIFFE + "demo"])
    assert client.check_peer({"subjectAltName": (("URI", SPIFFE + "demo"),)}) == ""
    assert client.check_peer({"subjectAltName": (("DNS", "demo"),)}) == "san_mismatch"
    assert client.context.check_hostname is False
    assert ClientTls("c2", ca=pki.ca_path, sni="a.example.com").context.check_hostname is True
