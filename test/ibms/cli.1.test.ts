/**
 * (1/2) Every admin command of the CLI against the real daemon: IBP's cluster-building walk-through
 * (chapter 5), tables and --json, derivation shown by -s nodes_changed, and clear failures.
 */
import fs from 'node:fs';
import t from 'tap';
import { makeDaemon } from './daemon-fixture.js';

t.test('build a cluster with the CLI, as IBP chapter 5 does', async (t) => {
  const d = await makeDaemon(t);
  const ok = d.ok;
  const json = async (...args: string[]) => JSON.parse(await ok(...args, '--json'));

  t.equal(await ok('-a', 'add_node', '--node', 'ECIF'), 'OK\n', 'IBP prints OK');
  await ok('-a', 'add_node', '--node', 'CORE', '--invalid', '0', '--key-exp', 'rotate-2026');
  await ok('-a', 'add_node', '--node', 'CRM');
  await ok('-a', 'add_node_host', '--node', 'ECIF', '--ip', '127.0.0.1', '--port', '18001');
  await ok('-a', 'add_node_host', '--node', 'ECIF', '--ip', '127.0.0.2', '--port', '18001');
  await ok('-a', 'add_node_host', '--node', 'CORE', '--ip', '127.0.0.3', '--port', '10601');
  await ok('-a', 'add_app', '--app', 'ABCD0001', '--desc', '交易中文描述', '--bin', 'ABCD0001.so', '--timeout', '60');
  await ok('-a', 'add_app', '--app', 'ABCD0002', '--desc', 'second', '--bin', 'ABCD0002.so', '--timeout', '0.5', '--timeout2', '2', '--server-node', 'ECIF');
  await ok('-a', 'add_project', '--project', 'ecif_core', '--server-nodes', 'ECIF', '--client-nodes', 'CORE', '--apps', 'ABCD0001 ABCD0002');
  await ok('-a', 'add_node_kv', '--node', 'ECIF', '--key', 'hsm_ip', '--value', '10.0.0.1');

  t.equal(await ok('-s', 'nodes_changed'), 'ECIF\nCORE\nCRM\n', 'every node touched so far');
  const dist = await ok('-a', 'distribute_config');
  t.match(dist, /^OK\nECIF version \d+\nCORE version \d+\nCRM version \d+\n$/);
  const none = await d.ibms('-s', 'nodes_changed');
  t.equal(none.stdout, '', 'the list is empty after distribution');
  t.match(none.stderr, /no node changed since the last distribution/, 'and a person is told so (stderr)');

  const nodesTable = await ok('-s', 'nodes');
  t.match(nodesTable, /NODE[\s\S]*HOSTS/);
  t.match(nodesTable, /ECIF.*127\.0\.0\.1:18001 127\.0\.0\.2:18001/);
  t.match(nodesTable, /CORE.*rotate-2026/);
  const nodes = await json('-s', 'nodes');
  t.same(nodes.map((n: { node: string }) => n.node), ['ECIF', 'CORE', 'CRM']);
  t.same(await json('-s', 'nodes', '--node', 'CORE'), [{ node: 'CORE', invalid: 0, key_exp: 'rotate-2026', hosts: [{ ip: '127.0.0.3', port: 10601 }], kvs: {} }]);
  const apps = await json('-s', 'apps');
  t.match(apps, [{ app: 'ABCD0001', desc: '交易中文描述', timeout: 60, timeout2: 0, sha256: '' }, { app: 'ABCD0002', timeout: 0.5, timeout2: 2, server_node: 'ECIF' }]);
  t.match(await ok('-s', 'apps', '--app', 'ABCD0001'), /ABCD0001\.so.*\(no package\)/);
  t.same(await json('-s', 'projects'), [{ project: 'ecif_core', server_nodes: ['ECIF'], client_nodes: ['CORE'], apps: ['ABCD0001', 'ABCD0002'] }]);
  t.match(await ok('-s', 'projects'), /ecif_core.*ECIF.*CORE.*ABCD0001 ABCD0002/);
  t.same(await json('-s', 'nodes_kv'), [{ node: 'ECIF', key: 'hsm_ip', value: '10.0.0.1' }]);
  t.match(await ok('-s', 'nodes_kv'), /ECIF.*hsm_ip.*10\.0\.0\.1/);

  // set_* change only what is given, and touch the derived nodes
  await ok('-a', 'set_node', '--node', 'CRM', '--invalid', '1');
  t.equal(await ok('-s', 'nodes_changed'), 'CRM\n', 'a lone node touches itself');
  await ok('-a', 'set_node_kv', '--node', 'ECIF', '--key', 'hsm_ip', '--value', '10.0.0.2');
  t.equal(await ok('-s', 'nodes_changed'), 'CRM\nECIF\nCORE\n', 'a kv change touches the node and its related nodes');
  await ok('-a', 'distribute_config');
  await ok('-a', 'set_app', '--app', 'ABCD0001', '--timeout', '30');
  t.match(await json('-s', 'apps', '--app', 'ABCD0001'), [{ timeout: 30, desc: '交易中文描述', bin: 'ABCD0001.so' }], 'set_app keeps what was not given');
  t.same((await json('-s', 'nodes_changed')).sort(), ['CORE', 'ECIF'], 'an app change touches its project\'s nodes');
  await ok('-a', 'set_project', '--project', 'ecif_core', '--client-nodes', 'CORE CRM');
  t.same((await json('-s', 'nodes_changed')).sort(), ['CORE', 'CRM', 'ECIF']);
  const dl = await ok('-a', 'download_config', '--node', 'CRM');
  t.match(dl, /^OK\nCRM version \d+\n$/);
  t.same((await json('-s', 'nodes_changed')).sort(), ['CORE', 'ECIF'], 'download_config distributed CRM only');
  await ok('-a', 'distribute_config');

  // update_app needs the package in so/; then it is listed with its hash
  const upd = await d.ibms('-a', 'update_app', '--app', 'ABCD0001');
  t.equal(upd.code, 5);
  t.match(upd.stderr, /package ABCD0001\.so of app ABCD0001 is not in .*\/so: copy the \.so there first \(IBP_ERR_REG_NO_PACKAGE\)/);
  fs.writeFileSync(d.home.so('ABCD0001.so'), 'version 1');
  t.match(await ok('-a', 'update_app', '--app', 'ABCD0001'), /^OK\npackage sha256 [0-9a-f]{64} size 9\n$/);
  t.same((await json('-s', 'nodes_changed')).sort(), ['CORE', 'CRM', 'ECIF']);
  t.match(await json('-s', 'apps', '--app', 'ABCD0001'), [{ size: 9, sha256: /^[0-9a-f]{64}$/ }]);

  // removals
  await ok('-a', 'remove_node_kv', '--node', 'ECIF', '--key', 'hsm_ip');
  await ok('-a', 'remove_node_host', '--node', 'ECIF', '--ip', '127.0.0.2', '--port', '18001');
  t.match(await json('-s', 'nodes', '--node', 'ECIF'), [{ hosts: [{ ip: '127.0.0.1', port: 18001 }], kvs: {} }]);
  const inUse = await d.ibms('-a', 'remove_node', '--node', 'CRM');
  t.equal(inUse.code, 5);
  t.match(inUse.stderr, /node CRM is still used by project ecif_core/);
  await ok('-a', 'remove_app', '--app', 'ABCD0002');
  t.same((await json('-s', 'projects'))[0].apps, ['ABCD0001'], 'remove_app drops it from its project');
  await ok('-a', 'remove_project', '--project', 'ecif_core');
  await ok('-a', 'remove_node', '--node', 'CRM');
  t.same((await json('-s', 'nodes')).map((n: { node: string }) => n.node), ['ECIF', 'CORE']);
  t.notOk(fs.existsSync(d.home.keys('node_CRM.credential')), 'its credential is gone');

  // persistence commands
  const saved = await ok('-a', 'save_config');
  t.match(saved, /^OK\n.*ibp_nodes\.conf saved\n.*ibp_apps\.conf saved\n.*ibp_projects\.conf saved\n$/);
  t.match(JSON.parse(fs.readFileSync(d.home.etc('ibp_nodes.conf'), 'utf8')).nodes, [{ node: 'ECIF' }, { node: 'CORE' }]);
  const built = await ok('-a', 'build_config');
  t.match(built, /ibp_nodes\.conf\.bin built/);
  t.ok(fs.existsSync(d.home.etc('ibp_apps.conf.bin')));
});

