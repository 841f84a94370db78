/**
 * Node keys end to end (issue 11): a real ibms (security elapses of 2 and 4 s) and the agents of
 * ECIF and CORE. Each agent writes only its own node's private key file (0600) and publishes every
 * held node's public pair in the config space; `ibms -a rotate_node_key --node CORE` reaches both
 * spaces with both pairs and their times; the keyring of CORE sends with the new pair from its
 * enable time; the keyring of ECIF refuses CORE's old pair (KEY_EXPIRED) after its disable time; the
 * CORE agent removes the old private file; `ibms -s node_keys` shows the states.
 */
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import type { ConfigSpace } from '../../lib/shm/config-space.js';
import { openNodeKeyring } from '../../lib/node-keyring.js';
import { privateKeyFileName } from '../../lib/node-keys.js';
import { loopbackIp, waitFor } from '../helpers/procs.js';
import { makeAgentHome, openSpace, type AgentHome } from './agent-home.js';
import { makeIbms, type IbmsHome } from './ibms-home.js';

const top = t;
const ip = loopbackIp();
let reg: IbmsHome;
let ecif: AgentHome;
let core: AgentHome;
let ecifSpace: ConfigSpace;
let coreSpace: ConfigSpace;

interface KeyRow { node: string; kcv: string; enable_at: number; disable_at: number }
const showKeys = async (node?: string): Promise<KeyRow[]> => JSON.parse((await reg.ibms(['-s', 'node_keys', '--json', ...(node ? ['--node', node] : [])])).stdout) as KeyRow[];

t.before(async () => {
  const root = t.testdir();
  reg = await makeIbms(t, ip, root);
  const confFile = path.join(reg.home, 'etc', 'ibms.conf');
  const conf = JSON.parse(fs.readFileSync(confFile, 'utf8')) as Record<string, unknown>;
  conf.security = { new_key_enable_elapse: 2, old_key_disable_elapse: 4 };
  fs.writeFileSync(confFile, JSON.stringify(conf, null, 2));
  // written before the first start, no init after: the registry creates the pairs when first needed (a migration)
  reg.writeData({
    nodes: [
      { node: 'ECIF', invalid: 0, hosts: [{ ip: '127.0.0.1', port: 18001 }], kvs: {} },
      { node: 'CORE', invalid: 0, hosts: [{ ip: '127.0.0.3', port: 10601 }], kvs: {} },
    ],
    apps: [],
    projects: [{ project: 'p1', server_nodes: ['ECIF'], client_nodes: ['CORE'], apps: [] }],
  });
  await reg.start();
  const [ecifCred, coreCred] = await Promise.all([reg.credential('ECIF'), reg.credential('CORE')]);
  ecif = await makeAgentHome(t, { root, node: 'ECIF', ibmsIp: ip, ibmsPort: reg.port, credential: ecifCred });
  core = await makeAgentHome(t, { root, node: 'CORE', ibmsIp: ip, ibmsPort: reg.port, credential: coreCred });
});

const prikeys = (a: AgentHome): string[] => fs.readdirSync(path.join(a.home, 'keys')).filter((n) => n.endsWith('.prikey')).sort();

t.test('pairs created when first needed; each agent holds only its own private key and publishes every public pair', async (t) => {
  const keys = await showKeys();
  t.same(keys.map((k) => k.node).sort(), ['CORE', 'ECIF'], 'a pair per node created when first needed');
  for (const n of ['ECIF', 'CORE']) t.equal(fs.statSync(path.join(reg.home, 'keys', `node_${n}.keys`)).mode & 0o777, 0o600);
  const [a, b] = await Promise.all([ecif.ibma(['-a', 'start']), core.ibma(['-a', 'start'])]);
  t.equal(a.code, 0, a.stderr);
  t.equal(b.code, 0, b.stderr);
  ecifSpace = await openSpace(top, ecif.indexKey);
  coreSpace = await openSpace(top, core.indexKey);
  const kcv = (n: string) => keys.find((k) => k.node === n)!.kcv;
  for (const s of [ecifSpace, coreSpace]) t.same(s.nodeKeys().map((k) => `${k.node}:${k.kcv}`).sort(), [`CORE:${kcv('CORE')}`, `ECIF:${kcv('ECIF')}`], `${s.header().thisNode}: both public pairs in the space`);
  t.same(prikeys(ecif), [privateKeyFileName('ECIF', kcv('ECIF'))], 'ECIF holds only its own private key');
  t.same(prikeys(core), [privateKeyFileName('CORE', kcv('CORE'))], 'CORE holds only its own private key');
  t.equal(fs.statSync(path.join(core.home, 'keys', prikeys(core)[0]!)).mode & 0o777, 0o600, 'mode 0600');
  const ring = openNodeKeyring({ space: ecifSpace, keysDir: path.join(ecif.home, 'keys') });
  t.equal(ring.sendingKey(Date.now())?.kcv, kcv('ECIF'));
  t.equal(ring.peerKey('CORE', kcv('CORE'), Date.now()).key?.kcv, kcv('CORE'));
  t.same(ring.problems, []);
  const shown = JSON.parse((await ecif.ibma(['-s', 'node_keys', '--json'])).stdout) as { node: string; kcv: string; state: string; private_key: boolean }[];
  t.same(shown.map((r) => [r.node, r.kcv, r.state, r.private_key]).sort(), [['CORE', kcv('CORE'), 'sending', false], ['ECIF', kcv('ECIF'), 'sending', true]], 'ibma -s node_keys: the pairs of the space, and which private key this home holds');
});

t.test('rotation: both agents publish both pairs, senders switch at the enable time, the old pair is refused after the disable time', async (t) => {
  const old = (await showKeys('CORE'))[0]!;
  const t0 = Date.now();
  const out = await reg.ibms(['-a', 'rotate_node_key', '--node', 'CORE']);
  const t1 = Date.now();
  t.match(out.stdout, /new key [0-9a-f]{16} , senders switch at/);
  t.match(out.stdout, new RegExp(`old key ${old.kcv} , refused from`));
  const rows = await showKeys('CORE');
  t.equal(rows.length, 2);
  const fresh = rows.find((k) => k.kcv !== old.kcv)!;
  const was = rows.find((k) => k.kcv === old.kcv)!;
  t.ok(fresh.enable_at >= t0 + 2000 && fresh.enable_at <= t1 + 2000, 'enable_at = rotation + new_key_enable_elapse');
  t.equal(was.disable_at - fresh.enable_at, 2000, 'disable_at = rotation + old_key_disable_elapse');

  const both = (s: ConfigSpace) => {
    s.checkSwitch();
    const ks = s.nodeKeys().filter((k) => k.node === 'CORE');
    return ks.length === 2 && ks.some((k) => k.kcv === fresh.kcv && k.enableAt === fresh.enable_at) && ks.some((k) => k.kcv === old.kcv && k.disableAt === was.disable_at);
  };
  await waitFor('both agents publish both CORE pairs', () => both(ecifSpace) && both(coreSpace), 10_000);
  t.pass('both spaces hold the old pair (with its disable time) and the new one (with its enable time)');
  t.ok(fs.existsSync(path.join(core.home, 'keys', privateKeyFileName('CORE', fresh.kcv))), 'the CORE agent wrote the new private key before publishing');
  t.notOk(prikeys(ecif).some((n) => n.startsWith('CORE.')), 'ECIF never gets a CORE private key');

  const coreRing = openNodeKeyring({ space: coreSpace, keysDir: path.join(core.home, 'keys') });
  const ecifRing = openNodeKeyring({ space: ecifSpace, keysDir: path.join(ecif.home, 'keys') });
  t.equal(coreRing.sendingKey(fresh.enable_at - 1)?.kcv, old.kcv, 'the old pair sends until the enable time');
  t.equal(coreRing.sendingKey(fresh.enable_at)?.kcv, fresh.kcv, 'the new one from it');
  t.equal(coreRing.localKey(fresh.kcv, Date.now())?.kcv, fresh.kcv, 'the new private pair is usable (a peer may encrypt to it)');
  t.equal(ecifRing.peerSendingKey('CORE', fresh.enable_at)?.kcv, fresh.kcv);

  await waitFor('the enable time', () => Date.now() >= fresh.enable_at, 10_000);
  t.equal(coreRing.sendingKey(Date.now())?.kcv, fresh.kcv, 'CORE sends with the new pair now');
  t.equal(ecifRing.peerKey('CORE', old.kcv, Date.now()).key?.kcv, old.kcv, 'the old pair is still accepted before its disable time');
  const text = (await reg.ibms(['-s', 'node_keys', '--node', 'CORE'])).stdout;
  t.match(text, new RegExp(`CORE\\W+${fresh.kcv}\\W+sending`), '-s node_keys: the new pair sends');
  t.match(text, new RegExp(`CORE\\W+${old.kcv}\\W+accepted`), '-s node_keys: the old one is still accepted');

  await waitFor('the disable time', () => Date.now() >= was.disable_at, 10_000);
  t.equal(ecifRing.peerKey('CORE', old.kcv, Date.now()).refusal, 'KEY_EXPIRED', 'the old pair is refused after its disable time');
  t.equal(ecifRing.peerKey('CORE', fresh.kcv, Date.now()).key?.kcv, fresh.kcv);
  await waitFor('the CORE agent removes the old private key', () => !prikeys(core).includes(privateKeyFileName('CORE', old.kcv)), 10_000);
  t.same(prikeys(core), [privateKeyFileName('CORE', fresh.kcv)]);
  t.match((await reg.ibms(['-s', 'node_keys', '--node', 'CORE'])).stdout, new RegExp(`CORE\\W+${old.kcv}\\W+disabled`), '-s node_keys: disabled');
});

t.test('stop the agents', async (t) => {
  for (const a of [ecif, core]) {
    const r = await a.ibma(['-a', 'stop_cleanly']);
    t.equal(r.code, 0, r.stderr);
  }
});
