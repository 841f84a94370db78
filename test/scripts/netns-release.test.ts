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
import { NetnsCluster } from '../helpers/netns.js';
import { ROOT } from '../helpers/procs.js';
import { ClientLoad, clusterConf, startProject, withIbcmd, withSsh, type Project } from './netns-project.js';

const c = NetnsCluster.up(t, 3);
if (typeof c === 'string') {
  t.skip(`multi-host cluster tests: ${c}`);
} else {
  const p: Project = await startProject(t, c);
  const sshSkip = withSsh(p);
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
}
