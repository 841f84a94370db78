import t from 'tap';
import fs from 'node:fs';
import { ERRORS, IbpError, type ErrorCode } from '../../lib/errors.js';

const doc = fs.readFileSync(new URL('../../docs/ERRORS.md', import.meta.url), 'utf8');
const documented = new Set([...doc.matchAll(/`(IBP_ERR_[A-Z0-9_]+)`/g)].map((m) => m[1]));
const codes = Object.keys(ERRORS) as ErrorCode[];

t.test('every code is documented and every documented code exists', async (t) => {
  for (const c of codes) t.ok(documented.has(c), `${c} is in docs/ERRORS.md`);
  for (const c of documented) t.ok(codes.includes(c as ErrorCode), `${c} (docs) is in lib/errors.ts`);
});

t.test('codes follow IBP_ERR_<AREA>_<WHAT> and build their messages', async (t) => {
  for (const c of codes) {
    t.match(c, /^IBP_ERR_[A-Z0-9]+_[A-Z0-9_]+$/);
    const e = new IbpError(c, { detail: 'D', file: 'F', key: 'K' });
    t.equal(e.code, c);
    t.type(e.message, 'string');
    t.notMatch(e.message, /\{detail\}|\{file\}|\{key\}/, `${c} fills its placeholders`);
  }
});

t.test('message placeholders are filled and unknown ones kept visible', async (t) => {
  const e = new IbpError('IBP_ERR_CFG_INVALID', { file: '/h/etc/x.conf', key: '/a/b', detail: 'must be integer' });
  t.equal(e.message, 'config file /h/etc/x.conf: key /a/b must be integer');
  t.equal(e.exitCode, 3);
  t.same(e.toJSON(), { code: 'IBP_ERR_CFG_INVALID', message: e.message });
  t.equal(new IbpError('IBP_ERR_REG_AUTH').http, 401);
});
