"""The ephemeral nodes meshd keeps in ZooKeeper for the local application (providers, consumers).

Contract:

- :meth:`Registrar.add` creates the node (parents as persistent nodes) and remembers it only once it exists.
  If the node is already there under another session (a previous meshd that has not expired yet), it is taken
  over atomically (delete + create in one transaction), as Dubbo does; if it is ours already, nothing changes.
- Any failure raises :class:`RegistrationError` and leaves nothing behind: if the create may have reached the
  server (connection lost, timeout), the path is remembered as an *orphan* and deleted, if it belongs to our
  session, as soon as the connection is back (an ephemeral node also dies with its session).
- :meth:`Registrar.recreate` re-creates every remembered node; the source calls it when kazoo comes back
  with a new session (after expiry), because ZooKeeper deleted the old session's ephemeral nodes.
- :meth:`Registrar.remove` forgets the registration first and then deletes the node; when ZooKeeper cannot be
  reached the node becomes an orphan (see above), so a removed registration never comes back.

All methods run on the event loop; kazoo calls go through :class:`~discovery.zookeeper.bridge.KazooBridge`.
"""

from __future__ import annotations

import asyncio
import logging

from kazoo.exceptions import KazooException, NodeExistsError, NoNodeError

from discovery.zookeeper.bridge import KazooBridge, is_connection_error
from discovery.registration import RegistrationError
from discovery.zookeeper.registration import NodeRegistration as Registration

log = logging.getLogger("discovery.zookeeper")


class Registrar:
    """Remembered registrations of one source, by znode path."""

    def __init__(self, bridge: KazooBridge, source: str, request_timeout: float) -> None:
        self._bridge = bridge
        self._source = source
        self._timeout = request_timeout
        self._registered: dict[str, Registration] = {}
        self.orphans: set[str] = set()
        self.last_error = ""

    def __len__(self) -> int:
        return len(self._registered)

    def all(self) -> tuple[Registration, ...]:
        return tuple(self._registered.values())

    def get(self, path: str) -> Registration | None:
        return self._registered.get(path)

    # -- registering ----------------------------------------------------------------------------------
    async def add(self, reg: Registration) -> Registration:
        """Create ``reg``'s node and remember it; idempotent for a node that is already registered."""
        if reg.path in self._registered:
            return self._registered[reg.path]
        if not self._bridge.connected:
            raise RegistrationError(f"{self._source}: cannot register {reg.kind} {reg.url}: "
                                    f"ZooKeeper is not connected ({self._bridge.client.state})")
        self.orphans.discard(reg.path)
        session = self._bridge.session_id
        try:
            await self._ensure(reg)
        except (KazooException, asyncio.TimeoutError) as exc:
            if isinstance(exc, asyncio.TimeoutError) or is_connection_error(exc):
                self.orphans.add(reg.path)   # the create may have happened: delete it when we can
            raise RegistrationError(f"{self._source}: cannot register {reg.kind} node {reg.path}: "
                                    f"{type(exc).__name__} {exc}".rstrip()) from exc
        self._registered[reg.path] = reg
        if self._bridge.session_id != session:
            # The session changed while we were creating: the node may have died with the old one.
            asyncio.ensure_future(self.recreate())
        return reg

    async def _ensure(self, reg: Registration) -> None:
        try:
            await self._call("create_async", reg.path, reg.data, ephemeral=True, makepath=True)
        except NodeExistsError:
            await self._take_over(reg)

    async def _take_over(self, reg: Registration) -> None:
        try:
            _, stat = await self._call("get_async", reg.path)
        except NoNodeError:
            await self._call("create_async", reg.path, reg.data, ephemeral=True, makepath=True)
            return
        if stat.ephemeralOwner == self._bridge.session_id:
            return
        log.warning("%s: %s exists under session %#x; deleting and re-creating it", self._source, reg.path,
                    stat.ephemeralOwner)
        transaction = self._bridge.client.transaction()
        transaction.delete(reg.path, version=stat.version)
        transaction.create(reg.path, reg.data, ephemeral=True)
        results = await asyncio.wait_for(self._bridge.track(transaction.commit_async()), self._timeout)
        failures = [r for r in results if isinstance(r, Exception)]
        if failures:
            raise failures[0]

    async def _call(self, method: str, *args, **kwargs):
        return await asyncio.wait_for(self._bridge.call(method, *args, **kwargs), self._timeout)

    # -- removing -------------------------------------------------------------------------------------
    async def remove(self, reg: Registration) -> None:
        """Forget ``reg`` and delete its node (now, or as an orphan once ZooKeeper is back)."""
        if self._registered.pop(reg.path, None) is None:
            raise RegistrationError(f"{self._source}: {reg.kind} {reg.url} is not registered")
        await self._delete(reg.path)

    async def _delete(self, path: str) -> bool:
        try:
            await self._call("delete_async", path)
        except NoNodeError:
            pass
        except (KazooException, asyncio.TimeoutError) as exc:
            self.orphans.add(path)
            self.last_error = f"deleting {path}: {type(exc).__name__} {exc}".rstrip()
            log.warning("%s: %s (will retry when connected)", self._source, self.last_error)
            return False
        self.orphans.discard(path)
        return True

    async def clear(self) -> None:
        """Delete every registered node (used by ``stop``); failures are logged, not raised."""
        paths = list(self._registered)
        self._registered.clear()
        await asyncio.gather(*(self._delete(p) for p in paths))

    # -- after reconnection ---------------------------------------------------------------------------
    async def recreate(self) -> bool:
        """Make sure every registered node exists under our session; True when all of them do."""
        ok = True
        for reg in list(self._registered.values()):
            try:
                await self._ensure(reg)
            except (KazooException, asyncio.TimeoutError) as exc:
                ok = False
                self.last_error = f"re-creating {reg.path}: {type(exc).__name__} {exc}".rstrip()
                log.warning("%s: %s", self._source, self.last_error)
        return ok

    async def delete_orphans(self) -> None:
        """Delete the orphans that our current session owns; forget the ones that are gone or not ours."""
        session = self._bridge.session_id
        for path in list(self.orphans):
            try:
                _, stat = await self._call("get_async", path)
            except NoNodeError:
                self.orphans.discard(path)
                continue
            except (KazooException, asyncio.TimeoutError):
                return
            if path in self._registered:
                self.orphans.discard(path)
            elif stat.ephemeralOwner == session:
                await self._delete(path)
            else:
                self.orphans.discard(path)

