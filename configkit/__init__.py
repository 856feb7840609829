"""configkit: the vocabulary of meshd's typed configuration, shared by every package that declares config.

The daemon's configuration (:mod:`meshd.config`) is assembled from models declared where their features
live: a discovery source declares its own section next to its code (``discovery/zookeeper/config.py``),
and so will the config center's rule sources. They all need the same frozen base model and the same
scalar types, so those live here, in a leaf that imports nothing of meshd's (pydantic only). That keeps
``discovery`` and ``governance`` leaves too: they may import ``configkit`` and nothing else of ours.

- :class:`Model` — frozen, unknown keys forbidden: a typo in a config file is an error, not a silent default;
- :data:`Duration` (``"250ms"``, ``"2s"``; bare numbers are refused), :data:`ByteSize` (``"8MiB"``),
  :data:`ListenAddress` (port 0 allowed), :data:`EndpointAddress`, :data:`Name`, :data:`Regex`;
- :class:`DigestAuth` — user and password (secret), shared by the ZooKeeper discovery and rule sources;
- :func:`split_host_port`, :func:`is_loopback`, :func:`parse_duration`, :func:`format_duration`, :func:`parse_size`.

Every error raised by these types is a ``PydanticCustomError`` whose message names the bad value.
"""

from typing import Literal

from pydantic import BaseModel, ConfigDict, SecretStr

from configkit.types import (ByteSize, Duration, EndpointAddress, ListenAddress, Name, Regex, check_name, check_regex,
                             format_duration, is_loopback, parse_duration, parse_size, split_host_port)


class Model(BaseModel):
    """Base of every configuration model: frozen (safe to share between the loop's components) and strict."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class DigestAuth(Model):
    """User-and-password credentials (ZooKeeper's ``digest`` scheme); the password is redacted in dumps."""

    scheme: Literal["digest"] = "digest"
    username: str
    password: SecretStr

    def token(self) -> str:
        """``user:password``, as kazoo's ``auth_data`` takes it."""
        return f"{self.username}:{self.password.get_secret_value()}"


__all__ = [
    "ByteSize", "DigestAuth", "Duration", "EndpointAddress", "ListenAddress", "Model", "Name", "Regex", "check_name", "check_regex",
    "format_duration", "is_loopback", "parse_duration", "parse_size", "split_host_port",
]
