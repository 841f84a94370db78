/**
 * Scale-out and scale-in in one command on a real multi-host cluster (issue 13; hosts in network
 * namespaces, test/scripts/netns-project.ts, plus a bare fourth host h4 with a release and sshd):
 * `ibms -a scale_out --node ECIF --host h4` under a client load — the clients start using h4 once
 * it serves; run again it changes nothing; `-a scale_in` drains h4 and stops it: 0 failed calls.
 */
import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { ConfigSpace } from '../../lib/shm/config-space.js';
import { ROOT, waitFor } from '../helpers/procs.js';
import { ClientLoad, projectOrSkip } from './netns-project.js';

const project = await projectOrSkip(t, 4);
if (project) {
  const { p, sshSkip } = project;
  const c = p.c;
  const h4 = c.host('h4');
  const h4Home = c.home('ecif-h4');
  fs.symlinkSync(ROOT, path.join(h4Home, 'current'));
  if (sshSkip) t.skip(`scale-out over ssh: ${sshSkip}`);
  else {
    const r = c.sshd(h4, h4Home);
    if (r.code !== 0) throw new Error(`sshd on h4: ${r.stderr}`);
    // the registry home is the admin home of scale_out: its key and known_hosts
    const { key, knownHosts } = c.sshFiles();
    fs.copyFileSync(key, path.join(p.reg.home, 'keys', 'ssh_id_ed25519'));
    fs.chmodSync(path.join(p.reg.home, 'keys', 'ssh_id_ed25519'), 0o600);
    fs.copyFileSync(knownHosts, path.join(p.reg.home, 'etc', 'ssh_known_hosts'));
  }
  const ibms = (args: string[]) => c.tool(p.reg.host, p.reg.home, 'ibms', args, 180_000);
  const ecifHosts = (): string[] => {
    const space = ConfigSpace.openKey(p.client.indexKey);
    try {
      return space.hosts('ECIF').map((h) => `${h.ip}:${h.port}`);
    } finally {
      space.close();
    }
  };
  const scaleArgs = (kind: string) => ['-a', `scale_${kind}`, '--node', 'ECIF', '--host', `${h4.ip}:18001`, '--user', 'root', '--transport', 'ssh', '--json'];
  type Row = { step: string; result: string; detail: string };

  t.test('scale_out of a third server host under load: clients start using it', { skip: sshSkip }, async (t) => {
    const load = new ClientLoad(p);
    await load.more(50);
    const r = await ibms(scaleArgs('out'));
    t.equal(r.code, 0, r.stdout + r.stderr);
    const rows = JSON.parse(r.stdout) as Row[];
    t.same(rows.map((x) => x.step), ['reach', 'release', 'init_agent', 'init_server', 'cluster_file', 'start_agent', 'start_server', 'heartbeat', 'register', 'distribute']);
    t.same(rows.filter((x) => x.result === 'FAILED'), [], 'no step failed');
    t.equal(rows.find((x) => x.step === 'release')?.result, 'SKIPPED', 'the host had its release');
    t.match(fs.readFileSync(path.join(p.reg.home, 'etc', 'ibp_cluster.conf'), 'utf8'), `ECIF ${h4.ip} root ssh`);
    await waitFor('h4 in the client\'s config space', () => ecifHosts().includes(`${h4.ip}:18001`), 30_000, 50);
    await load.more(400);
    const s = await load.stop();
    t.equal(s.failed, 0, JSON.stringify(s));
    t.ok((s.hosts[`${h4.ip}:18001`] ?? 0) > 0, `the clients use h4: ${JSON.stringify(s.hosts)}`);
  });

  t.test('scale_out again: idempotent', { skip: sshSkip }, async (t) => {
    const r = await ibms(scaleArgs('out'));
    t.equal(r.code, 0, r.stdout + r.stderr);
    const rows = JSON.parse(r.stdout) as Row[];
    for (const x of rows) {
      if (x.step === 'reach' || x.step === 'heartbeat') t.equal(x.result, 'DONE', x.step);
      else t.equal(x.result, 'SKIPPED', `${x.step}: ${x.detail}`);
    }
  });

  t.test('scale_in under load: drained, stopped, unregistered, 0 failed calls', { skip: sshSkip }, async (t) => {
    const load = new ClientLoad(p);
    await load.more(100);
    const r = await ibms(scaleArgs('in'));
    t.equal(r.code, 0, r.stdout + r.stderr);
    const rows = JSON.parse(r.stdout) as Row[];
    t.same(rows.map((x) => [x.step, x.result]), [['unregister', 'DONE'], ['reach', 'DONE'], ['drain', 'DONE'], ['stop_server', 'DONE'], ['stop_agent', 'DONE'], ['cluster_file', 'DONE']]);
    t.notOk(ecifHosts().includes(`${h4.ip}:18001`), 'clients no longer see h4');
    t.notOk(fs.existsSync(path.join(h4Home, 'run', 'ibas.pid')), 'ibas on h4 stopped');
    t.notMatch(fs.readFileSync(path.join(p.reg.home, 'etc', 'ibp_cluster.conf'), 'utf8'), h4.ip);
    await load.more(100);
    const s = await load.stop();
    t.equal(s.failed, 0, JSON.stringify(s));
    const again = await ibms(scaleArgs('in'));
    t.equal(again.code, 0, again.stderr);
    t.same((JSON.parse(again.stdout) as Row[]).filter((x) => x.result === 'DONE').map((x) => x.step), ['reach'], 'scale_in again changes nothing');
  });

  t.test('a bad --transport or --host is refused with usage', async (t) => {
    const r = await ibms(['-a', 'scale_out', '--node', 'ECIF', '--host', `${h4.ip}:18001`, '--transport', 'telnet']);
    t.equal(r.code, 2);
    t.match(r.stderr, /--transport.*"telnet" is not one of ssh, ibcmd/);
    const r2 = await ibms(['-a', 'scale_out', '--node', 'ECIF', '--host', 'h4']);
    t.equal(r2.code, 2);
    t.match(r2.stderr, /--host.*"h4" is not an IPv4 address/);
  });
}
