/**
 * A real multi-host cluster (issue 13): three hosts in network namespaces (test/helpers/netns.ts,
 * scripts/netns-cluster.sh). A client on h1 calls server node ECIF (h2, h3) through ibac; the
 * cluster scripts roll the servers and agents over OpenSSH and over ibcmd while it calls:
 * 0 failed calls, one host at a time, and a failed pre-check touches no host.
 */
import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { ClientLoad, clusterConf, withIbcmd, projectOrSkip } from './netns-project.js';
import { resultLines } from './run-script.js';

const project = await projectOrSkip(t, 3);
if (project) {
  const { p, sshSkip } = project;
  await withIbcmd(p);
  const admin = p.c.host('h1');

  const roll = (tool: 'ibas' | 'ibma', verb: string, transport: 'ssh' | 'ibcmd') =>
    p.c.script(admin, p.admin, `${tool}_cluster.sh`, ['ALL', verb], { IBP_CLUSTER_CONF: clusterConf(p, transport), IBP_CLUSTER_VERBOSE: '1' });

  t.test('a client host calls a server node of two hosts', async (t) => {
    const load = new ClientLoad(p);
    await load.more(200);
    const s = await load.stop();
    t.equal(s.failed, 0, JSON.stringify(s));
    t.equal(Object.keys(s.hosts).length, 2, `both hosts served: ${JSON.stringify(s.hosts)}`);
    for (const srv of p.servers) t.ok(s.hosts[`${srv.host.ip}:18001`] > 0, `${srv.host.name} served`);
  });

  for (const transport of ['ssh', 'ibcmd'] as const) {
    t.test(`ibas_cluster.sh ALL restart_graceful over ${transport} under load: 0 failed calls, one host at a time`, { skip: transport === 'ssh' ? sshSkip : undefined }, async (t) => {
      const before = p.servers.map((s) => s.ibasPid());
      const load = new ClientLoad(p);
      await load.more(100);
      const r = await roll('ibas', 'restart_graceful', transport);
      t.equal(r.code, 0, r.stdout + r.stderr);
      const lines = resultLines(r.stdout);
      for (const s of p.servers) t.match(lines.get(`ECIF ${s.host.ip}:${transport === 'ssh' ? 22 : 26001}`), { status: 'OK', transport }, `${s.host.name} rolled`);
      // the rolled servers run new generations; the next calls land on them
      const after = p.servers.map((s) => s.ibasPid());
      after.forEach((pid, i) => t.not(pid, before[i], `${p.servers[i]!.host.name} has a new manager`));
      await load.more(100);
      const s = await load.stop();
      t.equal(s.failed, 0, `no failed call: ${JSON.stringify(s)}`);
      // one host at a time: the second host's roll started after the first one's new generation was ready
      const started = p.servers.map((srv) => fs.statSync(path.join(srv.home, 'run', 'ibas.pid')).mtimeMs);
      t.ok(started[0]! <= started[1]!, 'hosts rolled in file order');
    });
  }

  t.test('ibma_cluster.sh ALL restart over ssh under load: clients keep calling from shm', { skip: sshSkip }, async (t) => {
    const load = new ClientLoad(p);
    await load.more(100);
    const r = await roll('ibma', 'restart', 'ssh');
    t.equal(r.code, 0, r.stdout + r.stderr);
    await load.more(100);
    const s = await load.stop();
    t.equal(s.failed, 0, JSON.stringify(s));
  });

  t.test('a host failing its pre-check: exit non-zero, no host touched', async (t) => {
    const broken = p.servers[1]!;
    const conf = path.join(broken.home, 'etc', 'ibas.conf');
    const good = fs.readFileSync(conf);
    fs.writeFileSync(conf, '{ "server": ');
    t.teardown(() => fs.writeFileSync(conf, good));
    const before = p.servers.map((s) => s.ibasPid());
    const r = await roll('ibas', 'restart_graceful', 'ibcmd');
    t.equal(r.code, 1, r.stdout + r.stderr);
    t.match(r.stderr, /1 host\(s\) failed the pre-check: restart_graceful touched no host/);
    t.match(resultLines(r.stdout).get(`ECIF ${broken.host.ip}:26001`), { status: /^FAILED/ });
    t.same(p.servers.map((s) => s.ibasPid()), before, 'every manager is the one from before');
  });
}
