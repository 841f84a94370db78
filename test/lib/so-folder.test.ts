/**
 * The so/ folder's rules (lib/so-folder.ts) and the package-signing primitives
 * (lib/package-signing.ts), in process: installs replace atomically and never write through a
 * planted symlink; reads refuse symlinks; a group/world-writable folder is refused; stale temp
 * files of dead writers are removed; manifests are canonical, signed and verified, and any change
 * of a byte is refused; the key pair is created once with the right modes.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { checkSoFolder, installPackage, readPackage, removeStaleTemps } from '../../lib/so-folder.js';
import {
  PACKAGE_ABI_VERSION, PackageSigner, canonicalManifest, parseManifest, publicKeyOf, verifyManifest, type Manifest,
} from '../../lib/package-signing.js';
import { APP_ABI_VERSION } from '../../ibas/app-abi.js';

function soDir(t: { testdir(): string }): string {
  const dir = path.join(t.testdir(), 'so');
  fs.mkdirSync(dir, { mode: 0o755 });
  fs.chmodSync(dir, 0o755);
  return dir;
}

t.test('installPackage: new bytes in place, nothing left behind, bad names refused', async (t) => {
  const dir = soDir(t);
  fs.writeFileSync(path.join(dir, 'a.so'), 'old');
  installPackage(dir, 'a.so', Buffer.from('new bytes'));
  t.equal(fs.readFileSync(path.join(dir, 'a.so'), 'utf8'), 'new bytes');
  t.same(fs.readdirSync(dir), ['a.so']);
  t.equal(fs.statSync(path.join(dir, 'a.so')).mode & 0o777, 0o755);
  installPackage(dir, 'b.so', Buffer.from('first'));
  t.equal(fs.readFileSync(path.join(dir, 'b.so'), 'utf8'), 'first', 'a first install works too');
  t.throws(() => installPackage(dir, '../escape.so', Buffer.from('x')), { code: 'IBP_ERR_FILE_NAME' });
  t.notOk(fs.existsSync(path.join(dir, '..', 'escape.so')));
});

t.test('symlinks planted at <bin>.updating and <bin> are never written through', async (t) => {
  const dir = soDir(t);
  const outside = path.join(dir, '..', 'victim');
  fs.writeFileSync(outside, 'precious');
  fs.symlinkSync(outside, path.join(dir, 'a.so.updating'));
  fs.symlinkSync(outside, path.join(dir, 'a.so'));
  t.throws(() => readPackage(path.join(dir, 'a.so')), { code: 'IBP_ERR_SO_SYMLINK' }, 'reading through the link is refused');
  installPackage(dir, 'a.so', Buffer.from('signed bytes'));
  t.equal(fs.readFileSync(outside, 'utf8'), 'precious', 'the target is untouched');
  t.ok(fs.lstatSync(path.join(dir, 'a.so')).isFile(), 'a.so is now a regular file');
  t.equal(readPackage(path.join(dir, 'a.so'))?.bytes.toString(), 'signed bytes');
  t.ok(fs.lstatSync(path.join(dir, 'a.so.updating')).isSymbolicLink(), 'the planted .updating link is left alone');
  t.equal(readPackage(path.join(dir, 'nope.so')), undefined, 'a missing file reads as undefined');
});

t.test('a so/ folder others can write into is refused', async (t) => {
  const dir = soDir(t);
  t.ok(checkSoFolder(dir).isDirectory());
  fs.chmodSync(dir, 0o775);
  t.throws(() => checkSoFolder(dir), { code: 'IBP_ERR_SO_FOLDER', message: /mode 775 lets the group write into it: chmod go-w/ });
  t.throws(() => installPackage(dir, 'a.so', Buffer.from('x')), { code: 'IBP_ERR_SO_FOLDER' }, 'an install too');
  t.notOk(fs.existsSync(path.join(dir, 'a.so')));
  fs.chmodSync(dir, 0o757);
  t.throws(() => checkSoFolder(dir), { code: 'IBP_ERR_SO_FOLDER', message: /others/ });
  fs.chmodSync(dir, 0o755);
  t.throws(() => checkSoFolder(path.join(dir, 'missing')), { code: 'IBP_ERR_SO_FOLDER' });
});

t.test('temp files of dead writers are removed, a live writer\'s are kept', async (t) => {
  const dir = soDir(t);
  const dead = 'a.so.updating.999999999-0123456789ab';
  const live = `a.so.updating.${process.ppid}-0123456789ab`;
  fs.writeFileSync(path.join(dir, dead), 'x');
  fs.writeFileSync(path.join(dir, live), 'x');
  fs.writeFileSync(path.join(dir, 'a.so.updating'), 'IBP manual update');
  t.same(removeStaleTemps(dir), [dead]);
  t.same(fs.readdirSync(dir).sort(), ['a.so.updating', live].sort());
});

t.test('manifests: canonical, signed, any change refused', async (t) => {
  t.equal(PACKAGE_ABI_VERSION, APP_ABI_VERSION, 'the signed ABI version is the server\'s');
  const m: Manifest = { time: 5, size: 3, sha256: 'a'.repeat(64), bin: 'x.so', app: 'X', abi_version: 1 };
  const text = canonicalManifest(m);
  t.equal(text, `{"abi_version":1,"app":"X","bin":"x.so","sha256":"${'a'.repeat(64)}","size":3,"time":5}`);
  t.same(parseManifest(text), m);
  t.equal(parseManifest(text.replace('{', '{ ')), undefined, 'a non-canonical text is not a manifest');
  t.equal(parseManifest('{"app":1}'), undefined);
  const signer = new PackageSigner(crypto.generateKeyPairSync('ed25519').privateKey);
  const signed = signer.sign(m);
  const key = publicKeyOf(signer.publicKeyB64, 'test');
  t.match(verifyManifest(key, signed, { app: 'X', bin: 'x.so' }), { ok: true, manifest: m });
  t.match(verifyManifest(key, signed, { bin: 'y.so' }), { ok: false, reason: /for bin x.so/ });
  t.match(verifyManifest(key, signed, { app: 'Y', bin: 'x.so' }), { ok: false, reason: /for app X/ });
  t.match(verifyManifest(key, { ...signed, manifest: signed.manifest.replace('"size":3', '"size":4') }, { bin: 'x.so' }), { ok: false, reason: /does not verify/ });
  const sig = Buffer.from(signed.signature, 'base64');
  sig[7]! ^= 1;
  t.match(verifyManifest(key, { ...signed, signature: sig.toString('base64') }, { bin: 'x.so' }), { ok: false, reason: /does not verify/ });
  const other = publicKeyOf(new PackageSigner(crypto.generateKeyPairSync('ed25519').privateKey).publicKeyB64, 'other');
  t.match(verifyManifest(other, signed, { bin: 'x.so' }), { ok: false, reason: /does not verify/ }, 'another key');
  t.throws(() => publicKeyOf(crypto.generateKeyPairSync('x25519').publicKey.export({ format: 'pem', type: 'spki' }) as string, 'f'), { code: 'IBP_ERR_PKG_KEY' });
});

t.test('the key pair is created once, private 0600, public 0644; a readable private key is refused', async (t) => {
  const dir = t.testdir();
  const key = path.join(dir, 'package-signing.key');
  const pub = path.join(dir, 'package-signing.pub');
  const first = PackageSigner.loadOrCreate(key, pub);
  t.equal(first.created, true);
  t.equal(fs.statSync(key).mode & 0o777, 0o600);
  t.equal(fs.statSync(pub).mode & 0o777, 0o644);
  const again = PackageSigner.loadOrCreate(key, pub);
  t.equal(again.created, false);
  t.equal(again.signer.publicKeyB64, first.signer.publicKeyB64, 'the same key');
  t.equal(publicKeyOf(fs.readFileSync(pub, 'utf8'), pub).export({ format: 'der', type: 'spki' }).toString('base64'), first.signer.publicKeyB64);
  fs.chmodSync(key, 0o644);
  t.throws(() => PackageSigner.loadOrCreate(key, pub), { code: 'IBP_ERR_PKG_KEY', message: /chmod 600/ });
});
