// The exit-code table (lib/exit-codes.ts) and docs/ARCHITECTURE.md §3 agree both ways; codes are
// unique; lib/errors.ts gives exit codes by name only (no number literal), and every error's exit
// code is one of the table.
import t from 'tap';
import fs from 'node:fs';
import { EXIT, exitName } from '../../lib/exit-codes.js';
import { ERRORS } from '../../lib/errors.js';

const doc = fs.readFileSync(new URL('../../docs/ARCHITECTURE.md', import.meta.url), 'utf8');
const section = doc.slice(doc.indexOf('Exit codes (`lib/exit-codes.ts`'), doc.indexOf('## 4.'));
const rows = [...section.matchAll(/^\| (\d+)(?: \(0x[0-9a-f]+\))? \| ([A-Z_]+) \| [^|]+ \|$/gm)].map((m) => ({ code: Number(m[1]), name: m[2]! }));

t.test('docs/ARCHITECTURE.md §3 lists exactly the table', async (t) => {
  const table = Object.entries(EXIT).map(([name, code]) => ({ code, name }));
  t.same(rows.slice().sort((a, b) => a.code - b.code), table.sort((a, b) => a.code - b.code), 'same names and numbers');
  t.equal(new Set(Object.values(EXIT)).size, table.length, 'no number twice');
  t.equal(exitName(EXIT.CHILD_SICK), 'CHILD_SICK');
  t.equal(exitName(4711), 'code 4711');
});

t.test('lib/errors.ts names exit codes, never literals', async (t) => {
  const src = fs.readFileSync(new URL('../../lib/errors.ts', import.meta.url), 'utf8');
  t.same(src.match(/exit: \d+/g) ?? [], [], 'no `exit: <number>` in the error table');
  const values = new Set<number>(Object.values(EXIT));
  for (const [code, spec] of Object.entries(ERRORS)) {
    const exit = (spec as { exit?: number }).exit;
    if (exit !== undefined) t.ok(values.has(exit), `${code}: exit ${exit} is in the table`);
  }
});
