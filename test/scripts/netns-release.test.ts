/**
 * Releases on a real multi-host cluster (issue 13; hosts in network namespaces, see
 * test/scripts/netns-project.ts): `ibp_release.sh build` makes a release with its checksum,
 * `push ALL` sends it over ssh and over ibcmd, each host checks the checksum, unpacks it beside
 * the running release and switches `current`; the servers keep their code until the next
 * `ibas_cluster.sh ALL restart_graceful`, which runs the new release; `rollback` switches back.
 * A client calls all along: 0 failed calls.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConfigSpace } from '../../lib/shm/config-space.js';
import { must, patchJson } from '../helpers/netns.js';
import { ROOT, waitFor } from '../helpers/procs.js';
import { ClientLoad, clusterConf, withIbcmd, projectOrSkip } from './netns-project.js';

const project = await projectOrSkip(t, 3);
if (project) {
  const { p, sshSkip } = project;
  if (sshSkip) t.skip(`release tests over ssh: ${sshSkip}`);
  await withIbcmd(p);
  const admin = p.c.host('h1');
  const roll = (tool: 'ibas' | 'ibma', verb: string, transport: 'ssh' | 'ibcmd') =>
    p.c.script(admin, p.admin, `${tool}_cluster.sh`, ['ALL', verb], { IBP_CLUSTER_CONF: clusterConf(p, transport), IBP_CLUSTER_VERBOSE: '1' });

  if (!sshSkip) t.test('a release: built, pushed to ALL (checksum checked there), run by the next restart_graceful, rolled back', async (t) => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'ibp-release-'));
    t.teardown(() => fs.rmSync(out, { recursive: true, force: true }));
    const built = await p.c.script(admin, p.admin, 'ibp_release.sh', ['build', '-o', out, '--with-node-modules']);
    t.equal(built.code, 0, built.stderr);
    const tarball = built.stdout.trim().split('\n').pop()!;
    const id = path.basename(tarball, '.tar.gz');
    t.match(id, /^ibp-ts-\d+\.\d+\.\d+-\d{14}-\w+$/);
    t.ok(fs.existsSync(`${tarball}.sha256`), 'a checksum file beside it');

    // a corrupted copy: refused by the pusher (it does not match the .sha256 it came with) and by
    // the host's unpacker (it does not match the checksum it is told), and nothing is switched
    const bad = path.join(out, `${id}-bad.tar.gz`);
    const bytes = fs.readFileSync(tarball);
    bytes[bytes.length >> 1] ^= 0xff;
    fs.writeFileSync(bad, bytes);
    const goodSha = fs.readFileSync(`${tarball}.sha256`, 'utf8').split(' ')[0]!;
    fs.writeFileSync(`${bad}.sha256`, `${goodSha}  ${path.basename(bad)}\n`);
    const env = { IBP_CLUSTER_CONF: clusterConf(p, 'ssh'), IBP_CLUSTER_VERBOSE: '1' };
    let r = await p.c.script(admin, p.admin, 'ibp_release.sh', ['push', 'ALL', bad], env);
    t.equal(r.code, 1, 'the pusher refuses a tarball that does not match its checksum');
    t.match(r.stderr, /does not match its \.sha256/);
    const unpack = spawnSync('bash', [path.join(ROOT, 'scripts', 'ibp_unpack.sh'), bad, goodSha], { env: { ...process.env, IBP_HOME: p.servers[0]!.home }, encoding: 'utf8' });
    t.equal(unpack.status, 1, 'the host refuses it too');
    t.match(unpack.stderr, /checksum mismatch .*release refused/);
    for (const s of p.servers) t.equal(fs.readlinkSync(path.join(s.home, 'current')), ROOT, `${s.host.name} still runs the old release`);

    for (const transport of ['ssh', 'ibcmd'] as const) {
      r = await p.c.script(admin, p.admin, 'ibp_release.sh', ['push', 'ALL', tarball], { IBP_CLUSTER_CONF: clusterConf(p, transport), IBP_CLUSTER_VERBOSE: '1' });
      t.equal(r.code, 0, `push over ${transport}: ${r.stdout}${r.stderr}`);
      for (const s of p.servers) {
        t.equal(fs.readlinkSync(path.join(s.home, 'current')), `releases/${id}`, `${s.host.name}: current is the new release (${transport})`);
        t.ok(fs.existsSync(path.join(s.home, 'releases', id, 'dist', 'bin', 'ibas.js')), 'unpacked beside the running one');
      }
    }
    // the running servers still run the old code until the roll
    // process titles hide the command line: the native modules a manager mapped tell its release
    const cmdline = (pid: number | undefined): string => (pid ? fs.readFileSync(`/proc/${pid}/maps`, 'utf8') : '');
    for (const s of p.servers) t.notMatch(cmdline(s.ibasPid()), `releases/${id}`);
    const load = new ClientLoad(p);
    await load.more(50);
    r = await roll('ibas', 'restart_graceful', 'ssh');
    t.equal(r.code, 0, r.stdout + r.stderr);
    for (const s of p.servers) t.match(cmdline(s.ibasPid()), `releases/${id}/node_modules/`, `${s.host.name} runs the new release`);
    r = await p.c.script(admin, p.admin, 'ibp_release.sh', ['rollback', 'ALL'], env);
    t.equal(r.code, 0, r.stdout + r.stderr);
    for (const s of p.servers) t.equal(fs.readlinkSync(path.join(s.home, 'current')), ROOT, `${s.host.name}: current is the previous release again`);
    r = await roll('ibas', 'restart_graceful', 'ssh');
    t.equal(r.code, 0, r.stdout + r.stderr);
    for (const s of p.servers) t.match(cmdline(s.ibasPid()), `${ROOT}/node_modules/`, `${s.host.name} runs the previous release again`);
    await load.more(50);
    const s = await load.stop();
    t.equal(s.failed, 0, `no failed call across both rolls: ${JSON.stringify(s)}`);
  });
  t.test('second_config_dump over ibcmd: a registry started on another host from that copy serves the cluster', async (t) => {
    const standbyHost = p.servers[1]!;
    // the registry sends every save to h3's ibcmd agent (the cluster's ibcmd credential)
    fs.copyFileSync(path.join(p.admin, 'keys', 'ibcmd.credential'), path.join(p.reg.home, 'keys', 'ibcmd.credential'));
    fs.chmodSync(path.join(p.reg.home, 'keys', 'ibcmd.credential'), 0o600);
    patchJson(path.join(p.reg.home, 'etc', 'ibms.conf'), { misc: { second_config_dump: `ibcmd://${standbyHost.host.ip}:26001` } });
    await p.ibms(['-a', 'save_config']); // a restart loads what was saved
    must(await p.c.tool(admin, p.reg.home, 'ibms', ['-a', 'stop'], 120_000), 'ibms -a stop');
    must(await p.c.tool(admin, p.reg.home, 'ibms', ['-a', 'start'], 120_000), 'ibms -a start');
    await p.ibms(['-a', 'set_node_kv', '--node', 'ECIF', '--key', 'copied', '--value', 'yes']);
    await p.ibms(['-a', 'distribute_config']);
    const saved = await p.ibms(['-a', 'save_config']);
    for (const f of ['ibp_nodes.conf', 'ibp_apps.conf', 'ibp_projects.conf', 'node_ECIF.credential', 'node_CHANNEL.credential']) {
      t.match(saved, `ibcmd://${standbyHost.host.ip}:26001/${f} saved`, `${f} sent`);
    }
    // the operator's restore on h3: a registry home with the copy, started there; the old one stops
    const sandbox = path.join(standbyHost.home, 'file', 'ibcmd');
    const standby = p.c.home('reg-standby');
    must(await p.c.tool(standbyHost.host, standby, 'ibms', ['-a', 'init', '--ip', standbyHost.host.ip, '--port', '16001']), 'standby ibms -a init');
    for (const f of ['ibp_nodes.conf', 'ibp_apps.conf', 'ibp_projects.conf']) fs.copyFileSync(path.join(sandbox, f), path.join(standby, 'etc', f));
    for (const f of ['node_ECIF.credential', 'node_CHANNEL.credential']) fs.copyFileSync(path.join(sandbox, f), path.join(standby, 'keys', f));
    fs.copyFileSync(path.join(p.reg.home, 'so', 'ibp_test_echo.so'), path.join(standby, 'so', 'ibp_test_echo.so'));
    must(await p.c.tool(standbyHost.host, standby, 'ibms', ['-a', 'start'], 120_000), 'standby ibms -a start');
    must(await p.c.tool(admin, p.reg.home, 'ibms', ['-a', 'stop'], 120_000), 'old ibms -a stop');
    const nodes = must(await p.c.tool(standbyHost.host, standby, 'ibms', ['-s', 'nodes', '--json']), 'standby -s nodes');
    t.match(nodes, /"copied": "yes"/, 'the standby holds the copied config');
    // the ECIF agent of h2 follows the standby (re-pointed, resync by epoch) and gets a change made there
    const agent = p.servers[0]!;
    patchJson(path.join(agent.home, 'etc', 'ibma.conf'), { ibms: { ip: standbyHost.host.ip } });
    must(await p.c.tool(agent.host, agent.home, 'ibma', ['-a', 'stop'], 120_000), 'ibma -a stop');
    must(await p.c.tool(agent.host, agent.home, 'ibma', ['-a', 'start'], 120_000), 'ibma -a start');
    must(await p.c.tool(standbyHost.host, standby, 'ibms', ['-a', 'set_node_kv', '--node', 'ECIF', '--key', 'from', '--value', 'standby']), 'set_node_kv');
    must(await p.c.tool(standbyHost.host, standby, 'ibms', ['-a', 'distribute_config']), 'distribute');
    const indexKey = (JSON.parse(fs.readFileSync(path.join(agent.home, 'etc', 'ibma.conf'), 'utf8')) as { shm: { index_key: number } }).shm.index_key;
    await waitFor('the change made on the standby in h2\'s config space', () => {
      const space = ConfigSpace.openKey(indexKey);
      try {
        return space.kv('ECIF', 'from') === 'standby' && space.kv('ECIF', 'copied') === 'yes';
      } finally {
        space.close();
      }
    }, 30_000, 50);
    t.pass('the agent serves config from the standby registry');
  });
}
