// `ibas -a start --foreground`: one process serving (for a debugger), stoppable with SIGTERM,
// leaving nothing behind.
import t from 'tap';
import { spawn } from 'node:child_process';
import { BIN, waitFor } from '../helpers/procs.js';
import { assertStoppedClean, echoLoop, setupIbas } from './helpers/server.js';
import { callOnce } from './helpers/client.js';

t.test('foreground mode serves and stops', async (t) => {
  const s = await setupIbas(t);
  const child = spawn(process.execPath, [BIN('ibas'), '-f', s.conf, '-a', 'start', '--foreground'], { env: { ...process.env, IBP_HOME: s.home }, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  t.teardown(() => { child.kill('SIGKILL'); });
  await waitFor('foreground ready', () => stderr.includes('ibas foreground ok'), 20_000);
  t.equal(s.managerPid(), child.pid, 'the pid file names the foreground process');
  const slots = s.slots();
  t.equal(slots.length, 1, 'one worker slot');
  t.equal(slots[0]!.pid, child.pid, 'the one worker is the process itself');

  t.equal(await echoLoop(s, 50), 50, 'long connection echoes');
  t.equal((await callOnce(s.ip, s.port, 'ibp_test_echo', 'short')).body.toString(), 'short');
  const st = await s.ibas(['-f', s.conf, '-s', 'status', '--json']);
  t.match(JSON.parse(st.stdout), { running: true, mode: 'FOREGROUND', workers: 1 });

  child.kill('SIGTERM');
  t.equal(await exited, 0, 'exits 0 on SIGTERM');
  t.match(stderr, /transaction , journal\[J0\] app\[ibp_test_echo\]/, 'logs go to the terminal');
  await assertStoppedClean(t, s);
});
