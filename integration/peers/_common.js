'use strict';
// Shared helpers for the peer scripts: argv parsing, JSON-line output, typed arguments, a load runner.
// Every script prints one JSON object per line on stdout and ends with process.exit().

function parseArgs(argv, defaults) {
  const out = Object.assign({}, defaults);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) throw new Error('unexpected argument ' + a);
    const eq = a.indexOf('=');
    let key;
    let value;
    if (eq > 0) {
      key = a.slice(2, eq);
      value = a.slice(eq + 1);
    } else {
      key = a.slice(2);
      const next = argv[i + 1];
      if (next === undefined || next.startsWith('--')) {
        value = 'true';
      } else {
        value = next;
        i++;
      }
    }
    key = key.replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    out[key] = value;
  }
  return out;
}

// Environment overrides: MESHD_PEER_<OPTION> (e.g. MESHD_PEER_PORT=0).
function withEnv(defaults) {
  const out = Object.assign({}, defaults);
  for (const key of Object.keys(defaults)) {
    const env = 'MESHD_PEER_' + key.replace(/[A-Z]/g, c => '_' + c).toUpperCase();
    if (process.env[env] !== undefined) out[key] = process.env[env];
  }
  return out;
}

function emit(obj) {
  process.stdout.write(JSON.stringify(obj, jsonReplacer) + '\n');
}

function jsonReplacer(key, value) {
  if (value && value.type === 'Buffer' && Array.isArray(value.data)) {
    return { $binary: Buffer.from(value.data).toString('hex') };
  }
  if (typeof value === 'bigint') return value.toString();
  if (value instanceof Error) return { name: value.name, message: value.message };
  return value;
}

function describeError(err) {
  if (!err) return null;
  const out = { name: err.name || 'Error', message: String(err.message || err) };
  if (err.resultCode) out.resultCode = err.resultCode;
  if (err.code) out.code = err.code;
  return out;
}

// JSON arguments + optional Java types ("int,java.lang.String") → js-to-java wrapped values.
function typedArgs(java, args, types) {
  if (!types) return args;
  const list = types.split(',').map(s => s.trim()).filter(Boolean);
  if (list.length !== args.length) {
    throw new Error(`--types has ${list.length} entries for ${args.length} arguments`);
  }
  return args.map((value, i) => java(list[i], value));
}

// Dubbo arguments from --args (a JSON list) and --types: typed as --types says, otherwise strings as
// java.lang.String, integers as int, other numbers as double, booleans as boolean.
function dubboArgs(java, argsJson, types) {
  const args = JSON.parse(argsJson);
  if (types) return typedArgs(java, args, types);
  return args.map((v) => {
    if (typeof v === 'string') return java.String(v);
    if (typeof v === 'boolean') return java.boolean(v);
    if (typeof v === 'number') return Number.isInteger(v) ? java.int(v) : java.double(v);
    return v;
  });
}

// Run `count` calls with at most `concurrency` in flight, spread over `workers` (connections) round-robin.
async function runLoad({ count, concurrency, workers, call }) {
  let next = 0;
  let ok = 0;
  let errors = 0;
  const started = Date.now();
  async function lane() {
    while (next < count) {
      const i = next++;
      const w = i % workers.length;
      const t0 = process.hrtime.bigint();
      try {
        const value = await call(workers[w], i);
        ok++;
        emit({ event: 'result', i, conn: w, ok: true, value, ms: Number(process.hrtime.bigint() - t0) / 1e6 });
      } catch (err) {
        errors++;
        emit({ event: 'result', i, conn: w, ok: false, error: describeError(err),
          ms: Number(process.hrtime.bigint() - t0) / 1e6 });
      }
    }
  }
  const lanes = [];
  for (let c = 0; c < Math.max(1, Math.min(concurrency, count)); c++) lanes.push(lane());
  await Promise.all(lanes);
  emit({ event: 'summary', count, ok, errors, elapsed_ms: Date.now() - started });
  return { ok, errors };
}

const quietLogger = {
  info() {}, debug() {}, warn() {},
  error(...args) { process.stderr.write(args.map(String).join(' ') + '\n'); },
};

// process.exit() drops whatever stdout still buffers when it is a pipe: exit once it is flushed
// (writes complete in order), with a hard exit as a backstop.
function exit(code) {
  setTimeout(() => process.exit(code), 5000).unref();
  process.stdout.write('', () => process.exit(code));
}

// A guard so that no script outlives its purpose.
function deadline(ms, what) {
  const t = setTimeout(() => {
    emit({ event: 'fatal', error: { name: 'DeadlineExceeded', message: `${what} did not finish in ${ms} ms` } });
    exit(3);
  }, ms);
  t.unref();
}

function fatal(err) {
  emit({ event: 'fatal', error: describeError(err), stack: err && err.stack });
  exit(2);
}

module.exports = { parseArgs, withEnv, emit, describeError, typedArgs, dubboArgs, runLoad, quietLogger, deadline, fatal, exit };
