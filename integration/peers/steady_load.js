'use strict';
// A steady stream of echo calls from a real client until told to stop, for fault tests: every answer must
// be the argument its caller sent.
//   node steady_load.js --protocol dubbo|bolt --address HOST:PORT [--interface IFACE] [--version V]
//        [--concurrency 4] [--pause-ms 20] [--timeout 5000] [--deadline-ms 180000]
// dubbo: apache-dubbo-js DirectlyDubbo; bolt: sofa-rpc-node RpcClient (serverHost = the address).
// Each of the --concurrency lanes calls echo("<lane>-<n>"), waits --pause-ms, and calls again. Prints
//   {"event":"progress","ok","errors","mismatched","t_ms"} every 200 ms,
//   {"event":"error","sent_ms","t_ms","error":{...}} for each failed call as it fails (sent_ms: when it started),
//   {"event":"summary","ok","errors","mismatched","first_ok_ms","last_ok_ms","elapsed_ms"} after SIGTERM
// (no new calls start; those in flight finish), then exits 0. t_ms are epoch milliseconds.
const { parseArgs, emit, exit, fatal, deadline, describeError, quietLogger } = require('./_common');

const opts = parseArgs(process.argv.slice(2), {
  protocol: 'dubbo', address: '', interface: '', version: '', concurrency: '4', pauseMs: '20',
  timeout: '5000', deadlineMs: '180000',
});

function dubboCaller() {
  const { DirectlyDubbo, java } = require('apache-dubbo-js');
  const dubbo = DirectlyDubbo.from({ dubboAddress: opts.address, dubboVersion: '2.0.2',
    dubboInvokeTimeout: Math.max(1, Math.ceil(Number(opts.timeout) / 1000)) });
  const svc = dubbo.proxyService({ dubboInterface: opts.interface || 'org.example.DemoService',
    version: opts.version || '1.0.0', methods: { echo: (x) => [java.String(x)] } });
  return async (x) => { const { res, err } = await svc.echo(x); if (err) throw err; return res; };
}

async function boltCaller() {
  const { client: { RpcClient } } = require('sofa-rpc-node');
  const java = require('js-to-java');
  const client = new RpcClient({ logger: quietLogger });
  const consumer = client.createConsumer({ interfaceName: opts.interface || 'com.example.Calc',
    version: opts.version || '1.0', serverHost: opts.address, responseTimeout: Number(opts.timeout) });
  await consumer.ready();
  return (x) => consumer.invoke('echo', [java.String(x)], { responseTimeout: Number(opts.timeout) });
}

async function main() {
  deadline(Number(opts.deadlineMs), 'steady_load');
  if (!opts.address) throw new Error('--address HOST:PORT is required');
  const call = opts.protocol === 'bolt' ? await boltCaller() : dubboCaller();
  const started = Date.now();
  const stats = { ok: 0, errors: 0, mismatched: 0, first_ok_ms: null, last_ok_ms: null };
  let stopping = false;
  const report = () => emit({ event: 'progress', ok: stats.ok, errors: stats.errors, mismatched: stats.mismatched,
    t_ms: Date.now() });
  const ticker = setInterval(report, 200);
  const pause = () => new Promise(r => setTimeout(r, Number(opts.pauseMs)));
  async function lane(id) {
    for (let n = 0; !stopping; n++) {
      const sent = `${id}-${n}`;
      const sentMs = Date.now();
      try {
        const got = await call(sent);
        if (got === sent) {
          stats.ok++;
          stats.last_ok_ms = Date.now();
          if (stats.first_ok_ms === null) stats.first_ok_ms = stats.last_ok_ms;
        } else {
          stats.mismatched++;
          emit({ event: 'error', sent_ms: sentMs, t_ms: Date.now(), error: { name: 'Mismatch', message: `sent ${sent}, got ${got}` } });
        }
      } catch (err) {
        stats.errors++;
        emit({ event: 'error', sent_ms: sentMs, t_ms: Date.now(), error: describeError(err) });
      }
      await pause();
    }
  }
  const lanes = [];
  for (let c = 0; c < Number(opts.concurrency); c++) lanes.push(lane(c));
  emit({ event: 'started', t_ms: started });
  process.on('SIGTERM', async () => {
    stopping = true;
    await Promise.all(lanes);
    clearInterval(ticker);
    report();
    emit(Object.assign({ event: 'summary', elapsed_ms: Date.now() - started }, stats));
    exit(0);
  });
}

main().catch(fatal);
