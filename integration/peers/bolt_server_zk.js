'use strict';
// A SOFA Bolt provider (sofa-rpc-node RpcServer) that registers itself in ZooKeeper with sofa-rpc-node's own
// ZookeeperRegistry (SOFARPC layout: <root>/<interface>/providers/<url-encoded bolt URL>, empty node data).
//   node bolt_server_zk.js --zk 127.0.0.1:2181 [--root /sofa-rpc] [--port 0] [--interface com.example.Calc]
//        [--version 1.0] [--server-id NAME] [--app-name NAME] [--lifetime-ms N]
// sofa-rpc-node reads a path in the registry address as the root (not a chroot): --root /t1/sofa-rpc
// writes /t1/sofa-rpc/<interface>/providers. The server listens on 127.0.0.1 and publishes 127.0.0.1
// (publishAddress; sofa-rpc-node would otherwise register the host's first non-loopback IP).
// Prints {"event":"listening","port":N,...}, then {"event":"published","url":...,"port":N} once its own
// subscription saw the node, and {"event":"stopped","requests":N} on SIGTERM/SIGINT (after unregistering).
// Methods as bolt_server.js: sayHello add plus greet echo fail sleep whoami (returns --server-id).
const net = require('net');
const { parseArgs, withEnv, emit, exit, fatal, quietLogger } = require('./_common');
const { demoService } = require('./_service');

const opts = parseArgs(process.argv.slice(2), withEnv({
  zk: '127.0.0.1:2181', root: '/sofa-rpc', port: '0', interface: 'com.example.Calc', version: '1.0',
  serverId: '', appName: 'bolt-zk-peer', lifetimeMs: '',
}));

async function main() {
  const { server: { RpcServer }, registry: { ZookeeperRegistry } } = require('sofa-rpc-node');

  class LoopbackRpcServer extends RpcServer {
    _startServer(port) {
      const server = net.createServer();
      server.once('error', err => { this.emit('error', err); });
      server.on('connection', socket => { this._handleSocket(socket); });
      server.listen(port, '127.0.0.1', () => {
        if (port === this.publishPort && port === 0) this.publishPort = server.address().port;
      });
      return server;
    }
  }

  const registry = new ZookeeperRegistry({ logger: quietLogger, address: opts.zk + opts.root });
  await registry.ready();
  const server = new LoopbackRpcServer({
    logger: quietLogger, registry, port: Number(opts.port), publishAddress: '127.0.0.1',
    appName: opts.appName, killTimeout: 1000,
  });
  server.addService({ interfaceName: opts.interface, version: opts.version }, demoService(opts.serverId));
  let requests = 0;
  server.on('request', () => { requests++; });
  server.on('error', () => {});
  await server.start();
  emit({ event: 'listening', port: server.publishPort, interface: opts.interface, version: opts.version,
    pid: process.pid });
  await server.publish();
  emit({ event: 'published', url: server.url, port: server.publishPort });
  const stop = async () => {
    try { await server.close(); } catch (e) { /* closing anyway */ }
    try { await registry.close(); } catch (e) { /* closing anyway */ }
    emit({ event: 'stopped', requests });
    exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  if (opts.lifetimeMs) setTimeout(stop, Number(opts.lifetimeMs)).unref();
}

main().catch(fatal);
