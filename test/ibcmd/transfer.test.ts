/**
 * put/get through a real ibcmd daemon: round trips (client API and CLI), hostile names, symbolic
 * and hard links out of the sandbox, size limits — and the daemon stays up after each.
 */
import t, { type Test } from 'tap';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import fc from 'fast-check';
import { isIbpError } from '../../lib/errors.js';
import { Sandbox } from '../../ibcmd/transfer.js';
import { isAlive } from '../../lib/pidfile.js';
import {  } from '../helpers/procs.js';
import { makeAgentHome } from './agent-home.js';

const root = t.testdir({ home: {}, local: {}, outside: { 'secret.txt': 'outside the sandbox\n' } });
const outsideFile = path.join(root, 'outside', 'secret.txt');
const agent = await makeAgentHome(t, { home: path.join(root, 'home'), maxFile: 1024 * 1024, white: ['ls *'] });
const pid = agent.pid()!;
const { client } = agent;

async function stillUp(t: Test, what: string): Promise<void> {
  t.ok(isAlive(pid), `daemon alive after ${what}`);
  t.equal((await client.status()).pid, pid, `daemon answers after ${what}`);
}

async function refusedCode(fn: () => Promise<unknown>): Promise<string> {
  try {
    await fn();
    return 'accepted';
  } catch (e) {
    return isIbpError(e) ? e.code : String(e);
  }
}

/** A request with the path sent exactly as given (fetch would normalise `..`). */
function rawPath(method: string, p: string, body?: Buffer): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: agent.ip, port: agent.port, method, path: p,
      headers: { authorization: `Bearer ${fs.readFileSync(agent.credFile, 'utf8').trim()}`, ...(body ? { 'content-type': 'application/octet-stream' } : {}) },
    }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (d: string) => (text += d)).on('end', () => resolve({ status: res.statusCode!, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

t.test('put then get returns the same bytes; the file sits in the sandbox', async (t) => {
  const data = crypto.randomBytes(300_000);
  const stored = await client.put('pkg.bin', data);
  t.equal(stored.size, data.length);
  t.equal(stored.sha256, crypto.createHash('sha256').update(data).digest('hex'));
  t.ok(fs.readFileSync(path.join(agent.sandbox, 'pkg.bin')).equals(data), 'on disk in the sandbox');
  const got = await client.get('pkg.bin');
  t.ok(got.data.equals(data), 'round trip');
  await client.put('pkg.bin', Buffer.from('replaced'));
  t.equal((await client.get('pkg.bin')).data.toString(), 'replaced', 'put replaces');
  await client.put('empty.txt', Buffer.alloc(0));
  t.equal((await client.get('empty.txt')).data.length, 0, 'an empty file is fine');
  const names = (await client.list()).map((f) => f.name);
  t.same(names, ['empty.txt', 'pkg.bin']);
  t.same(fs.readdirSync(agent.sandbox).filter((n) => n.endsWith('.tmp')), [], 'no temporary file left');
  t.equal((await client.exec('ls -1 .')).stdout, 'empty.txt\npkg.bin\n', 'commands see the same folder');
});

t.test('putfile / getfile / -s files from the command line', async (t) => {
  const local = path.join(root, 'local', 'release-1.0.tar.gz');
  fs.writeFileSync(local, crypto.randomBytes(10_000));
  const conn = ['--ip', agent.ip, '--port', String(agent.port), '--credential-file', agent.credFile];
  let r = await agent.ibcmd([...conn, '-a', 'putfile', '--file', local]);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /putfile release-1\.0\.tar\.gz ok , size\[10000\]/);
  r = await agent.ibcmd([...conn, '-a', 'putfile', '--file', local, '--as', 'renamed.tgz']);
  t.equal(r.code, 0, r.stderr);
  const back = path.join(root, 'local', 'back.tgz');
  r = await agent.ibcmd([...conn, '-a', 'getfile', '--file', 'renamed.tgz', '--out', back]);
  t.equal(r.code, 0, r.stderr);
  t.ok(fs.readFileSync(back).equals(fs.readFileSync(local)), 'getfile wrote the same bytes');
  r = await agent.ibcmd([...conn, '-s', 'files', '--json']);
  t.ok((JSON.parse(r.stdout) as { name: string }[]).some((f) => f.name === 'renamed.tgz'));
  r = await agent.ibcmd([...conn, '-a', 'getfile', '--file', '../etc/passwd']);
  t.equal(r.code, 2, 'a hostile name is refused before sending');
  t.match(r.stderr, /IBP_ERR_FILE_NAME/);
  r = await agent.ibcmd([...conn, '-a', 'getfile', '--file', 'nothing-here']);
  t.equal(r.code, 10);
  t.match(r.stderr, /file "nothing-here" is not in the sandbox/);
  r = await agent.ibcmd([...conn, '-a', 'putfile', '--file', path.join(root, 'local', 'missing')]);
  t.equal(r.code, 2);
  t.match(r.stderr, /--file.*cannot read/);
});

t.test('hostile names are refused both ways and nothing is written outside', async (t) => {
  const hostile = ['../x', '../../outside/secret.txt', '/etc/passwd', 'a/b', '..', '.', '-rf', 'a\\b', 'x\ny', 'a\x00b', 'ab..cd', 'x'.repeat(256)];
  for (const name of hostile) {
    t.equal(await refusedCode(() => client.put(name, Buffer.from('pwned'))), 'IBP_ERR_FILE_NAME', `put ${JSON.stringify(name)}`);
    t.equal(await refusedCode(() => client.get(name)), 'IBP_ERR_FILE_NAME', `get ${JSON.stringify(name)}`);
  }
  // paths sent raw, without URL normalisation
  for (const p of ['/v1/files/../x', '/v1/files/..%2Fx', '/v1/files/%2e%2e', '/v1/files/a%2Fb', '/v1/files/%2Fetc%2Fpasswd', '/v1/files/', '/v1/files/a/b', `/v1/files/${'x'.repeat(300)}`]) {
    const put = await rawPath('PUT', p, Buffer.from('pwned'));
    t.ok(put.status >= 400 && put.status < 500, `PUT ${p} → ${put.status} ${put.body.slice(0, 80)}`);
    const get = await rawPath('GET', p);
    t.ok(get.status >= 400 && get.status < 500, `GET ${p} → ${get.status}`);
  }
  const long = await rawPath('GET', `/v1/files/${'x'.repeat(300)}`);
  t.match(JSON.parse(long.body), { code: 'IBP_ERR_FILE_NAME', message: /longer than 255/ }, 'the agent checks names itself');
  const stderrLog = path.join(agent.home, 'log', 'ibcmd_stderr.log');
  t.notMatch(fs.existsSync(stderrLog) ? fs.readFileSync(stderrLog, 'utf8') : '', /FSTDEP|DeprecationWarning/, 'the daemon starts without a deprecation warning (fastify routerOptions)');
  const dotdot = await rawPath('GET', '/v1/files/..%2Fx');
  t.match(JSON.parse(dotdot.body), { code: 'IBP_ERR_FILE_NAME' }, 'an encoded separator reaches the name check and is refused');
  t.equal(fs.readFileSync(outsideFile, 'utf8'), 'outside the sandbox\n', 'the outside file is untouched');
  t.notOk(fs.existsSync(path.join(agent.home, 'file', 'x')), 'nothing written beside the sandbox');
  fc.assert(fc.property(fc.string(), fc.string(), (a, b) => {
    const sb = Sandbox.open(agent.sandbox, 1024);
    for (const name of [`${a}/${b}`, `${a}..${b}`]) {
      try {
        sb.put(name, Buffer.from('x'));
        return false;
      } catch (e) {
        if (!isIbpError(e, 'IBP_ERR_FILE_NAME')) return false;
      }
    }
    return true;
  }), { numRuns: 300 });
  await stillUp(t, 'hostile names');
});

t.test('links never lead out of the sandbox', async (t) => {
  fs.symlinkSync(outsideFile, path.join(agent.sandbox, 'evil'));
  fs.symlinkSync('../../../outside/secret.txt', path.join(agent.sandbox, 'evil-rel'));
  fs.symlinkSync('/no/such/target', path.join(agent.sandbox, 'dangling'));
  fs.writeFileSync(path.join(agent.sandbox, 'real.txt'), 'inside\n');
  fs.symlinkSync('real.txt', path.join(agent.sandbox, 'alias'));
  fs.linkSync(outsideFile, path.join(agent.sandbox, 'hardlink'));
  fs.mkdirSync(path.join(agent.sandbox, 'adir'));
  for (const name of ['evil', 'evil-rel']) {
    const e = await client.get(name).catch((x: unknown) => x as Error);
    t.ok(isIbpError(e, 'IBP_ERR_CMD_FILE_REFUSED'), `get ${name} refused`);
    t.match((e as Error).message, /symbolic link leading out of the sandbox/);
    const p = await client.put(name, Buffer.from('pwned')).catch((x: unknown) => x as Error);
    t.ok(isIbpError(p, 'IBP_ERR_CMD_FILE_REFUSED'), `put through ${name} refused`);
    t.match((p as Error).message, /symbolic link/);
  }
  t.match(await client.get('dangling').catch((x: unknown) => x as Error), { code: 'IBP_ERR_CMD_FILE_REFUSED', message: /dangling/ });
  t.match(await client.get('hardlink').catch((x: unknown) => x as Error), { code: 'IBP_ERR_CMD_FILE_REFUSED', message: /hard links/ });
  t.match(await client.get('adir').catch((x: unknown) => x as Error), { code: 'IBP_ERR_CMD_FILE_REFUSED', message: /not a regular file/ });
  t.match(await client.put('adir', Buffer.from('x')).catch((x: unknown) => x as Error), { code: 'IBP_ERR_CMD_FILE_REFUSED' });
  t.equal((await client.get('alias')).data.toString(), 'inside\n', 'a link that stays inside is followed');
  t.equal(fs.readFileSync(outsideFile, 'utf8'), 'outside the sandbox\n', 'the outside file is untouched');
  t.ok(fs.lstatSync(path.join(agent.sandbox, 'evil')).isSymbolicLink(), 'the planted link was not replaced either');
  await stillUp(t, 'link attacks');
});

t.test('sizes are bounded: a put over max_file_size is 413 and leaves nothing', async (t) => {
  const before = fs.readdirSync(agent.sandbox).sort();
  const e = await client.put('big.bin', crypto.randomBytes(1024 * 1024 + 1)).catch((x: unknown) => x as Error);
  t.ok(isIbpError(e, 'IBP_ERR_CODEC_TOO_LARGE'), `refused: ${(e as Error).message}`);
  t.same(fs.readdirSync(agent.sandbox).sort(), before, 'no file and no temporary left');
  const exact = crypto.randomBytes(1024 * 1024);
  t.ok((await client.get((await client.put('exact.bin', exact)).name)).data.equals(exact), 'exactly the limit is fine');
  fs.writeFileSync(path.join(agent.sandbox, 'grown.bin'), Buffer.alloc(1024 * 1024 + 10));
  t.match(await client.get('grown.bin').catch((x: unknown) => x as Error), { code: 'IBP_ERR_CODEC_TOO_LARGE' }, 'get is bounded too');
  await stillUp(t, 'oversized files');
});
