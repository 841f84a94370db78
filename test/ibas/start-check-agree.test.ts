// `ibas -a start` refuses whatever `ibas -a check` refuses, with the same message and exit code
// (ibas/preflight.ts, one function for both), and starts nothing: a home without ibma.conf (it
// would start and answer POOL_NO_SPACE / 503 to everyone), a broken ibma.conf, a dynamic pool
// whose min_idle_count is above max_idle_count. What check accepts, start starts.
import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { processesOfHome } from '../helpers/procs.js';
import { setupIbas } from './helpers/server.js';

const lastLine = (s: string): string => s.trim().split('\n').pop() ?? '';

t.test('start and check agree', async (t) => {
  const s = await setupIbas(t, { maxCount: 1, mode: 'DYNAMIC_WORKERPOOL', minIdle: 1, maxIdle: 1 });
  const ibmaConf = path.join(s.home, 'etc', 'ibma.conf');
  const good = fs.readFileSync(ibmaConf, 'utf8');
  const conf = fs.readFileSync(s.conf, 'utf8');
  const cases: [string, () => void][] = [
    ['no ibma.conf', () => fs.rmSync(ibmaConf)],
    ['a broken ibma.conf', () => fs.writeFileSync(ibmaConf, good.replace('"this_node"', '"this_node_typo"'))],
    ['min_idle_count above max_idle_count', () => fs.writeFileSync(s.conf, conf.replace(/"min_idle_count": 1/, '"min_idle_count": 3'))],
  ];
  for (const [what, breakIt] of cases) {
    breakIt();
    const check = await s.ibas(['-f', s.conf, '-a', 'check']);
    const start = await s.ibas(['-f', s.conf, '-a', 'start']);
    t.not(check.code, 0, `${what}: check refuses (${lastLine(check.stderr)})`);
    t.equal(start.code, check.code, `${what}: start refuses with the same exit code`);
    t.equal(lastLine(start.stderr), lastLine(check.stderr), `${what}: and the same message`);
    t.notOk(fs.existsSync(path.join(s.home, 'run', 'ibas.pid')), `${what}: nothing started`);
    t.same(processesOfHome(s.home), [], `${what}: no process`);
    fs.writeFileSync(ibmaConf, good);
    fs.writeFileSync(s.conf, conf);
  }
  const check = await s.ibas(['-f', s.conf, '-a', 'check']);
  t.equal(check.code, 0, 'the repaired home passes check');
  await s.start();
  t.pass('and starts');
  t.equal((await s.stop()).code, 0);
});
