/**
 * ibas_cluster.sh / ibma_cluster.sh over two real ibcmd agents on two loopback addresses, driven
 * by an ibp_cluster.conf the test writes: node selection, one result line per host, non-zero exit
 * when any host fails, user check, unreachable agents, bad cluster files.
 */
import t from 'tap';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort, loopbackIp } from '../helpers/procs.js';
import { makeAgentHome } from '../ibcmd/agent-home.js';
import { resultLines, runScript } from './run-script.js';

const root = t.testdir({ a: {}, b: {}, admin: { etc: {}, keys: {} } });
const white = ['ibas.sh *', 'ibma.sh *', 'echo *', 'hostname', 'printenv IBP_HOME'];
const a = await makeAgentHome(t, { home: path.join(root, 'a'), start: false, white });
const b = await makeAgentHome(t, { home: path.join(root, 'b'), start: false, white });
const admin = path.join(root, 'admin');
// one credential for the cluster: the admin's copy, also installed on host b before it starts
fs.copyFileSync(a.credFile, b.credFile);
fs.copyFileSync(a.credFile, path.join(admin, 'keys', 'ibcmd.credential'));
for (const h of [a, b]) {
  const r = await h.ibcmd(['-a', 'start']);
  if (r.code !== 0) throw new Error(`ibcmd -a start: ${r.stderr}`);
}
const user = os.userInfo().username;
const downIp = loopbackIp();
const downPort = await freePort(downIp);
const clusterConf = path.join(admin, 'etc', 'ibp_cluster.conf');
fs.writeFileSync(clusterConf, [
  '# node ip user [ibcmd_port [credential_file]]',
  `ECIF ${a.ip} ${user} ${a.port}   # first ECIF host`,
  '',
  `CORE ${b.ip} ${user} ${b.port} keys/ibcmd.credential`,
  `DOWN ${downIp} ${user} ${downPort}`,
  `WRONGUSER ${a.ip} nobody-such ${a.port}`,
].join('\n'));
const cluster = (script: string, args: string[], env?: NodeJS.ProcessEnv) => runScript(script, args, { home: admin, env });

t.test('usage and bad verbs exit 2', async (t) => {
  for (const s of ['ibas_cluster.sh', 'ibma_cluster.sh']) {
    let r = await cluster(s, []);
    t.equal(r.code, 2);
    t.match(r.stderr, new RegExp(`USAGE : ${s} \\[ \\(node\\) \\| ALL \\] \\[ start .*restart_graceful.* \\| cmd \\(cmd\\) \\]`));
    r = await cluster(s, ['ALL', 'explode']);
    t.equal(r.code, 2);
    t.match(r.stderr, /unknown verb "explode"/);
    r = await cluster(s, ['ALL', 'status', 'extra']);
    t.equal(r.code, 2);
    t.match(r.stderr, /"status" takes no arguments/);
    r = await cluster(s, ['ALL', 'cmd']);
    t.equal(r.code, 2);
    t.match(r.stderr, /cmd needs a command/);
  }
  const r = await cluster('ibas_cluster.sh', ['NOSUCH', 'status']);
  t.equal(r.code, 2);
  t.match(r.stderr, /node "NOSUCH" is not in .*ibp_cluster\.conf/);
});

t.test('a node runs on its hosts only; one result line per host', async (t) => {
  const r = await cluster('ibas_cluster.sh', ['ECIF', 'cmd', 'echo', 'hello', 'from', 'ibcmd']);
  t.equal(r.code, 0, r.stderr);
  const lines = resultLines(r.stdout);
  t.equal(lines.size, 1, r.stdout);
  t.same(lines.get(`ECIF ${a.ip}:${a.port}`), { user, transport: 'ibcmd', status: 'OK', last: 'hello from ibcmd' });
  const c = await cluster('ibas_cluster.sh', ['CORE', 'cmd', 'printenv', 'IBP_HOME'], { IBP_CLUSTER_VERBOSE: '1' });
  t.equal(c.code, 0, c.stderr);
  t.equal(resultLines(c.stdout).get(`CORE ${b.ip}:${b.port}`)?.last, b.home, 'the command ran in the agent\'s own home');
  t.match(c.stdout, new RegExp(`\\n    ${b.home.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\n`), 'verbose: the whole output, indented');
});

t.test('the summary is cut at 200 bytes, never inside a UTF-8 character', async (t) => {
  const r = await cluster('ibas_cluster.sh', ['ECIF', 'cmd', 'echo', '└'.repeat(100)]);
  t.equal(r.code, 0, r.stderr);
  t.notMatch(r.stdout, /\uFFFD/, 'no broken character in the output');
  t.equal(resultLines(r.stdout).get(`ECIF ${a.ip}:${a.port}`)?.last, '└'.repeat(66), '66 whole 3-byte characters (198 bytes), the cut one dropped');
});

t.test('ALL: every host in file order; a failing host makes the exit non-zero', async (t) => {
  const r = await cluster('ibas_cluster.sh', ['ALL', 'cmd', 'hostname']);
  t.equal(r.code, 1, 'some hosts failed');
  const out = r.stdout.trim().split('\n');
  t.equal(out.length, 4, r.stdout);
  t.match(out[0], new RegExp(`^ECIF ${a.ip}:${a.port} ${user} ibcmd : OK : ${os.hostname()}$`));
  t.match(out[1], new RegExp(`^CORE ${b.ip}:${b.port} ${user} ibcmd : OK : `));
  t.match(out[2], new RegExp(`^DOWN ${downIp}:${downPort} ${user} ibcmd : FAILED\\(11\\) : .*is not answering \\(ECONNREFUSED\\)`));
  t.match(out[3], /^WRONGUSER .* nobody-such ibcmd : FAILED\(10\) : .*this agent runs as .*, not nobody-such/);
});

t.test('status of ibas and ibma through the agents: each host answers for its own home', async (t) => {
  let r = await cluster('ibas_cluster.sh', ['CORE', 'status']);
  t.equal(r.code, 1, 'ibas is not set up on that host');
  t.match(resultLines(r.stdout).get(`CORE ${b.ip}:${b.port}`), { status: 'FAILED(3)', last: new RegExp(`${b.home}/etc/ibas\\.conf not found`) });
  r = await cluster('ibma_cluster.sh', ['ECIF', 'status']);
  t.equal(r.code, 1);
  t.match(resultLines(r.stdout).get(`ECIF ${a.ip}:${a.port}`), { status: 'FAILED(3)', last: new RegExp(`${a.home}/etc/ibma\\.conf not found`) }, 'ibma_cluster.sh runs ibma.sh');
  r = await cluster('ibas_cluster.sh', ['ECIF', 'cmd', 'cat', '/etc/passwd']);
  t.equal(r.code, 1);
  t.match(r.stdout, /FAILED\(10\) : .*matches no white list pattern/, 'the agent\'s white list applies to cmd');
});

t.test('a bad cluster file is refused with file and line', async (t) => {
  const bad = path.join(admin, 'etc', 'bad.conf');
  const cases: [string, RegExp][] = [
    [`ECIF 300.1.1.1 ${user}`, /bad\.conf:1: "300\.1\.1\.1" is not an IPv4 address/],
    [`# c\nECIF ${a.ip} ${user} 99999`, /bad\.conf:2: transport "99999" must be ibcmd\[:port\], ssh\[:port\] or an ibcmd port 1\.\.65535/],
    [`ECIF ${a.ip} ${user} ${a.port} keys/x extra`, /too many columns/],
    [`EC;IF ${a.ip} ${user}`, /node "EC;IF" is not a node name/],
    [`ECIF ${a.ip}`, /user "" is not a user name/],
  ];
  for (const [text, why] of cases) {
    fs.writeFileSync(bad, text);
    const r = await cluster('ibas_cluster.sh', ['ALL', 'status'], { IBP_CLUSTER_CONF: bad });
    t.equal(r.code, 2, text);
    t.match(r.stderr, why);
    t.equal(r.stdout, '', 'nothing ran');
  }
  const r = await cluster('ibas_cluster.sh', ['ALL', 'status'], { IBP_CLUSTER_CONF: path.join(admin, 'etc', 'missing.conf') });
  t.equal(r.code, 2);
  t.match(r.stderr, /cannot read .*missing\.conf/);
});

t.test('IBP\'s three columns alone mean the default ibcmd port 26001', async (t) => {
  const three = path.join(admin, 'etc', 'three.conf');
  fs.writeFileSync(three, `ECIF ${downIp} ${user}\n`);
  const r = await cluster('ibas_cluster.sh', ['ALL', 'cmd', 'echo', 'x'], { IBP_CLUSTER_CONF: three });
  t.equal(r.code, 1);
  t.match(r.stdout, new RegExp(`^ECIF ${downIp}:26001 ${user} ibcmd : FAILED\\(11\\)`));
});
