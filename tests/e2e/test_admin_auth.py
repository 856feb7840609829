"""End to end: the admin API's token, TLS and audit log on a real ``meshd run``, driven with curl and urllib.

No token → 401 for every mutation and nothing applied; a wrong token → 401; the right one → applied, one audit
line each. Reads stay open on loopback; off loopback they need the token too (but the health probes). A
non-loopback admin without a token refuses to start (before it binds anything), naming ``admin.token``. The
token can live in a file next to the config. Over TLS (curl with a client certificate) the verified SPIFFE id
is the audited "who", a client with a SAN outside ``allowed_sans`` gets 403, and a rotated certificate applies
to new handshakes. A registry API takes its own token.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import time

import pytest
import yaml

from integration.certs import TestPKI
from integration.process import MeshdError, free_port
from tests.e2e import test_zookeeper_discovery as zk
from tests.e2e.test_tls import served_serial
from tests.e2e.test_zookeeper_discovery import IFACE, api_get, api_post, children, meshd_config, zk_source

zk_server, zk_root, zk_writer = zk.zk_server, zk.zk_root, zk.zk_writer   # the ZooKeeper fixtures

TOKEN = "s3cret-admin-token-4d2c"
SPIFFE = "spiffe://cluster.local/ns/ops/sa/"
FLOW = json.dumps([{"resource": "GET:/x", "threshold": 5}]).encode()
BASE = {"listeners": [], "access_log": {"path": None}}


def curl(url: str, *extra: str) -> tuple[int, str]:
    """(status, body) of one curl call (status 0 when no HTTP answer came: a failed TLS handshake, say)."""
    out = subprocess.run(["curl", "-sS", "--max-time", "5", "-w", "\n%{http_code}", *extra, url],
                         capture_output=True, text=True, timeout=15)
    body, _, status = out.stdout.rpartition("\n")
    return int(status or 0), body


def audit_lines(m) -> list[str]:
    return [line.split("meshd.audit: ", 1)[1] for line in m.log().splitlines() if "meshd.audit: " in line]


def rules_version(m, kind: str = "flow"):
    return m.admin_json("/rules")[kind]["version"]


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.05)


def local_address() -> str | None:
    """An address of this machine that is not loopback (None when it has none)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))                   # no packet is sent: this picks the outgoing address
            address = s.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") or address == "0.0.0.0" else address


def run_config(tmp_path, config: dict, *command: str) -> subprocess.CompletedProcess:
    path = tmp_path / "refused.yaml"
    path.write_text(yaml.safe_dump(config))
    return subprocess.run([sys.executable, "-m", "meshd", *command, "-c", str(path)], capture_output=True,
                          text=True, timeout=30, cwd=tmp_path)


# ------------------------------------------------------------------------------------------------ token
def test_mutations_need_the_token_and_only_accepted_ones_apply(meshd_run):
    m = meshd_run({**BASE, "admin": {"address": f"127.0.0.1:{free_port()}", "token": TOKEN}})
    base = f"http://{m.admin_address}"
    assert rules_version(m) is None
    for header in ((), ("-H", "Authorization: Bearer wrong-token"), ("-H", f"Authorization: Basic {TOKEN}"),
                   ("-H", f"Authorization: Bearer {TOKEN}x")):
        assert curl(f"{base}/rules/flow?dialect=go", "-X", "PUT", "--data-binary", FLOW, *header)[0] == 401
        rollback = '{"kind": "flow", "version": 1}'
        assert curl(f"{base}/rules/rollback", "-X", "POST", "-d", rollback, *header)[0] == 401
        assert curl(f"{base}/drain", "-X", "POST", *header)[0] == 401
    status, body = curl(f"{base}/rules/flow", "-X", "PUT", "--data-binary", FLOW, "-i")
    assert 'WWW-Authenticate: Bearer realm="meshd admin"' in body and "Bearer <admin.token>" in body
    assert rules_version(m) is None and m.admin("/healthz") == (200, "ok\n"), "nothing was applied, no drain"

    # reads stay open on loopback, and the token is not in any of them
    for path in ("/rules", "/clusters", "/listeners", "/certs", "/config_dump", "/stats/prometheus", "/rules/history"):
        status, text = curl(f"{base}{path}")
        assert status == 200 and TOKEN not in text, path
    assert m.admin_json("/config_dump")["admin"]["token"] == "**********"

    auth = ("-H", f"Authorization: Bearer {TOKEN}")
    status, body = curl(f"{base}/rules/flow?dialect=go", "-X", "PUT", "--data-binary", FLOW, *auth)
    assert status == 200 and json.loads(body)["rules"] == 1 and rules_version(m) == 1
    assert curl(f"{base}/rules/flow?dialect=go", "-X", "PUT", "--data-binary", b"[]", *auth)[0] == 200
    status, body = curl(f"{base}/rules/rollback", "-X", "POST", "-d", '{"kind": "flow", "version": 1}', *auth)
    assert status == 200 and json.loads(body)["status"] == "applied" and rules_version(m) == 3
    assert curl(f"{base}/rules/flow?dialect=go", "-X", "PUT", "--data-binary", b'[{"threshold": 1}]', *auth)[0] == 400
    assert curl(f"{base}/drain", "-X", "POST", *auth)[0] == 202
    assert m.admin("/healthz")[0] == 503

    lines = audit_lines(m)
    refused = [x for x in lines if " refused: 401 " in x]
    shape = r"audit: 127\.0\.0\.1:\d+ \(-\) admin (PUT|POST) /\S+ refused: 401 (no|wrong|not a bearer) token"
    assert len(refused) == 13 and all(re.fullmatch(shape, x) for x in refused), refused
    accepted = [re.sub(r"127\.0\.0\.1:\d+", "PEER", x) for x in lines if " -> " in x]
    assert accepted == [
        "audit: PEER (-) admin PUT /rules/flow?dialect=go -> 200 (applied, version 1)",
        "audit: PEER (-) admin PUT /rules/flow?dialect=go -> 200 (applied, version 2)",
        "audit: PEER (-) admin POST /rules/rollback -> 200 (flow to version 1: applied, version 3)",
        "audit: PEER (-) admin PUT /rules/flow?dialect=go -> 400 (rejected, 1 error(s))",
        "audit: PEER (-) admin POST /drain -> 202 (draining)",
    ]
    assert TOKEN not in m.log()


def test_without_a_token_a_loopback_admin_stays_open_and_audits(meshd_run):
    m = meshd_run(BASE)
    assert m.admin("/rules/flow?dialect=go", "PUT", FLOW)[0] == 200 and rules_version(m) == 1
    assert [re.sub(r":\d+ ", ":PORT ", x) for x in audit_lines(m)] == [
        "audit: 127.0.0.1:PORT (-) admin PUT /rules/flow?dialect=go -> 200 (applied, version 1)"]


def test_the_token_file_is_read_relative_to_the_config_and_stripped(meshd_run, tmp_path):
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "admin-token").write_text(f"{TOKEN}\n")
    m = meshd_run({**BASE, "admin": {"address": f"127.0.0.1:{free_port()}", "token_file": "secrets/admin-token"}})
    assert m.admin("/rules/flow?dialect=go", "PUT", FLOW)[0] == 401
    assert m.admin("/rules/flow?dialect=go", "PUT", FLOW, headers={"Authorization": f"Bearer {TOKEN}"})[0] == 200
    assert rules_version(m) == 1 and m.admin_json("/config_dump")["admin"]["token_file"] == "secrets/admin-token"


def test_an_unreadable_token_file_refuses_to_start_naming_the_key(meshd_run, tmp_path):
    with pytest.raises(MeshdError) as info:
        meshd_run({**BASE, "admin": {"address": f"127.0.0.1:{free_port()}", "token_file": "missing-token"}})
    assert "meshd exited with 1" in str(info.value)
    assert f"cannot start: admin.token_file {tmp_path / 'missing-token'}: cannot read: No such file" in str(info.value)


def test_a_non_loopback_admin_without_a_token_refuses_to_start_before_binding(tmp_path):
    port = free_port()
    out = run_config(tmp_path, {**BASE, "admin": {"address": f"0.0.0.0:{port}"}}, "run")
    assert out.returncode == 1, out
    assert f"admin.address 0.0.0.0:{port} is not loopback: set admin.token or admin.token_file" in out.stderr
    assert "admin on" not in out.stderr
    with socket.socket() as s:                           # nothing was left bound: the port is still free
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", port))
    out = run_config(tmp_path, {**BASE, "admin": {"address": f"[::]:{port}"}}, "validate")
    assert out.returncode == 1 and f"admin.address [::]:{port} is not loopback: set admin.token" in out.stdout


def test_a_non_loopback_admin_with_a_token_needs_it_for_reads_from_other_peers(meshd_run):
    address = local_address()
    if address is None:
        pytest.skip("this machine has no non-loopback address")
    port = free_port(address)
    m = meshd_run({**BASE, "admin": {"address": f"{address}:{port}", "token": TOKEN}}, admin_token=TOKEN)
    base = f"http://{address}:{port}"          # the peer is this machine's own non-loopback address
    for path in ("/clusters", "/config_dump", "/rules", "/stats/prometheus"):
        assert curl(f"{base}{path}")[0] == 401, path
        assert curl(f"{base}{path}", "-H", f"Authorization: Bearer {TOKEN}")[0] == 200, path
    assert curl(f"{base}/healthz")[0] == 200 and curl(f"{base}/ready")[0] == 200      # probes need none
    assert curl(f"{base}/rules/flow?dialect=go", "-X", "PUT", "--data-binary", FLOW)[0] == 401
    assert any(f"audit: {address}:" in x and "admin GET /clusters refused: 401 no token" in x for x in audit_lines(m))


# -------------------------------------------------------------------------------------------------- TLS
def test_admin_over_mtls_with_curl_identity_audited_and_rotation(meshd_run, tmp_path):
    pki = TestPKI(tmp_path / "pki")
    first = pki.leaf("admin-1", dns=["admin.example.com"])
    cert, key = str(tmp_path / "admin.pem"), str(tmp_path / "admin-key.pem")
    shutil.copy(first.cert, cert)
    shutil.copy(first.key, key)
    ops = pki.leaf("ops", uri=[SPIFFE + "cli"])
    stranger = pki.leaf("stranger", uri=["spiffe://other.domain/ns/x/sa/y"])
    rogue = pki.self_signed("rogue", uri=[SPIFFE + "cli"])
    client = ssl.create_default_context(cafile=pki.ca_path)
    client.check_hostname = False                      # urllib dials 127.0.0.1; curl below checks the name
    client.load_cert_chain(ops.cert, ops.key)
    port = free_port()
    m = meshd_run({**BASE, "admin": {"address": f"127.0.0.1:{port}", "token": TOKEN, "tls": {
        "certificates": [{"cert": "admin.pem", "key": "admin-key.pem"}], "client_ca": pki.ca_path,
        "require_client_cert": True, "allowed_sans": [SPIFFE + "*"], "handshake_timeout": "2s"}}}, admin_ssl=client)
    url = f"https://admin.example.com:{port}"
    tls = ("--cacert", pki.ca_path, "--resolve", f"admin.example.com:{port}:127.0.0.1")
    as_ops = (*tls, "--cert", ops.cert, "--key", ops.key)
    auth = ("-H", f"Authorization: Bearer {TOKEN}")

    assert curl(f"{url}/rules", *as_ops)[0] == 200
    assert curl(f"{url}/rules/flow?dialect=go", "-X", "PUT", "--data-binary", FLOW, *as_ops)[0] == 401
    assert curl(f"{url}/rules/flow?dialect=go", "-X", "PUT", "--data-binary", FLOW, *as_ops, *auth)[0] == 200
    assert curl(f"{url}/rules", *tls)[0] == 0, "no client certificate: no handshake"
    assert curl(f"{url}/rules", *tls, "--cert", rogue.cert, "--key", rogue.key)[0] == 0, "an unknown CA"
    assert curl(f"http://127.0.0.1:{port}/rules")[0] in (0, 400), "plaintext gets no admin answer"
    status, body = curl(f"{url}/rules/flow", "-X", "PUT", *tls, "--cert", stranger.cert, "--key", stranger.key, *auth)
    assert status == 403 and "san_not_allowed" in body and rules_version(m) == 1

    certs = m.admin_json("/certs")
    (admin,) = [x for x in certs["tls"] if x["name"] == "admin"]
    assert admin["certificates"][0]["sans"] == ["DNS:admin.example.com"] and admin["last_error"] == ""
    assert {"listener": "admin", "reason": "san_not_allowed", "count": 1} in certs["handshake_errors"]
    accepted = [x for x in audit_lines(m) if " -> " in x]
    assert len(accepted) == 1 and re.fullmatch(
        rf"audit: 127\.0\.0\.1:\d+ \({re.escape(SPIFFE)}cli\) admin PUT /rules/flow\?dialect=go -> 200 "
        r"\(applied, version 1\)", accepted[0]), accepted
    assert any(f"({SPIFFE}cli) admin PUT /rules/flow?dialect=go refused: 401 no token" in x for x in audit_lines(m))

    # rotation: a new certificate in the same files applies to new handshakes
    old_serial = admin["certificates"][0]["serial"].lower().lstrip("0")
    assert served_serial(port, "admin.example.com") == old_serial
    second = pki.leaf("admin-2", dns=["admin.example.com"])
    for src, dst in ((second.key, key), (second.cert, cert)):
        shutil.copy(src, dst + ".new")
        os.replace(dst + ".new", dst)
    new_serial = None

    def rotated() -> bool:
        nonlocal new_serial
        (now,) = [x for x in m.admin_json("/certs")["tls"] if x["name"] == "admin"]
        new_serial = now["certificates"][0]["serial"].lower().lstrip("0")
        return new_serial != old_serial and now["last_error"] == ""

    wait_for(rotated, 5.0, "the admin's certificate was reloaded")
    assert served_serial(port, "admin.example.com") == new_serial
    assert curl(f"{url}/rules", *as_ops)[0] == 200


# ------------------------------------------------------------------------------------------ registry API
@pytest.mark.zookeeper
def test_a_registry_api_takes_its_own_token(meshd_run, zk_server, zk_root, zk_writer, tmp_path):
    (tmp_path / "dubbo-token").write_text("dubbo-api-token\n")
    api = f"127.0.0.1:{free_port()}"
    m = meshd_run(meshd_config({**zk_source(zk_server.address, zk_root), "services": []}, admin={
        "address": f"127.0.0.1:{free_port()}", "token": TOKEN},
        registry_api={"dubbo": {"address": api, "registry": "zk", "token_file": "dubbo-token"}}))
    body = {"service": {"interface": IFACE, "version": "1.0.0", "port": 20999}}
    status, reply = api_post(api, "/pub", body)                   # as MOSN's and the SDKs' clients: no header
    assert status == 401 and reply["err_no"] == 1 and "registry_api.dubbo.token" in reply["err_msg"]
    assert curl(f"http://{api}/pub", "-d", json.dumps(body), "-H", f"Authorization: Bearer {TOKEN}")[0] == 401, \
        "the admin's token is not the registry API's"
    assert zk_writer.get_children("/") == [] and api_get(api, "/services")[0] == 200
    status, text = curl(f"http://{api}/pub", "-d", json.dumps(body), "-H", "Authorization: Bearer dubbo-api-token")
    assert status == 200 and json.loads(text)["err_no"] == 0
    assert len(children(zk_writer, f"/dubbo/{IFACE}/providers")) == 1
    assert any(re.fullmatch(r"audit: 127\.0\.0\.1:\d+ \(-\) registry_api\.dubbo POST /pub -> 200", x)
               for x in audit_lines(m))
    assert m.admin_json("/config_dump")["registry_api"]["dubbo"]["token_file"] == "dubbo-token"
