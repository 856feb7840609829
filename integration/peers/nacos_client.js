'use strict';
// The npm `nacos` client (NacosNamingClient: v1 HTTP + UDP push; NacosConfigClient: v1 HTTP long polling)
// driven by JSON commands on stdin, one per line; it answers with one JSON object per line on stdout.
//   node nacos_client.js --server 127.0.0.1:8848 [--namespace public] [--config-namespace ''] [--cache-dir DIR]
//        [--deadline-ms 120000]
// Prints {"event":"ready"} once both clients are ready. Commands (each answered by
// {"event":"result","id","op","ok","value"|"error"}):
//   {"id":1,"op":"register","service":"S","group":"G","ip":"127.0.0.1","port":1,"weight":1,"metadata":{},"cluster":"DEFAULT"}
//   {"op":"deregister", same keys}     {"op":"subscribe","service":"S","group":"G"}  → {"event":"hosts","service","hosts":[...]} on each push
//   {"op":"getConfig","dataId","group"}  {"op":"publish","dataId","group","content"}  {"op":"remove","dataId","group"}
//   {"op":"listen","dataId","group"}   → {"event":"config","dataId","group","content"} on each change
//   {"op":"exit"}
// Errors of the clients themselves (e.g. a push that does not parse) are reported as {"event":"error",...}.
const readline = require('readline');
const os = require('os');
const path = require('path');
const { parseArgs, withEnv, emit, describeError, deadline, fatal, exit } = require('./_common');

const opts = parseArgs(process.argv.slice(2), withEnv({
  server: '127.0.0.1:8848', namespace: 'public', configNamespace: '',
  cacheDir: path.join(os.tmpdir(), 'meshd-nacos-node-cache-' + process.pid), deadlineMs: '120000',
}));

const logger = {
  info() {}, debug() {},
  warn(...args) { process.stderr.write('WARN ' + args.map(String).join(' ') + '\n'); },
  error(...args) { process.stderr.write('ERROR ' + args.map(String).join(' ') + '\n'); },
};

async function main() {
  deadline(Number(opts.deadlineMs), 'nacos_client');
  const { NacosNamingClient, NacosConfigClient } = require('nacos');
  const naming = new NacosNamingClient({ logger, serverList: opts.server, namespace: opts.namespace });
  naming.on('error', err => emit({ event: 'error', source: 'naming', error: describeError(err) }));
  await naming.ready();
  const config = new NacosConfigClient({ serverAddr: opts.server, namespace: opts.configNamespace, cacheDir: opts.cacheDir });
  config.on('error', err => emit({ event: 'error', source: 'config', error: describeError(err) }));
  await config.ready();
  const handlers = {
    register: c => naming.registerInstance(c.service, instance(c), c.group),
    deregister: c => naming.deregisterInstance(c.service, instance(c), c.group),
    subscribe: c => {
      naming.subscribe({ serviceName: c.service, groupName: c.group }, hosts => emit({ event: 'hosts', service: c.service, hosts }));
      return true;
    },
    getConfig: c => config.getConfig(c.dataId, c.group),
    publish: c => config.publishSingle(c.dataId, c.group, c.content),
    remove: c => config.remove(c.dataId, c.group),
    listen: c => {
      config.subscribe({ dataId: c.dataId, group: c.group }, content => emit({ event: 'config', dataId: c.dataId, group: c.group, content }));
      return true;
    },
  };
  emit({ event: 'ready', pid: process.pid });
  const rl = readline.createInterface({ input: process.stdin });
  for await (const line of rl) {
    if (!line.trim()) continue;
    const cmd = JSON.parse(line);
    if (cmd.op === 'exit') break;
    const handler = handlers[cmd.op];
    try {
      if (!handler) throw new Error('unknown op ' + cmd.op);
      const value = await handler(cmd);
      emit({ event: 'result', id: cmd.id, op: cmd.op, ok: true, value: value === undefined ? null : value });
    } catch (err) {
      emit({ event: 'result', id: cmd.id, op: cmd.op, ok: false, error: describeError(err) });
    }
  }
  await Promise.all([naming.close(), config.close()].map(p => Promise.resolve(p).catch(() => {})));
  emit({ event: 'closed' });
  exit(0);
}

function instance(c) {
  return {
    ip: c.ip, port: c.port, weight: c.weight === undefined ? 1 : c.weight, metadata: c.metadata || {},
    clusterName: c.cluster || 'DEFAULT', ephemeral: c.ephemeral === undefined ? true : c.ephemeral,
    enabled: true, healthy: true,
  };
}

main().catch(fatal);
