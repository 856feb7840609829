'use strict';
// A SOFA Bolt consumer (sofa-rpc-node RpcClient) making N calls, C in flight, over K connections.
//   node bolt_client.js --address 127.0.0.1:12200 [--interface com.example.Calc] [--version 1.0]
//        [--unique-id ID] [--method add] [--args '[1,2]'] [--types int,int] [--count 1]
//        [--concurrency 1] [--connections 1] [--timeout 3000] [--hessian 3.0|4.0] [--deadline-ms 60000]
// Each connection is its own RpcClient. Prints one {"event":"result","i","conn","ok","value"|"error","ms"}
// per call and {"event":"summary","count","ok","errors","elapsed_ms"}; exit 0 when it ran (check the
// summary), 2 on a fatal error, 3 when --deadline-ms passed.
const { parseArgs, withEnv, typedArgs, runLoad, quietLogger, deadline, fatal, exit } = require('./_common');

const opts = parseArgs(process.argv.slice(2), withEnv({
  address: '127.0.0.1:12200', interface: 'com.example.Calc', version: '1.0', uniqueId: '', method: 'add',
  args: '[1,2]', types: '', count: '1', concurrency: '1', connections: '1', timeout: '3000', hessian: '3.0',
  deadlineMs: '60000',
}));

async function main() {
  deadline(Number(opts.deadlineMs), 'bolt_client');
  const bolt = require('sofa-bolt-node');
  bolt.setOptions({ hessianVersion: opts.hessian });
  const { client: { RpcClient } } = require('sofa-rpc-node');
  const java = require('js-to-java');
  const args = typedArgs(java, JSON.parse(opts.args), opts.types);
  // sofa-rpc-node's consumer id is interface:version; a uniqueId rides along as version:uniqueId.
  const version = opts.uniqueId ? `${opts.version}:${opts.uniqueId}` : opts.version;
  const workers = [];
  for (let k = 0; k < Number(opts.connections); k++) {
    const client = new RpcClient({ logger: quietLogger, protocol: bolt });
    const consumer = client.createConsumer({
      interfaceName: opts.interface, version, serverHost: opts.address,
      responseTimeout: Number(opts.timeout),
    });
    await consumer.ready();
    workers.push({ client, consumer });
  }
  await runLoad({
    count: Number(opts.count), concurrency: Number(opts.concurrency), workers,
    call: (w) => w.consumer.invoke(opts.method, args, { responseTimeout: Number(opts.timeout) }),
  });
  await Promise.all(workers.map(w => w.client.close().catch(() => {})));
  exit(0);
}

main().catch(fatal);
