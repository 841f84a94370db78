// USR2 graceful upgrade against a real ibas under a client loop (long and short connections):
// a new manager pid from the code on disk, `.oldbin` during the handover, zero failed
// transactions, no old-generation process left; a second USR2 while both live is refused; a
// broken new generation (its config fails to load) is rolled back and the old one keeps serving.
import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { isAlive, processesOfHome, waitFor } from '../helpers/procs.js';
import { assertStoppedClean, setupIbas, waitWorkers } from './helpers/server.js';
import { callOnce } from './helpers/client.js';
import { startLoop } from './helpers/loop.js';

t.test('SIGUSR2 under a client loop: new generation, zero failures', async (t) => {
  const s = await setupIbas(t, { maxCount: 2 });
  const oldPid = await s.start();
  const oldWorkers = (await waitWorkers(s, 2)).map((w) => w.pid);
  const long = startLoop(s.ip, s.port, { loops: 1, long: true });
  const short = startLoop(s.ip, s.port, { loops: 1, long: false });
  await waitFor('the loops run', () => long.stats.ok > 20 && short.stats.ok > 5 ? true : undefined, 20_000);

  const pidFile = path.join(s.home, 'run', 'ibas.pid');
  process.kill(oldPid, 'SIGUSR2');
  await waitFor('.oldbin during the handover', () => fs.existsSync(`${pidFile}.oldbin`) ? true : undefined, 10_000);
  t.equal(Number(fs.readFileSync(`${pidFile}.oldbin`, 'utf8')), oldPid, '<pid file>.oldbin names the old manager');
  process.kill(oldPid, 'SIGUSR2');
  const newPid = await waitFor('a new manager in the pid file', () => {
    try {
      const p = Number(fs.readFileSync(pidFile, 'utf8'));
      return p > 0 && p !== oldPid ? p : undefined;
    } catch {
      return undefined;
    }
  }, 30_000);
  await waitFor('the old manager gone', () => !isAlive(oldPid) ? true : undefined, 30_000);
  t.ok(isAlive(newPid), `the new manager ${newPid} serves`);
  t.notOk(fs.existsSync(`${pidFile}.oldbin`), '.oldbin is removed');
  const okMark = long.stats.ok + short.stats.ok;
  await waitFor('more transactions after the handover', () => long.stats.ok + short.stats.ok > okMark + 20 ? true : undefined, 20_000);
  const [l, sh] = [await long.stop(), await short.stop()];
  t.equal(l.failed + sh.failed, 0, `zero failed transactions (long ${l.ok} ok ${l.retried} reconnects, short ${sh.ok} ok) ${[...l.reasons, ...sh.reasons].slice(0, 3).join(' | ')}`);
  t.ok(oldWorkers.every((p) => !isAlive(p)), 'no old-generation worker is left');
  const now = await waitWorkers(s, 2);
  t.ok(now.every((w) => w.generation === 2), 'the workers are generation 2');
  t.match(s.log('monitor'), /upgrade refused: generation 2 \(pid \d+\) is already starting/, 'the second USR2 was refused');
  await waitFor('the new manager owns the shared state', () => /upgrade complete , the previous generation \(pid \d+\) is gone/.test(s.log('monitor')) ? true : undefined, 10_000);
  t.pass('the new manager logged the completed upgrade');
  t.equal((await callOnce(s.ip, s.port, 'ibp_test_echo', 'after')).body.toString(), 'after');
  t.equal((await s.stop()).code, 0, 'the new generation stops');
  await assertStoppedClean(t, s);
});

t.test('SIGUSR2 with a broken new generation: rolled back', async (t) => {
  const s = await setupIbas(t, { maxCount: 2 });
  const oldPid = await s.start();
  await waitWorkers(s, 2);
  const loop = startLoop(s.ip, s.port, { loops: 1, long: true });
  // the new generation reads the config on disk at start: break it
  const good = fs.readFileSync(s.conf, 'utf8');
  fs.writeFileSync(s.conf, good.replace('"mpm"', '"mpm_broken"'));
  process.kill(oldPid, 'SIGUSR2');
  const mon = await waitFor('the rollback line', () => /upgrade rolled back , generation 2 pid\[\d+\] failed: /.test(s.log('monitor')) ? s.log('monitor') : undefined, 30_000);
  t.match(mon, /generation 1 keeps serving/, `a clear log line: ${/upgrade rolled back[^\n]*/.exec(mon)?.[0]}`);
  fs.writeFileSync(s.conf, good);
  const pidFile = path.join(s.home, 'run', 'ibas.pid');
  t.equal(Number(fs.readFileSync(pidFile, 'utf8')), oldPid, 'the pid file names the old manager again');
  t.notOk(fs.existsSync(`${pidFile}.oldbin`), 'no .oldbin is left');
  t.ok(isAlive(oldPid), 'the old manager lives');
  const okMark = loop.stats.ok;
  await waitFor('the old generation serves on', () => loop.stats.ok > okMark + 20 ? true : undefined, 20_000);
  const st = await loop.stop();
  t.equal(st.failed, 0, `zero failed transactions (${st.ok} ok)`);
  const left = processesOfHome(s.home);
  t.ok(left.includes(oldPid) && left.length === 3, `only the old manager and its 2 workers run (${left.length} processes)`);
  t.equal((await s.stop()).code, 0);
  await assertStoppedClean(t, s);
});
