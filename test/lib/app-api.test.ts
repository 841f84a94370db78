/**
 * The app API cannot drift (issue 15): lib/app/context-table.ts is THE table; the C header
 * (lib/native/ibp_app.h, struct ibp_app_ctx and the entry points) and the TypeScript API
 * (lib/app/api.ts, AppContext and AppModule) are parsed here and checked against it both ways,
 * together with the shared constants and the symbol table of ibas/app-abi.ts.
 */
import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { APP_CONTEXT_TABLE } from '../../lib/app/context-table.js';
import * as api from '../../lib/app/api.js';
import { APP_SYMBOLS, PHASE, APP_ABI_VERSION as HOST_ABI, APP_MAX_FILES as HOST_MAX_FILES } from '../../ibas/app-abi.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const header = fs.readFileSync(path.join(root, 'lib/native/ibp_app.h'), 'utf8').replace(/\/\*[\s\S]*?\*\//g, '');
const tsApi = fs.readFileSync(path.join(root, 'lib/app/api.ts'), 'utf8').replace(/\/\*\*[\s\S]*?\*\//g, '');

function cStructMembers(): string[] {
  const body = /struct ibp_app_ctx \{([\s\S]*?)\n\};/.exec(header)?.[1];
  if (!body) throw new Error('struct ibp_app_ctx not found in ibp_app.h');
  const out: string[] = [];
  for (const decl of body.split(';').map((d) => d.trim()).filter(Boolean)) {
    const fn = /\(\*(\w+)\)\s*\(/.exec(decl);
    const name = fn ? fn[1] : /(\w+)\s*(?:\[\d+\])?$/.exec(decl)?.[1];
    if (!name) throw new Error(`cannot parse member: ${decl}`);
    out.push(name);
  }
  return out;
}

function tsMembers(iface: string): string[] {
  const body = new RegExp(`export interface ${iface} \\{([\\s\\S]*?)\\n\\}`).exec(tsApi)?.[1];
  if (!body) throw new Error(`interface ${iface} not found in api.ts`);
  return [...body.matchAll(/^\s+(?:readonly\s+)?(\w+)\??\s*[:(]/gm)].map((m) => m[1]!);
}

const cDefine = (name: string): number => Number(new RegExp(`#define ${name} (\\d+)u?`).exec(header)?.[1]);

t.test('struct ibp_app_ctx ↔ the table, in order', async (t) => {
  const rows = APP_CONTEXT_TABLE.filter((r) => r.kind !== 'entry' && r.kind !== 'ts');
  t.same(cStructMembers(), rows.map((r) => r.c), 'every C member is a row (kind field/function/host), in the struct order');
});

t.test('AppContext ↔ the table', async (t) => {
  const rows = APP_CONTEXT_TABLE.filter((r) => r.kind === 'field' || r.kind === 'function' || r.kind === 'ts');
  t.same(tsMembers('AppContext').sort(), rows.map((r) => r.ts).sort(), 'every AppContext member is a row with a ts name, and back');
  for (const r of APP_CONTEXT_TABLE) {
    if (r.kind === 'host') t.equal(r.ts, '', `${r.c}: a host row has no TS twin`);
    if (r.kind === 'ts') t.equal(r.c, '', `${r.ts}: a ts row has no C twin`);
    if (r.kind === 'field' || r.kind === 'function') t.ok(r.ts && r.c, `${r.ts}/${r.c}: both sides`);
  }
  const fns = [...tsApi.matchAll(/^\s+(\w+)\(.*\): /gm)].map((m) => m[1]);
  for (const r of APP_CONTEXT_TABLE.filter((x) => x.kind === 'function' && x.ts !== 'log')) t.ok(fns.includes(r.ts), `${r.ts} is a method in TS, a function pointer in C`);
});

t.test('entry points: AppModule ↔ the table ↔ ibp_app.h ↔ APP_SYMBOLS', async (t) => {
  const rows = APP_CONTEXT_TABLE.filter((r) => r.kind === 'entry');
  t.same(tsMembers('AppModule').sort(), rows.map((r) => r.ts).sort());
  t.same(APP_SYMBOLS.map((s) => s.name).sort(), rows.map((r) => r.c).sort(), 'the .so symbol table has the same entries');
  for (const r of rows) {
    if (r.c === 'ibp_app_abi_version') t.match(header, /const unsigned ibp_app_abi_version = IBP_APP_ABI_VERSION/);
    else t.match(header, new RegExp(`int ${r.c}\\(ibp_app_ctx \\*ctx\\);`), `${r.c} declared in the header`);
  }
});

t.test('constants agree', async (t) => {
  t.equal(api.APP_ABI_VERSION, cDefine('IBP_APP_ABI_VERSION'));
  t.equal(api.APP_ABI_VERSION, HOST_ABI);
  t.equal(api.APP_OK, cDefine('IBP_APP_OK'));
  t.equal(api.APP_MAX_FILES, cDefine('IBP_APP_MAX_FILES'));
  t.equal(api.APP_MAX_FILES, HOST_MAX_FILES);
  t.equal(api.APP_FILE_NAME_MAX, cDefine('IBP_APP_FILE_NAME_MAX'));
  for (const [k, v] of Object.entries(api.APP_PHASE)) {
    t.equal(v, cDefine(`IBP_APP_PHASE_${k}`), `phase ${k}`);
    t.equal(v, PHASE[k as keyof typeof PHASE]);
  }
  for (const [k, v] of Object.entries(api.APP_LOG_LEVEL)) t.equal(v, cDefine(`IBP_APP_LOG_${k}`), `log level ${k}`);
});

t.test('docs/apps.md prints the table', async (t) => {
  const doc = fs.readFileSync(path.join(root, 'docs/apps.md'), 'utf8');
  for (const r of APP_CONTEXT_TABLE.filter((x) => x.kind !== 'host')) {
    t.ok(doc.includes(`| ${r.kind} | ${r.ts ? `\`${r.ts}\`` : ''} | ${r.c ? `\`${r.c}\`` : ''} |`), `docs/apps.md has the row ${r.ts || r.c}`);
  }
});
