/**
 * ibcmd matches what it runs (issue 11), against real agents: the PATH trick stops the start, a
 * white-listed name resolved from a planted folder is refused (and the planted file never runs),
 * argv patterns hold (`ls` cannot list /root), each caller has its own credential and the audit
 * names it, and repeated wrong credentials get 429 — on unknown paths too.
 */
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { isIbpError } from '../../lib/errors.js';
import { IbcmdClient } from '../../ibcmd/client.js';
import { processesOfHome, waitFor } from '../helpers/procs.js';
import { makeAgentHome, rawRequest } from './agent-home.js';

// one testdir for the whole file (a second t.testdir() call empties it)
const root = t.testdir({ open: {}, tbin: {}, homes: { a: {}, b: {} } });
const open = path.join(root, 'open');
const tbin = path.join(root, 'tbin');
fs.chmodSync(open, 0o777);
fs.chmodSync(tbin, 0o755);

async function refusedCode(fn: () => Promise<unknown>): Promise<string> {
  try {
    await fn();
  } catch (e) {
    return isIbpError(e) ? e.code : String(e);
  }
  return 'allowed';
}

t.test('a world-writable folder before the system ones on the command PATH: check and start refuse, clearly', async (t) => {
  const a = await makeAgentHome(t, { home: path.join(root, 'homes', 'a'), path: [open], start: false });
  const check = await a.ibcmd(['-a', 'check']);
  t.equal(check.code, 3);
  t.match(check.stderr, new RegExp(`PATH folder ${open} is unsafe: it is group/world-writable \\(mode 0777\\), and it comes before the system folder /`));
  const start = await a.ibcmd(['-a', 'start']);
  t.not(start.code, 0, 'start refused');
  t.match(start.stderr, /group\/world-writable/);
  t.same(processesOfHome(a.home), [], 'no daemon left behind');
});

t.test('planted program, argv patterns, callers in the audit, 429 after wrong guesses', async (t) => {
  const a = await makeAgentHome(t, {
    home: path.join(root, 'homes', 'b'),
    path: [tbin],
    white: ['hostname', 'echo *', { program: 'ls', args: ['-l', '<sandbox-path>', '...'] }],
    callers: [{ name: 'ops', credential_file: 'keys/ibcmd_ops.credential' }],
    auth: { max_failures: 3, failure_window_seconds: 60 },
  });
  const real = (await a.client.exec('hostname')).stdout;
  t.ok(real.length > 0, 'hostname runs from the system folder');

  // a program of the same name planted in a folder that comes first on PATH
  const marker = path.join(root, 'planted-ran');
  fs.writeFileSync(path.join(tbin, 'hostname'), `#!/bin/sh\ntouch ${marker}\necho planted\n`, { mode: 0o755 });
  t.equal(await refusedCode(() => a.client.exec('hostname')), 'IBP_ERR_CMD_DENIED', 'the planted hostname is refused');
  t.notOk(fs.existsSync(marker), 'and never ran');

  // argv patterns: only paths inside the sandbox
  fs.writeFileSync(path.join(a.sandbox, 'report.txt'), 'r\n');
  const ok = await a.client.exec('ls -l report.txt');
  t.equal(ok.code, 0);
  t.match(ok.stdout, /report\.txt/);
  for (const line of ['ls /root', 'ls -l /root', 'ls -l ../..', 'ls -l report.txt /etc']) {
    t.equal(await refusedCode(() => a.client.exec(line)), 'IBP_ERR_CMD_DENIED', `${line} refused`);
  }

  // each caller has its own credential; the audit line names it
  const ops = new IbcmdClient({ ip: a.ip, port: a.port, secret: fs.readFileSync(path.join(a.home, 'keys/ibcmd_ops.credential'), 'utf8').trim() });
  t.equal((await ops.exec('echo from ops')).stdout, 'from ops\n');
  t.equal((await a.client.exec('echo from default')).stdout, 'from default\n');
  // the audit line of a request is written when its answer has been sent (onResponse): wait for the last one
  const readAudit = (): Record<string, unknown>[] => fs.readFileSync(path.join(a.home, 'log', 'ibcmd_audit.log'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  const audit = await waitFor('the audit line of the last command', () => {
    const lines = readAudit();
    return lines.some((l) => l.cmd === 'echo from default') ? lines : undefined;
  }, 10_000);
  t.ok(audit.some((l) => l.cmd === 'echo from ops' && l.caller === 'ops' && /caller\[ops\]/.test(String(l.msg))), 'the audit names ops');
  t.ok(audit.some((l) => l.cmd === 'echo from default' && l.caller === 'default'), 'and default');
  t.ok(audit.some((l) => l.cmd === 'hostname' && l.error === 'IBP_ERR_CMD_DENIED' && l.caller === 'default'), 'a refusal names its caller too');

  // wrong guesses: three 401, then 429, also on a path that does not exist
  const wrong = { authorization: `Bearer ${'z'.repeat(64)}` };
  const statuses: number[] = [];
  for (let i = 0; i < 3; i++) statuses.push((await rawRequest(a, 'GET', '/v1/status', { headers: wrong })).status);
  statuses.push((await rawRequest(a, 'GET', '/v1/status', { headers: wrong })).status);
  const probe = await rawRequest(a, 'GET', '/no/such/path', { headers: wrong });
  t.same(statuses, [401, 401, 401, 429]);
  t.equal(probe.status, 429, 'an unknown path is no oracle');
  t.match(probe.body, { code: 'IBP_ERR_CMD_RATE_LIMITED' });
  t.equal((await ops.status()).pid, a.pid(), 'a right credential still works');
});
