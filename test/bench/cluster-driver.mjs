// The inside of bench:cluster (runs in the registry's network namespace): ROUNDS times, set a kv
// of node SRV through the REST API, distribute, and time until every config space in KEYS (index
// keys) shows the new value. Prints a JSON array of milliseconds.
import { ROOT } from './harness.mjs';
import path from 'node:path';

const { ConfigSpace } = await import(path.join(ROOT, 'dist', 'lib', 'shm', 'config-space.js'));
const url = process.env.IBMS_URL;
const token = process.env.IBMS_TOKEN;
const keys = process.env.KEYS.split(',').map(Number);
const rounds = Number(process.env.ROUNDS);
const tag = process.env.TAG;

async function rest(method, p, body) {
  const res = await fetch(`${url}${p}`, { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: body ? JSON.stringify(body) : undefined });
  if (!res.ok) throw new Error(`${method} ${p}: ${res.status} ${await res.text()}`);
  return res.json();
}

const spaces = keys.map((k) => ConfigSpace.openKey(k));
const times = [];
for (let i = 0; i < rounds; i++) {
  const value = `${tag}-${i}`;
  await rest('PUT', '/v1/nodes/SRV/kvs/round', { value });
  await rest('POST', '/v1/config/distribute');
  const t0 = performance.now();
  const deadline = t0 + 30_000;
  const pending = new Set(spaces.keys());
  while (pending.size > 0) {
    for (const j of [...pending]) {
      const s = spaces[j];
      s.checkSwitch();
      if (s.kv('SRV', 'round') === value) pending.delete(j);
    }
    if (performance.now() > deadline) throw new Error(`round ${i}: ${pending.size} agents did not see the change within 30 s`);
    if (pending.size > 0) await new Promise((r) => setImmediate(r));
  }
  times.push(performance.now() - t0);
  await new Promise((r) => setTimeout(r, 50));
}
for (const s of spaces) s.close();
process.stdout.write(JSON.stringify(times));
