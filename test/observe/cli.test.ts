/**
 * The operator's CLI: `--version` on every tool; enum errors list the allowed values; JSON syntax
 * errors give line and column; SysV keys in errors are hex; `ibas -a init` sizes the pool to the
 * machine, takes --workers and --force; `ibas -s status` lists every worker like `pm2 ls` (and is
 * printed after start and stop). Sessions and package checks: test/observe/cli-registry.test.ts.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { IbpError } from '../../lib/errors.js';
import { packageVersion } from '../../lib/cli.js';
import { setupIbas } from '../ibas/helpers/server.js';
import { privateDir } from '../helpers/cluster.js';
import { BIN, collect, freePort, loopbackIp, runTool, waitFor } from '../helpers/procs.js';
import { parseJsonText } from '../../lib/config/load.js';

t.test('--version on every tool', async (t) => {
  const version = JSON.parse(fs.readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).version as string;
  t.equal(packageVersion(), version);
  const results = await Promise.all(['ibms', 'ibma', 'ibas', 'ibcmd', 'ibpsend'].map(async (tool) => [tool, await runTool(tool, ['--version'])] as const));
  for (const [tool, r] of results) {
    t.equal(r.code, 0, `${tool} --version exits 0`);
    t.match(r.stdout, new RegExp(`^${tool} \\(ibp-ts\\) ${version.replace(/\./g, '\\.')} node v\\d+`), tool);
  }
});

t.test('output into a pipe its reader closed (| head -1): no EPIPE crash, the exit code unchanged', async (t) => {
  for (const tool of ['ibms', 'ibma', 'ibas', 'ibcmd', 'ibpsend', 'ibpgen']) {
    const child = spawn(process.execPath, [BIN(tool), '--help'], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.destroy(); // the reader is gone before the first write
    const r = await collect(child, undefined, 30_000, `${tool} --help`);
    t.equal(r.code, 0, `${tool} --help into a closed pipe exits 0`);
    t.notMatch(r.stderr, /EPIPE|Unhandled 'error' event/, `${tool}: no stack trace`);
  }
});

t.test('shm keys are hex in errors', async (t) => {
  t.match(new IbpError('IBP_ERR_SHM_NO_SPACE', { key: 0x1a2b00 }).message, /index key 0x1a2b00:/);
  t.match(new IbpError('IBP_ERR_CFG_INVALID', { file: 'f', key: '/mpm/mode', detail: 'x' }).message, /key \/mpm\/mode x/, 'a config key stays as it is');
});

t.test('ibas -a init: pool sized to the machine, --workers, --force; config errors that help', async (t) => {
  const home = privateDir(t, 'init');
  const ip = loopbackIp();
  const port = await freePort(ip);
  const run = (args: string[]) => runTool('ibas', args, { home });
  const conf = path.join(home, 'etc', 'ibas.conf');
  const first = await run(['-a', 'init', '--ip', ip, '--port', String(port)]);
  t.equal(first.code, 0, first.stderr);
  const read = () => parseJsonText(fs.readFileSync(conf, 'utf8'), conf) as { mpm: { max_count: number; mode: string } };
  t.equal(read().mpm.max_count, os.availableParallelism(), 'one worker per CPU by default');
  t.match(first.stdout, /one worker per CPU/);
  const again = await run(['-a', 'init', '--ip', ip, '--port', String(port), '--workers', '3']);
  t.match(again.stdout, /WARN : .*ibas\.conf exist ! \(--force rewrites it\)/);
  t.equal(read().mpm.max_count, os.availableParallelism(), 'kept without --force');
  const forced = await run(['-a', 'init', '--ip', ip, '--port', String(port), '--workers', '3', '--force']);
  t.equal(forced.code, 0, forced.stderr);
  t.equal(read().mpm.max_count, 3, '--workers 3 with --force');
  t.ok(fs.existsSync(`${conf}.bak`), 'the previous file kept as .bak');
  const both = await run(['-a', 'init', '--ip', ip, '--port', String(port), '--workers', '3', '--max-count', '2', '--force']);
  t.equal(both.code, 2, '--workers and --max-count together: usage error');

  // enum error with the allowed values
  fs.writeFileSync(conf, fs.readFileSync(conf, 'utf8').replace('"STATIC_WORKERPOOL"', '"STATIC"'));
  const bad = await run(['-a', 'check']);
  t.not(bad.code, 0);
  t.match(bad.stderr, /key \/mpm\/mode must be one of FORK, STATIC_WORKERPOOL, DYNAMIC_WORKERPOOL \(found "STATIC"\)/);
  t.notMatch(bad.stderr, /equal to constant/);
  // JSON syntax error with line and column
  const text = fs.readFileSync(`${conf}.bak`, 'utf8');
  const lines = text.split('\n');
  const at = lines.findIndex((l) => l.includes('"max_count"'));
  lines[at] = lines[at]!.replace(/,(\s*\/\/.*)?$/, ' ,,$1');
  fs.writeFileSync(conf, lines.join('\n'));
  const broken = await run(['-a', 'check']);
  t.match(broken.stderr, new RegExp(`is not valid JSON: .* at line ${at + 1} column \\d+`), 'line and column of the syntax error');
});

t.test('ibas -s status: one row per worker like pm2 ls; printed after start and stop', async (t) => {
  const s = await setupIbas(t, { maxCount: 2, maxProcessCount: 500 });
  const start = await s.ibas(['-f', s.conf, '-a', 'start']);
  t.equal(start.code, 0, start.stderr);
  t.match(start.stdout, /ibas is running , pid\[\d+\][\s\S]*tx \/ recycle[\s\S]*ibas start ok[^\n]*\n$/, 'the status at start, the result line last');
  const st = await s.ibas(['-f', s.conf, '-s', 'status', '--json']);
  const j = JSON.parse(st.stdout) as { worker_list: Record<string, unknown>[] };
  t.equal(j.worker_list.length, 2);
  for (const w of j.worker_list) {
    t.match(w, { pid: Number, state: /IDLE|LISTEN/, transactions: 0, recycle_at: 500, restarts: 0, app: '' });
    t.type(w.memory_bytes, 'number', 'memory from pidusage');
    t.ok((w.memory_bytes as number) > 1024 * 1024, 'a worker uses more than 1 MB');
    t.type(w.cpu_percent, 'number');
  }
  // a worker killed is replaced in its slot: restarts 1 there
  const victim = j.worker_list[0]!;
  process.kill(victim.pid as number, 'SIGKILL');
  const after = await waitFor('the slot refilled', async () => {
    const r = JSON.parse((await s.ibas(['-f', s.conf, '-s', 'status', '--json'])).stdout) as { worker_list: Record<string, unknown>[] };
    return r.worker_list.find((w) => w.slot === victim.slot && w.pid !== victim.pid && w.state !== 'STARTING');
  }, 20_000, 100);
  t.equal(after.restarts, 1, 'restarts of the slot');
  const text = await s.ibas(['-f', s.conf, '-s', 'status']);
  t.match(text.stdout, /slot.*pid.*state.*uptime.*tx \/ recycle.*cpu.*memory.*app/);
  t.match(text.stdout, /0 \/ 500/);
  const stop = await s.stop();
  t.equal(stop.code, 0, stop.stderr);
  t.match(stop.stdout, /^ibas stop ok , pid\[\d+\]\n$/, 'a successful stop prints only its result line (no "not running" status)');
});
