'use strict';
// N echo calls with distinct arguments, C in flight, over K connections; checks every answer is the one
// its caller sent (so a proxy that mixes up request ids is caught).
//   node echo_load.js --protocol dubbo|bolt --address HOST:PORT [--interface org.example.DemoService]
//        [--version 1.0.0] [--count 1000] [--concurrency 1000] [--connections 4] [--timeout 10000]
// Prints {"event":"summary","count","ok","mismatched","errors","first_error","elapsed_ms"}.
const { parseArgs, withEnv, quietLogger, deadline, fatal, exit, emit, describeError } = require('./_common');

const opts = parseArgs(process.argv.slice(2), withEnv({
  protocol: 'dubbo', address: '127.0.0.1:20880', interface: 'org.example.DemoService', version: '',
  count: '1000', concurrency: '1000', connections: '4', timeout: '10000', deadlineMs: '120000',
}));

function dubboWorkers() {
  const { DirectlyDubbo, java } = require('apache-dubbo-js');
  const workers = [];
  for (let k = 0; k < Number(opts.connections); k++) {
    const dubbo = DirectlyDubbo.from({ dubboAddress: opts.address, dubboVersion: '2.0.2',
      dubboInvokeTimeout: Math.ceil(Number(opts.timeout) / 1000) });
    const svc = dubbo.proxyService({ dubboInterface: opts.interface, version: opts.version || '1.0.0',
      methods: { echo: (x) => [java.String(x)] } });
    workers.push({ call: async (x) => { const { res, err } = await svc.echo(x); if (err) throw err; return res; } });
  }
  return workers;
}

async function boltWorkers() {
  const { client: { RpcClient } } = require('sofa-rpc-node');
  const java = require('js-to-java');
  const workers = [];
  for (let k = 0; k < Number(opts.connections); k++) {
    const client = new RpcClient({ logger: quietLogger });
    const consumer = client.createConsumer({ interfaceName: opts.interface, version: opts.version || '1.0',
      serverHost: opts.address });
    await consumer.ready();
    workers.push({ call: (x) => consumer.invoke('echo', [java.String(x)], { responseTimeout: Number(opts.timeout) }) });
  }
  return workers;
}

async function main() {
  deadline(Number(opts.deadlineMs), 'echo_load');
  const workers = opts.protocol === 'bolt' ? await boltWorkers() : dubboWorkers();
  let ok = 0, mismatched = 0, errors = 0, firstError = null;
  const started = Date.now();
  let next = 0;
  const count = Number(opts.count);
  async function lane() {
    while (next < count) {
      const i = next++;
      const sent = `call-${i}`;
      try {
        const got = await workers[i % workers.length].call(sent);
        if (got === sent) ok++; else { mismatched++; if (!firstError) firstError = { sent, got }; }
      } catch (err) {
        errors++;
        if (!firstError) firstError = describeError(err);
      }
    }
  }
  const lanes = [];
  for (let c = 0; c < Math.min(Number(opts.concurrency), count); c++) lanes.push(lane());
  await Promise.all(lanes);
  emit({ event: 'summary', count, ok, mismatched, errors, first_error: firstError, elapsed_ms: Date.now() - started });
  exit(0);
}

main().catch(fatal);
