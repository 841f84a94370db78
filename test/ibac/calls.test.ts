/**
 * ibac end to end on a real cluster configured through the ibms CLI: one server node SRV (ibma +
 * ibas with the example and fixture apps), one client node CLI (ibma; the tests use its config
 * space through ibac and ibpsend).
 *
 * Long env + long connection for many calls; short env + short connection; the load written to
 * shm; 4 files each way; compression; sign/encrypt refused when not granted; an app failure answered; SUSPICIOUS
 * when the worker dies while the app runs; SAFE when the server dies before the request packet;
 * ibpsend's output and exit codes for each.
 */
import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { Cluster, freezeIbas, killIbas, privateDir, type NodeHome, type ServerHome } from '../helpers/cluster.js';
import { homeKeyBase, KEY_SLOT } from '../../lib/shm/keys.js';
import { freePort, runTool, waitFor } from '../helpers/procs.js';
import {
  createEnvironment, requester, IbacEnv, SafeError, ServerError, SuspiciousError, UsageError, NotSupportedError, ProtectionError, ConnectError,
  PHASE, COMM_STATUS, STEP, TX_FLAG, LOAD_SCALE, MAX_FILES,
} from '../../ibac/index.js';
import { CLIENT_LIMITS } from '../../ibac/channel.js';

const APPS = [
  { app: 'ibp_test_echo', bin: 'ibp_test_echo.so', timeout: 10 },
  { app: 'ibp_test_file', bin: 'ibp_test_file.so', timeout: 10 },
  { app: 'ibp_test_crash', bin: 'ibp_test_crash.so', timeout: 10 },
  { app: 'ibp_test_slow', bin: 'ibp_test_slow.so', timeout: 10 },
  { app: 'ibp_test_rc', bin: 'ibp_test_rc.so', timeout: 10 },
];

let cluster: Cluster;
let srv: ServerHome;
let cli: NodeHome;
let env: IbacEnv;

t.before(async () => {
  cluster = await Cluster.start(t, { bins: APPS.map((a) => a.bin) });
  const port = await freePort(cluster.ip);
  await cluster.configure({
    nodes: { SRV: [`${cluster.ip}:${port}`], CLI: [] },
    apps: APPS,
    projects: [{ project: 'P', serverNodes: ['SRV'], clientNodes: ['CLI'], apps: APPS.map((a) => a.app) }],
  });
  await Promise.all([cluster.credential('SRV'), cluster.credential('CLI')]);
  [srv, cli] = await Promise.all([
    cluster.server('SRV', { port, maxCount: 2 }),
    cluster.agent('CLI', { ibac: { connecting_timeout: 2, retry_connect_timeval: 30 }, minCompressSize: 512 }),
  ]);
  await cluster.waitPackages(srv, APPS.map((a) => a.bin));
  await cluster.waitSpace(cli, 'node SRV with its host', (s) => s.hosts('SRV').length === 1 && s.app('ibp_test_rc') !== undefined);
  env = createEnvironment({ config: cli.ibmaConf });
  t.teardown(() => env.destroy());
  // the server is up once a transaction goes through (workers attach their config space lazily)
  await waitFor('a first transaction', async () => (await env.requester('SRV', 'ibp_test_echo', 'ping')).body.toString() === 'ping', 30_000, 200);
});

t.test('long env + long connection: many calls on one connection', async (t) => {
  const conn = await env.connect('SRV', 'ibp_test_echo');
  t.equal(conn.host, srv.hostKey);
  t.equal(env.connections, 1);
  const N = 200;
  for (let i = 0; i < N; i++) {
    const msg = `msg-${i}-${'x'.repeat(i)}`;
    const r = await conn.sendRequestAndReceiveResponse('ibp_test_echo', msg);
    if (r.body.toString() !== msg || r.host !== srv.hostKey) t.fail(`call ${i}: ${r.body.toString().slice(0, 40)} from ${r.host}`);
  }
  t.pass(`${N} calls answered on the same connection`);
  t.equal(conn.connected, true);
  t.equal(conn.commStatus, COMM_STATUS.AFTER_SEND, 'after a complete response the request had been sent');
  t.equal(conn.step, STEP.IDLE);
  const load = await conn.keepAlive();
  t.ok(load.total >= 1, `keep-alive answers the load ${load.working}/${load.total}`);
  conn.disconnect();
  t.equal(env.connections, 0);
  await t.rejects(conn.sendRequestAndReceiveResponse('ibp_test_echo', 'x'), { code: 'IBP_ERR_CLIENT_USAGE' }, 'a disconnected connection refuses');
});

t.test('one transaction at a time per connection', async (t) => {
  const conn = await env.connect('SRV', 'ibp_test_echo');
  const first = conn.sendRequestAndReceiveResponse('ibp_test_echo', 'a');
  await t.rejects(conn.sendRequestAndReceiveResponse('ibp_test_echo', 'b'), UsageError);
  t.equal((await first).body.toString(), 'a');
  conn.disconnect();
});

t.test('short env + short connection (requester), several in parallel', async (t) => {
  const results = await Promise.all(Array.from({ length: 6 }, (_, i) => requester('SRV', 'ibp_test_echo', `short-${i}`, undefined, { config: cli.ibmaConf })));
  t.same(results.map((r) => r.body.toString()), Array.from({ length: 6 }, (_, i) => `short-${i}`));
  t.ok(results.every((r) => r.host === srv.hostKey && r.elapsedMs > 0 && r.journal.length > 0));
  t.equal(new Set(results.map((r) => r.journal)).size, 6, 'every transaction has its own journal');
});

t.test('the load of each answer is written to the config space', async (t) => {
  const r = await env.requester('SRV', 'ibp_test_echo', 'load');
  const host = env.hosts('SRV')[0]!;
  t.equal(host.key, srv.hostKey);
  t.equal(host.load, Math.round((r.load.working * LOAD_SCALE) / r.load.total), `LOAD ${host.load} = ${r.load.working}/${r.load.total} of the last answer`);
  t.equal(host.retryAt, 0, 'not suspended');
});

t.test('4 files each way', async (t) => {
  const names: string[] = [];
  for (let i = 0; i < MAX_FILES; i++) {
    const f = env.createTempFile('REQ', `file ${i} `.repeat(100 + i));
    t.match(f.name, /^REQ_[A-Za-z0-9]{10}\.tmp$/, `IBP's temp file name ${f.name}`);
    t.equal(path.dirname(f.path), path.join(cli.home, 'file'));
    names.push(f.name);
  }
  const r = await env.requester('SRV', 'ibp_test_file', 'with files', names);
  t.equal(r.body.toString(), 'with files');
  t.equal(r.files.length, MAX_FILES);
  r.files.forEach((f, i) => {
    t.equal(f.name, `${names[i]}.echo`);
    t.equal(f.path, path.join(cli.home, 'file', `${names[i]}.echo`));
    t.equal(fs.readFileSync(f.path, 'utf8'), `file ${i} `.repeat(100 + i), `response file ${i} holds what was sent`);
  });
  const inMemory = await env.requester('SRV', 'ibp_test_file', '', [{ name: 'mem.txt', data: 'in memory' }]);
  t.equal(inMemory.files[0]!.data.toString(), 'in memory');
  await t.rejects(env.requester('SRV', 'ibp_test_file', 'x', [...names, names[0]!]), { code: 'IBP_ERR_CLIENT_USAGE', phase: PHASE.SAFE }, 'a fifth file is refused before sending');
  for (const bad of ['../etc/passwd', 'a/b', '..', '-rf']) {
    await t.rejects(env.requester('SRV', 'ibp_test_file', 'x', [{ name: bad, data: 'x' }]), { code: 'IBP_ERR_FILE_NAME', phase: PHASE.SAFE }, `name ${bad} refused`);
  }
  await t.rejects(env.requester('SRV', 'ibp_test_file', 'x', ['no_such_file.tmp']), { code: 'IBP_ERR_CLIENT_USAGE' }, 'a missing request file is refused');
});

t.test('compression is negotiated and large bodies round-trip', async (t) => {
  const big = Buffer.from('compressible '.repeat(20_000));
  const r = await env.requester('SRV', 'ibp_test_echo', big);
  t.ok((r.granted & TX_FLAG.COMPRESS) !== 0, 'the server (compress_flag 1) granted COMPRESS');
  t.ok(r.body.equals(big), `${big.length} bytes echoed intact`);
  const plain = createEnvironment({ config: cli.ibmaConf, compress: false });
  t.teardown(() => plain.destroy());
  const p = await plain.requester('SRV', 'ibp_test_echo', big);
  t.equal(p.granted & TX_FLAG.COMPRESS, 0, 'not asked, not granted');
  t.ok(p.body.equals(big));
});

t.test('signing and encryption required of a server that does not grant them: refused, never skipped', async (t) => {
  // the registry gave every node a key pair (issue 11); this server's ibas.conf keeps sign_flag 0
  const e = await env.requester('SRV', 'ibp_test_echo', 'x', undefined, { sign: true }).catch((x: unknown) => x);
  t.ok(e instanceof ProtectionError, 'a ProtectionError');
  t.match(e, { code: 'IBP_ERR_TX_NOT_GRANTED', message: /signing asked but not granted/, phase: PHASE.SAFE, commStatus: COMM_STATUS.BEFORE_SEND });
  await t.rejects(env.requester('SRV', 'ibp_test_echo', 'x', undefined, { encrypt: true }), { code: 'IBP_ERR_TX_NOT_GRANTED', phase: PHASE.SAFE });
  const r = await env.requester('SRV', 'ibp_test_echo', 'x', undefined, { sign: 'optional' });
  t.equal(r.granted & TX_FLAG.SIGN, 0, 'optional signing goes in clear when not granted');
  t.equal(r.body.toString(), 'x');
  const send = await runTool('ibpsend', ['-f', cli.ibmaConf, '--sign', 'SRV', 'ibp_test_echo', '-'], { home: cli.home, input: 'x' });
  t.equal(send.code, 12, 'ibpsend --sign exits 12 (safe)');
  t.match(send.stderr, /not granted/);
});

t.test('failures answered by the server and refused locally', async (t) => {
  const e = await env.requester('SRV', 'ibp_test_rc', '7:no such account').catch((x: unknown) => x);
  t.ok(e instanceof ServerError, 'app rc ≠ 0 is a ServerError');
  t.match(e, { code: 'IBP_ERR_APP_FAILED', phase: PHASE.ANSWERED, appRc: 7, suspicious: false, host: srv.hostKey });
  t.equal((e as ServerError).body.toString(), 'no such account', 'the app\'s response bytes come with the failure');
  await t.rejects(env.requester('SRV', 'no_such_app', 'x'), { code: 'IBP_ERR_APP_UNKNOWN', phase: PHASE.SAFE }, 'an app unknown to the client node');
  await t.rejects(env.requester('NOPE', 'ibp_test_echo', 'x'), { code: 'IBP_ERR_CLIENT_NODE_UNKNOWN', phase: PHASE.SAFE });
  await t.rejects(env.requester('SRV', 'ibp_test_echo', Buffer.alloc(CLIENT_LIMITS.maxFrame + 1)), { code: 'IBP_ERR_CLIENT_USAGE', phase: PHASE.SAFE, message: /over the frame limit/ }, 'an oversized request is refused before sending');
  await t.rejects(env.requester('CLI', 'ibp_test_echo', 'x'), { code: 'IBP_ERR_CLIENT_NO_HOST', phase: PHASE.SAFE }, 'a node without hosts');
  const conn = await env.connect('SRV', 'ibp_test_rc');
  await t.rejects(conn.sendRequestAndReceiveResponse('ibp_test_rc', '3'), { code: 'IBP_ERR_APP_FAILED', appRc: 3 });
  t.equal((await conn.sendRequestAndReceiveResponse('ibp_test_rc', '0:fine')).body.toString(), 'fine', 'the connection serves on after an answered failure');
  conn.disconnect();
});

t.test('without a config space (ibma not started) the environment refuses with a clear error', async (t) => {
  const home = privateDir(t, 'noagent');
  fs.mkdirSync(path.join(home, 'etc'), { recursive: true });
  const conf = JSON.parse(fs.readFileSync(cli.ibmaConf, 'utf8').replace(/^\s*\/\/.*$/gm, '')) as { shm: { index_key: number } };
  conf.shm.index_key = homeKeyBase(home) + KEY_SLOT.INDEX;
  const file = path.join(home, 'etc', 'ibma.conf');
  fs.writeFileSync(file, JSON.stringify(conf));
  t.throws(() => createEnvironment({ config: file }), { code: 'IBP_ERR_SHM_NO_SPACE', message: /is ibma started/ });
  const r = await runTool('ibpsend', ['-f', file, 'SRV', 'ibp_test_echo', '-'], { home, input: 'x' });
  t.equal(r.code, 8, 'ibpsend exits with the error\'s code');
  t.match(r.stderr, /no config space.*IBP_ERR_SHM_NO_SPACE/);
});

t.test('ibpsend prints the response, status, host and time', async (t) => {
  const reqFile = path.join(cli.home, 'req.txt');
  fs.writeFileSync(reqFile, 'hello ibpsend');
  const attach = env.createTempFile('ATT', 'attached');
  const r = await runTool('ibpsend', ['-f', cli.ibmaConf, 'SRV', 'ibp_test_file', reqFile, attach.name], { home: cli.home });
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stdout, 'hello ibpsend', 'the response on stdout');
  t.match(r.stderr, /status\s+: OK/);
  t.match(r.stderr, new RegExp(`host\\s+: ${srv.hostKey.replace(/\./g, '\\.')} \\(node SRV\\)`));
  t.match(r.stderr, /time\s+: [\d.]+ ms/);
  t.match(r.stderr, new RegExp(`rsp_file 1\\s+: .*${attach.name}\\.echo \\(8 bytes\\)`));
  const j = await runTool('ibpsend', ['-f', cli.ibmaConf, '--json', 'SRV', 'ibp_test_echo', '-'], { home: cli.home, input: 'json please' });
  t.equal(j.code, 0, j.stderr);
  t.match(JSON.parse(j.stdout), { ok: true, status: 'OK', host: srv.hostKey, response: 'json please', comm_status: 'AFTER_SEND' });
  const usage = await runTool('ibpsend', [], { home: cli.home });
  t.equal(usage.code, 2, 'no arguments: usage');
  t.match(usage.stderr, /Usage: ibpsend/);
  const bad = await runTool('ibpsend', ['-f', cli.ibmaConf, '--timeout', 'soon', 'SRV', 'ibp_test_echo', reqFile], { home: cli.home });
  t.equal(bad.code, 2);
  t.match(bad.stderr, /--timeout/);
  const failed = await runTool('ibpsend', ['-f', cli.ibmaConf, 'SRV', 'ibp_test_rc', '-'], { home: cli.home, input: '9:declined' });
  t.equal(failed.code, 14, 'a failure answered by the server exits 14');
  t.match(failed.stderr, /FAILED: the server answered/);
  t.match(failed.stderr, /app rc\s+: 9/);
  t.equal(failed.stdout, 'declined', 'the app\'s answer to a failure is printed like a response');
  t.match(failed.stderr, /response\s+: 8 bytes on stdout/);
  const failedJson = await runTool('ibpsend', ['-f', cli.ibmaConf, '--json', 'SRV', 'ibp_test_rc', '-'], { home: cli.home, input: '9:declined' });
  t.match(JSON.parse(failedJson.stdout), { ok: false, app_rc: 9, response: 'declined' });
});

/** Wait until a worker of the server runs `app` (scoreboard, `ibas -s bbdetail --json`), then SIGKILL it. */
async function killWorkerRunning(app: string): Promise<number> {
  const row = await waitFor(`a worker running ${app}`, async () => {
    const r = await srv.run('ibas', ['-s', 'bbdetail', '--json']);
    const rows = JSON.parse(r.stdout) as { pid: number; state: string; app: string }[];
    return rows.find((x) => x.state === 'WORKING' && x.app === app);
  }, 20_000, 50);
  process.kill(row.pid, 'SIGKILL');
  return row.pid;
}

t.test('SUSPICIOUS when the worker dies while the app runs', async (t) => {
  const conn = await env.connect('SRV', 'ibp_test_slow');
  const pending = conn.sendRequestAndReceiveResponse('ibp_test_slow', '8000').catch((x: unknown) => x);
  const pid = await killWorkerRunning('ibp_test_slow');
  const e = await pending;
  t.ok(e instanceof SuspiciousError, `worker ${pid} killed inside the app: ${(e as Error).message}`);
  t.match(e, { code: 'IBP_ERR_CLIENT_SUSPICIOUS', phase: PHASE.SUSPICIOUS, commStatus: COMM_STATUS.AFTER_SEND, suspicious: true, host: srv.hostKey, app: 'ibp_test_slow' });
  t.match((e as Error).message, /SUSPICIOUS.*verify, reverse or escalate/);
  t.equal(conn.commStatus, COMM_STATUS.AFTER_SEND, 'IBACGetCommStatus says the request had been sent');
  // the long connection re-opens for the next call (on another worker)
  t.equal((await conn.sendRequestAndReceiveResponse('ibp_test_echo', 'after')).body.toString(), 'after');
  conn.disconnect();
  const send = runTool('ibpsend', ['-f', cli.ibmaConf, 'SRV', 'ibp_test_slow', '-'], { home: cli.home, input: '8000' });
  await killWorkerRunning('ibp_test_slow');
  const r = await send;
  t.equal(r.code, 13, 'ibpsend exits 13 for a suspicious transaction');
  t.match(r.stderr, /SUSPICIOUS: the request may have been processed/);
  t.match(r.stderr, /comm status\s+: AFTER_SEND/);
});

t.test('a crash the server catches is answered (APP_CRASH), not suspicious', async (t) => {
  const e = await env.requester('SRV', 'ibp_test_crash', 'segv').catch((x: unknown) => x);
  t.ok(e instanceof ServerError, `the server reported it: ${(e as Error).message}`);
  t.match(e, { code: 'IBP_ERR_APP_CRASH', phase: PHASE.ANSWERED, commStatus: COMM_STATUS.AFTER_SEND, suspicious: false });
});

t.test('SAFE when the server dies before the request packet; the dead host is suspended', async (t) => {
  const conn = await env.connect('SRV', 'ibp_test_echo');
  t.equal((await conn.sendRequestAndReceiveResponse('ibp_test_echo', 'before')).body.toString(), 'before');
  const pids = freezeIbas(srv);
  t.ok(pids.length >= 2, `ibas manager and workers frozen: ${pids.join(' ')}`);
  const pending = conn.sendRequestAndReceiveResponse('ibp_test_echo', 'never runs').catch((x: unknown) => x);
  await waitFor('the pre-request to be written', () => conn.step === STEP.PRE_REQUEST, 10_000, 5);
  await killIbas(srv);
  const e = await pending;
  t.ok(e instanceof SafeError, `a SafeError: ${(e as Error).message}`);
  t.match(e, { code: 'IBP_ERR_CLIENT_SAFE', phase: PHASE.SAFE, commStatus: COMM_STATUS.BEFORE_SEND, suspicious: false, safe: true });
  t.match((e as Error).message, /before the request left.*safe to retry/);
  conn.disconnect();
  const c = await env.requester('SRV', 'ibp_test_echo', 'x').catch((x: unknown) => x);
  t.ok(c instanceof ConnectError, 'nothing listens any more: ConnectError');
  t.match(c, { code: 'IBP_ERR_CLIENT_CONNECT', phase: PHASE.SAFE });
  const host = env.hosts('SRV')[0]!;
  t.ok(host.retryAt > Date.now() + 20_000, `the host is suspended for retry_connect_timeval (until ${new Date(host.retryAt).toISOString()})`);
  t.equal(host.usable, false);
  await t.rejects(env.requester('SRV', 'ibp_test_echo', 'x'), { code: 'IBP_ERR_CLIENT_NO_HOST' }, 'while suspended the host is not tried');
  const r = await runTool('ibpsend', ['-f', cli.ibmaConf, 'SRV', 'ibp_test_echo', '-'], { home: cli.home, input: 'x' });
  t.equal(r.code, 12, 'ibpsend exits 12 for a safe failure');
  t.match(r.stderr, /status\s+: SAFE/);
  t.match(r.stderr, /comm status\s+: BEFORE_SEND/);
});
