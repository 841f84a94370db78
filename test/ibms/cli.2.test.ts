/** (2/2) CLI failures against the real daemon: a clear message naming the problem, the exit code of its class. */
import fs from 'node:fs';
import t from 'tap';
import { makeDaemon } from './daemon-fixture.js';

t.test('failures: clear message naming the problem, non-zero exit, nothing changed', async (t) => {
  const d = await makeDaemon(t);
  await d.ok('-a', 'add_node', '--node', 'A');
  await d.ok('-a', 'add_node_host', '--node', 'A', '--ip', '127.0.0.1', '--port', '2000');
  const cases: [string[], number, RegExp][] = [
    [['-a', 'add_node', '--node', 'A'], 5, /node A already exists: use set_node to change it \(IBP_ERR_REG_EXISTS\)/],
    [['-a', 'add_node_host', '--node', 'A', '--ip', '127.0.0.1', '--port', '2000'], 5, /host 127\.0\.0\.1:2000 is already a host of node A/],
    [['-a', 'add_node_host', '--node', 'NOPE', '--ip', '127.0.0.1', '--port', '2001'], 5, /node NOPE not found/],
    [['-a', 'add_node_host', '--node', 'A', '--ip', '300.1.1.1', '--port', '2001'], 2, /bad value for --ip: "300\.1\.1\.1" is not an IPv4 address/],
    [['-a', 'add_node_host', '--node', 'A', '--ip', '127.0.0.1', '--port', '0'], 2, /bad value for --port/],
    [['-a', 'add_project', '--project', 'P', '--server-nodes', 'A GHOST'], 5, /project P: server_nodes names unknown node GHOST \(add_node first\)/],
    [['-a', 'add_app', '--app', 'X', '--desc', 'd', '--timeout', '1'], 2, /--bin: is required for -a add_app/],
    [['-a', 'add_app', '--app', 'X', '--desc', 'd', '--bin', '../../x.so', '--timeout', '1'], 2, /bad value for --bin/],
    [['-a', 'add_app', '--app', 'X', '--desc', 'd', '--bin', 'x.so', '--timeout', 'soon'], 2, /bad value for --timeout/],
    [['-a', 'add_app', '--app', 'X', '--desc', 'd', '--bin', 'x.so', '--timeout', '1', '--server-node', 'GHOST'], 5, /server_node GHOST is not a node/],
    [['-a', 'set_node', '--node', 'A', '--invalid', '2'], 2, /bad value for --invalid/],
    [['-a', 'set_node', '--node', 'A'], 2, /set_node needs --invalid or --key-exp/],
    [['-a', 'remove_node_kv', '--node', 'A', '--key', 'none'], 5, /node_kv A\/none not found/],
    [['-a', 'remove_app', '--app', 'none'], 5, /app none not found/],
    [['-a', 'download_config', '--node', 'none'], 5, /node none not found/],
    [['-s', 'node_credential', '--node', 'none'], 5, /node none not found/],
    [['-a', 'add_node', '--node', 'bad/name'], 2, /bad value for --node: "bad\/name" is not a name/],
  ];
  for (const [args, code, re] of cases) {
    const r = await d.ibms(...args);
    t.equal(r.code, code, `${args.join(' ')}: exit ${code}`);
    t.match(r.stderr, re, `${args.join(' ')}: message`);
  }
  t.same(JSON.parse(await d.ok('-s', 'nodes', '--json')), [{ node: 'A', invalid: 0, hosts: [{ ip: '127.0.0.1', port: 2000 }], kvs: {} }], 'nothing changed');
  t.equal(await d.ok('-s', 'nodes_changed'), 'A\n');

  // a wrong admin credential in the home: 401 with a clear message
  fs.writeFileSync(d.home.keys('admin.credential'), 'not-the-one\n');
  const r = await d.ibms('-s', 'nodes');
  t.equal(r.code, 4);
  t.match(r.stderr, /missing or wrong credential/);
});
