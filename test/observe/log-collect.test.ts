/**
 * Central log collection with rsyslog (Debian's rsyslog + rsyslog-relp, installed by
 * scripts/test-setup.sh): the shipped configs (etc/rsyslog/, rendered by scripts/rsyslog-conf.sh)
 * forward every log line of a real ibas home — transaction lines of its workers, the monitor's
 * and event logs — to a collector rsyslogd on loopback, which writes them under
 * <dir>/<host>/<file>, byte for byte. The collector is stopped while transactions go on and
 * started again: no line is lost (RELP + the forwarder's disk-assisted queue).
 */
import t from 'tap';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { setupIbas } from '../ibas/helpers/server.js';
import { TestClient } from '../ibas/helpers/client.js';
import { privateDir } from '../helpers/cluster.js';
import { freePort, loopbackIp, ROOT, waitFor } from '../helpers/procs.js';

const RSYSLOGD = '/usr/sbin/rsyslogd';
const relp = ['/usr/lib/x86_64-linux-gnu/rsyslog/omrelp.so', '/usr/lib/aarch64-linux-gnu/rsyslog/omrelp.so'].some((f) => fs.existsSync(f));

function render(args: string[], out: string): void {
  const r = spawnSyncText('bash', [path.join(ROOT, 'scripts', 'rsyslog-conf.sh'), ...args]);
  fs.writeFileSync(out, r);
}

function spawnSyncText(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

if (!fs.existsSync(RSYSLOGD) || !relp) {
  t.skip('rsyslog with RELP is not installed: run `bash scripts/test-setup.sh` as root (apt-get install rsyslog rsyslog-relp)');
} else {
  t.test('every log line of a host reaches the collector, also across a collector restart', async (t) => {
    const s = await setupIbas(t, { maxCount: 1 });
    const dir = privateDir(t, 'collect');
    const collected = path.join(dir, 'collected');
    for (const d of ['wc', 'wf', 'collected']) fs.mkdirSync(path.join(dir, d));
    // an address of this test's own: no other test's connection can take the port while the
    // collector is down, and the forwarder's reconnects (from 127.0.0.1) can never connect to
    // themselves (a TCP self-connect on 127.0.0.1 when the source port happens to be the port)
    const ip = loopbackIp();
    const port = await freePort(ip);
    render(['collect', collected, ip, String(port), path.join(dir, 'wc')], path.join(dir, 'collector.conf'));
    render(['forward', s.home, 'HOSTA', ip, String(port), path.join(dir, 'wf')], path.join(dir, 'forward.conf'));
    const procs: ChildProcess[] = [];
    const rsyslogd = (name: string): ChildProcess => {
      const p = spawn(RSYSLOGD, ['-n', '-f', path.join(dir, `${name}.conf`), '-i', path.join(dir, `${name}.pid`)], { stdio: ['ignore', 'ignore', fs.openSync(path.join(dir, `${name}.err`), 'a')] });
      procs.push(p);
      return p;
    };
    const stop = async (p: ChildProcess): Promise<void> => {
      if (p.exitCode !== null || p.signalCode !== null) return;
      const exited = new Promise((r) => p.once('exit', r));
      p.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
      if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    };
    t.teardown(async () => {
      for (const p of procs) await stop(p);
    });
    let collector = rsyslogd('collector');
    rsyslogd('forward');
    await s.start();
    const c = await TestClient.connect(s.ip, s.port);
    t.teardown(() => c.socket.destroy());
    const hostDir = path.join(collected, 'HOSTA');
    const logNamed = (suffix: string): string => fs.readdirSync(path.join(s.home, 'log')).find((f) => f.endsWith(suffix))!;
    const workerLog = logNamed('_worker_0.log');
    const at = (file: string): string => {
      try {
        return fs.readFileSync(path.join(hostDir, file), 'utf8');
      } catch {
        return '';
      }
    };
    for (let i = 1; i <= 5; i++) t.equal((await c.call('ibp_test_echo', `before ${i}`, { journal: `COLLECT-${i}` })).rc, 0);
    await waitFor('the first 5 transaction lines at the collector', () => [1, 2, 3, 4, 5].every((i) => at(workerLog).includes(`"journal":"COLLECT-${i}"`)), 30_000, 100);
    t.match(at(logNamed('_monitor.log')), /manager started/, 'the monitor log too');

    await stop(collector);
    t.pass('collector stopped');
    for (let i = 6; i <= 10; i++) t.equal((await c.call('ibp_test_echo', `while down ${i}`, { journal: `COLLECT-${i}` })).rc, 0);
    await new Promise((r) => setTimeout(r, 1500)); // the forwarder has read them and queued them
    t.notMatch(at(workerLog), /COLLECT-6/, 'nothing arrives while the collector is down');
    collector = rsyslogd('collector');
    await waitFor('the 5 lines written while the collector was down', () => [6, 7, 8, 9, 10].every((i) => at(workerLog).includes(`"journal":"COLLECT-${i}"`)), 60_000, 100);

    // byte for byte: every line of the host's worker log is at the collector
    const source = fs.readFileSync(path.join(s.home, 'log', workerLog), 'utf8').split('\n').filter(Boolean);
    const dest = new Set(at(workerLog).split('\n').filter(Boolean));
    const missing = source.filter((l) => !dest.has(l));
    t.same(missing, [], 'no line of the worker log is missing at the collector');
    t.equal((await s.stop()).code, 0);
  });
}
