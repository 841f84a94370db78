/**
 * The ibas metrics endpoint across a USR2 upgrade: the new generation takes the metrics address
 * over once the old one has left, and the per-app counters (their own segment) survive it.
 */
import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { setupIbas } from '../ibas/helpers/server.js';
import { TestClient } from '../ibas/helpers/client.js';
import { freePort, isAlive, waitFor } from '../helpers/procs.js';

t.test('USR2: /metrics keeps answering with the new generation, counters kept', async (t) => {
  const s = await setupIbas(t, { maxCount: 1 });
  const metricsPort = await freePort(s.ip);
  const conf = JSON.parse(fs.readFileSync(s.conf, 'utf8')) as Record<string, any>;
  conf.metrics = { ip: s.ip, port: metricsPort };
  fs.writeFileSync(s.conf, JSON.stringify(conf, null, 2));
  const pid1 = await s.start();
  const scrape = async (): Promise<string> => (await fetch(`http://${s.ip}:${metricsPort}/metrics`).catch(() => undefined))?.text() ?? '';
  const c = await TestClient.connect(s.ip, s.port);
  for (let i = 0; i < 3; i++) t.equal((await c.call('ibp_test_echo', `x${i}`)).rc, 0);
  c.socket.destroy();
  await waitFor('3 echoes counted', async () => /ibas_app_transactions_total\{app="ibp_test_echo",rc="0"\} 3/.test(await scrape()), 10_000, 100);
  t.match(await scrape(), /^ibas_generation 1$/m);
  const gauge = (text: string, name: string): number => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
  const before = await scrape();
  process.kill(pid1, 'SIGUSR2');
  const pid2 = await waitFor('generation 2 in the pid file', () => {
    const p = Number(fs.readFileSync(path.join(s.home, 'run', 'ibas.pid'), 'utf8').trim());
    return p !== pid1 && p > 0 ? p : undefined;
  }, 60_000, 100);
  await waitFor('generation 1 gone', () => !isAlive(pid1), 60_000, 100);
  await waitFor('the metrics of generation 2', async () => /^ibas_generation 2$/m.test(await scrape()), 30_000, 200);
  t.match(await scrape(), /ibas_app_transactions_total\{app="ibp_test_echo",rc="0"\} 3/, 'the per-app counters survived the upgrade');
  t.match(await scrape(), /^ibas_upgrades_total 1$/m);
  const after = await scrape();
  t.equal(gauge(after, 'ibas_start_time_seconds'), gauge(before, 'ibas_start_time_seconds'), 'the instance start is kept by the upgrade');
  t.ok(gauge(after, 'ibas_manager_start_time_seconds') > gauge(before, 'ibas_manager_start_time_seconds'), 'the manager start is the new manager\'s');
  t.ok(isAlive(pid2));
  t.equal((await s.stop()).code, 0);
});
