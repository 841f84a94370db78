/**
 * The ibcmd command line: usage, bad arguments named, `-a init` idempotent, `-a check` like
 * nginx -t, start refusing a bad setup, double start, kill.
 */
import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { parseJsonText } from '../../lib/config/load.js';
import { isAlive } from '../../lib/pidfile.js';
import { loopbackIp, freePort, reapHome, runTool, processesOfHome } from '../helpers/procs.js';

const home = t.testdir();
t.teardown(() => reapHome(home));
const ibcmd = (args: string[]) => runTool('ibcmd', args, { home });
const conf = path.join(home, 'etc', 'ibcmd.conf');
const cred = path.join(home, 'keys', 'ibcmd.credential');
const ip = loopbackIp();
const port = await freePort(ip);

t.test('no arguments print the usage and exit 2; bad arguments are named', async (t) => {
  let r = await ibcmd([]);
  t.equal(r.code, 2);
  t.match(r.stderr, /USAGE : ibcmd -f ibcmd\.conf -a init/);
  t.match(r.stderr, /-a execmd --cmd \(cmd\)/);
  r = await ibcmd(['-a', 'bogus']);
  t.equal(r.code, 2);
  t.match(r.stderr, /bad value for -a: "bogus" is not one of init, start/);
  r = await ibcmd(['-s', 'bogus']);
  t.equal(r.code, 2);
  t.match(r.stderr, /-s: "bogus"/);
  r = await ibcmd(['-a', 'init', '--ip', '999.1.1.1']);
  t.equal(r.code, 2);
  t.match(r.stderr, /--ip: "999\.1\.1\.1" is not an IPv4 address/);
  r = await ibcmd(['-a', 'init', '--port', '70000']);
  t.equal(r.code, 2);
  t.match(r.stderr, /--port: 70000 is not within 1\.\.65535/);
  r = await ibcmd(['-a', 'execmd', '--ip', '127.0.0.1', '--port', '1', '--credential-file', '/dev/null']);
  t.equal(r.code, 2);
  t.match(r.stderr, /--cmd: execmd needs --cmd/);
  r = await ibcmd(['-a', 'start', '-s', 'status']);
  t.equal(r.code, 2);
  t.match(r.stderr, /not both/);
  r = await ibcmd(['--no-such-option']);
  t.equal(r.code, 2);
  t.match(r.stderr, /unknown option '--no-such-option'/);
  t.same(fs.readdirSync(home), [], 'nothing was created by refused commands');
});

t.test('-a init creates the home, the config, a 0600 credential and the sandbox; twice is harmless', async (t) => {
  let r = await ibcmd(['-a', 'init', '--ip', ip, '--port', String(port)]);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /ibcmd\.conf created/);
  t.match(r.stdout, /ibcmd\.credential created \(mode 0600\)/);
  t.equal(fs.statSync(cred).mode & 0o777, 0o600);
  t.equal(fs.statSync(path.join(home, 'keys')).mode & 0o777, 0o700);
  t.ok(fs.statSync(path.join(home, 'file', 'ibcmd')).isDirectory());
  const c = parseJsonText(fs.readFileSync(conf, 'utf8'), conf) as { server: { ip: string; port: number }; exec: { path: string[] } };
  t.same(c.server, { ip, port });
  t.ok(c.exec.path.some((p) => p.endsWith('/scripts')), 'the project scripts/ folder is on the command PATH');
  const secret = fs.readFileSync(cred, 'utf8');
  r = await ibcmd(['-a', 'init', '--ip', '127.0.0.1', '--port', '1']);
  t.equal(r.code, 0);
  t.match(r.stdout, /WARN : .*ibcmd\.conf exist !/);
  t.match(r.stdout, /WARN : .*ibcmd\.credential exist !/);
  t.equal(fs.readFileSync(cred, 'utf8'), secret, 'the credential is kept');
  t.same((parseJsonText(fs.readFileSync(conf, 'utf8'), conf) as { server: unknown }).server, { ip, port }, 'the config is kept');
  r = await ibcmd(['-a', 'check']);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /ibcmd\.conf ok/);
});

t.test('-a check names the file and the key; start refuses a bad setup', async (t) => {
  const good = fs.readFileSync(conf, 'utf8');
  t.teardown(() => fs.writeFileSync(conf, good));
  fs.writeFileSync(conf, '{ "server": ');
  let r = await ibcmd(['-a', 'check']);
  t.equal(r.code, 3);
  t.match(r.stderr, /config file .*ibcmd\.conf is not valid JSON/);
  const c = parseJsonText(good, conf) as Record<string, unknown> & { exec: Record<string, unknown> };
  fs.writeFileSync(conf, JSON.stringify({ ...c, exec: { ...c.exec, max_output_size: 0 } }));
  r = await ibcmd(['-a', 'check']);
  t.equal(r.code, 3);
  t.match(r.stderr, /key \/exec\/max_output_size must be >= 1/);
  fs.writeFileSync(conf, JSON.stringify({ ...c, shell: true }));
  r = await ibcmd(['-a', 'check']);
  t.match(r.stderr, /key \/shell is not a known key/);
  fs.writeFileSync(conf, JSON.stringify({ ...c, white_list: ['ls', ''] }));
  r = await ibcmd(['-a', 'check']);
  t.equal(r.code, 3);
  t.match(r.stderr, /white_list/);
  fs.writeFileSync(conf, good);
  fs.chmodSync(cred, 0o644);
  r = await ibcmd(['-a', 'check']);
  t.equal(r.code, 3);
  t.match(r.stderr, /readable by others \(mode 644\): chmod 600 it/);
  r = await ibcmd(['-a', 'start']);
  t.not(r.code, 0, 'start refuses a credential others can read');
  t.match(r.stderr, /chmod 600/);
  t.same(processesOfHome(home), [], 'no daemon left behind');
  fs.chmodSync(cred, 0o600);
});

t.test('start, start again, status, kill', async (t) => {
  let r = await ibcmd(['-a', 'start']);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, new RegExp(`ibcmd start ok , pid\\[\\d+\\] ip\\[${ip.replace(/\./g, '\\.')}\\] port\\[${port}\\]`));
  const pid = Number(fs.readFileSync(path.join(home, 'run', 'ibcmd.pid'), 'utf8'));
  t.ok(isAlive(pid));
  r = await ibcmd(['-a', 'start']);
  t.equal(r.code, 7);
  t.match(r.stderr, new RegExp(`already running with pid ${pid}`));
  r = await ibcmd(['-s', 'status']);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, new RegExp(`│ ${pid} `));
  r = await ibcmd(['-a', 'kill']);
  t.equal(r.code, 0, r.stderr);
  t.notOk(isAlive(pid), 'killed');
  t.notOk(fs.existsSync(path.join(home, 'run', 'ibcmd.pid')), 'stale pid file removed');
  r = await ibcmd(['-a', 'stop']);
  t.equal(r.code, 7);
  t.match(r.stderr, /ibcmd is not running/);
  r = await ibcmd(['-a', 'start']);
  t.equal(r.code, 0, `starts again after a kill: ${r.stderr}`);
  r = await ibcmd(['-a', 'stop']);
  t.equal(r.code, 0, r.stderr);
  t.same(processesOfHome(home), [], 'nothing left');
});
