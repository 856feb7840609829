'use strict';
// Hessian oracle: decode every value of a body with hessian.js-1 (draft grammar) or hessian.js (final).
//   node hessian_decode.js --dialect draft|final --hex <hex>      (or the hex on stdin)
//   node hessian_decode.js --dialect draft|final --batch          (stdin: JSON array of hex bodies)
// Prints {"values":[...]} (Buffers as {"$binary":hex}, Dates as {"$date":ms}, Longs as numbers, or strings
// beyond 2^53, Java exceptions as {"$error":message}) or {"error":...,"values":[...]} when the oracle fails;
// with --batch one line {"results":[...]} holding one such object per body.
const { parseArgs, fatal, exit } = require('./_common');

const opts = parseArgs(process.argv.slice(2), { dialect: 'draft', hex: '', batch: 'false' });

function plain(v, seen = new Set()) {
  if (v === null || v === undefined) return null;
  if (Buffer.isBuffer(v)) return { $binary: v.toString('hex') };
  if (v instanceof Date) return { $date: v.getTime() };
  if (typeof v === 'bigint') return v.toString();
  if (v instanceof Error) return { $error: v.message };
  if (typeof v !== 'object') return v;
  if (typeof v.toNumber === 'function' && 'high' in v && 'low' in v) {
    const n = v.toNumber();
    return Number.isSafeInteger(n) ? n : v.toString();
  }
  if (seen.has(v)) return { $cycle: true };
  seen.add(v);
  const out = Array.isArray(v) ? v.map(x => plain(x, seen)) : Object.fromEntries(
    Object.entries(v).map(([k, x]) => [k, plain(x, seen)]));
  seen.delete(v);
  return out;
}

function decodeBody(hex) {
  const buf = Buffer.from(hex.trim(), 'hex');
  const Decoder = opts.dialect === 'final' ? require('hessian.js').DecoderV2 : require('hessian.js-1').DecoderV2;
  const d = new Decoder(buf);
  const values = [];
  try {
    while (d.byteBuffer.position() < buf.length) values.push(plain(d.read()));
  } catch (err) {
    return { error: err.message, values };
  }
  return { values };
}

function main(input) {
  const out = opts.batch === 'true' ? { results: JSON.parse(input).map(decodeBody) } : decodeBody(input);
  process.stdout.write(JSON.stringify(out) + '\n');
  exit(0);
}

if (opts.hex) {
  main(opts.hex);
} else {
  let input = '';
  process.stdin.on('data', c => { input += c; });
  process.stdin.on('end', () => { try { main(input); } catch (e) { fatal(e); } });
}
