/**
 * App packages against a fake registry that can lie: a package whose bytes do not match the
 * bundle's sha256 (or whose X-Ibp-Sha256 header disagrees) is discarded and logged and the old
 * file stays; the update lands later, atomically, once the registry serves the right bytes; a
 * package offered to other nodes (403) is not asked for again until it changes. Signing (issue
 * 11): the registry's key is pinned on first use; a manifest signed by another key, or no signed
 * manifest at all, is refused and the config space keeps the verified package's sha256; symlinks
 * planted at so/<bin>.updating and so/<bin> never get written through. With the bundle's
 * package_bins only those bins are asked for, and a 403 is a failure carrying the registry's
 * reason (even when its body is bigger than the package).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import type { NodeBundle } from '../../lib/config/model.js';
import type { ConfigSpace } from '../../lib/shm/config-space.js';
import { loopbackIp, waitFor } from '../helpers/procs.js';
import { makeAgentHome, openSpace, type AgentHome } from './agent-home.js';
import { FakeIbms, sha256 } from './fake-ibms.js';

/** The file's root test: what outlives a subtest (readers) is torn down with it. */
const top = t;

const CRED = 'cred-GAMMA-0123456789abcdef';
const A = crypto.randomBytes(1024 * 1024);
const B = crypto.randomBytes(1536 * 1024);
const OTHER = crypto.randomBytes(4096);
const C = crypto.randomBytes(64 * 1024);
const D = crypto.randomBytes(32 * 1024);

function bundle(version: number, pkg: Buffer): NodeBundle {
  return {
    epoch: 'P1',
    version,
    this_node: 'GAMMA',
    nodes: [{ node: 'GAMMA', invalid: 0, hosts: [{ ip: '127.0.0.1', port: 18003 }], kvs: { v: String(version) } }],
    apps: [
      { app: 'APP1', desc: 'served here', bin: 'app1.so', timeout: 5, timeout2: 0, invalid: 0, server_node: 'GAMMA', sha256: sha256(pkg), size: pkg.length },
      { app: 'APP1B', desc: 'same package', bin: 'app1.so', timeout: 5, timeout2: 0, invalid: 0, server_node: '', sha256: sha256(pkg), size: pkg.length },
      { app: 'APP2', desc: 'served elsewhere', bin: 'app2.so', timeout: 5, timeout2: 0, invalid: 0, server_node: 'DELTA', sha256: sha256(OTHER), size: OTHER.length },
    ],
  };
}

const ip = loopbackIp();
const fake = new FakeIbms(ip, bundle(1, A));
let a: AgentHome;
let space: ConfigSpace;
let so1 = '';

t.before(async () => {
  const root = t.testdir();
  await fake.start();
  t.teardown(() => fake.stop());
  fake.packages.set('app1.so', { body: A });
  fake.packages.set('app2.so', { body: OTHER, forbidden: true });
  a = await makeAgentHome(t, { root, node: 'GAMMA', ibmsIp: ip, ibmsPort: fake.port, credential: CRED });
  so1 = path.join(a.home, 'so', 'app1.so');
});

t.test('a package is installed with a verified hash before the config is published', async (t) => {
  const r = await a.ibma(['-a', 'start']);
  t.equal(r.code, 0, r.stderr);
  space = await openSpace(top, a.indexKey);
  t.ok(fs.existsSync(so1), 'so/app1.so is there once the space exists');
  t.equal(sha256(fs.readFileSync(so1)), sha256(A), 'with the registry\'s bytes');
  t.notOk(fs.existsSync(`${so1}.updating`), 'no .updating file left');
  t.equal(space.app('APP1')?.sha256, sha256(A), 'the space carries the package sha256');
  t.equal(fake.count('/v1/agent/packages/app1.so'), 1, 'one download for two apps sharing a bin');
  t.notOk(fs.existsSync(path.join(a.home, 'so', 'app2.so')), 'a package offered to other nodes is not installed');
  t.ok(a.logLines().some((l) => /^package installed , bin\[app1\.so\]/.test(l.msg)));
  const pinned = path.join(a.home, 'keys', 'package-signing.pub');
  t.ok(fs.existsSync(pinned), 'the registry key is pinned in keys/package-signing.pub');
  t.equal(fs.statSync(pinned).mode & 0o777, 0o644);
  t.equal(crypto.createPublicKey(fs.readFileSync(pinned, 'utf8')).export({ format: 'der', type: 'spki' }).toString('base64'), fake.signer.publicKeyB64);
  t.ok(a.logLines().some((l) => l.level === 'warn' && /^package-signing key pinned on first use/.test(l.msg)), 'pinning is logged');
  t.equal(space.header().packageKey, fake.signer.publicKeyB64, 'the space carries the trusted key');
  const app = space.app('APP1')!;
  t.ok(app.manifest.includes(`"sha256":"${sha256(A)}"`), 'and the signed manifest');
  t.ok(crypto.verify(null, Buffer.from(app.manifest), fake.signer.publicKey, Buffer.from(app.signature, 'base64')), 'whose signature verifies');
});

t.test('a corrupted package is rejected, logged, and the old file stays', async (t) => {
  const corrupted = Buffer.from(B);
  corrupted[12345] ^= 0xff;
  fake.packages.set('app1.so', { body: corrupted, header: sha256(B) });
  fake.setBundle(bundle(2, B));
  await waitFor('version 2 in the space', () => space.checkSwitch() && space.kv('GAMMA', 'v') === '2', 10_000);
  const line = a.logLines().find((l) => /^package rejected , bin\[app1\.so\]/.test(l.msg));
  t.ok(line, 'the rejection is logged');
  t.equal(line?.level, 'error');
  t.match(line?.msg ?? '', new RegExp(`expected\\[${sha256(B)}\\]`), 'naming the expected sha256');
  t.equal(sha256(fs.readFileSync(so1)), sha256(A), 'the old package is still in place, whole');
  t.notOk(fs.existsSync(`${so1}.updating`), 'the rejected bytes were never written');
  const st = JSON.parse((await a.ibma(['-s', 'status', '--json'])).stdout) as { packages_failed?: string[] };
  t.same(st.packages_failed, ['app1.so'], 'status lists the failing package');
});

t.test('a package whose header disagrees with the bundle is rejected too', async (t) => {
  const before = a.logLines().filter((l) => /^package rejected/.test(l.msg)).length;
  fake.packages.set('app1.so', { body: B, header: sha256(A) });
  await waitFor('another rejection (retried on the next watch round)', () => a.logLines().filter((l) => /^package rejected/.test(l.msg)).length > before, 10_000);
  t.equal(sha256(fs.readFileSync(so1)), sha256(A), 'the old package is still in place');
});

t.test('once the registry serves the right bytes the update lands atomically', async (t) => {
  // watch so/app1.so from this process while the agent replaces it: every read is A, B, or absent
  // (the short gap of IBP's order, when a server opens <bin>.updating), never a mix
  const seen = new Map<string, number>();
  let stop = false;
  const reader = (async () => {
    while (!stop) {
      let h = 'absent';
      try {
        h = sha256(fs.readFileSync(so1));
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
        t.ok(fs.existsSync(`${so1}.updating`) || fs.existsSync(so1), 'in the gap the .updating file is complete and there');
      }
      seen.set(h, (seen.get(h) ?? 0) + 1);
      await new Promise((r) => setImmediate(r));
    }
  })();
  fake.packages.set('app1.so', { body: B });
  await waitFor('the new package in place', () => seen.has(sha256(B)), 15_000);
  stop = true;
  await reader;
  for (const h of seen.keys()) t.ok([sha256(A), sha256(B), 'absent'].includes(h), `every read of so/app1.so is a whole package (${h.slice(0, 12)})`);
  t.notOk(fs.existsSync(`${so1}.updating`), 'no .updating file left');
  t.ok(a.logLines().some((l) => /^package installed , bin\[app1\.so\] sha256\[/.test(l.msg) && l.msg.includes(sha256(B))));
  const st = JSON.parse((await a.ibma(['-s', 'status', '--json'])).stdout) as { packages_failed?: string[] };
  t.equal(st.packages_failed, undefined, 'nothing failing any more');
});

t.test('a package offered to other nodes is asked for once per version', async (t) => {
  fake.setBundle(bundle(3, B));
  await waitFor('version 3 in the space', () => space.checkSwitch() && space.kv('GAMMA', 'v') === '3', 10_000);
  t.equal(fake.count('/v1/agent/packages/app2.so'), 1, 'one 403, then never again for the same sha256');
  t.equal(fake.count('/v1/agent/packages/app1.so', () => true) >= 3, true);
});

t.test('a manifest signed by another key is refused; the space keeps the verified package', async (t) => {
  fake.signing = 'foreign';
  fake.packages.set('app1.so', { body: C });
  const before = fake.count('/v1/agent/packages/app1.so');
  fake.setBundle(bundle(4, C));
  await waitFor('version 4 in the space', () => space.checkSwitch() && space.kv('GAMMA', 'v') === '4', 10_000);
  const line = a.logLines().find((l) => /^package refused , app\[APP1\] bin\[app1\.so\] reason\[the manifest signature does not verify/.test(l.msg));
  t.ok(line, 'the refusal is logged');
  t.equal(line?.level, 'error');
  t.equal(fake.count('/v1/agent/packages/app1.so'), before, 'nothing was downloaded');
  t.equal(sha256(fs.readFileSync(so1)), sha256(B), 'the verified package stays');
  t.equal(space.app('APP1')?.sha256, sha256(B), 'the space carries the verified sha256, not the refused one');
});

t.test('a bundle without signed manifests is refused too', async (t) => {
  fake.signing = 'unsigned';
  fake.setBundle(bundle(5, C));
  await waitFor('version 5 in the space', () => space.checkSwitch() && space.kv('GAMMA', 'v') === '5', 10_000);
  t.ok(a.logLines().some((l) => /^package refused , app\[APP1\] bin\[app1\.so\] reason\[the registry sent no signed manifest/.test(l.msg)), 'logged');
  t.equal(sha256(fs.readFileSync(so1)), sha256(B));
  t.equal(space.app('APP1')?.sha256, sha256(B));
  t.equal(space.header().packageKey, fake.signer.publicKeyB64, 'the pinned key stays in the space');
});

t.test('symlinks planted at so/<bin>.updating and so/<bin> leave their targets untouched', async (t) => {
  const victims = path.join(a.home, '..', 'victims');
  fs.mkdirSync(victims, { recursive: true });
  const v1 = path.join(victims, 'updating-target');
  const v2 = path.join(victims, 'bin-target');
  fs.writeFileSync(v1, 'precious 1');
  fs.writeFileSync(v2, 'precious 2');
  fs.symlinkSync(v1, `${so1}.updating`);
  fs.rmSync(so1);
  fs.symlinkSync(v2, so1);
  fake.signing = 'signed';
  fake.setBundle(bundle(6, C));
  await waitFor('version 6 in the space', () => space.checkSwitch() && space.kv('GAMMA', 'v') === '6', 10_000);
  t.equal(fs.readFileSync(v1, 'utf8'), 'precious 1', 'the target of so/app1.so.updating is untouched');
  t.equal(fs.readFileSync(v2, 'utf8'), 'precious 2', 'the target of so/app1.so is untouched');
  t.ok(fs.lstatSync(so1).isFile(), 'so/app1.so is a regular file again (the link itself was replaced)');
  t.equal(sha256(fs.readFileSync(so1)), sha256(C), 'holding the signed package');
  t.ok(fs.lstatSync(`${so1}.updating`).isSymbolicLink(), 'the planted .updating link was never opened for writing');
  t.ok(a.logLines().some((l) => l.level === 'warn' && /^package file refused , file\[.*app1\.so\] reason\[.*symbolic link/.test(l.msg)), 'the symlink at so/app1.so is refused and logged');
  t.equal(space.app('APP1')?.sha256, sha256(C));
  t.same(fs.readdirSync(path.join(a.home, 'so')).filter((n) => n.includes('.updating.')), [], 'no temporary install file left');
  fs.rmSync(`${so1}.updating`);
});

t.test('while a package downloads, the space of the served config announces its signed sha256', async (t) => {
  fake.packages.set('app1.so', { body: D, delayMs: 1500 });
  fake.setBundle(bundle(7, D));
  const announced = await waitFor('SHA256_NEXT in the space', () => {
    space.checkSwitch();
    const a = space.app('APP1');
    return a?.sha256Next === sha256(D) ? a : undefined;
  }, 10_000);
  t.equal(announced.sha256, sha256(C), 'the installed package is still the signed one');
  t.equal(space.kv('GAMMA', 'v'), '6', 'announced in the config being served (version 7 is not published yet)');
  t.equal(sha256(fs.readFileSync(so1)), sha256(C), 'announced before the file is replaced');
  await waitFor('version 7 in the space', () => space.checkSwitch() && space.kv('GAMMA', 'v') === '7', 10_000);
  t.match(space.app('APP1'), { sha256: sha256(D), sha256Next: '' }, 'then the space carries it as installed');
  t.equal(sha256(fs.readFileSync(so1)), sha256(D));
});

/** A package smaller than the registry's 403 answer (the demo's ibp_ts_echo.mjs is 141 bytes). */
const TINY = crypto.randomBytes(64);

function withTiny(version: number, packageBins?: string[]): NodeBundle {
  const b = bundle(version, D);
  b.apps.push({ app: 'APP3', desc: 'tiny package', bin: 'tiny.so', timeout: 5, timeout2: 0, invalid: 0, server_node: 'DELTA', sha256: sha256(TINY), size: TINY.length });
  return packageBins ? { ...b, package_bins: packageBins } : b;
}

async function failing(): Promise<string[] | undefined> {
  return (JSON.parse((await a.ibma(['-s', 'status', '--json'])).stdout) as { packages_failed?: string[] }).packages_failed;
}

t.test('a bundle without package_bins (an older registry): a 403 bigger than the package is still "not ours"', async (t) => {
  fake.packages.set('tiny.so', { body: TINY, forbidden: true });
  fake.setBundle(withTiny(8));
  await waitFor('version 8 in the space', () => space.checkSwitch() && space.kv('GAMMA', 'v') === '8', 10_000);
  t.equal(fake.count('/v1/agent/packages/tiny.so'), 1, 'asked once');
  t.notOk(a.logLines().some((l) => /package update failed , bin\[tiny\.so\]/.test(l.msg)), 'no failure logged: the 403 body is read whole, not refused for its size');
  t.equal(await failing(), undefined, 'nothing failing');
});

t.test("with package_bins: only those bins are asked for; a 403 for one of them is a failure carrying the registry's reason", async (t) => {
  const app2 = fake.count('/v1/agent/packages/app2.so');
  const tiny = fake.count('/v1/agent/packages/tiny.so');
  fake.setBundle(withTiny(9, ['app1.so', 'tiny.so']));
  await waitFor('version 9 in the space', () => space.checkSwitch() && space.kv('GAMMA', 'v') === '9', 10_000);
  t.equal(fake.count('/v1/agent/packages/app2.so'), app2, 'app2.so (not in package_bins) is never asked for');
  t.ok(fake.count('/v1/agent/packages/tiny.so') > tiny, 'tiny.so (in package_bins) is asked for, even after an earlier 403');
  const line = a.logLines().find((l) => /^package update failed , bin\[tiny\.so\]/.test(l.msg));
  t.ok(line, 'the refusal is logged as a failure');
  t.match(line?.msg ?? '', /reason\[IBP_ERR_REG_ANSWER: .*package tiny\.so: IBP_ERR_REG_FORBIDDEN node GAMMA is not entitled to package tiny\.so \(it serves no project holding an app of it\)\]/, "with the registry's own code and message");
  t.notMatch(line?.msg ?? '', /over the limit/, 'not a body-size message');
  t.same(await failing(), ['tiny.so'], 'status lists it as failing');
  t.equal(sha256(fs.readFileSync(so1)), sha256(D), 'app1.so stays');
  // the next watch round retries it and announces it once in the space of version 9 (SHA256_NEXT):
  // wait for that flip, so that the space is settled for what follows
  await waitFor('the retry, announced in the space', () => {
    space.checkSwitch();
    return space.app('APP3')?.sha256Next === sha256(TINY) && fake.count('/v1/agent/packages/tiny.so') > tiny + 1;
  }, 15_000);
  t.pass('retried on the next round');
});

t.test('stop keeps the space for clients', async (t) => {
  const r = await a.ibma(['-a', 'stop']);
  t.equal(r.code, 0, r.stderr);
  const nodes = await a.ibma(['-s', 'nodes', '--json']);
  t.equal(nodes.code, 0, nodes.stderr);
  t.same((JSON.parse(nodes.stdout) as { node: string; port: number }[]).map((n) => [n.node, n.port]), [['GAMMA', 18003]], 'ibma -s nodes reads the kept space');
  t.equal(space.checkSwitch(), false);
  t.equal(space.kv('GAMMA', 'v'), '9', 'a reader keeps working after the agent stopped');
});

t.test('a so/ folder the group can write into stops the agent at start', async (t) => {
  const so = path.join(a.home, 'so');
  fs.chmodSync(so, 0o775);
  const r = await a.ibma(['-a', 'start']);
  fs.chmodSync(so, 0o755);
  t.not(r.code, 0, 'the start is refused');
  t.match(`${r.stderr}${r.stdout}`, /so\/ folder .* refused: its mode 775 lets the group write into it: chmod go-w/);
});
