"""The xDS source's private PEM directory (discovery.xds.secrets.SecretFiles): permissions, safe names, atomic
rewrites in place, staging for a NACK, pruning, and cleaning what an earlier run left."""

from __future__ import annotations

import os
import stat

import pytest

from discovery.xds.secrets import SecretFiles, inline_stem, secret_stem


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_directory_and_files_are_private_and_rewritten_in_place(tmp_path):
    files = SecretFiles(str(tmp_path / "istio-secrets"))
    (tmp_path / "istio-secrets").mkdir(mode=0o755)
    (tmp_path / "istio-secrets" / "sds-old.key.pem").write_bytes(b"left by an earlier run")
    files.open()
    assert mode(files.dir) == 0o700 and os.listdir(files.dir) == []
    path = files.write(secret_stem("default", "key"), b"one")
    assert path == os.path.join(files.dir, "sds-default.key.pem") and mode(path) == 0o600
    inode = os.stat(path).st_ino
    assert files.write(secret_stem("default", "key"), b"one") == path and os.stat(path).st_ino == inode  # no-op
    files.write(secret_stem("default", "key"), b"two")
    assert open(path, "rb").read() == b"two" and os.stat(path).st_ino != inode     # replaced atomically
    assert sorted(os.listdir(files.dir)) == ["sds-default.key.pem"]                 # no temporary left
    assert "two" not in repr(files)


def test_stage_commit_discard_and_prune(tmp_path):
    files = SecretFiles(str(tmp_path / "s"))
    files.open()
    kept = files.write(secret_stem("a", "cert"), b"a")
    staged = [files.stage(secret_stem("b", "cert"), b"b")]
    assert not os.path.exists(files.path(secret_stem("b", "cert")))
    files.discard(staged)
    assert os.listdir(files.dir) == ["sds-a.cert.pem"]
    staged = [files.stage(secret_stem("b", "cert"), b"b")]
    files.commit(staged)
    assert open(files.path(secret_stem("b", "cert")), "rb").read() == b"b"
    assert files.prune([kept]) == [files.path(secret_stem("b", "cert"))]
    assert os.listdir(files.dir) == ["sds-a.cert.pem"]


@pytest.mark.parametrize("name", ["kubernetes://ns/my-secret", "file-cert:/etc/certs/cert.pem~/etc/certs/key.pem",
                                  "..", "spiffe://cluster.local/ns/default/sa/x", "a b\nc", "x" * 400])
def test_names_are_safe_file_names(name):
    stem = secret_stem(name, "ca")
    assert "/" not in stem and "\n" not in stem and " " not in stem and len(stem) < 140
    assert stem.startswith("sds-") and stem.endswith(".ca")
    assert secret_stem(name, "ca") != secret_stem(name + "y", "ca")
    assert inline_stem("cds", name, 0, "key").startswith("cds-") and "/" not in inline_stem("cds", name, 0, "key")


def test_a_temporary_directory_goes_with_close():
    files = SecretFiles(None)
    files.open()
    directory = files.dir
    assert mode(directory) == 0o700
    files.write("x", b"y")
    files.close()
    assert not os.path.exists(directory)


def test_a_file_in_place_of_the_directory_is_refused(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(OSError):
        SecretFiles(str(tmp_path / "f")).open()
