#!/usr/bin/env node
// The load generator of bench:ibas's signing rows: ibac itself (dist/ibac), so plain, signed and
// signed+encrypted transactions go through the same client code and their ratio is like for like.
//
//   node test/bench/ibas-sign-client.mjs CONF NODE APP MODE CONC SECONDS WARMUP SIZE SIGN ENCRYPT
//     CONF: the client node's ibma.conf; MODE: long (one connection per client loop) or short
//     (connect, call, disconnect); SIGN / ENCRYPT: none | required.
// Prints `RESULT tps=… p50_us=… p99_us=… txn=… errors=…` like ibas-echoclient.c (measured after
// the warm-up; every call checks its echo).
import { dist } from './harness.mjs';

const [conf, node, app, mode, conc, seconds, warmup, size, sign, encrypt] = process.argv.slice(2);
const { createEnvironment } = await dist('ibac/index.js');
const env = createEnvironment({ config: conf, sign, encrypt });
const body = Buffer.alloc(Number(size), 'x');
const lat = [];
let txn = 0;
let errors = 0;
let firstError = '';
const t0 = Date.now();
const warmEnd = t0 + Number(warmup) * 1000;
const end = warmEnd + Number(seconds) * 1000;
let measuredFrom = 0;

async function loop() {
  let conn = mode === 'long' ? await env.connect(node, app) : undefined;
  while (Date.now() < end) {
    const s = process.hrtime.bigint();
    try {
      const r = conn ? await conn.sendRequestAndReceiveResponse(app, body) : await env.requester(node, app, body);
      if (!r.body.equals(body)) throw new Error('echo differs');
      const now = Date.now();
      if (now >= warmEnd) {
        if (measuredFrom === 0) measuredFrom = now;
        txn++;
        lat.push(Number(process.hrtime.bigint() - s) / 1000);
      }
    } catch (e) {
      errors++;
      firstError ||= e.message;
      if (conn) {
        conn.disconnect();
        conn = await env.connect(node, app);
      }
    }
  }
  conn?.disconnect();
}

await Promise.all(Array.from({ length: Number(conc) }, () => loop()));
env.destroy();
lat.sort((a, b) => a - b);
const pct = (p) => Math.round(lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] ?? 0);
const wall = (Date.now() - (measuredFrom || warmEnd)) / 1000;
if (firstError) process.stderr.write(`first error: ${firstError}\n`);
process.stdout.write(`RESULT tps=${Math.round(txn / Math.max(wall, 0.001))} p50_us=${pct(0.5)} p99_us=${pct(0.99)} txn=${txn} errors=${errors}\n`);
