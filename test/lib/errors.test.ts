import t from 'tap';
import fs from 'node:fs';
import { ERRORS, IbpError, type ErrorCode, type ErrorSpec } from '../../lib/errors.js';

const doc = fs.readFileSync(new URL('../../docs/ERRORS.md', import.meta.url), 'utf8');
const documented = new Set([...doc.matchAll(/`(IBP_ERR_[A-Z0-9_]+)`/g)].map((m) => m[1]));
const codes = Object.keys(ERRORS) as ErrorCode[];

t.test('every code is documented and every documented code exists', async (t) => {
  for (const c of codes) t.ok(documented.has(c), `${c} is in docs/ERRORS.md`);
  for (const c of documented) t.ok(codes.includes(c as ErrorCode), `${c} (docs) is in lib/errors.ts`);
});

/** The rows of the table in docs/ERRORS.md: code → message, HTTP status, exit code (as written). */
const docRows = new Map<string, { message: string; http: string; exit: string }>();
for (const line of doc.split('\n')) {
  const m = /^\| `(IBP_ERR_[A-Z0-9_]+)` \| (.*) \| (\d*) \| (\d*) \|$/.exec(line);
  if (m) docRows.set(m[1]!, { message: m[2]!.replace(/\\\|/g, '|'), http: m[3]!, exit: m[4]! });
}

t.test('codes follow IBP_ERR_<AREA>_<WHAT> and build their messages', async (t) => {
  t.equal(docRows.size, codes.length, 'docs/ERRORS.md has one table row per code');
  for (const c of codes) {
    t.match(c, /^IBP_ERR_[A-Z0-9]+_[A-Z0-9_]+$/);
    const spec: ErrorSpec = ERRORS[c];
    const row = docRows.get(c);
    t.same(row, { message: spec.message, http: spec.http === undefined ? '' : String(spec.http), exit: spec.exit === undefined ? '' : String(spec.exit) },
      `${c}: message, HTTP status and exit code in docs/ERRORS.md are the table's`);
    // every placeholder of the template is filled from the params, nothing else changes
    const names = [...spec.message.matchAll(/\{(\w+)\}/g)].map((m) => m[1]!);
    const params = Object.fromEntries(names.map((n) => [n, `<${n}>`]));
    const e = new IbpError(c, params);
    t.equal(e.code, c);
    t.equal(e.message, spec.message.replace(/\{(\w+)\}/g, (_, n: string) => `<${n}>`), `${c}: the message is the template with its params`);
    t.notMatch(e.message, /\{\w+\}/, `${c} fills its placeholders`);
    t.equal(e.http, spec.http ?? 500, `${c}: HTTP status ${spec.http ?? '500 (default)'}`);
    t.equal(e.exitCode, spec.exit ?? 1, `${c}: exit code ${spec.exit ?? '1 (default)'}`);
    t.ok(e.message.length > 0, `${c}: a non-empty message`);
  }
});

t.test('message placeholders are filled and unknown ones kept visible', async (t) => {
  const e = new IbpError('IBP_ERR_CFG_INVALID', { file: '/h/etc/x.conf', key: '/a/b', detail: 'must be integer' });
  t.equal(e.message, 'config file /h/etc/x.conf: key /a/b must be integer');
  t.equal(e.exitCode, 3);
  t.same(e.toJSON(), { code: 'IBP_ERR_CFG_INVALID', message: e.message });
  t.equal(new IbpError('IBP_ERR_REG_AUTH').http, 401);
});
