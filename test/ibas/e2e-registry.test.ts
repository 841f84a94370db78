// The whole chain: ibms (registry) → ibma (installs ibp_test_echo.so / ibp_test_file.so, publishes
// the config space) → ibas (resolves the apps through it): transactions echo, the file app works,
// and `ibms -s sessions` lists the server through its heartbeat. The packages are signed by the
// registry, verified by ibma with the registry's key, and hashed by ibas at dlopen.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { Cluster } from '../helpers/cluster.js';
import { waitFor } from '../helpers/procs.js';
import { TestClient } from './helpers/client.js';

t.test('ibms + ibma + ibas', async (t) => {
  const c = await Cluster.start(t, { bins: ['ibp_test_echo.so', 'ibp_test_file.so'] });
  await c.configure({
    nodes: { ECHO_SRV: [], CLIENTS: [] },
    apps: [{ app: 'ibp_test_echo', bin: 'ibp_test_echo.so', timeout: 5 }, { app: 'ibp_test_file', bin: 'ibp_test_file.so', timeout: 5 }],
    projects: [{ project: 'P1', serverNodes: ['ECHO_SRV'], clientNodes: ['CLIENTS'], apps: ['ibp_test_echo', 'ibp_test_file'] }],
  });
  const port = await (await import('../helpers/procs.js')).freePort(c.ip);
  await c.admin(['-a', 'add_node_host', '--node', 'ECHO_SRV', '--ip', c.ip, '--port', String(port)], ['-a', 'distribute_config']);
  const s = await c.server('ECHO_SRV', { port, maxCount: 2, ibas: { monitor: { heartbeat_interval: 0.5 } } });
  await c.waitPackages(s, ['ibp_test_echo.so', 'ibp_test_file.so']);
  await c.waitSpace(s, 'the apps', (sp) => sp.app('ibp_test_echo') && sp.app('ibp_test_file'));

  const cl = await TestClient.connect(s.ip, s.port);
  t.teardown(() => cl.close());
  const r = await waitFor('the echo app to answer', async () => {
    const x = await cl.call('ibp_test_echo', 'through the registry');
    return x.rc === 0 ? x : undefined;
  }, 20_000);
  t.equal(r.body.toString(), 'through the registry', 'echo resolved through ibma\'s config space');
  const f = await cl.call('ibp_test_file', 'files', { files: [{ name: 'one', data: Buffer.from('1') }, { name: 'two', data: Buffer.from('22') }] });
  t.same(f.files.map((x) => [x.name, x.data.toString()]), [['one.echo', '1'], ['two.echo', '22']], 'file app from the registry');

  const registryKey = crypto.createPublicKey(fs.readFileSync(path.join(c.registryHome, 'keys', 'package-signing.pub'), 'utf8')).export({ format: 'der', type: 'spki' }).toString('base64');
  const echoSha = crypto.createHash('sha256').update(fs.readFileSync(path.join(c.registryHome, 'so', 'ibp_test_echo.so'))).digest('hex');
  await c.waitSpace(s, 'the signed package', (sp) => {
    const a = sp.app('ibp_test_echo');
    return sp.header().packageKey === registryKey && a?.sha256 === echoSha
      && crypto.verify(null, Buffer.from(a.manifest), crypto.createPublicKey({ key: Buffer.from(registryKey, 'base64'), format: 'der', type: 'spki' }), Buffer.from(a.signature, 'base64'));
  });
  t.pass('the space carries the registry key and a manifest it signed');
  // a worker holds its info lines for a moment before writing them (lib/log.ts): poll for the line
  const workerLogs = (): string => fs.readdirSync(path.join(s.home, 'log')).filter((n) => /_worker_\d+\.log$/.test(n)).map((n) => fs.readFileSync(path.join(s.home, 'log', n), 'utf8')).join('');
  const loaded = new RegExp(`app loaded , bin\\[ibp_test_echo\\.so\\] file\\[[^\\]]*\\] sha256\\[${echoSha}\\] verified\\[signed sha256\\]`);
  await waitFor('the app loaded line in a worker log', () => loaded.test(workerLogs()) || undefined, 10_000, 50);
  t.match(workerLogs(), loaded, 'ibas hashed the bytes it loaded against the signed sha256');

  const sessions = await waitFor('ibas in ibms -s sessions', async () => {
    const out = await c.ibms(['-s', 'sessions', '--json']);
    const rows = JSON.parse(out.stdout) as { role: string; node: string; port?: number }[];
    return rows.find((x) => x.role === 'ibas' && x.node === 'ECHO_SRV' && x.port === port);
  }, 20_000);
  t.ok(sessions, 'the server is a session of ibms (heartbeat)');
  t.equal((await s.run('ibas', ['-a', 'stop'])).code, 0);
});
