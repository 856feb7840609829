'use strict';
// A Dubbo2 provider: sofa-rpc-node RpcServer speaking dubbo-remoting, on loopback.
//   node dubbo_provider.js [--port 0] [--interface org.example.DemoService] [--version 1.0.0]
//                          [--server-id NAME] [--verbose] [--lifetime-ms N]
// Output and methods as bolt_server.js. dubbo-remoting keys services by path:version (no group).
const { parseArgs, withEnv, fatal } = require('./_common');
const { startProvider } = require('./_service');

const opts = parseArgs(process.argv.slice(2), withEnv({
  port: '0', host: '127.0.0.1', interface: 'org.example.DemoService', version: '1.0.0', uniqueId: '',
  serverId: '', verbose: 'false', lifetimeMs: '',
}));
startProvider(opts, require('dubbo-remoting')).catch(fatal);
