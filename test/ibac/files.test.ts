/**
 * Attached files on the client side: IBP's temp file names `(file_id)_(10 random visible).tmp` in
 * $IBP_HOME/file, the 4-file limit, plain-name checks on both directions (a hostile server cannot
 * write outside the file folder), atomic writes of response files.
 */
import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { Home } from '../../lib/home.js';
import { checkPlainFileName } from '../../lib/home.js';
import { createTempFile, loadRequestFiles, randomVisible, saveResponseFiles, MAX_FILES } from '../../ibac/files.js';
import { PHASE } from '../../ibac/errors.js';
import { privateDir } from '../helpers/cluster.js';

const NAME = /^([A-Za-z0-9_][A-Za-z0-9_.-]{0,63})_([A-Za-z0-9]{10})\.tmp$/;

t.test('createTempFile names files the IBP way and never reuses a name', async (t) => {
  const home = new Home(privateDir(t, 'files'));
  const seen = new Set<string>();
  for (let i = 0; i < 200; i++) {
    const f = createTempFile(home, 'REQ', `n${i}`);
    const m = NAME.exec(f.name);
    t.ok(m, `${f.name} is (file_id)_(10 random).tmp`) || t.end();
    t.equal(m![1], 'REQ');
    t.equal(f.path, path.join(home.root, 'file', f.name));
    t.equal(fs.readFileSync(f.path, 'utf8'), `n${i}`);
    seen.add(f.name);
  }
  t.equal(seen.size, 200, 'every name is new');
  t.equal(createTempFile(home, 'EMPTY').name.startsWith('EMPTY_'), true);
  for (const bad of ['', 'a/b', '../x', '-x', '.hidden', 'x'.repeat(65), 'sp ace', 'tab\t']) {
    t.throws(() => createTempFile(home, bad), { code: 'IBP_ERR_CLIENT_USAGE', message: /file_id/ }, `file_id ${JSON.stringify(bad)} refused`);
  }
});

t.test('random parts use visible letters and digits only, evenly', async (t) => {
  const counts = new Map<string, number>();
  for (let i = 0; i < 2000; i++) for (const c of randomVisible()) counts.set(c, (counts.get(c) ?? 0) + 1);
  t.equal(counts.size, 62, 'all 62 characters appear');
  const n = [...counts.values()];
  t.ok(Math.min(...n) > 200 && Math.max(...n) < 450, `about 20000/62 each (${Math.min(...n)}..${Math.max(...n)})`);
  t.match(randomVisible(25), /^[A-Za-z0-9]{25}$/);
});

t.test('request files: at most 4, plain names, each once, readable', async (t) => {
  const home = new Home(privateDir(t, 'files'));
  const names = Array.from({ length: 5 }, (_, i) => createTempFile(home, `F${i}`, `data ${i}`).name);
  const four = loadRequestFiles(home, names.slice(0, MAX_FILES));
  t.same(four.map((f) => f.data.toString()), ['data 0', 'data 1', 'data 2', 'data 3']);
  t.throws(() => loadRequestFiles(home, names), { code: 'IBP_ERR_CLIENT_USAGE', message: /at most 4/, phase: PHASE.SAFE });
  t.throws(() => loadRequestFiles(home, [names[0]!, names[0]!]), { message: /given twice/ });
  t.throws(() => loadRequestFiles(home, ['missing.tmp']), { message: /cannot be read/ });
  t.same(loadRequestFiles(home, [{ name: 'mem', data: 'bytes' }])[0]!.data.toString(), 'bytes');
  t.same(loadRequestFiles(home, undefined), []);
  for (const bad of ['../../etc/passwd', '/etc/passwd', 'a\\b', '..', '', 'x\u0000y', '-rf']) {
    t.throws(() => loadRequestFiles(home, [bad]), { code: 'IBP_ERR_FILE_NAME', phase: PHASE.SAFE }, `${JSON.stringify(bad)} refused`);
  }
});

t.test('response files: written whole in $IBP_HOME/file, hostile names refused', async (t) => {
  const home = new Home(privateDir(t, 'files'));
  const out = saveResponseFiles(home, [{ name: 'a.echo', data: Buffer.from('A') }, { name: 'b.echo', data: Buffer.alloc(100_000, 7) }]);
  t.same(out.map((f) => [f.name, f.size]), [['a.echo', 1], ['b.echo', 100_000]]);
  t.equal(fs.readFileSync(path.join(home.root, 'file', 'b.echo')).length, 100_000);
  t.same(fs.readdirSync(home.dir('file')).sort(), ['a.echo', 'b.echo'], 'no temporary part file left');
  for (const bad of ['../escape', '/abs', 'x/y', '..']) {
    t.throws(() => saveResponseFiles(home, [{ name: bad, data: Buffer.from('x') }]), { code: 'IBP_ERR_FILE_NAME' }, `${bad} refused`);
  }
  t.notOk(fs.existsSync(path.join(home.root, 'escape')), 'nothing written outside file/');
});

t.test('property: any name accepted is a plain name inside file/, anything else is refused', async (t) => {
  const home = new Home(privateDir(t, 'files'));
  fc.assert(fc.property(fc.string({ minLength: 0, maxLength: 40 }), (name) => {
    let accepted = false;
    try {
      saveResponseFiles(home, [{ name, data: Buffer.from('p') }]);
      accepted = true;
    } catch (e) {
      if ((e as { code?: string }).code !== 'IBP_ERR_FILE_NAME') throw e;
    }
    let plain = true;
    try {
      checkPlainFileName(name);
    } catch {
      plain = false;
    }
    if (accepted !== plain) return false;
    if (accepted) return path.dirname(path.join(home.root, 'file', name)) === path.join(home.root, 'file');
    return true;
  }), { numRuns: 300 });
  t.pass('300 random names');
});
