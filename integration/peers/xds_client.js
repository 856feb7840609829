'use strict';
// A proxyless-xDS client on @grpc/grpc-js + @grpc/grpc-js-xds, scripted over stdin/stdout JSON lines.
//   GRPC_XDS_BOOTSTRAP_CONFIG='{...}' node xds_client.js --target xds:///<listener> [--deadline-ms 120000]
// Same protocol as integration/xds/echo.py (the grpcio client) (driven by integration/xds/clients.py):
//   prints {"event":"ready","client":"grpc-js-xds","version":V} once the channel exists;
//   {"id":I,"cmd":"call","n":N,"timeout":S,"metadata":{k:v}} -> N sequential unary calls of
//     /meshd.xds.test.Echo/Who (raw bytes; the answer is the backend's name), then
//     {"id":I,"event":"calls","counts":{name:n},"errors":{STATUS:n},"error":"first message"};
//   {"cmd":"exit"} or end of input -> close and exit 0 (grpc-js-xds keeps its ADS stream, and so the
//     process, alive after client.close(), hence the explicit exit).
const readline = require('readline');
const { parseArgs, withEnv, emit, deadline, fatal, exit } = require('./_common');

const METHOD = '/meshd.xds.test.Echo/Who';
const opts = parseArgs(process.argv.slice(2), withEnv({ target: '', deadlineMs: '120000' }));

function callOnce(grpc, client, timeoutS, metadata) {
  return new Promise((resolve) => {
    const md = new grpc.Metadata();
    for (const [k, v] of Object.entries(metadata || {})) md.set(k, String(v));
    const options = { deadline: Date.now() + timeoutS * 1000 };
    client.makeUnaryRequest(METHOD, (b) => b, (b) => b, Buffer.alloc(0), md, options, (err, value) => {
      if (err) resolve({ error: err });
      else resolve({ name: value.toString('utf8') });
    });
  });
}

async function calls(grpc, client, cmd) {
  const counts = {};
  const errors = {};
  let first = '';
  const timeoutS = Number(cmd.timeout === undefined ? 2 : cmd.timeout);
  for (let i = 0; i < Number(cmd.n || 1); i++) {
    const r = await callOnce(grpc, client, timeoutS, cmd.metadata);
    if (r.name !== undefined) {
      counts[r.name] = (counts[r.name] || 0) + 1;
    } else {
      const code = grpc.status[r.error.code] || String(r.error.code);
      errors[code] = (errors[code] || 0) + 1;
      if (!first) first = `${code}: ${r.error.details}`;
    }
  }
  return { id: cmd.id, event: 'calls', counts, errors, error: first };
}

function main() {
  deadline(Number(opts.deadlineMs), 'xds_client');
  if (!opts.target) throw new Error('--target xds:///<listener> is required');
  const grpc = require('@grpc/grpc-js');
  const xds = require('@grpc/grpc-js-xds');
  xds.register();
  const client = new grpc.Client(opts.target, grpc.credentials.createInsecure());
  const version = require('@grpc/grpc-js-xds/package.json').version;
  emit({ event: 'ready', client: 'grpc-js-xds', version, grpcJs: require('@grpc/grpc-js/package.json').version });
  const rl = readline.createInterface({ input: process.stdin });
  let queue = Promise.resolve();
  const finish = () => { client.close(); exit(0); };
  rl.on('line', (line) => {
    if (!line.trim()) return;
    const cmd = JSON.parse(line);
    queue = queue.then(async () => {
      if (cmd.cmd === 'exit') return finish();
      if (cmd.cmd === 'call') return emit(await calls(grpc, client, cmd));
      emit({ id: cmd.id, event: 'error', error: `unknown command ${line}` });
    }).catch(fatal);
  });
  rl.on('close', () => { queue = queue.then(finish); });
}

try {
  main();
} catch (err) {
  fatal(err);
}
