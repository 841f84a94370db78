// The exit-class table (ibas/exit-class.ts): how each kind of worker exit is classified, the
// CHILD_SICK back-off, and docs/ibas.md's table (class → action) in step with the code.
import t from 'tap';
import fs from 'node:fs';
import { EXIT } from '../../lib/exit-codes.js';
import { classifyExit, EXIT_CLASSES, SICK_BACKOFF, sickDelayMs, type ExitFacts } from '../../ibas/exit-class.js';

const f = (o: Partial<ExitFacts>): ExitFacts => ({ code: 0, signal: null, retiring: false, state: 'IDLE', ...o });

t.test('classification', async (t) => {
  t.equal(classifyExit(f({})), 'recycled', 'code 0 on its own: recycled');
  t.equal(classifyExit(f({ retiring: true })), 'stopped', 'code 0 when asked: stopped');
  t.equal(classifyExit(f({ code: null, signal: 'SIGTERM', retiring: true })), 'stopped', 'SIGTERM when asked: stopped');
  t.equal(classifyExit(f({ code: null, signal: 'SIGKILL', retiring: true, state: 'WORKING' })), 'stopped', 'the stop timeout SIGKILL: stopped');
  t.equal(classifyExit(f({ code: null, signal: 'SIGSEGV', state: 'WORKING' })), 'crashed');
  t.equal(classifyExit(f({ code: null, signal: 'SIGSEGV', retiring: true, state: 'WORKING' })), 'crashed', 'a crash while leaving is still a crash');
  t.equal(classifyExit(f({ code: null, signal: 'SIGKILL' })), 'crashed', 'killed from outside');
  t.equal(classifyExit(f({ code: EXIT.FAILURE })), 'crashed', 'uncaught exception');
  t.equal(classifyExit(f({ code: null, signal: 'SIGKILL', tier: 3, state: 'WORKING' })), 'timed_out');
  t.equal(classifyExit(f({ code: null, signal: 'SIGALRM', tier: 1, state: 'WORKING' })), 'timed_out');
  t.equal(classifyExit(f({ code: EXIT.CHILD_SICK })), 'sick');
  t.equal(classifyExit(f({ code: EXIT.CHILD_SICK, state: 'STARTING' })), 'sick', 'sick wins over boot');
  t.equal(classifyExit(f({ code: EXIT.CHILD_FATAL, state: 'STARTING' })), 'fatal', 'fatal wins over everything');
  t.equal(classifyExit(f({ code: EXIT.CHILD_INIT, state: 'STARTING' })), 'boot_error');
  t.equal(classifyExit(f({ code: EXIT.APP_LOAD, state: 'STARTING' })), 'boot_error');
  t.equal(classifyExit(f({ code: null, signal: 'SIGSEGV', state: 'STARTING' })), 'boot_error', 'a death before ready');
});

t.test('CHILD_SICK back-off doubles up to its cap', async (t) => {
  t.equal(sickDelayMs(1), SICK_BACKOFF.firstMs);
  t.equal(sickDelayMs(2), 2 * SICK_BACKOFF.firstMs);
  t.equal(sickDelayMs(3), 4 * SICK_BACKOFF.firstMs);
  t.equal(sickDelayMs(100), SICK_BACKOFF.maxMs);
});

t.test('docs/ibas.md lists every class with its action', async (t) => {
  const doc = fs.readFileSync(new URL('../../docs/ibas.md', import.meta.url), 'utf8');
  const rows = new Map([...doc.matchAll(/^\| `(\w+)` \| [^|]+ \| (\w+) \|$/gm)].map((m) => [m[1]!, m[2]!]));
  for (const [cls, spec] of Object.entries(EXIT_CLASSES)) t.equal(rows.get(cls), spec.action, `${cls} → ${spec.action}`);
  t.same([...rows.keys()].sort(), Object.keys(EXIT_CLASSES).sort(), 'no class documented that the code does not have');
});
