'use strict';
// A SOFA Bolt provider (sofa-rpc-node RpcServer) that publishes itself in ZooKeeper the way a SOFA app
// does (SOFARPC layout, ephemeral provider node), with 127.0.0.1 as its address instead of the host's
// non-loopback IP, and listening on loopback only.
//   node bolt_zk_provider.js --zk 127.0.0.1:2181[/chroot] [--interface com.example.Calc] [--version 1.0]
//                            [--server-id NAME] [--port 0]
// Prints {"event":"listening","port":N,...} once the service is published, and {"event":"stopped"} on
// SIGTERM/SIGINT after unpublishing (the node leaves ZooKeeper before the port closes, as the SDK does).
// Methods as integration/peers/_service.js (sayHello add echo fail sleep whoami ...).
const net = require('net');
const path = require('path');

const peers = path.join(__dirname, '..', '..', '..', '..', 'integration', 'peers');
const { parseArgs, emit, exit, fatal, quietLogger } = require(path.join(peers, '_common'));
const { demoService } = require(path.join(peers, '_service'));
const { server: { RpcServer }, registry: { ZookeeperRegistry } } = require('sofa-rpc-node');

const opts = parseArgs(process.argv.slice(2), {
  zk: '', port: '0', interface: 'com.example.Calc', version: '1.0', serverId: '',
});

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

async function main() {
  if (!opts.zk) throw new Error('--zk 127.0.0.1:PORT[/chroot] is required');
  // The registry's address may carry a root path; the chroot goes in front of SOFARPC's /sofa-rpc.
  const address = `${opts.zk.replace(/\/+$/, '')}/sofa-rpc`;
  const registry = new ZookeeperRegistry({ logger: quietLogger, address });
  await registry.ready();
  const server = new LoopbackRpcServer({
    logger: quietLogger, registry, port: Number(opts.port), publishAddress: '127.0.0.1',
    appName: 'meshd-e2e', killTimeout: 1000,
  });
  server.addService({ interfaceName: opts.interface, version: opts.version }, demoService(opts.serverId));
  server.on('error', () => {});      // service errors are answered to the caller; keep serving
  await server.start();
  await server.publish();
  emit({ event: 'listening', port: server.publishPort, url: server.url, interface: opts.interface,
    version: opts.version, pid: process.pid });
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    try { await server.close(); } catch (e) { /* closing anyway */ }
    try { await registry.close(); } catch (e) { /* closing anyway */ }
    emit({ event: 'stopped' });
    exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch(fatal);
