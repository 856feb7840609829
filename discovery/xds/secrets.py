"""Where the xDS source keeps the PEM material it receives: a private directory of files the daemon's TLS reads.

meshd's TLS (``meshd/tls/``) loads certificates, keys and CA bundles from *files* and watches them (a file
rewritten atomically is in force for new handshakes within a second), so every PEM that comes inside a resource
or an SDS Secret is written here, and the ``tls`` settings the source publishes name these paths.

Contract:

- The directory is created 0700 (an existing one is made 0700; a symlink or a non-directory is refused);
  every file is created 0600. ``None`` = a fresh temporary directory, removed by :meth:`SecretFiles.close`;
  a configured directory keeps its files at ``close`` (the daemon may still be reading them while it stops),
  and :meth:`SecretFiles.open` removes the ``*.pem`` files an earlier run left (they are rewritten as the
  control plane sends them again). :meth:`prune` removes what no accepted secret or resource in force needs.
- File names (:func:`secret_stem`, :func:`inline_stem`) encode the secret's or the resource's name safely
  (percent-encoding, every byte outside ``A-Z a-z 0-9 . _ -``; a long name is cut and suffixed with a digest):
  ``sds-<secret>.<part>.pem`` for SDS secrets, ``<cds|lds>-<resource>-<n>.<part>.pem`` for inline PEMs of a
  resource (``n`` its position). The same secret or resource keeps the same paths from version to version, so
  an update is a rewrite in place that the daemon's watcher picks up.
- Writes are atomic: a temporary file in the directory, ``fsync``, then ``os.replace``. :meth:`stage` writes
  the temporary file and :meth:`commit` replaces (so that a response is NACKed before anything it carries is in
  force); :meth:`write` does both, and nothing at all when the file already holds those bytes.
- Nothing here logs or returns file contents.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass
from typing import Iterable
from urllib.parse import quote

_MAX_STEM = 120


def _encode(name: str) -> str:
    encoded = quote(name, safe="")
    encoded = encoded.replace("~", "%7E")
    if len(encoded) > _MAX_STEM:
        encoded = encoded[:_MAX_STEM - 17] + "-" + hashlib.sha256(name.encode()).hexdigest()[:16]
    return encoded


def secret_stem(name: str, part: str) -> str:
    """The file of part ``part`` (``cert``, ``key``, ``ca``) of SDS secret ``name``."""
    return f"sds-{_encode(name)}.{part}"


def inline_stem(kind: str, resource: str, index: int, part: str) -> str:
    """The file of the ``index``-th inline PEM of resource ``resource`` (``kind`` ``cds`` or ``lds``)."""
    return f"{kind}-{_encode(resource)}-{index}.{part}"


@dataclass(frozen=True)
class Staged:
    """A temporary file waiting for :meth:`SecretFiles.commit`."""

    temp: str
    path: str
    digest: str


class SecretFiles:
    """The private PEM directory of one xDS source (see the module docstring)."""

    def __init__(self, directory: str | None) -> None:
        self._given = directory
        self.dir = directory or ""
        self._digests: dict[str, str] = {}          # path → sha256 of what was written there

    def __repr__(self) -> str:
        return f"<SecretFiles {self.dir or '(not open)'} files={len(self._digests)}>"

    def open(self) -> None:
        if self._given is None:
            self.dir = tempfile.mkdtemp(prefix="meshd-xds-secrets-")
        else:
            os.makedirs(self.dir, mode=0o700, exist_ok=True)
        st = os.lstat(self.dir)
        if not stat.S_ISDIR(st.st_mode):
            raise OSError(f"xDS secrets directory {self.dir} is not a directory")
        os.chmod(self.dir, 0o700)
        for entry in os.listdir(self.dir):
            if entry.endswith(".pem") or entry.startswith(".tmp-"):
                os.unlink(os.path.join(self.dir, entry))
        self._digests.clear()

    def close(self) -> None:
        if self._given is None and self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = ""
        self._digests.clear()

    def path(self, stem: str) -> str:
        return os.path.join(self.dir, stem + ".pem")

    def unchanged(self, stem: str, data: bytes) -> bool:
        return self._digests.get(self.path(stem)) == hashlib.sha256(data).hexdigest()

    def stage(self, stem: str, data: bytes) -> Staged:
        path = self.path(stem)
        fd, temp = tempfile.mkstemp(prefix=".tmp-", dir=self.dir)   # created 0600
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
        except BaseException:
            os.unlink(temp)
            raise
        return Staged(temp, path, hashlib.sha256(data).hexdigest())

    def commit(self, staged: Iterable[Staged]) -> None:
        for item in staged:
            os.replace(item.temp, item.path)
            self._digests[item.path] = item.digest

    def discard(self, staged: Iterable[Staged]) -> None:
        for item in staged:
            try:
                os.unlink(item.temp)
            except FileNotFoundError:
                pass

    def write(self, stem: str, data: bytes) -> str:
        """Write ``data`` to the file of ``stem`` (atomically; not at all when it holds those bytes); its path."""
        if not self.unchanged(stem, data):
            self.commit([self.stage(stem, data)])
        return self.path(stem)

    def prune(self, keep: Iterable[str]) -> list[str]:
        """Remove the files this store wrote that are not in ``keep`` (paths); the removed paths."""
        wanted = set(keep)
        gone = [p for p in self._digests if p not in wanted]
        for path in gone:
            del self._digests[path]
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        return gone

    def files(self) -> list[str]:
        return sorted(self._digests)
