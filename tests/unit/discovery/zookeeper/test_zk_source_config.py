"""ZooKeeperSource constructor: the config contract, with errors that name the bad key."""

import pytest

from discovery.zookeeper import ZooKeeperSource


def test_defaults_and_layout_roots():
    dubbo = ZooKeeperSource()
    assert (dubbo.name, dubbo.servers, dubbo.root, dubbo.chroot, dubbo.services, dubbo.watch_all) == \
        ("zookeeper", "127.0.0.1:2181", "/dubbo", "", (), False)
    sofa = ZooKeeperSource("zk", "a:1, b:2", layout="sofarpc", services="all")
    assert (sofa.root, sofa.servers, sofa.watch_all) == ("/sofa-rpc", "a:1,b:2", True)
    assert ZooKeeperSource(root="/g1").root == "/g1"
    assert ZooKeeperSource(services=["a.B", "a.B", "c.D"]).services == ("a.B", "c.D")


def test_chroot_may_come_with_the_servers():
    assert ZooKeeperSource("zk", "a:1,b:2/meshd/zk").chroot == "/meshd/zk"
    assert ZooKeeperSource("zk", "a:1", chroot="/x").chroot == "/x"
    with pytest.raises(ValueError, match="chroot given twice"):
        ZooKeeperSource("zk", "a:1/x", chroot="/y")


@pytest.mark.parametrize("kwargs, why", [
    (dict(servers=""), "servers must list"),
    (dict(servers="nohost"), "not host:port"),
    (dict(servers="h:99999"), "valid port"),
    (dict(chroot="x"), "chroot 'x' must be an absolute znode path"),
    (dict(root="/dubbo/"), "root '/dubbo/' must be"),
    (dict(layout="zk"), "layout 'zk' is not one of"),
    (dict(services="some.Service"), "services must be a list"),
    (dict(services=["not valid"]), "not a Java interface name"),
    (dict(auth="nopassword"), "auth must be 'user:password'"),
    (dict(session_timeout=0), "session_timeout must be positive"),
    (dict(sync_timeout=-1), "sync_timeout must be positive"),
    (dict(default_warmup_ms=-5), "default_warmup_ms must be >= 0"),
])
def test_bad_config_is_named(kwargs, why):
    with pytest.raises(ValueError, match=why):
        ZooKeeperSource(**kwargs)
