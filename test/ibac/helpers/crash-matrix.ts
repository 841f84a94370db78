/**
 * The two-phase commit crash matrix, shared by test/ibac/2pc-crash-matrix.test.ts (a small count)
 * and `npm run bench:2pc` (test/bench/2pc.bench.ts, a larger count).
 *
 * A cluster: server nodes N1 and N2 (ibma + ibas, ibp_test_2pc, servers started with
 * IBP_TEST_CRASH_ARM so a test can arm one participant crash), client node CLI. One run = one
 * global transaction over N1 and N2 coordinated by a child process (2pc-driver.mjs), with kill -9
 * at one point (lib/crash-point.ts):
 *
 *   coordinator_before_prepare, coordinator_after_votes, coordinator_after_log,
 *   coordinator_mid_commit      the driver is started with IBP_TEST_CRASH_AT=<point>
 *   participant_after_vote,
 *   participant_after_commit    the point is armed for the servers (one worker dies, once)
 *
 * then recovery (env.recover() in this process: the driver's log is claimed once its pid is gone)
 * and the oracle: the decision logged by the driver (read from its coordinator log before
 * recovery; none logged ⇒ ROLLBACK, presumed abort), against each participant's side-effect
 * journal (ibp_test_2pc appends "<gtrid> <state> <journal>" with fsync) and participant log:
 * every participant that prepared ends with exactly the logged decision, none is left in doubt,
 * none carried out the other outcome.
 */
import { fork } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Test } from 'tap';
import { Cluster, privateDir, type NodeHome, type ServerHome } from '../../helpers/cluster.js';
import { freePort, waitFor } from '../../helpers/procs.js';
import { createEnvironment, decodeRecords, foldRecords, type IbacEnv, type RecoveryReport } from '../../../ibac/index.js';
import { CRASH_POINTS, type CrashPoint } from '../../../lib/crash-point.js';
import { ParticipantLog } from '../../../ibas/participant-log.js';

const DRIVER = fileURLToPath(new URL('./2pc-driver.mjs', import.meta.url));
const APP = { app: 'ibp_test_2pc', bin: 'ibp_test_2pc.so', timeout: 10 };
/** Recovery retries: quick, the participants are local. */
export const SCHEDULE = [0, 100, 300, 600, 1000, 1500, 2000];

export const POINTS = Object.keys(CRASH_POINTS) as CrashPoint[];

export interface RunOutcome {
  point: CrashPoint;
  gtrid: string;
  /** The decision in the coordinator log when the driver ended (undefined: none logged). */
  logged?: 'COMMIT' | 'ROLLBACK';
  expected: 'COMMIT' | 'ROLLBACK';
  /** Per participant node: its final outcome from its journal ('none': it never prepared). */
  outcomes: Record<string, string>;
  /** Whether the crash happened (driver killed, or the armed participant point consumed). */
  crashed: boolean;
  violations: string[];
  recoveryMs: number;
  report: RecoveryReport;
}

export class Matrix {
  readonly servers: ServerHome[];
  readonly cli: NodeHome;
  readonly env: IbacEnv;
  readonly armDir: string;
  readonly cluster: Cluster;
  #run = 0;

  private constructor(cluster: Cluster, servers: ServerHome[], cli: NodeHome, env: IbacEnv, armDir: string) {
    this.cluster = cluster;
    this.servers = servers;
    this.cli = cli;
    this.env = env;
    this.armDir = armDir;
  }

  static async start(t: Test): Promise<Matrix> {
    const armDir = privateDir(t, 'ibp-2pc-arm-');
    const cluster = await Cluster.start(t, { bins: [APP.bin] });
    const [p1, p2] = [await freePort(cluster.ip), await freePort(cluster.ip)];
    await cluster.configure({
      nodes: { N1: [`${cluster.ip}:${p1}`], N2: [`${cluster.ip}:${p2}`], CLI: [] },
      apps: [APP],
      projects: [{ project: 'P', serverNodes: ['N1', 'N2'], clientNodes: ['CLI'], apps: [APP.app] }],
    });
    await Promise.all(['N1', 'N2', 'CLI'].map((n) => cluster.credential(n)));
    // the servers (and their workers) inherit the arm folder; a worker killed on purpose must not
    // get the app suspended
    const before = process.env.IBP_TEST_CRASH_ARM;
    process.env.IBP_TEST_CRASH_ARM = armDir;
    let servers: ServerHome[];
    let cli: NodeHome;
    try {
      const ibas = { monitor: { app_max_crashes: 10000 } };
      [servers, cli] = await Promise.all([
        Promise.all([cluster.server('N1', { port: p1, maxCount: 2, ibas }), cluster.server('N2', { port: p2, maxCount: 2, ibas })]),
        cluster.agent('CLI', { ibac: { connecting_timeout: 1, retry_connect_timeval: 1 } }),
      ]);
    } finally {
      if (before === undefined) delete process.env.IBP_TEST_CRASH_ARM;
      else process.env.IBP_TEST_CRASH_ARM = before;
    }
    await Promise.all(servers.map((s) => cluster.waitPackages(s, [APP.bin])));
    await cluster.waitSpace(cli, 'nodes N1 N2', (s) => ['N1', 'N2'].every((n) => s.hosts(n).length === 1));
    const env = createEnvironment({ config: cli.ibmaConf, recover: false });
    t.teardown(() => env.destroy());
    for (const n of ['N1', 'N2']) {
      await waitFor(`${n} to serve`, async () => {
        try {
          (await env.connect(n, APP.app)).disconnect();
          return true;
        } catch {
          return false;
        }
      }, 30_000, 200);
    }
    return new Matrix(cluster, servers, cli, env, armDir);
  }

  async #ibpsendRecover(): Promise<RecoveryReport> {
    const r = await this.cli.run('ibpsend', ['-f', this.cli.ibmaConf, '--recover', '--json'], 60_000);
    if (r.code !== 0) throw new Error(`ibpsend --recover exited ${r.code}: ${r.stdout} ${r.stderr}`);
    const j = JSON.parse(r.stdout) as { files: number; finished: number; left: number; ignored_bytes: number; ms: number; errors: string[] };
    return { files: j.files, transactions: [], finished: j.finished, left: j.left, ignoredBytes: j.ignored_bytes, ms: j.ms, errors: j.errors };
  }

  get tlog(): string {
    return path.join(this.cli.home, 'tlog');
  }

  /**
   * One global transaction with kill -9 at `point`, then recovery and the oracle. Recovery runs
   * in this process (`env.recover()`), or with `via: 'ibpsend'` as the operator's command
   * `ibpsend --recover --json` of the client home.
   */
  async run(point: CrashPoint, via: 'env' | 'ibpsend' = 'env'): Promise<RunOutcome> {
    this.#run++;
    const participantPoint = CRASH_POINTS[point] === 'ibas';
    const arm = path.join(this.armDir, point);
    if (participantPoint) fs.writeFileSync(arm, '');
    const child = fork(DRIVER, [this.cli.ibmaConf, `N1:${APP.app}`, `N2:${APP.app}`], {
      env: { ...process.env, IBP_HOME: this.cli.home, ...(participantPoint ? {} : { IBP_TEST_CRASH_AT: point }) },
      execArgv: [],
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`driver at ${point} still running after 40 s; stderr: ${stderr}`));
      }, 40_000);
      child.on('exit', (c, s) => {
        clearTimeout(timer);
        resolve([c, s]);
      });
    });
    const crashed = participantPoint ? !fs.existsSync(arm) : signal === 'SIGKILL';
    fs.rmSync(arm, { force: true });
    if (!participantPoint && !crashed) throw new Error(`driver at ${point} was not killed (code ${code}): ${stdout} ${stderr}`);
    if (participantPoint && code !== 0) throw new Error(`driver at ${point} failed (code ${code} ${signal}): ${stderr}`);
    // the decision as the coordinator logged it, before recovery touches the log
    const mine = fs.readdirSync(this.tlog).filter((n) => n.startsWith(`coord-${child.pid}-`));
    if (mine.length !== 1) throw new Error(`driver ${child.pid} at ${point}: ${mine.length} coordinator logs`);
    const txs = [...foldRecords(decodeRecords(fs.readFileSync(path.join(this.tlog, mine[0]!), 'utf8')).records).values()];
    if (txs.length !== 1) throw new Error(`driver at ${point}: ${txs.length} transactions logged`);
    const { gtrid, decision: logged } = txs[0]!;
    const expected = logged ?? 'ROLLBACK';

    const t0 = performance.now();
    const report = via === 'env' ? await this.env.recover(SCHEDULE) : await this.#ibpsendRecover();
    const recoveryMs = performance.now() - t0;

    const violations: string[] = [];
    const outcomes: Record<string, string> = {};
    for (const s of this.servers) {
      const journal = path.join(s.home, 'file', 'ibp_test_2pc.journal');
      const lines = fs.existsSync(journal) ? fs.readFileSync(journal, 'utf8').split('\n').filter((l) => l.startsWith(`${gtrid} `)) : [];
      const states = lines.map((l) => l.split(' ')[1]!);
      const final = states.filter((x) => x !== 'prepared');
      const prepared = states.includes('prepared');
      outcomes[s.node] = final.length === 0 ? (prepared ? 'in doubt' : 'none') : [...new Set(final)].join('+');
      const want = expected === 'COMMIT' ? 'committed' : 'rolledback';
      if (new Set(final).size > 1) violations.push(`${s.node}: both outcomes carried out (${final.join(', ')})`);
      if (final.some((x) => x !== want)) violations.push(`${s.node}: carried out ${final.join(', ')}, the logged decision is ${expected}`);
      if (prepared && final.length === 0) violations.push(`${s.node}: prepared and still in doubt after recovery`);
      if (!prepared && final.length > 0) violations.push(`${s.node}: decided without a prepare`);
      if (expected === 'COMMIT' && !prepared) violations.push(`${s.node}: COMMIT logged without its prepare`);
      if (new ParticipantLog(s.home).branches(gtrid).some((r) => r.state === 'PREPARED')) {
        violations.push(`${s.node}: its participant log still says PREPARED`);
      }
    }
    if (report.left > 0) violations.push(`recovery left ${report.left} transactions: ${JSON.stringify(report.transactions.map((x) => x.results.map((r) => r.error?.message)))}`);
    if (fs.readdirSync(this.tlog).some((n) => n.startsWith(`coord-${child.pid}-`))) violations.push('the coordinator log of the driver is still there after recovery');
    return { point, gtrid, logged, expected, outcomes, crashed, violations, recoveryMs, report };
  }
}
