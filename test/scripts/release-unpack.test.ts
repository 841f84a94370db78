/**
 * scripts/ibp_unpack.sh on one host (no network): checksum checked, hostile tarballs refused
 * (entries or links leading out of the release, two top folders, bad names), `current` switched
 * by one rename and `previous` kept for --rollback; a release unpacked twice is not unpacked again.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { SCRIPT } from './run-script.js';

const root = t.testdir({ home: {}, src: {} });
const home = path.join(root, 'home');

function unpack(...args: string[]) {
  const r = spawnSync('bash', [SCRIPT('ibp_unpack.sh'), ...args], { env: { ...process.env, IBP_HOME: home }, encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}
const sha = (f: string): string => crypto.createHash('sha256').update(fs.readFileSync(f)).digest('hex');

/** A tarball named `<id>.tar.gz` of a folder tree built by `make(dir)`; returns its path. */
function tarball(id: string, make: (dir: string) => void, tarArgs: string[] = ['top']): string {
  const dir = fs.mkdtempSync(path.join(root, 'src', 'x-'));
  make(dir);
  const out = path.join(root, `${id}.tar.gz`);
  const r = spawnSync('tar', ['-czf', out, '-C', dir, ...tarArgs]);
  if (r.status !== 0) throw new Error(`tar: ${r.stderr}`);
  return out;
}
const release = (id: string, text: string) => tarball(id, (d) => {
  fs.mkdirSync(path.join(d, 'top', 'scripts'), { recursive: true });
  fs.writeFileSync(path.join(d, 'top', 'VERSION'), text);
  fs.symlinkSync('../VERSION', path.join(d, 'top', 'scripts', 'version-link'));
});

t.test('unpack, switch, unpack another, roll back', async (t) => {
  const r1 = release('rel-1', 'one');
  let r = unpack(r1, sha(r1));
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /ibp_unpack ok , release\[rel-1\] .*current\[releases\/rel-1\] previous\[-\]/);
  t.equal(fs.readFileSync(path.join(home, 'current', 'VERSION'), 'utf8'), 'one');
  t.equal(fs.readFileSync(path.join(home, 'current', 'scripts', 'version-link'), 'utf8'), 'one', 'links inside the release work');
  const r2 = release('rel-2', 'two');
  fs.writeFileSync(`${r2}.sha256`, `${sha(r2)}  rel-2.tar.gz\n`);
  r = unpack(r2);
  t.equal(r.code, 0, `the checksum from the .sha256 file: ${r.stderr}`);
  t.equal(fs.readlinkSync(path.join(home, 'current')), 'releases/rel-2');
  t.equal(fs.readlinkSync(path.join(home, 'previous')), 'releases/rel-1');
  r = unpack('--rollback');
  t.equal(r.code, 0, r.stderr);
  t.equal(fs.readFileSync(path.join(home, 'current', 'VERSION'), 'utf8'), 'one');
  t.equal(fs.readlinkSync(path.join(home, 'previous')), 'releases/rel-2', 'a second rollback goes forward again');
  r = unpack('--list');
  t.match(r.stdout, /current\[releases\/rel-1\] previous\[releases\/rel-2\]\nrel-1\nrel-2/);
  // the same release again: switched, not unpacked again
  fs.writeFileSync(path.join(home, 'releases', 'rel-2', 'MARK'), 'kept');
  t.equal(unpack(r2, sha(r2)).code, 0);
  t.ok(fs.existsSync(path.join(home, 'current', 'MARK')), 'an unpacked release is reused');
});

t.test('refused: checksum, hostile entries and links, names; nothing switched', async (t) => {
  const before = fs.readlinkSync(path.join(home, 'current'));
  const good = release('rel-3', 'three');
  const cases: [string, string[], RegExp][] = [
    ['a wrong checksum', [good, '0'.repeat(64)], /checksum mismatch .*release refused/],
    ['no checksum at all', [good], /no sha256 for rel-3\.tar\.gz/],
    ['no such file', [path.join(root, 'nope.tar.gz'), '0'.repeat(64)], /no such file/],
  ];
  const escLink = tarball('esc-link', (d) => {
    fs.mkdirSync(path.join(d, 'top'));
    fs.symlinkSync('../../etc/passwd', path.join(d, 'top', 'evil'));
  });
  cases.push(['a link out of the release', [escLink, sha(escLink)], /link top\/evil -> \.\.\/\.\.\/etc\/passwd leads out of the release/]);
  const absLink = tarball('abs-link', (d) => {
    fs.mkdirSync(path.join(d, 'top'));
    fs.symlinkSync('/etc/passwd', path.join(d, 'top', 'evil'));
  });
  cases.push(['an absolute link', [absLink, sha(absLink)], /link top\/evil -> \/etc\/passwd is absolute/]);
  const twoTops = tarball('two-tops', (d) => {
    fs.mkdirSync(path.join(d, 'a'));
    fs.mkdirSync(path.join(d, 'b'));
    fs.writeFileSync(path.join(d, 'a', 'x'), 'x');
    fs.writeFileSync(path.join(d, 'b', 'y'), 'y');
  }, ['a', 'b']);
  cases.push(['two top folders', [twoTops, sha(twoTops)], /more than one top folder/]);
  // GNU tar normalises ".." away when it writes: python's tarfile writes the member as named
  const dotdot = path.join(root, 'dot-dot.tar.gz');
  const py = spawnSync('python3', ['-c', [
    'import io, sys, tarfile',
    'with tarfile.open(sys.argv[1], "w:gz") as t:',
    '  for n in ("top/x", "top/../escaped"):',
    '    i = tarfile.TarInfo(n); i.size = 1; t.addfile(i, io.BytesIO(b"x"))',
  ].join('\n'), dotdot]);
  if (py.status !== 0) throw new Error(`python3 tarfile: ${py.stderr}`);
  cases.push(['a .. entry', [dotdot, sha(dotdot)], /leaves the release folder/]);
  const badName = path.join(root, 'bad name;.tar.gz');
  fs.copyFileSync(good, badName);
  cases.push(['a bad file name', [badName, sha(badName)], /must be \(id\)\.tar\.gz/]);
  for (const [what, args, why] of cases) {
    const r = unpack(...args);
    t.equal(r.code, 1, what);
    t.match(r.stderr, why, what);
  }
  t.equal(fs.readlinkSync(path.join(home, 'current')), before, 'current never moved');
  t.notOk(fs.existsSync(path.join(home, 'releases', 'esc-link')), 'nothing of a refused release is left');
  t.notOk(fs.existsSync(path.join(root, 'etc')), 'no link target was written');
});

t.test('usage', async (t) => {
  t.equal(unpack().code, 2);
  t.equal(unpack('--nonsense').code, 2);
});
