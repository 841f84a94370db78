/**
 * `npm start`: the project's main job. Brings up a local single-machine IBP cluster in a folder of
 * its own, configured through the ibms CLI as an operator would:
 *
 *   <dir>/ibms-home     the registry (ibms), with the example app packages in its so/
 *   <dir>/ecif-home     node ECIF: its agent (ibma) and a transaction server (ibas, static pool)
 *   <dir>/channel-home  node CHANNEL: a client node's agent (ibma); ibac and ibpsend run here
 *
 * Then it runs a short demo of transactions through ibac (long and short connections, attached
 * files, the TypeScript apps, the app framework's demo_transfer with its SQLite database),
 * prints the results and timings, how to call ibpsend and where the logs are, and keeps serving
 * until Ctrl-C (SIGINT) or SIGTERM. Then it stops every process, removes every shared memory
 * segment the cluster made, and checks that nothing is left.
 *
 * Options (environment): IBP_LOCAL_DIR (default ./local-cluster), IBP_LOCAL_IP (default
 * 127.0.0.1), IBP_LOCAL_DEMO_ONLY=1 (run the demo, stop, exit: used by the smoke test).
 *
 * Every run starts from a fresh folder: the previous run's IBP_LOCAL_DIR is removed whole. A folder
 * npm start did not make (one with other files and no marker, see local-cluster-dir.ts) is refused
 * before anything runs: exit 2, nothing touched.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { quote } from 'shell-quote';
import { createEnvironment, createTempFile, IbacError } from '../ibac/index.js';
import { demo_transfer_client, transfer_req } from '../lib/appfw/demo/demo_transfer.dsc.js';
import { homeKeyBase } from '../lib/shm/keys.js';
import { freshDir, refusal } from './local-cluster-dir.js';
import { destroySegment, listSegments } from '../lib/shm/sysv.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const DIR = path.resolve(process.env.IBP_LOCAL_DIR ?? path.join(ROOT, 'local-cluster'));
const IP = process.env.IBP_LOCAL_IP ?? '127.0.0.1';
const DEMO_ONLY = process.env.IBP_LOCAL_DEMO_ONLY === '1';
const APPS = [
  { app: 'ibp_test_echo', bin: 'ibp_test_echo.so', desc: 'echo the request', timeout: 5 },
  { app: 'ibp_test_file', bin: 'ibp_test_file.so', desc: 'echo the request and its attached files', timeout: 5 },
  // the same in TypeScript (ibas/apps/*.mts → build/apps/*.mjs), deployed the same way (issue 15)
  { app: 'ibp_ts_echo', bin: 'ibp_ts_echo.mjs', desc: 'echo the request (TypeScript)', timeout: 5 },
  { app: 'ibp_ts_file', bin: 'ibp_ts_file.mjs', desc: 'echo the request and its attached files (TypeScript)', timeout: 5 },
  { app: 'ibp_ts_kv', bin: 'ibp_ts_kv.mjs', desc: "read a key/value of this node (TypeScript)", timeout: 5 },
  // the app framework's example: declared messages, function trees, phased template, SQLite (issue 16)
  { app: 'demo_transfer', bin: 'demo_transfer.mjs', desc: 'transfer between two accounts (app framework, SQLite)', timeout: 10 },
];
/** Key/values of node ECIF, read by the ibp_ts_kv app. */
const ECIF_KVS: [string, string][] = [['greeting', 'hello from the config space'], ['region', 'local']];
const HOMES = { ibms: path.join(DIR, 'ibms-home'), ecif: path.join(DIR, 'ecif-home'), channel: path.join(DIR, 'channel-home') };

/**
 * Output is best effort: `npm start | head -1` (or `| tee` killed by the same Ctrl-C) closes
 * stdout under us. A write then fails with EPIPE — asynchronously, as an 'error' event that would
 * kill the process before it stopped the cluster. So stdout errors are swallowed and output stops;
 * the stop path never depends on it.
 */
let stdoutOpen = true;
process.stdout.on('error', () => {
  stdoutOpen = false;
});
const out = (s = ''): void => {
  if (!stdoutOpen) return;
  try {
    process.stdout.write(`${s}\n`);
  } catch {
    stdoutOpen = false;
  }
};
const step = (s: string): void => out(`» ${s}`);

interface Run { code: number | null; stdout: string; stderr: string }

function tool(name: string, home: string, args: string[], timeoutMs = 120_000, env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(ROOT, 'bin', name), ...args], {
      env: { ...process.env, IBP_HOME: home, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${name} ${args.join(' ')} did not finish within ${timeoutMs} ms`));
    }, timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

async function must(name: string, home: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<string> {
  const r = await tool(name, home, args, 120_000, env);
  if (r.code !== 0) throw new Error(`${name} ${args.join(' ')} failed (exit ${r.code}):\n${r.stdout}${r.stderr}`);
  return r.stdout;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, IP, () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/** Processes of the cluster: every process whose command line or environment names one of its homes. */
function clusterPids(): number[] {
  const pids: number[] = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d) || Number(d) === process.pid) continue;
    try {
      const cmd = fs.readFileSync(`/proc/${d}/cmdline`, 'utf8');
      const env = fs.readFileSync(`/proc/${d}/environ`, 'utf8').split('\0');
      if (Object.values(HOMES).some((h) => cmd.includes(`${h}/`) || env.includes(`IBP_HOME=${h}`))) pids.push(Number(d));
    } catch {
      // gone, or not ours to read
    }
  }
  return pids;
}

async function clusterSegments(): Promise<number[]> {
  const bases = Object.values(HOMES).map((h) => homeKeyBase(h));
  return (await listSegments()).filter((s) => bases.some((b) => s.key >= b && s.key <= b + 255)).map((s) => s.key);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitUntil(what: string, cond: () => boolean | Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** Stop every daemon the graceful way, then make sure: kill leftovers, remove leftover segments. */
async function stopCluster(): Promise<void> {
  step('stopping the cluster');
  const stops: [string, string, string[]][] = [
    ['ibas', HOMES.ecif, ['-a', 'stop']],
    ['ibma', HOMES.ecif, ['-a', 'stop_cleanly']],
    ['ibma', HOMES.channel, ['-a', 'stop_cleanly']],
    ['ibms', HOMES.ibms, ['-a', 'stop']],
  ];
  for (const [name, home, args] of stops) {
    if (!fs.existsSync(path.join(home, 'etc'))) continue;
    const r = await tool(name, home, args, 60_000).catch((e: Error) => ({ code: 1, stdout: '', stderr: e.message }));
    out(`  ${name} ${args.join(' ')} (${path.basename(home)}): ${r.code === 0 ? 'ok' : (r.stderr || r.stdout).trim().split('\n')[0]}`);
  }
  let left = clusterPids();
  if (left.length > 0) {
    out(`  ${left.length} process(es) still running after stop: ${left.join(' ')}; sending SIGKILL`);
    for (const pid of left) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    await waitUntil('killed processes to go', () => clusterPids().length === 0, 10_000).catch(() => undefined);
    left = clusterPids();
  }
  const segs = await clusterSegments();
  for (const key of segs) destroySegment(key);
  if (segs.length > 0) out(`  removed ${segs.length} leftover shared memory segment(s)`);
  const after = await clusterSegments();
  out(left.length === 0 && after.length === 0 ? '  nothing left running, no shared memory left' : `  LEFT: processes ${left.join(' ')}, segments ${after.join(' ')}`);
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function demo(): Promise<void> {
  step('demo: transactions through ibac from node CHANNEL to node ECIF');
  const env = createEnvironment({ config: path.join(HOMES.channel, 'etc', 'ibma.conf') });
  try {
    const first = await env.requester('ECIF', 'ibp_test_echo', 'hello, IBP');
    out(`  short connection: "${first.body.toString()}" from ${first.host} in ${first.elapsedMs.toFixed(2)} ms (app ${first.appUs} µs, server load ${first.load.working}/${first.load.total})`);

    const n = 2000;
    const conn = await env.connect('ECIF', 'ibp_test_echo');
    const lat: number[] = [];
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) {
      const s = process.hrtime.bigint();
      const r = await conn.sendRequestAndReceiveResponse('ibp_test_echo', `message ${i}`);
      if (r.body.toString() !== `message ${i}`) throw new Error(`wrong echo for message ${i}`);
      lat.push(Number(process.hrtime.bigint() - s) / 1000);
    }
    const secs = Number(process.hrtime.bigint() - t0) / 1e9;
    conn.disconnect();
    lat.sort((a, b) => a - b);
    out(`  long connection: ${n} echoes, ${(n / secs).toFixed(0)} tx/s, p50 ${percentile(lat, 50).toFixed(0)} µs, p99 ${percentile(lat, 99).toFixed(0)} µs`);

    const m = 200;
    const s0 = process.hrtime.bigint();
    for (let i = 0; i < m; i++) await env.requester('ECIF', 'ibp_test_echo', `short ${i}`);
    const ssecs = Number(process.hrtime.bigint() - s0) / 1e9;
    out(`  short connections: ${m} requesters, ${(m / ssecs).toFixed(0)} tx/s`);

    const file = createTempFile(env.home, 'demo', 'an attached file\n');
    const withFile = await env.requester('ECIF', 'ibp_test_file', 'with a file', [file.name]);
    out(`  attached files: sent 1, got back ${withFile.files.length}: ${withFile.files.map((f) => f.name).join(', ')}`);

    // the TypeScript apps, next to the C ones
    const tsConn = await env.connect('ECIF', 'ibp_ts_echo');
    const tn = 2000;
    const tt0 = process.hrtime.bigint();
    for (let i = 0; i < tn; i++) {
      const r = await tsConn.sendRequestAndReceiveResponse('ibp_ts_echo', `ts message ${i}`);
      if (r.body.toString() !== `ts message ${i}`) throw new Error(`wrong TypeScript echo for message ${i}`);
    }
    const tsecs = Number(process.hrtime.bigint() - tt0) / 1e9;
    tsConn.disconnect();
    out(`  TypeScript echo (ibp_ts_echo.mjs): ${tn} echoes on a long connection, ${(tn / tsecs).toFixed(0)} tx/s`);
    const tsFile = createTempFile(env.home, 'demo_ts', 'an attached file for TypeScript\n');
    const tsWithFile = await env.requester('ECIF', 'ibp_ts_file', 'with a file', [tsFile.name]);
    out(`  TypeScript attached files: sent 1, got back ${tsWithFile.files.length}: ${tsWithFile.files.map((f) => f.name).join(', ')}`);
    const kv = JSON.parse((await env.requester('ECIF', 'ibp_ts_kv', 'greeting')).body.toString()) as { value: string | null; node: string };
    out(`  TypeScript KV reader: node ${kv.node} greeting = ${JSON.stringify(kv.value)}`);

    // the app framework: typed messages through the generated client stub, SQLite behind the phases
    const bank = demo_transfer_client(env);
    const good = await bank.call('ECIF', { ...transfer_req.init(), from_account: 'A001', to_account: 'A002', amount: '125.50' });
    out(`  demo_transfer A001 → A002 125.50: code ${good.response_code} (${good.response_desc}), balances ${good.from_balance} / ${good.to_balance}, journal ${good.journal}`);
    const poor = await bank.call('ECIF', { ...transfer_req.init(), from_account: 'A002', to_account: 'A001', amount: '99999.00' });
    out(`  demo_transfer A002 → A001 99999.00: code ${poor.response_code} (${poor.response_desc}): rolled back, accounts unchanged`);
  } finally {
    env.destroy();
  }
}

async function main(): Promise<void> {
  out(`IBP-TS local cluster in ${DIR} on ${IP}`);
  if (clusterPids().length > 0 || (await clusterSegments()).length > 0) {
    step('a previous local cluster is still there: stopping it first');
    await stopCluster();
  }
  freshDir(DIR);
  for (const h of Object.values(HOMES)) fs.mkdirSync(h, { recursive: true });
  for (const a of APPS) {
    if (!fs.existsSync(path.join(ROOT, 'build', 'apps', a.bin))) throw new Error(`build/apps/${a.bin} is missing: run \`npm run build\``);
  }

  const [ibmsPort, ecifPort] = [await freePort(), await freePort()];
  step(`registry: ibms on ${IP}:${ibmsPort}`);
  await must('ibms', HOMES.ibms, ['-a', 'init', '--ip', IP, '--port', String(ibmsPort)]);
  for (const a of APPS) fs.copyFileSync(path.join(ROOT, 'build', 'apps', a.bin), path.join(HOMES.ibms, 'so', a.bin));
  await must('ibms', HOMES.ibms, ['-a', 'start']);

  step('cluster config through the ibms CLI');
  const admin = async (...args: string[]) => {
    out(`  ibms ${quote(args)}`); // quoted: each line pastes into a shell as it is
    await must('ibms', HOMES.ibms, args);
  };
  await admin('-a', 'add_node', '--node', 'ECIF');
  await admin('-a', 'add_node', '--node', 'CHANNEL');
  await admin('-a', 'add_node_host', '--node', 'ECIF', '--ip', IP, '--port', String(ecifPort));
  for (const [key, value] of ECIF_KVS) await admin('-a', 'add_node_kv', '--node', 'ECIF', '--key', key, '--value', value);
  for (const a of APPS) await admin('-a', 'add_app', '--app', a.app, '--desc', a.desc, '--bin', a.bin, '--timeout', String(a.timeout));
  await admin('-a', 'add_project', '--project', 'DEMO', '--server-nodes', 'ECIF', '--client-nodes', 'CHANNEL', '--apps', APPS.map((a) => a.app).join(' '));
  await admin('-a', 'save_config');
  await admin('-a', 'distribute_config');

  for (const [node, home] of [['ECIF', HOMES.ecif], ['CHANNEL', HOMES.channel]] as const) {
    step(`node ${node}: agent ibma`);
    const credential = (await must('ibms', HOMES.ibms, ['-s', 'node_credential', '--node', node])).trim();
    await must('ibma', home, ['-a', 'init', '--node', node, '--ibms-ip', IP, '--ibms-port', String(ibmsPort), '--credential', credential]);
    await must('ibma', home, ['-a', 'start']);
  }
  await waitUntil('ibma to install the app packages of ECIF', () => APPS.every((a) => fs.existsSync(path.join(HOMES.ecif, 'so', a.bin))), 60_000);

  step(`node ECIF: transaction server ibas on ${IP}:${ecifPort} (static pool of 2 workers)`);
  await must('ibas', HOMES.ecif, ['-a', 'init', '--ip', IP, '--port', String(ecifPort), '--max-count', '2']);
  await must('ibas', HOMES.ecif, ['-a', 'start']);

  await demo();

  const req = path.join(DIR, 'request.txt');
  fs.writeFileSync(req, 'hello from ibpsend');
  out();
  out('The cluster is serving. Try:');
  out(`  IBP_HOME=${HOMES.channel} ${path.join(ROOT, 'bin', 'ibpsend')} ECIF ibp_test_echo ${req}`);
  out(`  curl -s --data-binary 'hello over HTTP' http://${IP}:${ecifPort}/ibp/ibp_test_echo`);
  out(`  curl -s --data-binary region http://${IP}:${ecifPort}/ibp/ibp_ts_kv        (a TypeScript app)`);
  out(`  curl -s --data-binary '{"from_account":"A001","to_account":"A002","amount":"10.00"}' http://${IP}:${ecifPort}/ibp/demo_transfer`);
  out(`  IBP_HOME=${HOMES.ibms} ${path.join(ROOT, 'bin', 'ibms')} -s nodes        (and -s apps, -s projects, -s sessions)`);
  out(`  IBP_HOME=${HOMES.ecif} ${path.join(ROOT, 'bin', 'ibas')} -s bbdetail`);
  out('Logs:');
  for (const h of Object.values(HOMES)) out(`  ${path.join(h, 'log')}/`);
  out(DEMO_ONLY ? 'IBP_LOCAL_DEMO_ONLY=1: the demo ran, stopping the cluster.' : 'Press Ctrl-C to stop the cluster.');
}

let stopping = false;
async function shutdown(code: number): Promise<void> {
  if (stopping) return;
  stopping = true;
  try {
    await stopCluster();
  } catch (e) {
    out(`stop failed: ${(e as Error).message}`);
    code = 1;
  }
  process.exit(code);
}

process.on('SIGINT', () => void shutdown(0));
process.on('SIGTERM', () => void shutdown(0));

const refused = refusal(DIR);
if (refused) {
  process.stderr.write(`npm start: ${refused}\n`);
  process.exit(2);
}

main().then(
  () => {
    if (DEMO_ONLY) void shutdown(0);
    else setInterval(() => undefined, 1 << 30); // serve until a signal
  },
  (e: unknown) => {
    out(`local cluster failed: ${e instanceof IbacError ? `${e.code}: ${e.message}` : (e as Error).stack ?? String(e)}`);
    void shutdown(1);
  },
);
