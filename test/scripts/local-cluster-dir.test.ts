/**
 * `npm start` removes its folder on every run: only a folder it made (marker, or only its own
 * entries), an empty one or a missing one. A folder holding a user's file is refused, untouched.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { MARKER, freshDir, refusal } from '../../scripts/local-cluster-dir.js';
import { ROOT, collect, loopbackIp } from '../helpers/procs.js';

t.test('refusal and freshDir', async (t) => {
  const base = t.testdir({
    empty: {},
    marked: { [MARKER]: '', 'ecif-home': { log: { 'x.log': 'old' } }, stale: 'from a previous run' },
    legacy: { 'ibms-home': { etc: {} }, 'request.txt': 'hello' },
    user: { 'thesis.tex': 'my work', 'ibms-home': {} },
    'a-file': 'not a folder',
  });
  const at = (n: string) => path.join(base, n);

  t.equal(refusal(at('missing')), undefined, 'a missing folder is made');
  freshDir(at('missing'));
  t.ok(fs.existsSync(path.join(at('missing'), MARKER)), 'and marked');

  freshDir(at('empty'));
  t.same(fs.readdirSync(at('empty')), [MARKER], 'an empty folder is used and marked');

  freshDir(at('marked'));
  t.same(fs.readdirSync(at('marked')), [MARKER], 'a marked folder is wiped whole (also files npm start did not make)');

  freshDir(at('legacy'));
  t.same(fs.readdirSync(at('legacy')), [MARKER], 'a folder of an older npm start (only its own entries) is wiped');

  t.match(refusal(at('user')), /holds files npm start did not make \(thesis\.tex\).*IBP_LOCAL_DIR/);
  t.throws(() => freshDir(at('user')), /thesis\.tex/);
  t.equal(fs.readFileSync(path.join(at('user'), 'thesis.tex'), 'utf8'), 'my work', "the user's file is kept");
  t.ok(fs.existsSync(path.join(at('user'), 'ibms-home')), 'nothing else touched either');

  t.match(refusal(at('a-file')), /is not a folder/);
  t.throws(() => freshDir(at('a-file')));
  t.equal(fs.readFileSync(at('a-file'), 'utf8'), 'not a folder');
});

t.test('npm start in a folder with a user file: exit 2, file kept, nothing started', async (t) => {
  const dir = t.testdir({ 'notes.txt': 'keep me' });
  const child = spawn(process.execPath, [path.join(ROOT, 'dist', 'scripts', 'local-cluster.js')], {
    env: { ...process.env, IBP_LOCAL_DIR: dir, IBP_LOCAL_IP: loopbackIp(), IBP_LOCAL_DEMO_ONLY: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const r = await collect(child, undefined, 60_000, 'npm start');
  t.equal(r.code, 2, 'exit 2');
  t.match(r.stderr, /notes\.txt.*npm start removes its folder on every run.*set IBP_LOCAL_DIR to a new or empty folder/);
  t.same(fs.readdirSync(dir), ['notes.txt'], 'the folder is as it was');
  t.equal(fs.readFileSync(path.join(dir, 'notes.txt'), 'utf8'), 'keep me');
});
