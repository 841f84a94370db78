/**
 * The agent against a registry that lies about node keys (a fake ibms): a private pair whose
 * private halves are not the bundle's public pair, or a pair of another node, is refused (no file
 * written, a warn line), the bundle is still published, and the right pair is taken on a later
 * answer. Pairs the registry stops listing lose their private file.
 */
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import type { NodeBundle } from '../../lib/config/model.js';
import { generateNodeKey, nodeKeyToWire, nodePrivateKeyToWire, privateKeyFileName, type NodePrivateKey } from '../../lib/node-keys.js';
import { loopbackIp, waitFor } from '../helpers/procs.js';
import { makeAgentHome, openSpace, type AgentHome } from './agent-home.js';
import { FakeIbms } from './fake-ibms.js';

const top = t;
const ip = loopbackIp();
const CRED = 'cred-GAMMA-0123456789abcdef';
const K1 = generateNodeKey('GAMMA', 0);
const K2 = generateNodeKey('GAMMA', 0);
const DELTA = generateNodeKey('DELTA', 0);

function bundle(version: number, keys: NodePrivateKey[]): NodeBundle {
  return {
    epoch: 'K1',
    version,
    this_node: 'GAMMA',
    nodes: [
      { node: 'GAMMA', invalid: 0, hosts: [{ ip: '127.0.0.1', port: 18003 }], kvs: {} },
      { node: 'DELTA', invalid: 0, hosts: [], kvs: {} },
    ],
    apps: [],
    node_keys: keys.map(nodeKeyToWire),
  };
}

const fake = new FakeIbms(ip, bundle(1, [K1, DELTA]));
let a: AgentHome;
const files = (): string[] => fs.readdirSync(path.join(a.home, 'keys')).filter((n) => n.endsWith('.prikey')).sort();

t.before(async () => {
  const root = t.testdir();
  await fake.start();
  t.teardown(() => fake.stop());
  fake.credential = CRED;
  // private halves of K2 under K1's name and public keys: not K1's pair
  fake.nodeKeys.set('GAMMA', [{ ...nodePrivateKeyToWire(K1), sign_private: nodePrivateKeyToWire(K2).sign_private, agree_private: nodePrivateKeyToWire(K2).agree_private }]);
  a = await makeAgentHome(t, { root, node: 'GAMMA', ibmsIp: ip, ibmsPort: fake.port, credential: CRED });
});

t.test('a private pair that is not the published one is refused; the config is published anyway', async (t) => {
  const r = await a.ibma(['-a', 'start']);
  t.equal(r.code, 0, r.stderr);
  const space = await openSpace(top, a.indexKey);
  t.same(space.nodeKeys().map((k) => k.kcv).sort(), [K1.kcv, DELTA.kcv].sort(), 'the public pairs are published');
  await waitFor('the refusal logged', () => a.logText().includes('node private keys not synced'), 10_000);
  t.match(a.logText(), /do not belong to its public keys/);
  t.same(files(), [], 'no private file written');
});

t.test('a pair of another node is refused too', async (t) => {
  fake.nodeKeys.set('GAMMA', [nodePrivateKeyToWire(DELTA)]);
  await waitFor('the refusal logged', () => a.logText().includes('a pair of node DELTA'), 10_000);
  t.same(files(), []);
});

t.test('the right pair is taken on a later answer; a pair no longer listed loses its file', async (t) => {
  fake.nodeKeys.set('GAMMA', [nodePrivateKeyToWire(K1), nodePrivateKeyToWire(K2)]);
  await waitFor('the private file', () => files().includes(privateKeyFileName('GAMMA', K1.kcv)), 10_000);
  t.same(files(), [privateKeyFileName('GAMMA', K1.kcv)], 'only the pairs the bundle lists');
  t.equal(fs.statSync(path.join(a.home, 'keys', privateKeyFileName('GAMMA', K1.kcv))).mode & 0o777, 0o600);

  fake.setBundle(bundle(2, [K2, DELTA]));
  await waitFor('K2 written and K1 removed', () => files().join() === privateKeyFileName('GAMMA', K2.kcv), 10_000);
  t.pass('the file of a pair the registry dropped is removed');
  const r = await a.ibma(['-a', 'stop_cleanly']);
  t.equal(r.code, 0, r.stderr);
});
