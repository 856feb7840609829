'use strict';
// A Dubbo2 consumer (apache-dubbo-js DirectlyDubbo) making N calls, C in flight, over K connections.
//   node dubbo_consumer.js --address 127.0.0.1:20880 [--interface org.example.DemoService]
//        [--version 1.0.0] [--group G] [--method sayHello] [--args '["world",7]']
//        [--types java.lang.String,int] [--count 1] [--concurrency 1] [--connections 1]
//        [--timeout 5000] [--dubbo-version 2.0.2] [--deadline-ms 60000]
// Each connection is its own DirectlyDubbo. Without --types, strings go as java.lang.String, integers as
// int, other numbers as double, booleans as boolean. Output as bolt_client.js; a non-20 status or an
// exception result is {"ok":false,"error":{...}}.
const { parseArgs, withEnv, runLoad, deadline, fatal, exit, dubboArgs } = require('./_common');

const opts = parseArgs(process.argv.slice(2), withEnv({
  address: '127.0.0.1:20880', interface: 'org.example.DemoService', version: '1.0.0', group: '',
  method: 'sayHello', args: '["world",7]', types: '', count: '1', concurrency: '1', connections: '1',
  timeout: '5000', dubboVersion: '2.0.2', deadlineMs: '60000',
}));

async function main() {
  deadline(Number(opts.deadlineMs), 'dubbo_consumer');
  const { DirectlyDubbo, java } = require('apache-dubbo-js');
  const args = dubboArgs(java, opts.args, opts.types);
  const workers = [];
  for (let k = 0; k < Number(opts.connections); k++) {
    const dubbo = DirectlyDubbo.from({
      dubboAddress: opts.address, dubboVersion: opts.dubboVersion,
      dubboInvokeTimeout: Math.max(1, Math.ceil(Number(opts.timeout) / 1000)),
    });
    workers.push(dubbo.proxyService({
      dubboInterface: opts.interface, version: opts.version, group: opts.group || undefined,
      methods: { [opts.method]: () => args },
    }));
  }
  await runLoad({
    count: Number(opts.count), concurrency: Number(opts.concurrency), workers,
    call: async (svc) => {
      const { res, err } = await svc[opts.method]();
      if (err) throw err;
      return res;
    },
  });
  exit(0);
}

main().catch(fatal);
