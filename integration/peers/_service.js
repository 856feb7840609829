'use strict';
// The demo service both provider scripts expose, and a loopback-only sofa-rpc-node RpcServer.

const net = require('net');
const { server: { RpcServer } } = require('sofa-rpc-node');
const { emit, exit, quietLogger } = require('./_common');

function demoService(serverId) {
  return {
    async sayHello(name, n) { return `hello ${name} x${n}`; },
    async add(a, b) { return a + b; },
    async plus(a, b) { return a + b; },
    async greet(s) { return 'hi ' + s; },
    async echo(x) { return x; },
    async fail(message) { throw new Error(message || 'fail requested'); },
    async sleep(ms) { await new Promise(r => setTimeout(r, Number(ms))); return Number(ms); },
    async whoami() { return serverId; },
  };
}

// sofa-rpc-node listens on every interface; tests stay on loopback.
class LoopbackRpcServer extends RpcServer {
  _startServer(port) {
    const server = net.createServer();
    server.once('error', err => { this.emit('error', err); });
    server.on('connection', socket => { this._handleSocket(socket); });
    server.listen(port, this.options.host || '127.0.0.1', () => {
      const realPort = server.address().port;
      if (port === this.publishPort && port === 0) this.publishPort = realPort;
    });
    return server;
  }
}

async function startProvider(opts, protocol) {
  const server = new LoopbackRpcServer({
    logger: quietLogger,
    port: Number(opts.port),
    host: opts.host,
    protocol,
    killTimeout: 1000,
  });
  const serverId = opts.serverId || '';
  server.addService({
    interfaceName: opts.interface,
    version: opts.version,
    uniqueId: opts.uniqueId || undefined,
  }, demoService(serverId));
  let requests = 0;
  server.on('request', ({ req }) => {
    requests++;
    if (opts.verbose === 'true') {
      emit({ event: 'request', n: requests, id: req.packetId, service: req.data.serverSignature,
        method: req.data.methodName, args: req.data.args, argSigs: req.data.methodArgSigs,
        props: req.data.requestProps, timeout: req.options && req.options.timeout });
    }
  });
  server.on('error', () => {});   // service errors are answered to the caller; keep serving
  await server.start();
  const port = server.publishPort;
  emit({ event: 'listening', port, host: opts.host || '127.0.0.1', interface: opts.interface,
    version: opts.version, uniqueId: opts.uniqueId || null, pid: process.pid });
  const stop = async () => {
    try { await server.close(); } catch (e) { /* closing anyway */ }
    emit({ event: 'stopped', requests });
    exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  if (opts.lifetimeMs) setTimeout(stop, Number(opts.lifetimeMs)).unref();
  return server;
}

module.exports = { startProvider, demoService };
