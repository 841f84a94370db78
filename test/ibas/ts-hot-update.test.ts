// Hot update of a TypeScript/JS app (issue 15) against a real ibas under client loops on long and
// short connections: v2 of the ES module renamed over v1 → the answers switch from v1: to v2:
// with zero failed calls, each version a fresh module instance (its own counter), no worker dies.
import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { waitFor } from '../helpers/procs.js';
import { setupIbas, waitWorkers } from './helpers/server.js';
import { callOnce } from './helpers/client.js';
import { startLoop } from './helpers/loop.js';

const version = (v: number): string => `// test app version ${v}
let calls = 0;
export function main(ctx) {
  calls++;
  ctx.write('v${v}:' + ctx.request.toString() + ':' + calls);
  return 0;
}
`;

t.test('replacing an .mjs app under a client loop', async (t) => {
  const s = await setupIbas(t, { maxCount: 2, apps: [{ app: 'ts_ver', bin: 'ts_ver.mjs' }] });
  const bin = path.join(s.home, 'so', 'ts_ver.mjs');
  fs.writeFileSync(bin, version(1));
  await s.start();
  await waitWorkers(s, 2);
  const pids = s.slots().map((w) => w.pid).sort().join();
  const expect = (req: string, body: string): boolean => body.startsWith(`v1:${req}:`) || body.startsWith(`v2:${req}:`);
  const long = startLoop(s.ip, s.port, { loops: 1, long: true, app: 'ts_ver', expect });
  const short = startLoop(s.ip, s.port, { loops: 1, long: false, app: 'ts_ver', expect });
  await waitFor('v1 answers', () => (long.stats.answers.get('v1') ?? 0) > 20 && (short.stats.answers.get('v1') ?? 0) > 5 ? true : undefined, 20_000);

  fs.writeFileSync(`${bin}.tmp`, version(2));
  fs.renameSync(`${bin}.tmp`, bin);
  const v2Before = long.stats.answers.get('v2') ?? 0;
  await waitFor('v2 answers on both loops', () => (long.stats.answers.get('v2') ?? 0) > v2Before + 20 && (short.stats.answers.get('v2') ?? 0) > 5 ? true : undefined, 20_000);
  const fresh = (await callOnce(s.ip, s.port, 'ts_ver', 'x')).body.toString();
  t.match(fresh, /^v2:x:\d+$/, 'a new connection runs v2');
  const [l, sh] = [await long.stop(), await short.stop()];
  t.equal(l.failed + sh.failed, 0, `zero failed transactions (long ${l.ok} ok, short ${sh.ok} ok) ${[...l.reasons, ...sh.reasons].slice(0, 3).join(' | ')}`);
  t.ok(Number(fresh.split(':')[2]) <= (l.answers.get('v2') ?? 0) + (sh.answers.get('v2') ?? 0) + 1, 'v2 counts only its own calls: a fresh module instance, not v1 state');
  t.equal(s.slots().map((w) => w.pid).sort().join(), pids, 'no worker died or was replaced');
  t.equal((await s.stop()).code, 0);
});
