// Issue 10: an accepted connection is always served. 20 consecutive USR2 upgrades (each waits for
// the new generation's pid file and the old manager's end) under a short-connection HTTP load and
// binary loads (short and long connections): not one failed call. A leaving worker serves what
// was sent on the connection it holds; a connection still in the accept queue is taken by a
// worker of the next generation.
import t from 'tap';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { isAlive, waitFor } from '../helpers/procs.js';
import { assertStoppedClean, setupIbas, waitWorkers } from './helpers/server.js';
import { startLoop } from './helpers/loop.js';

const UPGRADES = Number(process.env.IBP_TEST_UPGRADES ?? 20);
// each upgrade starts a manager and its workers (Node starts): ~2 s on a quiet machine, far more on
// a loaded one; the file's own budget covers 20 of them there
t.setTimeout(600_000);

/** Short HTTP calls (a new connection each, Connection: close) until stopped or `max` calls. */
function httpLoop(ip: string, port: number, max: number): { stats: { ok: number; failed: number; reasons: string[] }; stop(): Promise<void> } {
  const stats = { ok: 0, failed: 0, reasons: [] as string[] };
  let stopped = false;
  const one = (i: number): Promise<void> => new Promise((resolve) => {
    const body = `h${i}`;
    const req = http.request({ host: ip, port, method: 'POST', path: '/ibp/ibp_test_echo', agent: false, timeout: 20_000, headers: { 'Content-Length': body.length } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const got = Buffer.concat(chunks).toString();
        if (res.statusCode === 200 && got === body) stats.ok++;
        else {
          stats.failed++;
          stats.reasons.push(`status ${res.statusCode} body ${got.slice(0, 60)}`);
        }
        resolve();
      });
      res.on('error', (e) => {
        stats.failed++;
        stats.reasons.push(`response: ${e.message}`);
        resolve();
      });
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e) => {
      stats.failed++;
      stats.reasons.push(`request: ${e.message}`);
      resolve();
    });
    req.end(body);
  });
  const done = (async () => {
    for (let i = 0; !stopped && i < max; i++) await one(i);
  })();
  return {
    stats,
    async stop() {
      stopped = true;
      await done;
    },
  };
}

t.test(`${UPGRADES} USR2 upgrades under HTTP and binary loads: zero failed calls`, async (t) => {
  const s = await setupIbas(t, { maxCount: 2 });
  let pid = await s.start();
  await waitWorkers(s, 2);
  const pidFile = path.join(s.home, 'run', 'ibas.pid');
  const web = httpLoop(s.ip, s.port, 500_000);
  const short = startLoop(s.ip, s.port, { loops: 1, long: false, maxTx: 500_000 });
  const long = startLoop(s.ip, s.port, { loops: 1, long: true, maxTx: 500_000 });
  t.teardown(async () => {
    await Promise.all([web.stop(), short.stop(), long.stop()]);
  });
  await waitFor('the loads run', () => web.stats.ok > 10 && short.stats.ok > 10 && long.stats.ok > 10 ? true : undefined, 60_000)
    .catch((e) => {
      t.comment(`http ${web.stats.ok}/${web.stats.failed} short ${short.stats.ok}/${short.stats.failed} long ${long.stats.ok}/${long.stats.failed} ${[...web.stats.reasons, ...short.stats.reasons, ...long.stats.reasons].slice(-3).join(' | ')}`);
      throw e;
    });

  const t0 = Date.now();
  for (let u = 1; u <= UPGRADES; u++) {
    const before = pid;
    const mark = web.stats.ok + short.stats.ok;
    process.kill(before, 'SIGUSR2');
    pid = await waitFor(`upgrade ${u}: a new manager in the pid file`, () => {
      try {
        const p = Number(fs.readFileSync(pidFile, 'utf8'));
        return p > 0 && p !== before && !fs.existsSync(`${pidFile}.oldbin`) ? p : undefined;
      } catch {
        return undefined;
      }
    }, 30_000);
    await waitFor(`upgrade ${u}: the old manager gone`, () => !isAlive(before) ? true : undefined, 30_000);
    // the new manager owns the shared state (and takes the next USR2) once it saw the old one go
    await waitFor(`upgrade ${u}: complete`, () => (s.log('monitor').match(/upgrade complete/g) ?? []).length >= u ? true : undefined, 30_000);
    // calls went through during this handover before the next one starts
    await waitFor(`upgrade ${u}: calls after the handover`, () => web.stats.ok + short.stats.ok > mark + 4 ? true : undefined, 20_000);
    t.comment(`upgrade ${u} at ${Date.now() - t0} ms: http ${web.stats.ok}/${web.stats.failed} short ${short.stats.ok}/${short.stats.failed} long ${long.stats.ok}/${long.stats.failed}/${long.stats.retried} ${[...web.stats.reasons, ...short.stats.reasons, ...long.stats.reasons].slice(-2).join(' | ')}`);
  }
  await Promise.all([web.stop(), short.stop(), long.stop()]);
  if (process.env.IBP_TEST_DUMP) fs.writeFileSync(process.env.IBP_TEST_DUMP, s.log('monitor') + s.log(0) + s.log(1) + s.log(2) + s.log(3));
  const reasons = [...web.stats.reasons, ...short.stats.reasons, ...long.stats.reasons].slice(0, 4).join(' | ');
  t.ok(web.stats.ok > UPGRADES && short.stats.ok > UPGRADES && long.stats.ok > UPGRADES, `calls ran all along (http ${web.stats.ok}, binary short ${short.stats.ok}, binary long ${long.stats.ok} with ${long.stats.retried} reconnects)`);
  t.equal(web.stats.failed, 0, `zero failed short HTTP calls ${reasons}`);
  t.equal(short.stats.failed, 0, 'zero failed short binary calls');
  t.equal(long.stats.failed, 0, 'zero failed long-connection binary calls');
  const now = await waitWorkers(s, 2);
  t.ok(now.every((w) => w.generation === UPGRADES + 1), `the workers are generation ${UPGRADES + 1}`);
  t.equal((await s.stop()).code, 0);
  await assertStoppedClean(t, s);
});
