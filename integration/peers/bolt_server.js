'use strict';
// A SOFA Bolt provider (sofa-rpc-node RpcServer) on loopback.
//   node bolt_server.js [--port 0] [--interface com.example.Calc] [--version 1.0] [--unique-id ID]
//                       [--hessian 3.0|4.0] [--server-id NAME] [--verbose] [--lifetime-ms N]
// Options may also come from the environment: MESHD_PEER_PORT, MESHD_PEER_INTERFACE, ...
// Prints {"event":"listening","port":N,...}, with --verbose one {"event":"request",...} per request,
// and {"event":"stopped","requests":N} on SIGTERM/SIGINT. Methods: sayHello(name,n) add(a,b) plus(a,b)
// greet(s) echo(x) fail(msg) (throws) sleep(ms) whoami() (returns --server-id).
const { parseArgs, withEnv, fatal } = require('./_common');
const { startProvider } = require('./_service');

const opts = parseArgs(process.argv.slice(2), withEnv({
  port: '0', host: '127.0.0.1', interface: 'com.example.Calc', version: '1.0', uniqueId: '', hessian: '3.0',
  serverId: '', verbose: 'false', lifetimeMs: '',
}));
const bolt = require('sofa-bolt-node');
bolt.setOptions({ hessianVersion: opts.hessian });
startProvider(opts, bolt).catch(fatal);
