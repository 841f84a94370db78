/**
 * Signed transactions through the whole chain (issue 11): a real ibms (node key elapses 1 s / 3 s)
 * creates the node keys, the agents of SRV and CLI publish them and write their private key files,
 * ibas on SRV has security.sign_flag required. An ibac loop on CLI that requires signing (and
 * encrypts every other call) runs while `ibms -a rotate_node_key` rotates both nodes' keys: 0 failed
 * calls; after the disable time, a pre-request signed with CLI's old key gets TX_KEY_EXPIRED.
 */
import path from 'node:path';
import t from 'tap';
import { createEnvironment } from '../../ibac/index.js';
import { openNodeKeyring } from '../../lib/node-keyring.js';
import { readPrivateKeyFile } from '../../lib/node-key-files.js';
import { RC } from '../../lib/protocol/result-codes.js';
import { ConfigSpace } from '../../lib/shm/config-space.js';
import { Cluster } from '../helpers/cluster.js';
import { freePort, waitFor } from '../helpers/procs.js';
import { only, Peer } from './helpers/tx-peer.js';

const APPS = [{ app: 'ibp_test_echo', bin: 'ibp_test_echo.so', timeout: 10 }];

t.test('key rotation of both nodes under a signing client loop', async (t) => {
  const cluster = await Cluster.start(t, { bins: ['ibp_test_echo.so'], ibms: { security: { new_key_enable_elapse: 1, old_key_disable_elapse: 3 } } });
  const port = await freePort(cluster.ip);
  await cluster.configure({
    nodes: { SRV: [`${cluster.ip}:${port}`], CLI: [] },
    apps: APPS,
    projects: [{ project: 'P', serverNodes: ['SRV'], clientNodes: ['CLI'], apps: ['ibp_test_echo'] }],
  });
  await Promise.all([cluster.credential('SRV'), cluster.credential('CLI')]);
  const [srv, cli] = await Promise.all([
    cluster.server('SRV', { port, maxCount: 2, ibas: { security: { sign_flag: 'required', encrypt_flag: 'optional' } } }),
    cluster.agent('CLI', { ibac: { connecting_timeout: 2, retry_connect_timeval: 30 } }),
  ]);
  await cluster.waitPackages(srv, ['ibp_test_echo.so']);
  await cluster.waitSpace(cli, 'both nodes\' keys', (s) => new Set(s.nodeKeys().map((k) => k.node)).size === 2 || undefined);
  await cluster.waitSpace(srv, 'both nodes\' keys', (s) => new Set(s.nodeKeys().map((k) => k.node)).size === 2 || undefined);
  const env = createEnvironment({ config: cli.ibmaConf, sign: 'required' });
  t.teardown(() => env.destroy());
  await waitFor('a first signed transaction', async () => (await env.requester('SRV', 'ibp_test_echo', 'ping')).body.toString() === 'ping', 30_000, 200);
  const unsigned = await env.requester('SRV', 'ibp_test_echo', 'x', undefined, { sign: 'none' }).catch((e: unknown) => e);
  t.match(unsigned, { code: 'IBP_ERR_TX_UNPROTECTED', safe: true }, 'unsigned: refused, SAFE');

  // CLI's key before the rotation, read as ibma wrote it
  const space = ConfigSpace.open(cli.ibmaConf);
  t.teardown(() => space.close());
  const ring = openNodeKeyring({ space, keysDir: path.join(cli.home, 'keys') });
  const oldCli = ring.sendingKey(Date.now())!;
  const oldCliPrivate = readPrivateKeyFile(path.join(cli.home, 'keys'), 'CLI', oldCli.kcv)!;
  t.ok(oldCliPrivate, 'CLI holds its private key');

  let ok = 0;
  let after = 0;
  let disableAt = Number.MAX_SAFE_INTEGER;
  const failures: string[] = [];
  let stop = false;
  const loop = (async () => {
    for (let i = 0; !stop && i < 100_000; i++) {
      try {
        const r = await env.requester('SRV', 'ibp_test_echo', `r${i}`, undefined, { encrypt: i % 2 === 0 });
        if (r.body.toString() !== `r${i}`) failures.push(`r${i}: wrong body`);
        else ok++;
        if (Date.now() > disableAt + 500) after++;
      } catch (e) {
        failures.push(`r${i}: ${(e as Error).message}`);
      }
    }
  })();
  try {
    await waitFor('signed calls before the rotation', () => ok >= 3 || undefined, 20_000, 10);
    const t0 = Date.now();
    for (const node of ['CLI', 'SRV']) {
      const out = await cluster.ibms(['-a', 'rotate_node_key', '--node', node]);
      t.equal(out.code, 0, `ibms -a rotate_node_key --node ${node}: ${out.stderr}`);
    }
    disableAt = t0 + 3000 + (Date.now() - t0);
    await waitFor('calls after both old keys\' disable time', () => (after >= 5 ? true : undefined), 60_000, 20);
  } finally {
    stop = true;
    await loop;
  }
  t.same(failures, [], `0 failed calls (${ok} signed calls across the rotation)`);
  space.checkSwitch();
  const newCli = ring.sendingKey(Date.now());
  t.not(newCli?.kcv, oldCli.kcv, 'CLI sends with its new key now');

  // the old key after its disable time
  const p = await Peer.open(t, srv);
  p.raw.write(Buffer.concat(p.frames({ own: oldCliPrivate, node: 'CLI', request: Buffer.from('late'), serverKey: ring.peerSendingKey('SRV', Date.now())! })));
  const [pa] = await p.upTo(1);
  t.equal(only(pa, 'PRE_ANSWER').rc, RC.TX_KEY_EXPIRED, 'a pre-request signed with CLI\'s old key: TX_KEY_EXPIRED');
  p.raw.close();
});
