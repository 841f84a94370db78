// The exit-code contract, CHILD_FATAL: a worker that exits EXIT.CHILD_FATAL (here its app ends it
// with _exit(31)) stops the whole server, even though it served and other workers are healthy:
// the exit is logged as class fatal, the event log has the alert, every worker is stopped, the
// shared state removed, and the manager exits EXIT.CHILD_FATAL.
import t from 'tap';
import { EXIT } from '../../lib/exit-codes.js';
import { assertStoppedClean, setupIbas, waitWorkers } from './helpers/server.js';
import { callOnce } from './helpers/client.js';
import { startAttachedManager, within } from './helpers/manager.js';

t.test('a CHILD_FATAL exit halts the server; the manager exits non-zero', async (t) => {
  const s = await setupIbas(t, { maxCount: 2, apps: [{ app: 'ibp_test_exit', bin: 'ibp_test_exit.so' }] });
  const m = startAttachedManager(t, s);
  await m.ready;
  await waitWorkers(s, 2);
  t.equal((await callOnce(s.ip, s.port, 'ibp_test_echo', 'before')).body.toString(), 'before', 'the server serves');
  await callOnce(s.ip, s.port, 'ibp_test_exit', String(EXIT.CHILD_FATAL), { timeoutMs: 10_000 }).catch((e: Error) => e);
  const exit = await within(m.exited, 30_000);
  t.ok(exit, 'the manager stops by itself');
  t.equal(exit?.code, EXIT.CHILD_FATAL, `the manager exits EXIT.CHILD_FATAL (got ${exit?.code ?? exit?.signal})`);
  t.match(s.log('monitor'), /worker exited , pid\[\d+\] slot\[\d+\] code\[31\] [^\n]*class\[fatal\] action\[halt\]/, 'the exit is logged as class fatal');
  t.match(s.log('event'), /ALERT worker fatal , pid\[\d+\] exit\[CHILD_FATAL\]/, 'the event log has the alert');
  await assertStoppedClean(t, s);
});
