/**
 * Function trees for C apps (lib/appfw/native/ibp_tm.{h,c}): every construct, the structure bus
 * with IBP's size check, the response setter, nesting errors and self-inclusion — the same rules
 * as the TS executor. test/fixtures/appfw/tm_c_check.c is compiled with gcc (under ASan/UBSan
 * when available) and its report checked line by line.
 */
import t from 'tap';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { C_RUNTIME_DIR } from '../../lib/appfw/msgv/generate.js';
import { ROOT } from '../helpers/procs.js';
import { CFLAGS } from './helpers/c-roundtrip.js';

t.test('the C executor runs every construct like the TS one', async (t) => {
  const dir = t.testdir();
  const exe = path.join(dir, 'tm_c_check');
  const probe = spawnSync('gcc', ['-fsanitize=address,undefined', '-x', 'c', '-o', path.join(dir, 'probe'), '-'], { input: 'int main(void){return 0;}', encoding: 'utf8' });
  const san = probe.status === 0 ? ['-fsanitize=address,undefined', '-fno-sanitize-recover=all'] : [];
  const cc = spawnSync('gcc', [...CFLAGS, ...san, '-I', C_RUNTIME_DIR, '-o', exe, path.join(ROOT, 'test', 'fixtures', 'appfw', 'tm_c_check.c'), path.join(C_RUNTIME_DIR, 'ibp_tm.c')], { encoding: 'utf8', timeout: 60_000 });
  if (cc.status !== 0) throw new Error(`gcc failed:\n${cc.stderr}`);
  const run = spawnSync(exe, [], { encoding: 'utf8', timeout: 30_000 });
  t.equal(run.status, 0, run.stderr);
  const lines = run.stdout.trimEnd().split('\n');
  t.same(lines, [
    'seq: a b c(P) a(x,y) rc=0',
    'stop: a fail9 rc=9',
    'codes TX1: a b(p) c rc=0',
    'codes TX3: b c(P) c c(q) b c(P) rc=0',
    'if err: err3 then_ after rc=0',
    'if ok: ok0(pp) else_ after rc=0',
    'if arr: a err3 then_ after rc=0',
    'nested: err3 ok0 b rc=0',
    'early: a err3 rc=0',
    'bus: put add rc=1004 rsp=insufficient funds',
    'bus: balance=15 wrong_size=-9003 missing=-9003 dup=-9003',
    'bad else: rc=-9001',
    'bad if: rc=-9001',
    'two else: rc=-9001',
    'self: rc=-9002',
    'traced=33', // one trace call per function run above
  ]);
});
