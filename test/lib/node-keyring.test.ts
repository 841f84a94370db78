/**
 * Node keys in the config space and the keyring over it (lib/node-keyring.ts): wire forms round
 * trip, the NODE_KEY records read back, the sending key switches at the enable time, a pair is
 * refused (KEY_EXPIRED) after its disable time, a flip rebuilds the keyring, private key files are
 * written 0600 through a fresh O_EXCL name and a symlink or a loose mode is refused.
 */
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { ConfigSpaceWriter, type SpaceSettings } from '../../lib/shm/config-segment.js';
import { ConfigSpace } from '../../lib/shm/config-space.js';
import { homeKeyBase, KEY_SLOT } from '../../lib/shm/keys.js';
import type { NodeBundle } from '../../lib/config/model.js';
import { generateNodeKey, nodeKeyFromWire, nodeKeyToWire, nodePrivateKeyFromWire, nodePrivateKeyToWire, privateKeyFileName, type NodePrivateKey } from '../../lib/node-keys.js';
import { readPrivateKeyFile, writePrivateKeyFile } from '../../lib/node-key-files.js';
import { openNodeKeyring } from '../../lib/node-keyring.js';
import { reapHome } from '../helpers/procs.js';

const settings: SpaceSettings = { ibms: { ip: '127.0.0.1', port: 18000 }, connecting_timeout: 2.5, retry_connect_timeval: 10, min_compress_size: 4096 };

function bundle(version: number, keys: NodePrivateKey[]): NodeBundle {
  return {
    epoch: 'e1',
    version,
    this_node: 'ECIF',
    nodes: [
      { node: 'ECIF', invalid: 0, hosts: [{ ip: '127.0.0.1', port: 18001 }], kvs: {} },
      { node: 'CORE', invalid: 0, hosts: [{ ip: '127.0.0.3', port: 18003 }], kvs: { a: 'b' } },
    ],
    apps: [],
    node_keys: keys.map(nodeKeyToWire),
  };
}

t.test('wire forms round trip and are checked', async (t) => {
  const k = generateNodeKey('ECIF', 5, 9);
  const w = nodePrivateKeyToWire(k);
  t.match(w, { node: 'ECIF', kcv: /^[0-9a-f]{16}$/, sign_public: /^[A-Za-z0-9_-]{43}$/, sign_private: /^[A-Za-z0-9_-]{43}$/, enable_at: 5, disable_at: 9 });
  const back = nodePrivateKeyFromWire(w);
  t.equal(back.kcv, k.kcv);
  t.ok(back.signPublicKey.equals(k.signPublicKey) && back.agreePrivateKey.equals(k.agreePrivateKey));
  t.throws(() => nodeKeyFromWire({ ...w, kcv: '0'.repeat(16) }), /does not match/, 'a KCV of other keys');
  const other = nodePrivateKeyToWire(generateNodeKey('ECIF', 0));
  t.throws(() => nodePrivateKeyFromWire({ ...w, sign_private: other.sign_private }), /do not belong/, 'a private half of another pair');
  t.throws(() => nodeKeyFromWire({ ...w, sign_public: 'x' }), /base64url/);
});

t.test('private key files: 0600, fresh name, symlinks and loose modes refused', async (t) => {
  const root = t.testdir();
  const dir = path.join(root, 'keys');
  const k = generateNodeKey('ECIF', 0);
  const file = writePrivateKeyFile(dir, nodePrivateKeyToWire(k));
  t.equal(path.basename(file), privateKeyFileName('ECIF', k.kcv));
  t.equal(fs.statSync(dir).mode & 0o777, 0o700, 'keys/ created 0700');
  t.equal(fs.statSync(file).mode & 0o777, 0o600, 'file 0600');
  t.equal(readPrivateKeyFile(dir, 'ECIF', k.kcv)?.kcv, k.kcv);
  t.equal(readPrivateKeyFile(dir, 'ECIF', 'f'.repeat(16)), undefined, 'absent: undefined');

  // a symlink planted at the final name is replaced, its target untouched
  const k2 = generateNodeKey('ECIF', 0);
  const victim = path.join(root, 'victim');
  fs.writeFileSync(victim, 'keep me');
  fs.symlinkSync(victim, path.join(dir, privateKeyFileName('ECIF', k2.kcv)));
  t.throws(() => readPrivateKeyFile(dir, 'ECIF', k2.kcv), { code: 'IBP_ERR_NODE_KEY_FILE' }, 'a symlink is refused on read');
  writePrivateKeyFile(dir, nodePrivateKeyToWire(k2));
  t.equal(fs.readFileSync(victim, 'utf8'), 'keep me', 'the symlink target is untouched');
  t.notOk(fs.lstatSync(path.join(dir, privateKeyFileName('ECIF', k2.kcv))).isSymbolicLink(), 'the symlink itself was replaced');

  fs.chmodSync(file, 0o644);
  t.throws(() => readPrivateKeyFile(dir, 'ECIF', k.kcv), { code: 'IBP_ERR_NODE_KEY_FILE', message: /chmod 600/ }, 'a file readable by others is refused');
  fs.chmodSync(dir, 0o755);
  t.throws(() => writePrivateKeyFile(dir, nodePrivateKeyToWire(k)), { code: 'IBP_ERR_NODE_KEY_FILE', message: /chmod 700/ }, 'a keys/ folder others can read is refused');
});

t.test('the keyring over the config space: switch at enable time, KEY_EXPIRED after disable time, rebuilt on flip', async (t) => {
  const home = t.testdir({ keys: {} });
  fs.chmodSync(path.join(home, 'keys'), 0o700);
  t.teardown(() => reapHome(home));
  const keysDir = path.join(home, 'keys');
  const indexKey = homeKeyBase(home) + KEY_SLOT.INDEX;
  const w = new ConfigSpaceWriter(indexKey);
  t.teardown(() => w.removeAll());

  const T = 1_000_000_000_000;
  const ecif1 = generateNodeKey('ECIF', 0);
  const core1 = generateNodeKey('CORE', 0);
  writePrivateKeyFile(keysDir, nodePrivateKeyToWire(ecif1));
  w.publish(bundle(1, [ecif1, core1]), settings);
  const space = ConfigSpace.openKey(indexKey);
  t.teardown(() => space.close());
  t.equal(space.header().nodeCount, 2);
  t.same(space.nodeKeys().map((k) => `${k.node}:${k.kcv}:${k.enableAt}:${k.disableAt}`), [`ECIF:${ecif1.kcv}:0:0`, `CORE:${core1.kcv}:0:0`], 'records in node order');

  const ring = openNodeKeyring({ space, keysDir });
  t.equal(ring.localNode, 'ECIF', 'local node from the space');
  t.equal(ring.sendingKey(T)?.kcv, ecif1.kcv);
  t.ok(ring.sendingKey(T)?.signPrivateKey.equals(ecif1.signPrivateKey), 'private half from the file');
  t.equal(ring.peerKey('CORE', core1.kcv, T).key?.kcv, core1.kcv);
  t.equal(ring.peerKey('CORE', ecif1.kcv, T).refusal, 'UNKNOWN_KEY');
  t.equal(ring.peerKey('NOPE', core1.kcv, T).refusal, 'UNKNOWN_NODE');
  t.equal(ring.peerSendingKey('CORE', T)?.kcv, core1.kcv);
  t.same(ring.problems, []);

  // a rotation of both nodes: new pairs enabled at T+60 s, old ones disabled at T+120 s
  const ecif2 = generateNodeKey('ECIF', T + 60_000);
  const core2 = generateNodeKey('CORE', T + 60_000);
  const old = (k: NodePrivateKey): NodePrivateKey => ({ ...k, disableAt: T + 120_000 });
  writePrivateKeyFile(keysDir, nodePrivateKeyToWire(ecif2));
  w.publish(bundle(2, [old(ecif1), ecif2, old(core1), core2]), settings);
  t.equal(ring.sendingKey(T)?.kcv, ecif1.kcv, 'before checkSwitch the reader keeps its segment');
  t.ok(space.checkSwitch());
  t.equal(ring.sendingKey(T)?.kcv, ecif1.kcv, 'after the flip: the old pair until the enable time');
  t.equal(ring.sendingKey(T + 60_000)?.kcv, ecif2.kcv, 'the new pair from the enable time');
  t.equal(ring.peerSendingKey('CORE', T + 59_999)?.kcv, core1.kcv);
  t.equal(ring.peerSendingKey('CORE', T + 60_000)?.kcv, core2.kcv);
  t.equal(ring.peerKey('CORE', core1.kcv, T + 119_999).key?.kcv, core1.kcv, 'the old pair accepted until its disable time');
  t.equal(ring.peerKey('CORE', core1.kcv, T + 120_000).refusal, 'KEY_EXPIRED', 'and refused from it');
  t.equal(ring.localKey(ecif1.kcv, T + 120_000), undefined, 'a local pair past its disable time is not used');
  t.equal(ring.localKey(ecif2.kcv, T + 120_000)?.kcv, ecif2.kcv);

  // a published local pair without its private file: reported, and picked up once the file appears
  const ecif3 = generateNodeKey('ECIF', T + 200_000);
  w.publish(bundle(3, [ecif2, ecif3, core2]), settings);
  space.checkSwitch();
  t.equal(ring.localKey(ecif3.kcv, T + 200_000), undefined, 'no file yet');
  t.match(ring.problems.join('\n'), /no private key file/);
  writePrivateKeyFile(keysDir, nodePrivateKeyToWire(ecif3));
  t.equal(ring.localKey(ecif3.kcv, T + 200_500), undefined, 'not looked for again within a second');
  t.equal(ring.localKey(ecif3.kcv, T + 201_000)?.kcv, ecif3.kcv, 'found on the retry a second later');
  t.same(ring.problems, []);
});
