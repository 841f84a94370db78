/**
 * `ibpgen messages` on the command line: writes the TS module or the C files with the runtime,
 * leaves unchanged files alone, and exits 2 naming the problem for a bad declaration or option.
 */
import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { ROOT, runTool } from '../helpers/procs.js';

const DSC = path.join(ROOT, 'test', 'fixtures', 'appfw', 'all_types.dsc');

t.test('ibpgen messages: ts and c outputs, exit codes', async (t) => {
  const dir = t.testdir({ 'bad.dsc': 'STRUCT a\n{\n\tINT 3 x\n}\n' });
  const c = await runTool('ibpgen', ['messages', DSC, '--lang', 'c', '--out', path.join(dir, 'c')]);
  t.equal(c.code, 0, c.stderr);
  t.same(c.stdout.trim().split('\n').map((f) => path.basename(f)), ['all_types.dsc.h', 'all_types.dsc.c', 'ibp_msgv.h', 'ibp_msgv.c']);
  t.match(fs.readFileSync(path.join(dir, 'c', 'all_types.dsc.h'), 'utf8'), /char amount\[IBP_MSGV_NUMERIC_SIZE\(16\)\];/);
  const before = fs.statSync(path.join(dir, 'c', 'all_types.dsc.c')).mtimeMs;
  const again = await runTool('ibpgen', ['messages', DSC, '--lang', 'c', '--out', path.join(dir, 'c')]);
  t.equal(again.code, 0);
  t.equal(fs.statSync(path.join(dir, 'c', 'all_types.dsc.c')).mtimeMs, before, 'an unchanged file is not rewritten (no rebuild)');

  const ts = await runTool('ibpgen', ['messages', DSC, '--lang', 'ts', '--out', path.join(dir, 'ts'), '--call', 'ALL=all_types:all_types']);
  t.equal(ts.code, 0, ts.stderr);
  t.match(fs.readFileSync(path.join(dir, 'ts', 'all_types.dsc.ts'), 'utf8'), /export function ALL_client\(env: IbacEnv\): MessageClient<all_types, all_types>/);

  const bad = await runTool('ibpgen', ['messages', path.join(dir, 'bad.dsc'), '--lang', 'ts', '--out', dir]);
  t.equal(bad.code, 2);
  t.match(bad.stderr, /bad\.dsc:3: INT 3 is not supported.*\(IBP_ERR_MSG_DECL\)/);
  const badCall = await runTool('ibpgen', ['messages', DSC, '--lang', 'ts', '--out', dir, '--call', 'nope']);
  t.equal(badCall.code, 2);
  t.match(badCall.stderr, /--call.*APP=REQ:RSP/);
  const unknown = await runTool('ibpgen', ['messages', DSC, '--lang', 'ts', '--out', dir, '--call', 'X=all_types:missing']);
  t.equal(unknown.code, 2);
  t.match(unknown.stderr, /message missing is not declared/);
  const lang = await runTool('ibpgen', ['messages', DSC, '--lang', 'go', '--out', dir]);
  t.equal(lang.code, 2, 'an unknown --lang is a usage error');
});
