'use strict';
// Hessian oracle: decode every value of a body with hessian.js-1 (draft grammar) or hessian.js (final).
//   node hessian_decode.js --dialect draft|final --hex <hex>      (or the hex on stdin)
// Prints {"values":[...]} (Buffers as {"$binary":hex}, Dates as {"$date":ms}, Longs as numbers/strings,
// Java exceptions as {"$error":message}) or {"error":...} when the oracle fails.
const { parseArgs, fatal } = require('./_common');

const opts = parseArgs(process.argv.slice(2), { dialect: 'draft', hex: '' });

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

function main(hex) {
  const buf = Buffer.from(hex.trim(), 'hex');
  const Decoder = opts.dialect === 'final' ? require('hessian.js').DecoderV2 : require('hessian.js-1').DecoderV2;
  const d = new Decoder(buf);
  const values = [];
  try {
    while (d.byteBuffer.position() < buf.length) values.push(plain(d.read()));
  } catch (err) {
    process.stdout.write(JSON.stringify({ error: err.message, values }) + '\n');
    process.exit(0);
  }
  process.stdout.write(JSON.stringify({ values }) + '\n');
  process.exit(0);
}

if (opts.hex) {
  main(opts.hex);
} else {
  let input = '';
  process.stdin.on('data', c => { input += c; });
  process.stdin.on('end', () => { try { main(input); } catch (e) { fatal(e); } });
}
