// lib/signals.ts: the signal map is the one table the docs show, and a handler runs in the turn of
// the event loop that heard the signal, before the work a busy process resumes in that turn's
// check phase (an ibas worker: a stretch of synchronous serving after every setImmediate turn).
import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { ROOT } from '../helpers/procs.js';
import { SIGNAL_TABLE, installSignals } from '../../lib/signals.js';

const ACTION_WORDS: Record<string, RegExp> = {
  stop: /graceful stop/,
  reopen: /reopen logs/,
  special: /component-defined/,
  reload: /reload/,
};

t.test('docs/ARCHITECTURE.md §3 and docs/ibas.md list every signal of the table', async (t) => {
  const arch = fs.readFileSync(path.join(ROOT, 'docs', 'ARCHITECTURE.md'), 'utf8');
  const rows = arch.split('\n').filter((l) => /^\| SIG/.test(l));
  for (const { signal, action } of SIGNAL_TABLE) {
    const row = rows.find((r) => r.split('|')[1]!.split(',').map((x) => x.trim()).includes(signal));
    t.ok(row, `ARCHITECTURE.md has a row for ${signal}`);
    t.match(row ?? '', ACTION_WORDS[action]!, `${signal}: ${action}`);
  }
  t.equal(rows.flatMap((r) => r.split('|')[1]!.split(',').map((x) => x.trim())).length, SIGNAL_TABLE.length, 'and no other signal');
  const ibas = fs.readFileSync(path.join(ROOT, 'docs', 'ibas.md'), 'utf8');
  const section = ibas.slice(ibas.indexOf('## Signals'), ibas.indexOf('\n## ', ibas.indexOf('## Signals') + 1));
  for (const { signal } of SIGNAL_TABLE) t.match(section, new RegExp(`^\\| ${signal} \\|`, 'm'), `docs/ibas.md Signals has ${signal}`);
});

t.test('a handler runs in the turn that heard the signal, before the work resumed in that turn', async (t) => {
  // a busy loop in the shape of an ibas worker: synchronous stretches of work, a setImmediate turn
  // between them; the signal arrives during a stretch
  const events: string[] = [];
  let stop = false;
  const uninstall = installSignals({ special: () => { events.push('handler'); stop = true; } });
  t.teardown(uninstall);
  const turn = (): Promise<void> => new Promise((r) => setImmediate(r));
  for (let stretch = 0; stretch < 50 && !stop; stretch++) {
    events.push(`stretch ${stretch}`);
    if (stretch === 2) process.kill(process.pid, 'SIGUSR2');
    const until = Date.now() + 5;
    while (Date.now() < until) { /* work */ }
    await turn();
  }
  const sent = events.indexOf('stretch 2');
  const heard = events.indexOf('handler');
  t.ok(heard > sent, `the handler ran (${events.join(', ')})`);
  // the signal is read in the poll phase of the turn after stretch 2 and its handler runs before
  // the stretch that turn resumes (a handler deferred with setImmediate ran after stretch 3)
  t.equal(heard, sent + 1, 'no further stretch ran before the handler');
  t.notOk(events.slice(heard + 1).some((e) => e.startsWith('stretch')), 'no stretch after the handler (it stopped the loop)');
});
