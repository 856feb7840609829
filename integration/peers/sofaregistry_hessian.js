'use strict';
// Hessian draft-grammar oracle with explicit Java classes (hessian.js-1 1.12.x, what sofa-hessian 3.x writes).
//   node sofaregistry_hessian.js --mode encode   stdin: JSON array of value descriptions → {"results":[{"hex"}...]}
//   node sofaregistry_hessian.js --mode decode   stdin: JSON array of hex bodies → {"results":[{"value"}...]}
// One fresh EncoderV2 / DecoderV2 per value (class, type and reference tables are per body). A failed value gives
// {"error": message} in its slot.
//
// A description is hessian.js-1's own input format ({$class: 'com.x.Y', $: {field: ...}} with fields in the order
// given, {$class: 'long', $: '123'} (decimal strings for longs beyond 2^53), {$class: 'java.util.ArrayList', $: []},
// {$class: 'boolean', $: true}, {$class: 'java.lang.String', $: null} → null, ...) plus one addition JSON cannot
// express otherwise: a map is {$class: 'java.util.HashMap' | <a typed map class>, $map: [[key, value], ...]}. It
// becomes an ES6 Map (hessian.js-1 writes a plain object's keys sorted, a Map in its own order) with isMap set, so
// that hessian.js-1 writes 'M' [type] pairs 'z' and not an object definition; java.util.HashMap / java.util.Map
// are written untyped, as Java's MapSerializer writes a HashMap.
//
// Decoding uses read(true) ("withType"): objects come back as {$class, $: {fields}}, longs as {$class: 'long', $},
// booleans as {$class: 'boolean', $}, typed maps and lists as {$class, $}; strings, ints, untyped lists and maps
// plain. Longs beyond 2^53 are decimal strings, binaries {"$binary": hex}, dates {"$date": ms}.
const { parseArgs, fatal, exit } = require('./_common');

const opts = parseArgs(process.argv.slice(2), { mode: 'encode' });

function toHessianJs(desc) {
  if (desc === null || typeof desc !== 'object') return desc;
  if (Array.isArray(desc)) return desc.map(toHessianJs);
  if (Object.prototype.hasOwnProperty.call(desc, '$map')) {
    const map = new Map(desc.$map.map(([k, v]) => [toHessianJs(k), toHessianJs(v)]));
    return { $class: desc.$class, $: map, isMap: true };
  }
  const out = {};
  for (const [key, value] of Object.entries(desc)) out[key] = key === '$class' ? value : toHessianJs(value);
  return out;
}

function encodeOne(desc) {
  const { EncoderV2 } = require('hessian.js-1');
  const enc = new EncoderV2();
  enc.write(toHessianJs(desc));
  return { hex: enc.get().toString('hex') };
}

function plain(v) {
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
  if (Array.isArray(v)) return v.map(plain);
  return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
}

function decodeOne(hex) {
  const { DecoderV2 } = require('hessian.js-1');
  const buf = Buffer.from(hex, 'hex');
  const dec = new DecoderV2(buf);
  const value = plain(dec.read(true));
  const rest = buf.length - dec.byteBuffer.position();
  return rest ? { value, error: `${rest} bytes left after the value` } : { value };
}

function main(input) {
  const items = JSON.parse(input);
  const one = opts.mode === 'decode' ? decodeOne : encodeOne;
  const results = items.map((item) => {
    try {
      return one(item);
    } catch (err) {
      return { error: String(err && err.message || err) };
    }
  });
  process.stdout.write(JSON.stringify({ results }) + '\n');
  exit(0);
}

if (!['encode', 'decode'].includes(opts.mode)) fatal(new Error(`--mode must be encode or decode, not ${opts.mode}`));
let input = '';
process.stdin.on('data', (c) => { input += c; });
process.stdin.on('end', () => { try { main(input); } catch (e) { fatal(e); } });
