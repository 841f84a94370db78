/**
 * A real ibcmd daemon on a loopback address of its own: allowed commands run (argv, no shell, in
 * the sandbox, with the agent's home), refused ones say why, output is capped, the timeout kills
 * the command's whole process group, bad input never takes the daemon down, stop leaves nothing.
 */
import t, { type Test } from 'tap';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { isIbpError } from '../../lib/errors.js';
import { IbcmdClient } from '../../ibcmd/client.js';
import { isAlive } from '../../lib/pidfile.js';
import { processesOfHome, waitFor } from '../helpers/procs.js';
import { makeAgentHome, rawRequest } from './agent-home.js';

// one testdir for the whole file (a second t.testdir() call would empty it): the agent's home
// and a folder of test programs put on the agent's PATH
const root = t.testdir({
  tbin: { 'spawner.sh': '#!/bin/bash\nsleep 300 &\necho $! > "$IBP_HOME/bg.pid"\nsleep 300\n' },
  home: {},
});
const tbin = path.join(root, 'tbin');
fs.chmodSync(path.join(tbin, 'spawner.sh'), 0o755);

const agent = await makeAgentHome(t, {
  white: ['echo *', 'pwd', 'printenv *', 'ls', 'ls *', 'head -c * /dev/zero', 'yes', 'sleep *', 'rm *', '/bin/rm *', 'spawner.sh', 'no-such-program-x *'],
  black: ['rm *', 'echo forbidden*'],
  maxOutput: 65536,
  timeoutS: 3,
  maxConcurrent: 2,
  path: [tbin],
  home: path.join(root, 'home'),
});
const pid = agent.pid()!;
const { client } = agent;

/** The daemon is still the same process and still answers. */
async function stillUp(t: Test, what: string): Promise<void> {
  t.ok(isAlive(pid), `daemon alive after ${what}`);
  const s = await client.status();
  t.equal(s.pid, pid, `daemon answers after ${what}`);
}

async function refused(fn: () => Promise<unknown>, codeWanted: string): Promise<Error> {
  try {
    await fn();
  } catch (e) {
    if (isIbpError(e) && e.code === codeWanted) return e;
    throw new Error(`expected ${codeWanted}, got ${String(e)}`);
  }
  throw new Error(`expected ${codeWanted}, the call succeeded`);
}

t.test('started: pid file, status, audit log', async (t) => {
  t.ok(isAlive(pid), 'pid file names a live process');
  const s = await client.status();
  t.equal(s.ip, agent.ip);
  t.equal(s.port, agent.port);
  t.equal(s.home, agent.home);
  t.equal(s.sandbox, agent.sandbox);
  const r = await agent.ibcmd(['-s', 'status', '--json']);
  t.equal(r.code, 0, r.stderr);
  t.equal(JSON.parse(r.stdout)[0].pid, pid);
});

t.test('an allowed command runs with argv, in the sandbox, with the agent home', async (t) => {
  const r = await client.exec('echo hello   world');
  t.equal(r.code, 0);
  t.equal(r.stdout, 'hello world\n', 'argv split on spaces, no shell');
  t.equal(r.cmd, 'echo hello world');
  t.same(r.truncated, { stdout: false, stderr: false });
  t.equal((await client.exec('pwd')).stdout.trim(), agent.sandbox, 'cwd = sandbox');
  t.equal((await client.exec('printenv IBP_HOME')).stdout.trim(), agent.home, 'IBP_HOME = the agent home');
  t.equal((await client.exec('printenv IBP_DAEMON_CHILD')).code, 1, 'the daemon-child marker is not passed on');
  const bad = await client.exec('ls /no/such/dir/x');
  t.not(bad.code, 0, 'a failing command is a result with its exit code');
  t.match(bad.stderr, /No such file/);
  const e = await refused(() => client.exec('no-such-program-x a'), 'IBP_ERR_CMD_EXEC');
  t.match(e.message, /no-such-program-x.*PATH/);
  await stillUp(t, 'a missing program');
});

t.test('black-listed, not white-listed, and shell syntax are refused with a clear error', async (t) => {
  let e = await refused(() => client.exec('rm -rf x'), 'IBP_ERR_CMD_DENIED');
  t.match(e.message, /black list pattern "rm \*"/);
  e = await refused(() => client.exec('/bin/rm -rf x'), 'IBP_ERR_CMD_DENIED');
  t.match(e.message, /black list/, 'a full path does not dodge the black list');
  e = await refused(() => client.exec('echo forbidden words'), 'IBP_ERR_CMD_DENIED');
  t.match(e.message, /black list pattern "echo forbidden\*"/, 'black list wins over the white list');
  e = await refused(() => client.exec('cat /etc/passwd'), 'IBP_ERR_CMD_DENIED');
  t.match(e.message, /matches no white list pattern/);
  for (const line of ['echo a > pwned', 'echo a; touch pwned', 'echo a | tee pwned', 'echo $(touch pwned)', 'echo `touch pwned`', 'echo a && touch pwned', 'echo a\ntouch pwned', 'ls *']) {
    e = await refused(() => client.exec(line), 'IBP_ERR_CMD_SYNTAX');
    t.match(e.message, /command line refused: it contains/, `${JSON.stringify(line)}: ${e.message}`);
  }
  t.notOk(fs.existsSync(path.join(agent.sandbox, 'pwned')), 'nothing ran');
  e = await refused(() => client.exec('echo hi', 'somebody-else'), 'IBP_ERR_CMD_DENIED');
  t.match(e.message, /this agent runs as .*, not somebody-else/);
  t.equal((await client.exec('echo hi', (await client.status()).user)).stdout, 'hi\n', 'the right user is accepted');
  await stillUp(t, 'refusals');
});

t.test('the CLI mirrors the result: exit code, output, refusal codes', async (t) => {
  const base = ['--ip', agent.ip, '--port', String(agent.port), '--credential-file', agent.credFile, '-a', 'execmd', '--cmd'];
  let r = await agent.ibcmd([...base, 'echo via cli']);
  t.equal(r.code, 0);
  t.equal(r.stdout, 'via cli\n');
  r = await agent.ibcmd([...base, 'ls /no/such/dir/y']);
  t.equal(r.code, 2, 'the remote exit code');
  t.match(r.stderr, /No such file/);
  r = await agent.ibcmd([...base, 'rm -rf x']);
  t.equal(r.code, 10);
  t.match(r.stderr, /command refused: "rm -rf x" matches black list pattern "rm \*" \(IBP_ERR_CMD_DENIED\)/);
  r = await agent.ibcmd([...base, 'echo a;b']);
  t.equal(r.code, 10);
  t.match(r.stderr, /IBP_ERR_CMD_SYNTAX/);
  r = await agent.ibcmd([...base, 'echo json', '--json']);
  t.equal(JSON.parse(r.stdout).stdout, 'json\n');
  r = await agent.ibcmd(['-a', 'execmd', '--cmd', 'echo local']);
  t.equal(r.stdout, 'local\n', 'without --ip/--port the home\'s own agent is used');
});

t.test('a wrong or missing credential is refused before routing', async (t) => {
  const wrong = new IbcmdClient({ ip: agent.ip, port: agent.port, secret: 'x'.repeat(64) });
  await refused(() => wrong.exec('echo hi'), 'IBP_ERR_CMD_AUTH');
  await refused(() => wrong.status(), 'IBP_ERR_CMD_AUTH');
  let r = await rawRequest(agent, 'POST', '/v1/exec', { headers: { 'content-type': 'application/json' }, body: '{"cmd":"echo hi"}' });
  t.equal(r.status, 401);
  t.match(r.body, { code: 'IBP_ERR_CMD_AUTH' });
  r = await rawRequest(agent, 'GET', '/no/such/route');
  t.equal(r.status, 401, 'an unauthenticated caller does not learn which routes exist');
  const other = path.join(root, 'other.credential');
  fs.writeFileSync(other, `${'y'.repeat(64)}\n`);
  const cli = await agent.ibcmd(['--ip', agent.ip, '--port', String(agent.port), '--credential-file', other, '-a', 'execmd', '--cmd', 'echo hi']);
  t.equal(cli.code, 10);
  t.match(cli.stderr, /IBP_ERR_CMD_AUTH/);
  await stillUp(t, 'bad credentials');
});

t.test('output over max_output_size is capped and the command stopped', async (t) => {
  const r = await client.exec('head -c 1000000 /dev/zero');
  t.equal(r.stdout.length, 65536, 'exactly the cap is kept');
  t.same(r.truncated, { stdout: true, stderr: false });
  t.equal(r.timedOut, false);
  const y = await client.exec('yes');
  t.equal(y.stdout.length, 65536, 'an endless writer is stopped at the cap');
  t.ok(y.truncated.stdout);
  t.equal(y.signal, 'SIGKILL');
  t.equal(y.timedOut, false, 'stopped by the cap, not by the timeout');
  const cli = await agent.ibcmd(['-a', 'execmd', '--cmd', 'yes']);
  t.match(cli.stderr, /output truncated \(stdout\)/);
  t.equal(cli.code, 137, '128 + SIGKILL');
  await stillUp(t, 'oversized output');
});

t.test('the timeout kills the command and everything in its process group', async (t) => {
  const r = await client.exec('spawner.sh');
  t.ok(r.timedOut, 'timed out');
  t.equal(r.signal, 'SIGKILL');
  const bg = Number(fs.readFileSync(path.join(agent.home, 'bg.pid'), 'utf8'));
  t.ok(bg > 0, `the script started a background child ${bg}`);
  await waitFor('the background child of the timed-out command to be gone', () => !isAlive(bg), 5000);
  t.pass('background child killed with the group');
  const cli = await agent.ibcmd(['-a', 'execmd', '--cmd', 'sleep 30']);
  t.equal(cli.code, 124, 'execmd exits 124 after a timeout');
  t.match(cli.stderr, /timed out after \d+ ms and was killed/);
  await stillUp(t, 'timeouts');
});

t.test('more than max_concurrent commands at once are refused (503), not queued', async (t) => {
  const a = client.exec('sleep 30');
  const b = client.exec('sleep 30');
  await waitFor('two commands running', async () => (await client.status()).running === 2, 5000);
  const e = await refused(() => client.exec('echo third'), 'IBP_ERR_CMD_BUSY');
  t.match(e.message, /already runs 2 commands/);
  const [ra, rb] = await Promise.all([a, b]);
  t.ok(ra.timedOut && rb.timedOut, 'the two sleepers hit the timeout');
  t.equal((await client.exec('echo free again')).stdout, 'free again\n');
});

t.test('malformed requests get a clear error and the daemon stays up', async (t) => {
  const auth = { authorization: `Bearer ${fs.readFileSync(agent.credFile, 'utf8').trim()}` };
  const json = { ...auth, 'content-type': 'application/json' };
  const cases: [string, string, Record<string, string>, string | Buffer | undefined, number, string][] = [
    ['POST', '/v1/exec', json, '{"cmd": "echo', 400, 'IBP_ERR_CODEC_JSON'],
    ['POST', '/v1/exec', json, '[1,2]', 400, 'IBP_ERR_CODEC_JSON'],
    ['POST', '/v1/exec', json, '{"cmd": 5}', 400, 'IBP_ERR_CMD_SYNTAX'],
    ['POST', '/v1/exec', json, '{"cmd": "echo a", "env": {"X": "1"}}', 400, 'IBP_ERR_CODEC_JSON'],
    ['POST', '/v1/exec', json, '{"__proto__": {"x": 1}, "cmd": "echo a"}', 400, 'IBP_ERR_CODEC_JSON'],
    ['POST', '/v1/exec', json, JSON.stringify({ cmd: `echo ${'a'.repeat(5000)}` }), 400, 'IBP_ERR_CMD_SYNTAX'],
    ['POST', '/v1/exec', json, JSON.stringify({ cmd: 'a'.repeat(100_000) }), 413, 'IBP_ERR_CODEC_TOO_LARGE'],
    ['POST', '/v1/exec', { ...auth, 'content-type': 'text/plain' }, 'echo a', 400, 'IBP_ERR_CODEC_JSON'],
    ['DELETE', '/v1/files/x', auth, undefined, 404, 'IBP_ERR_CMD_ROUTE'],
  ];
  for (const [method, url, headers, body, status, codeWanted] of cases) {
    const r = await rawRequest(agent, method, url, { headers, body });
    t.equal(r.status, status, `${method} ${url} ${String(body).slice(0, 40)} → ${status}`);
    t.match(r.body, { code: codeWanted }, JSON.stringify(r.body).slice(0, 200));
  }
  // raw garbage and a truncated request on the socket
  for (const bytes of ['\x00\x01\x02garbage\r\n\r\n', 'POST /v1/exec HTTP/1.1\r\nContent-Length: 99\r\n\r\n{"cmd"', `GET /${'a'.repeat(70_000)} HTTP/1.1\r\n\r\n`]) {
    await new Promise<void>((resolve) => {
      const s = net.connect(agent.port, agent.ip, () => s.end(bytes));
      s.on('error', () => resolve());
      s.on('close', () => resolve());
      s.resume();
      s.setTimeout(3000, () => s.destroy());
    });
  }
  await stillUp(t, 'malformed requests');
});

t.test('SIGUSR1 reopens the logs; every request is in the audit log', async (t) => {
  const audit = path.join(agent.home, 'log', 'ibcmd_audit.log');
  const lines = fs.readFileSync(audit, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  t.ok(lines.some((l) => l.cmd === 'rm -rf x' && l.status === 403 && l.error === 'IBP_ERR_CMD_DENIED'), 'a refusal is audited');
  t.ok(lines.some((l) => l.cmd === 'echo hello world' && l.verdict === 'ran' && l.code === 0), 'a run is audited');
  t.ok(lines.some((l) => l.status === 401), 'a failed authentication is audited');
  fs.renameSync(audit, `${audit}.1`);
  process.kill(pid, 'SIGUSR1');
  await waitFor('a new audit log after SIGUSR1', async () => {
    await client.status();
    return fs.existsSync(audit) && fs.readFileSync(audit, 'utf8').includes('/v1/status');
  }, 5000);
  t.pass('reopened');
});

t.test('stop while a command runs: the command is killed, nothing is left', async (t) => {
  const running = client.exec('sleep 60').catch((e: unknown) => e);
  await waitFor('the sleeper to run', async () => (await client.status()).running === 1, 5000);
  const r = await agent.ibcmd(['-a', 'stop']);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /ibcmd stop ok/);
  await running;
  t.notOk(isAlive(pid), 'daemon gone');
  t.notOk(fs.existsSync(path.join(agent.home, 'run', 'ibcmd.pid')), 'pid file removed');
  await waitFor('no process of the home', () => processesOfHome(agent.home).length === 0, 5000);
  t.pass('no process of the home is left (the sleeper was killed)');
  const e = await refused(() => client.status(), 'IBP_ERR_CMD_UNREACHABLE');
  t.match(e.message, /is not answering.*ibcmd -s status/);
  const st = await agent.ibcmd(['-s', 'status']);
  t.equal(st.code, 7, 'status of a stopped agent');
  t.match(st.stderr, /ibcmd is not running/);
  const cli = await agent.ibcmd(['-a', 'execmd', '--cmd', 'echo x']);
  t.equal(cli.code, 11, 'an unreachable agent is exit 11');
});
