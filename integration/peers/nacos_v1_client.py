"""nacos-sdk-python 2.0.x (the v1 HTTP ``nacos`` module) driven by JSON commands on stdin, one per line.

Run with the interpreter of its own virtualenv (``integration.nacos.v1_peer``): 2.0.x and 3.x cannot share one.
    python nacos_v1_client.py --server 127.0.0.1:8848 [--namespace ""] [--interval 0.5] [--log-dir DIR]
Prints {"event": "ready"}, then answers each command with {"event": "result", "id", "op", "ok", "value"|"error"}:
    {"op": "register", "service", "group", "ip", "port", "weight", "metadata", "cluster", "heartbeat": seconds}
    {"op": "deregister", ...}   {"op": "list", "service", "group"}
    {"op": "subscribe", "service", "group"}   → {"event": "instance", "change": "ADDED|MODIFIED|DELETED", "instance"}
    {"op": "getConfig", "dataId", "group"}   {"op": "publish", "dataId", "group", "content"}   {"op": "remove", ...}
    {"op": "listen", "dataId", "group"}      → {"event": "config", "dataId", "group", "content"}
    {"op": "exit"}
stdout carries only these JSON lines (the client logs to --log-dir and stderr).
"""

import argparse
import json
import os
import sys
import threading

_out_lock = threading.Lock()


def emit(obj):
    with _out_lock:
        sys.stdout.write(json.dumps(obj, default=str) + "\n")
        sys.stdout.flush()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", required=True)
    parser.add_argument("--namespace", default="")
    parser.add_argument("--interval", type=float, default=0.5)
    parser.add_argument("--log-dir", default=None)
    args = parser.parse_args()
    import nacos
    from nacos.listener import SubscribeListener

    client = nacos.NacosClient(args.server, namespace=args.namespace, logDir=args.log_dir, log_level="WARNING")
    if args.log_dir:
        client.set_options(snapshot_base=os.path.join(args.log_dir, "snapshot"),
                           failover_base=os.path.join(args.log_dir, "failover"))
    watchers = []

    def on_instance(event, slc):
        emit({"event": "instance", "change": event, "instance": slc.instance})

    def register(c):
        return client.add_naming_instance(c["service"], c["ip"], c["port"], cluster_name=c.get("cluster"),
                                          weight=c.get("weight", 1.0), metadata=c.get("metadata"),
                                          group_name=c.get("group", "DEFAULT_GROUP"),
                                          heartbeat_interval=c.get("heartbeat"))

    def listen(c):
        def cb(params):
            emit({"event": "config", "dataId": params.get("data_id"), "group": params.get("group"),
                  "content": params.get("content")})
        watchers.append((c["dataId"], c["group"], cb))
        client.add_config_watcher(c["dataId"], c["group"], cb)
        return True

    ops = {
        "register": register,
        "deregister": lambda c: client.remove_naming_instance(c["service"], c["ip"], c["port"],
                                                              cluster_name=c.get("cluster"),
                                                              group_name=c.get("group", "DEFAULT_GROUP")),
        "list": lambda c: client.list_naming_instance(c["service"], group_name=c.get("group", "DEFAULT_GROUP")),
        "subscribe": lambda c: client.subscribe([SubscribeListener(on_instance, "driver")], args.interval,
                                                service_name=c["service"],
                                                group_name=c.get("group", "DEFAULT_GROUP")) or True,
        "getConfig": lambda c: client.get_config(c["dataId"], c["group"], no_snapshot=True),
        "publish": lambda c: client.publish_config(c["dataId"], c["group"], c["content"]),
        "remove": lambda c: client.remove_config(c["dataId"], c["group"]),
        "listen": listen,
    }
    emit({"event": "ready", "pid": os.getpid()})
    for line in sys.stdin:
        if not line.strip():
            continue
        cmd = json.loads(line)
        if cmd["op"] == "exit":
            break
        try:
            emit({"event": "result", "id": cmd.get("id"), "op": cmd["op"], "ok": True, "value": ops[cmd["op"]](cmd)})
        except Exception as exc:  # report every client failure to the test
            emit({"event": "result", "id": cmd.get("id"), "op": cmd["op"], "ok": False,
                  "error": {"name": type(exc).__name__, "message": str(exc)}})
    for data_id, group, cb in watchers:
        client.remove_config_watcher(data_id, group, cb)
    client.stop_subscribe()
    if client.process_mgr is not None:  # the watcher's multiprocessing.Manager is a forked child process
        client.process_mgr.shutdown()
    emit({"event": "closed"})
    sys.stdout.flush()
    os._exit(0)  # the client's timer and puller threads are not daemons in every version


if __name__ == "__main__":
    main()
