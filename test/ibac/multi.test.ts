/**
 * Parallel transactions and two-phase commit end to end: server nodes N1 and N2 (each ibma +
 * ibas with ibp_test_echo and ibp_test_2pc), node N3 whose only host is dead, client node CLI.
 * The 2PC app writes a marker file per decision (`ibp_test_2pc.<journal>.committed` /
 * `.rolledback`) in its worker's file folder: that is how the tests see what the apps were told.
 */
import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { Cluster, type NodeHome, type ServerHome } from '../helpers/cluster.js';
import { freePort, waitFor } from '../helpers/procs.js';
import { createEnvironment, PHASE, ServerError, type IbacEnv, type MultiRequest } from '../../ibac/index.js';

const APPS = [
  { app: 'ibp_test_echo', bin: 'ibp_test_echo.so', timeout: 10 },
  { app: 'ibp_test_2pc', bin: 'ibp_test_2pc.so', timeout: 10 },
];

let cluster: Cluster;
let n1: ServerHome;
let n2: ServerHome;
let cli: NodeHome;
let env: IbacEnv;
let dead: string;

t.before(async () => {
  cluster = await Cluster.start(t, { bins: APPS.map((x) => x.bin) });
  const [p1, p2, p3] = [await freePort(cluster.ip), await freePort(cluster.ip), await freePort(cluster.ip)];
  dead = `${cluster.ip}:${p3}`;
  await cluster.configure({
    nodes: { N1: [`${cluster.ip}:${p1}`], N2: [`${cluster.ip}:${p2}`], N3: [dead], CLI: [] },
    apps: APPS,
    projects: [{ project: 'P', serverNodes: ['N1', 'N2', 'N3'], clientNodes: ['CLI'], apps: APPS.map((x) => x.app) }],
  });
  await Promise.all(['N1', 'N2', 'CLI'].map((n) => cluster.credential(n)));
  [n1, n2, cli] = await Promise.all([
    cluster.server('N1', { port: p1, maxCount: 2 }),
    cluster.server('N2', { port: p2, maxCount: 2 }),
    cluster.agent('CLI', { ibac: { connecting_timeout: 1, retry_connect_timeval: 1 } }),
  ]);
  await Promise.all([n1, n2].map((s) => cluster.waitPackages(s, APPS.map((x) => x.bin))));
  await cluster.waitSpace(cli, 'nodes N1 N2 N3', (s) => ['N1', 'N2', 'N3'].every((n) => s.hosts(n).length === 1));
  env = createEnvironment({ config: cli.ibmaConf });
  t.teardown(() => env.destroy());
  for (const n of ['N1', 'N2']) await waitFor(`${n} to serve`, async () => (await env.requester(n, 'ibp_test_echo', 'ping')).body.toString() === 'ping', 30_000, 200);
});

/**
 * Decision markers the 2PC app wrote for a journal on a server ("committed", "rolledback"), in the
 * server's file folder or a worker's folder below it.
 */
function markers(s: ServerHome, journal: string): string[] {
  const found: string[] = [];
  for (const rel of fs.readdirSync(path.join(s.home, 'file'), { recursive: true }) as string[]) {
    const m = /^ibp_test_2pc\.(.+)\.(committed|rolledback)$/.exec(path.basename(rel));
    if (m && m[1] === journal) found.push(m[2]!);
  }
  return found;
}

t.test('parallel calls to 3 nodes, one failing: each reports its own result', async (t) => {
  const multi = await env.multiConnect([
    { node: 'N1', app: 'ibp_test_echo', request: 'to N1' },
    { node: 'N2', app: 'ibp_test_echo', request: 'to N2' },
    { node: 'N3', app: 'ibp_test_echo', request: 'to N3' },
  ]);
  const conns = multi.connectResults;
  t.same(conns.map((c) => [c.node, c.ok]), [['N1', true], ['N2', true], ['N3', false]], 'N3 could not connect');
  t.match(conns[2], { phase: PHASE.SAFE, error: { code: 'IBP_ERR_CLIENT_CONNECT' } });
  const t0 = Date.now();
  const results = await multi.multiSendRequestsAndReceiveResponses();
  t.comment(`3 parallel transactions in ${Date.now() - t0} ms`);
  t.match(results[0], { node: 'N1', ok: true, phase: 'OK', host: n1.hostKey });
  t.equal(results[0]!.response!.body.toString(), 'to N1');
  t.match(results[1], { node: 'N2', ok: true, host: n2.hostKey });
  t.equal(results[1]!.response!.body.toString(), 'to N2');
  t.match(results[2], { node: 'N3', ok: false, phase: PHASE.SAFE, commStatus: 'BEFORE_SEND', error: { code: 'IBP_ERR_CLIENT_CONNECT', message: new RegExp(dead.replace(/\./g, '\\.')) } });
  t.equal(multi.suspicious, false, 'nothing suspicious: N3 never got the request');
  t.equal(multi.commStatus, 'BEFORE_SEND');
  // a second round on the same connections
  const again = await multi.multiSendRequestsAndReceiveResponses();
  t.same(again.map((r) => r.ok), [true, true, false]);
  multi.multiDisconnect();
  t.equal(env.connections, 0);
});

t.test('two-phase commit: every participant prepared, all commit', async (t) => {
  const r = await env.twoPhaseCommit([
    { node: 'N1', app: 'ibp_test_2pc', request: 'debit 10' },
    { node: 'N2', app: 'ibp_test_2pc', request: 'credit 10' },
  ]);
  t.equal(r.decision, 'COMMIT');
  t.equal(r.committed, true);
  t.equal(r.suspicious, false);
  t.same(r.prepare.map((p) => p.response!.body.toString()), ['prepared:debit 10', 'prepared:credit 10']);
  t.same(r.decide.map((d) => [d.node, d.ok, d.response!.op]), [['N1', true, 'COMMIT'], ['N2', true, 'COMMIT']]);
  const [j1, j2] = r.prepare.map((p) => p.journal!);
  t.same(markers(n1, j1!), ['committed'], `N1's app committed ${j1}`);
  t.same(markers(n2, j2!), ['committed'], `N2's app committed ${j2}`);
});

t.test('two-phase commit with two legs on the same server (the same app twice): each branch prepares and commits once', async (t) => {
  const r = await env.twoPhaseCommit([
    { node: 'N1', app: 'ibp_test_2pc', request: 'debit 3' },
    { node: 'N1', app: 'ibp_test_2pc', request: 'fee 1' },
    { node: 'N2', app: 'ibp_test_2pc', request: 'credit 3' },
  ]);
  t.equal(r.decision, 'COMMIT', `prepared: ${r.prepare.map((p) => p.error?.message ?? 'ok').join('; ')}`);
  t.equal(r.committed, true);
  t.same(r.decide.map((d) => [d.node, d.ok, d.response?.op]), [['N1', true, 'COMMIT'], ['N1', true, 'COMMIT'], ['N2', true, 'COMMIT']]);
  const [ja, jb, jc] = r.prepare.map((p) => p.journal!);
  t.not(ja, jb, 'two branches of one gtrid on N1');
  t.same(markers(n1, ja!), ['committed'], `N1's first leg ${ja} committed`);
  t.same(markers(n1, jb!), ['committed'], `N1's second leg ${jb} committed`);
  t.same(markers(n2, jc!), ['committed']);
  const lines = (s: ServerHome) => (fs.readdirSync(path.join(s.home, 'file'), { recursive: true }) as string[])
    .filter((rel) => path.basename(rel) === 'ibp_test_2pc.journal')
    .flatMap((rel) => fs.readFileSync(path.join(s.home, 'file', rel), 'utf8').trim().split('\n'));
  const gtrid = r.gtrid;
  t.same(lines(n1).filter((l) => l.startsWith(`${gtrid} committed`)).sort(), [`${gtrid} committed ${ja}`, `${gtrid} committed ${jb}`].sort(), "each leg's socommit ran once");
});

t.test('two-phase commit: one participant refuses, the others roll back', async (t) => {
  const r = await env.twoPhaseCommit([
    { node: 'N1', app: 'ibp_test_2pc', request: 'debit 5' },
    { node: 'N2', app: 'ibp_test_2pc', request: 'fail' },
  ]);
  t.equal(r.decision, 'ROLLBACK');
  t.equal(r.committed, false);
  t.match(r.prepare[1], { ok: false, phase: PHASE.ANSWERED, error: { code: 'IBP_ERR_APP_FAILED' } });
  t.equal((r.prepare[1]!.error as ServerError).appRc, 7, 'the app refused with its rc');
  t.match(r.decide[0], { node: 'N1', ok: true, response: { op: 'ROLLBACK' } });
  t.same(markers(n1, r.prepare[0]!.journal!), ['rolledback'], "N1's app rolled back");
  t.same(markers(n2, r.prepare[1]!.journal!), [], 'N2 prepared nothing, decided nothing');
});

t.test('two-phase commit with a dead participant rolls the others back', async (t) => {
  const r = await env.twoPhaseCommit([
    { node: 'N1', app: 'ibp_test_2pc', request: 'debit 1' },
    { node: 'N3', app: 'ibp_test_2pc', request: 'credit 1' },
  ]);
  t.equal(r.decision, 'ROLLBACK');
  t.match(r.prepare[1], { ok: false, phase: PHASE.SAFE });
  t.same(markers(n1, r.prepare[0]!.journal!), ['rolledback']);
});

t.test("IBP's multi calls step by step; a round left undecided by multiDisconnect is rolled back by the coordinator", async (t) => {
  const reqs: MultiRequest[] = [
    { node: 'N1', app: 'ibp_test_2pc', request: 'step 1' },
    { node: 'N2', app: 'ibp_test_2pc', request: 'step 2' },
  ];
  const multi = await env.multiConnect(reqs);
  const prepared = await multi.multiSendRequestsAndReceiveResponses({ prepare: true });
  t.ok(prepared.every((p) => p.ok), 'both prepared');
  const decided = await multi.multiSendCommitOrRollbackAndReceiveResponses(true);
  t.ok(decided.every((d) => d.ok && d.response!.op === 'COMMIT'));
  t.same(prepared.map((p, i) => markers([n1, n2][i]!, p.journal!)), [['committed'], ['committed']]);
  const redo = await multi.multiSendCommitOrRollbackAndReceiveResponses(true);
  t.ok(redo.every((d) => !d.ok), 'nothing left to decide after the decision');
  multi.multiDisconnect();

  const lost = await env.multiConnect([{ node: 'N1', app: 'ibp_test_2pc', request: 'orphan' }]);
  const p = await lost.multiSendRequestsAndReceiveResponses({ prepare: true });
  t.ok(p[0]!.ok, 'prepared');
  lost.multiDisconnect();
  await lost.settled;
  await waitFor('the orphan to be rolled back', () => markers(n1, p[0]!.journal!).includes('rolledback'), 10_000, 20);
  t.pass('ROLLBACK logged and driven on a new connection after the disconnect');
});
