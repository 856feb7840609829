"""Test infrastructure that meshd's suites and users' suites import (never meshd itself).

- :mod:`.process` — ``meshd run`` as a subprocess, servers on a background loop thread;
- :mod:`.servers` — scriptable HTTP backends and Dubbo/Bolt providers;
- :mod:`.zookeeper` — a real ZooKeeper (Debian package) on a free loopback port, with fault helpers and
  per-test chroots (``fresh_chroot``);
- :mod:`.peers` — the third-party Dubbo/Bolt peers (npm, PyPI) and the scripts that drive them;
- :mod:`.docker_engine`, :mod:`.images`, :mod:`.containers`, :mod:`.faults`, :mod:`.pytest_plugin` —
  locally built images, testcontainers modules and the pytest plugin (fixtures ``zookeeper``, ``meshd``);
- :mod:`.load` — a steady real-client load through meshd that records every failed call, for fault tests;
- :mod:`.ports` — free loopback ports.
"""
