"""Tokens for the admin and registry APIs: where the config demands one, how a token file is read, how a
presented token is checked, and what the audit log says (a real aiohttp server, requests over loopback)."""

from __future__ import annotations

import asyncio
import json
import logging

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from configkit import is_loopback
from meshd.auth import AUDIT, BearerAuth, TokenError, load_token
from meshd.cli import main
from meshd.config import ConfigError, build_config

ZK = {"type": "zookeeper", "name": "zk", "servers": "127.0.0.1:2181", "services": []}


def errors(data: dict) -> list[str]:
    with pytest.raises(ConfigError) as info:
        build_config(data)
    return info.value.errors


@pytest.mark.parametrize("host, loopback", [
    ("127.0.0.1", True), ("127.9.8.7", True), ("::1", True), ("[::1]", True), ("localhost", True),
    ("::ffff:127.0.0.1", True), ("0.0.0.0", False), ("::", False), ("[::]", False), ("192.0.2.2", False),
    ("10.0.0.1", False), ("admin.internal", False), ("", False),
])
def test_loopback_is_127_8_and_1_and_localhost(host, loopback):
    assert is_loopback(host) is loopback


@pytest.mark.parametrize("address", ["0.0.0.0:15000", "[::]:15000", "192.0.2.2:0", "admin.internal:15000"])
def test_a_non_loopback_admin_without_a_token_is_refused_naming_the_keys(address):
    assert errors({"admin": {"address": address}}) == [
        f"admin.address {address} is not loopback: set admin.token or admin.token_file "
        "(without a token anyone who reaches it could push rules and drain meshd)"]


@pytest.mark.parametrize("address", ["127.0.0.1:15000", "127.0.0.2:0", "[::1]:15000", "localhost:15000"])
def test_a_loopback_admin_needs_no_token(address):
    assert build_config({"admin": {"address": address}}).admin.token is None


def test_a_token_or_a_token_file_allows_any_address_and_the_token_is_redacted():
    config = build_config({"admin": {"address": "0.0.0.0:15000", "token": "s3cret-admin-token"}})
    assert config.admin.token.get_secret_value() == "s3cret-admin-token"
    dumped = json.dumps(config.model_dump(mode="json"))
    assert "s3cret-admin-token" not in dumped and "s3cret-admin-token" not in repr(config)
    assert build_config({"admin": {"address": "0.0.0.0:15000", "token_file": "t"}}).admin.token_file == "t"


@pytest.mark.parametrize("admin, expected", [
    ({"token": "a", "token_file": "t"}, "admin.token and admin.token_file are both set; give one"),
    ({"token": "two words"}, "admin.token: a token is visible ASCII characters without white space"),
    ({"token": ""}, "admin.token: a token is visible ASCII characters without white space"),
    ({"token_file": ""}, "admin.token_file: string should have at least 1 character"),
    ({"tls": {"certificates": [{"cert": "c.pem", "key": "k.pem"}], "plaintext": "allow"}},
     "admin.tls: unknown key 'plaintext'"),
    ({"tls": {"certificates": [{"cert": "c.pem", "key": "k.pem"}], "require_client_cert": True}},
     "admin.tls: require_client_cert and allowed_sans need a client_ca"),
])
def test_admin_token_and_tls_errors(admin, expected):
    (line,) = errors({"admin": admin})
    assert line.startswith(expected), line
    assert "two words" not in line


@pytest.mark.parametrize("api, section", [
    ("dubbo", {"address": "0.0.0.0:22222", "registry": "zk"}),
    ("sofa", {"address": "[::]:13330", "registry": "zk"}),
])
def test_a_non_loopback_registry_api_without_its_own_token_is_refused(api, section):
    config = {"discovery": [ZK], "listeners": [{"name": "rpc", "address": "127.0.0.1:0", "protocol": "dubbo"}],
              "registry_api": {api: section}}
    assert errors(config) == [
        f"registry_api.{api}.address {section['address']} is not loopback: set registry_api.{api}.token or "
        f"registry_api.{api}.token_file (without a token anyone who reaches it could publish and subscribe services)"]
    config["registry_api"][api] = {**section, "token": "t0k"}
    assert getattr(build_config(config).registry_api, api).token.get_secret_value() == "t0k"
    config["admin"] = {"token": "other"}        # the admin's token is not the registry API's
    config["registry_api"][api] = section
    assert errors(config)[0].startswith(f"registry_api.{api}.address")


def test_meshd_validate_reports_the_refusal(tmp_path, capsys):
    path = tmp_path / "meshd.yaml"
    path.write_text('admin: {address: "0.0.0.0:15000"}\n')
    assert main(["validate", "-c", str(path)]) == 1
    assert "admin.address 0.0.0.0:15000 is not loopback: set admin.token or admin.token_file" in capsys.readouterr().out


# --------------------------------------------------------------------------------------------- token files
def test_a_token_file_is_read_relative_to_the_config_and_stripped(tmp_path):
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "admin").write_text("  s3cret-from-file\n")
    config = build_config({"admin": {"token_file": "secrets/admin"}}, base_dir=tmp_path)
    assert load_token(config.admin, "admin", config.resolve_path) == b"s3cret-from-file"
    assert load_token(build_config({}).admin, "admin", config.resolve_path) is None
    inline = build_config({"admin": {"token": "inline"}}).admin
    assert load_token(inline, "admin", config.resolve_path) == b"inline"


@pytest.mark.parametrize("content, expected", [
    (None, "cannot read: No such file or directory"),
    ("\n  \n", "the file is empty"),
    ("two words\n", "a token is visible ASCII characters without white space"),
    ("caf\u00e9\n", "a token is visible ASCII characters without white space"),
])
def test_an_unusable_token_file_names_the_key_and_the_file_but_not_its_content(tmp_path, content, expected):
    if content is not None:
        (tmp_path / "token").write_text(content, encoding="utf-8")
    config = build_config({"registry_api": {}, "admin": {"token_file": "token"}}, base_dir=tmp_path)
    with pytest.raises(TokenError) as info:
        load_token(config.admin, "admin", config.resolve_path)
    assert str(info.value).startswith(f"admin.token_file {tmp_path / 'token'}: {expected}")
    assert "words" not in str(info.value) and "caf" not in str(info.value)


# ------------------------------------------------------------------------------------------- the check
@pytest.mark.parametrize("header, reason", [
    (None, "no token"), ("", "no token"), ("Basic czNjcmV0", "not a bearer token"), ("Bearer", "not a bearer token"),
    ("Bearer ", "not a bearer token"), ("Bearer s3cre", "wrong token"), ("Bearer s3cret!", "wrong token"),
    ("Bearer S3CRET", "wrong token"), ("Bearer s3cret", ""), ("bearer s3cret", ""), ("BEARER  s3cret ", ""),
    ("Bearer caf\udce9", "wrong token"),
])
def test_the_presented_token_is_checked(header, reason):
    assert BearerAuth(b"s3cret", "admin").refusal(header) == reason
    assert BearerAuth(None, "admin").refusal(header) == ""       # no token configured: everything passes


def test_only_a_digest_of_the_token_is_kept():
    auth = BearerAuth(b"s3cret-kept", "admin")
    assert "s3cret-kept" not in repr(auth) and b"s3cret-kept" not in b"".join(
        v for v in vars(auth).values() if isinstance(v, bytes))


@pytest.mark.parametrize("method, path, host, needed", [
    ("PUT", "/rules/flow", "127.0.0.1", True), ("POST", "/drain", "127.0.0.1", True),
    ("DELETE", "/anything/new", "127.0.0.1", True), ("PATCH", "/rules", "::1", True),
    ("GET", "/rules", "127.0.0.1", False), ("HEAD", "/clusters", "::1", False),
    ("GET", "/rules", "10.1.2.3", True), ("GET", "/config_dump", "192.0.2.9", True),
    ("GET", "/healthz", "10.1.2.3", False), ("GET", "/ready", "10.1.2.3", False),
    ("POST", "/healthz", "10.1.2.3", True),
])
def test_mutations_always_need_the_token_reads_only_off_loopback(method, path, host, needed):
    auth = BearerAuth(b"t", "admin", open_paths=frozenset({"/healthz", "/ready"}))
    assert auth.needs_token(make_mocked_request(method, path), host) is needed
    assert BearerAuth(None, "admin").needs_token(make_mocked_request(method, path), host) is False


# ------------------------------------------------------------------------------- middleware and audit log
async def _serve(auth: BearerAuth) -> tuple[web.AppRunner, str]:
    async def change(request: web.Request) -> web.Response:
        request[AUDIT] = "changed 3 things"
        return web.json_response({"ok": True})

    async def broken(request: web.Request) -> web.Response:
        raise web.HTTPConflict(text="no")

    async def read(request: web.Request) -> web.Response:
        return web.json_response({"read": True})

    app = web.Application(middlewares=[auth.middleware])
    app.router.add_put("/things", change)
    app.router.add_post("/broken", broken)
    app.router.add_get("/things", read)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"


async def _exercise_admin_like_api() -> None:
    runner, base = await _serve(BearerAuth(b"s3cret-audited", "admin"))
    try:
        async with aiohttp.ClientSession() as http:
            async with http.put(f"{base}/things") as resp:
                assert resp.status == 401 and resp.headers["WWW-Authenticate"] == 'Bearer realm="meshd admin"'
                assert (await resp.json())["error"] == ("unauthorized (no token): send Authorization: Bearer "
                                                        "<admin.token>")
            async with http.put(f"{base}/things", headers={"Authorization": "Bearer s3cret-wrong"}) as resp:
                assert resp.status == 401 and 'error="invalid_token"' in resp.headers["WWW-Authenticate"]
            async with http.get(f"{base}/things") as resp:
                assert resp.status == 200                       # a read from loopback
            good = {"Authorization": "Bearer s3cret-audited"}
            async with http.put(f"{base}/things?x=1", headers=good) as resp:
                assert resp.status == 200 and await resp.json() == {"ok": True}
            async with http.post(f"{base}/broken", headers=good) as resp:
                assert resp.status == 409
            async with http.post(f"{base}/no/such/path", headers=good) as resp:
                assert resp.status == 404
    finally:
        await runner.cleanup()


def test_refused_and_accepted_mutations_are_audited_without_the_token(caplog):
    caplog.set_level(logging.INFO, logger="meshd.audit")
    asyncio.run(_exercise_admin_like_api())
    lines = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "meshd.audit"]
    assert [(level, msg.split(" ", 2)[2]) for level, msg in lines] == [
        ("WARNING", "(-) admin PUT /things refused: 401 no token"),
        ("WARNING", "(-) admin PUT /things refused: 401 wrong token"),
        ("INFO", "(-) admin PUT /things?x=1 -> 200 (changed 3 things)"),
        ("INFO", "(-) admin POST /broken -> 409"),
        ("INFO", "(-) admin POST /no/such/path -> 404"),
    ]
    assert all(msg.startswith("audit: 127.0.0.1:") for _, msg in lines)
    assert "s3cret" not in caplog.text


async def _exercise_open_api() -> None:
    runner, base = await _serve(BearerAuth(None, "registry_api.dubbo"))
    try:
        async with aiohttp.ClientSession() as http:
            async with http.put(f"{base}/things") as resp:
                assert resp.status == 200
    finally:
        await runner.cleanup()


def test_without_a_token_everything_is_served_and_mutations_are_still_audited(caplog):
    caplog.set_level(logging.INFO, logger="meshd.audit")
    asyncio.run(_exercise_open_api())
    (record,) = [r for r in caplog.records if r.name == "meshd.audit"]
    assert record.getMessage().endswith("(-) registry_api.dubbo PUT /things -> 200 (changed 3 things)")
