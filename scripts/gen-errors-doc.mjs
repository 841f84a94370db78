#!/usr/bin/env node
// Regenerates docs/ERRORS.md from the table in lib/errors.ts (run after adding a code:
// `node scripts/gen-errors-doc.mjs`). test/lib/errors.test.ts fails when the two disagree.
import fs from 'node:fs';
const root = new URL('..', import.meta.url);
const src = fs.readFileSync(new URL('lib/errors.ts', root), 'utf8');
// exit codes are written by name (EXIT.USAGE): the numbers come from lib/exit-codes.ts
const exits = Object.fromEntries([...fs.readFileSync(new URL('lib/exit-codes.ts', root), 'utf8').matchAll(/^\s+(\w+): (0x[0-9a-f]+|\d+),$/gm)].map((m) => [m[1], Number(m[2])]));
let out = '# Error codes\n\nEvery failure that crosses a module boundary is an `IbpError` with one of these stable codes\n'
  + '(lib/errors.ts). A code never changes meaning once released. Regenerate this page with\n'
  + '`node scripts/gen-errors-doc.mjs`; `test/lib/errors.test.ts` keeps page and table in step.\n\n'
  + '| code | message | HTTP | exit |\n|---|---|---|---|\n';
const re = /^\s+(IBP_ERR_\w+): \{ message: '((?:[^'\\]|\\.)*)'(?:, http: (\d+))?(?:, exit: EXIT\.(\w+))? \}/gm;
for (const m of src.matchAll(re)) out += `| \`${m[1]}\` | ${m[2].replace(/\\'/g, "'").replace(/\|/g, '\\|')} | ${m[3] ?? ''} | ${m[4] === undefined ? '' : exits[m[4]]} |\n`;
fs.writeFileSync(new URL('docs/ERRORS.md', root), out);
