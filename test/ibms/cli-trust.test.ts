/**
 * The CLI side of the fail-closed API (issue 11), against a real daemon: address and token from
 * IBMS_ADDR / IBMS_TOKEN (Consul's convention) or --addr / --token-file, the read-only admin
 * credential, and `-a rotate_credential` (online and with the daemon stopped).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { runTool } from '../helpers/procs.js';
import { makeDaemon } from './daemon-fixture.js';

t.test('IBMS_ADDR / IBMS_TOKEN, --addr / --token-file, the read-only admin, rotate_credential', async (t) => {
  const d = await makeDaemon(t);
  await d.ok('-a', 'add_node', '--node', 'A');
  const ro = fs.readFileSync(d.home.keys('admin-ro.credential'), 'utf8').trim();
  t.equal(fs.statSync(d.home.keys('admin-ro.credential')).mode & 0o777, 0o600, 'init wrote the read-only credential 0600');

  // a folder that is no ibms home at all: everything comes from the environment
  const elsewhere = fs.mkdtempSync(path.join(os.tmpdir(), 'ibmstrust-cli-'));
  t.teardown(() => fs.rmSync(elsewhere, { recursive: true, force: true }));
  const env = (token: string, extra: Record<string, string> = {}) => ({ IBP_HOME: elsewhere, IBMS_ADDR: `http://${d.ip}:${d.port}`, IBMS_TOKEN: token, ...extra });
  const nodes = await runTool('ibms', ['-s', 'nodes', '--json'], { env: env(ro) });
  t.equal(nodes.code, 0, nodes.stderr);
  t.same(JSON.parse(nodes.stdout).map((n: { node: string }) => n.node), ['A'], 'the read-only token from IBMS_TOKEN reads');
  const refused = await runTool('ibms', ['-a', 'add_node', '--node', 'B'], { env: env(ro) });
  t.equal(refused.code, 4, 'the read-only token cannot change anything');
  t.match(refused.stderr, /read-only admin credential is not entitled to changes/);
  const added = await runTool('ibms', ['-a', 'add_node', '--node', 'B'], { env: env(d.admin, { IBMS_ADDR: `${d.ip}:${d.port}` }) });
  t.equal(added.code, 0, `ip:port works too: ${added.stderr}`);
  const badAddr = await runTool('ibms', ['-s', 'nodes'], { env: env(d.admin, { IBMS_ADDR: 'nowhere' }) });
  t.equal(badAddr.code, 2);
  t.match(badAddr.stderr, /bad value for IBMS_ADDR/);

  // flags win over the environment
  const tokenFile = `${elsewhere}/ro.token`;
  fs.writeFileSync(tokenFile, `${ro}\n`, { mode: 0o600 });
  const flags = await runTool('ibms', ['-s', 'nodes', '--addr', `${d.ip}:${d.port}`, '--token-file', tokenFile], { env: { IBP_HOME: elsewhere, IBMS_ADDR: '127.0.0.1:1', IBMS_TOKEN: 'wrong' } });
  t.equal(flags.code, 0, flags.stderr);

  // rotate a node credential: the old one is refused at once
  const oldA = (await d.ok('-s', 'node_credential', '--node', 'A')).trim();
  const agent = (cred: string) => d.http('GET', '/v1/agent/config?node=A', { headers: { authorization: `Bearer ${cred}` } });
  await d.ok('-a', 'distribute_config');
  t.equal((await agent(oldA)).status, 200);
  const rot = await d.ok('-a', 'rotate_credential', '--node', 'A');
  t.match(rot, /node_A\.credential re-issued/);
  t.equal((await agent(oldA)).status, 401, 'the old node credential is refused');
  const newA = (await d.ok('-s', 'node_credential', '--node', 'A')).trim();
  t.not(newA, oldA);
  t.equal((await agent(newA)).status, 200);
  const two = await d.ibms('-a', 'rotate_credential', '--node', 'A', '--admin');
  t.equal(two.code, 2, 'exactly one of --node, --admin, --admin-ro');

  // rotate the admin credential: the CLI reads the new file, the old token is refused
  const oldAdmin = d.admin;
  await d.ok('-a', 'rotate_credential', '--admin');
  const withOld = await runTool('ibms', ['-s', 'nodes'], { env: env(oldAdmin) });
  t.equal(withOld.code, 4, 'the old admin credential is refused');
  t.equal((await d.ibms('-s', 'nodes')).code, 0, 'the home\'s new admin credential works');

  // with the daemon stopped, the file is rewritten and read at the next start
  await d.ok('-a', 'stop');
  const roBefore = fs.readFileSync(d.home.keys('admin-ro.credential'), 'utf8').trim();
  await d.ok('-a', 'rotate_credential', '--admin-ro');
  const roAfter = fs.readFileSync(d.home.keys('admin-ro.credential'), 'utf8').trim();
  t.not(roAfter, roBefore, 'rotated offline');
  await d.ok('-a', 'start');
  t.equal((await runTool('ibms', ['-s', 'status'], { env: env(roBefore) })).code !== 0, true, 'the old read-only credential is refused after the restart');
  t.equal((await runTool('ibms', ['-s', 'nodes'], { env: env(roAfter) })).code, 0, 'the new one works');
});
