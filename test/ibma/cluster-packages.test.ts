/**
 * App packages with a real ibms: the agent of a server node installs so/<bin> with the registry's
 * sha256, the agent of a client node does not and never asks for it (the bundle's package_bins,
 * the registry's own rule: not one 'package refused' in ibms's log, even for a package smaller
 * than ibms's 403 answer); after the package is replaced in the registry's so/
 * and `ibms -a update_app` + `-a distribute_config`, the new package lands atomically (every read
 * of the file during the update is a whole old or a whole new package) with a verified hash.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import type { ConfigSpace } from '../../lib/shm/config-space.js';
import { loopbackIp, waitFor } from '../helpers/procs.js';
import { makeAgentHome, openSpace, type AgentHome } from './agent-home.js';
import { sha256 } from './fake-ibms.js';
import { makeIbms, type IbmsHome } from './ibms-home.js';

/** The file's root test: what outlives a subtest (readers) is torn down with it. */
const top = t;

const ip = loopbackIp();
const V1 = crypto.randomBytes(2 * 1024 * 1024);
const V2 = crypto.randomBytes(3 * 1024 * 1024);
/** A package smaller than ibms's 403 answer (the demo's ibp_ts_echo.mjs is 141 bytes). */
const TINY = Buffer.from('export async function main(ctx) {\n  return ctx.reply(ctx.request);\n}\n');
let reg: IbmsHome;
let srv: AgentHome;
let cli: AgentHome;
let srvSpace: ConfigSpace;

t.before(async () => {
  const root = t.testdir();
  reg = await makeIbms(t, ip, root);
  fs.writeFileSync(path.join(reg.home, 'so', 'pay.so'), V1);
  fs.writeFileSync(path.join(reg.home, 'so', 'tiny.mjs'), TINY);
  reg.writeData({
    nodes: [
      { node: 'PAYSRV', invalid: 0, hosts: [{ ip: '127.0.0.1', port: 18201 }], kvs: {} },
      { node: 'PAYCLI', invalid: 0, hosts: [], kvs: {} },
    ],
    apps: [
      { app: 'PAY', desc: 'payment', bin: 'pay.so', timeout: 3, timeout2: 0, invalid: 0, server_node: '' },
      { app: 'TINY', desc: 'a small JS app', bin: 'tiny.mjs', timeout: 3, timeout2: 0, invalid: 0, server_node: 'PAYSRV' },
    ],
    projects: [{ project: 'pay', server_nodes: ['PAYSRV'], client_nodes: ['PAYCLI'], apps: ['PAY', 'TINY'] }],
  });
  await reg.start();
  const [c1, c2] = await Promise.all([reg.credential('PAYSRV'), reg.credential('PAYCLI')]);
  srv = await makeAgentHome(t, { root, node: 'PAYSRV', ibmsIp: ip, ibmsPort: reg.port, credential: c1 });
  cli = await makeAgentHome(t, { root, node: 'PAYCLI', ibmsIp: ip, ibmsPort: reg.port, credential: c2 });
});

t.test('the server node gets the package with the registry\'s hash, the client node does not', async (t) => {
  const [a, b] = await Promise.all([srv.ibma(['-a', 'start']), cli.ibma(['-a', 'start'])]);
  t.equal(a.code, 0, a.stderr);
  t.equal(b.code, 0, b.stderr);
  srvSpace = await openSpace(top, srv.indexKey);
  const file = path.join(srv.home, 'so', 'pay.so');
  t.equal(sha256(fs.readFileSync(file)), sha256(V1), 'so/pay.so is the registry\'s package');
  t.equal(srvSpace.app('PAY')?.sha256, sha256(V1), 'and the space names the same sha256');
  t.equal(sha256(fs.readFileSync(path.join(srv.home, 'so', 'tiny.mjs'))), sha256(TINY), 'and the tiny one');
  t.notOk(fs.existsSync(path.join(cli.home, 'so', 'pay.so')), 'the client node installs nothing');
  t.notOk(fs.existsSync(path.join(cli.home, 'so', 'tiny.mjs')), 'not even the tiny package');
  t.notOk(cli.logLines().some((l) => l.level === 'error'), 'and logs no error for it');
  t.notOk(cli.logLines().some((l) => /package update failed/.test(l.msg)), "no 'package update failed'");
  const st = JSON.parse((await cli.ibma(['-s', 'status', '--json'])).stdout) as { packages_failed?: string[] };
  t.equal(st.packages_failed, undefined, 'status lists no failing package');
  const ibmsLog = fs.readFileSync(path.join(reg.home, 'log', 'ibms_worker.log'), 'utf8');
  t.notMatch(ibmsLog, /package refused , node\[PAYCLI\]/, 'the client node never asked the registry for a package');
  t.match(ibmsLog, /package sent , node\[PAYSRV\] bin\[tiny\.mjs\]/, 'the server node did');
});

t.test('update_app + distribute_config: the new package lands atomically with a verified hash', async (t) => {
  const file = path.join(srv.home, 'so', 'pay.so');
  const tmp = path.join(reg.home, 'so', 'pay.so.tmp');
  fs.writeFileSync(tmp, V2);
  fs.renameSync(tmp, path.join(reg.home, 'so', 'pay.so'));
  await reg.ibms(['-a', 'update_app', '--app', 'PAY']);
  const changed = (await reg.ibms(['-s', 'nodes_changed', '--json'])).stdout;
  t.match(changed, /PAYSRV/, 'the server node is among the changed nodes');

  const seen = new Map<string, number>();
  let stop = false;
  const reader = (async () => {
    while (!stop) {
      let h = 'absent';
      try {
        h = sha256(fs.readFileSync(file));
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      }
      seen.set(h, (seen.get(h) ?? 0) + 1);
      await new Promise((r) => setImmediate(r));
    }
  })();
  await reg.ibms(['-a', 'distribute_config']);
  await waitFor('the new package and config', () => {
    srvSpace.checkSwitch();
    return seen.has(sha256(V2)) && srvSpace.app('PAY')?.sha256 === sha256(V2);
  }, 15_000);
  stop = true;
  await reader;
  for (const h of seen.keys()) t.ok([sha256(V1), sha256(V2), 'absent'].includes(h), `every read is a whole package (${h.slice(0, 12)}: ${seen.get(h)} reads)`);
  t.equal(sha256(fs.readFileSync(file)), sha256(V2));
  t.notOk(fs.existsSync(`${file}.updating`), 'no .updating file left');
  t.ok(srv.logLines().some((l) => l.msg.startsWith(`package installed , bin[pay.so] sha256[${sha256(V2)}]`)), 'logged with its sha256');
});
