/**
 * A real Prometheus (Debian's `prometheus`, installed by scripts/test-setup.sh) scrapes a running
 * cluster — ibms (/metrics in its fastify, scrape token), one ibma and one ibas manager (their own
 * metrics listeners) — and the test reads counters back through Prometheus's HTTP API: the
 * transactions a client made show up per app and result code, the agent's config version and
 * the registry's node count are there. Skips (with the reason) when the binary is not installed.
 */
import t from 'tap';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Cluster, privateDir, type NodeHome, type ServerHome } from '../helpers/cluster.js';
import { freePort, waitFor } from '../helpers/procs.js';
import { TestClient } from '../ibas/helpers/client.js';

const PROMETHEUS = '/usr/bin/prometheus';
const TOKEN = 'scrape-token-0123456789abcdef';

if (!fs.existsSync(PROMETHEUS) || spawnSync(PROMETHEUS, ['--version']).status !== 0) {
  t.skip('prometheus is not installed: run `bash scripts/test-setup.sh` as root (apt-get install prometheus)');
} else {
  t.test('Prometheus scrapes ibms, ibma and ibas and answers their counters', async (t) => {
    const APPS = [{ app: 'ibp_test_echo', bin: 'ibp_test_echo.so', timeout: 10 }, { app: 'ibp_test_rc', bin: 'ibp_test_rc.so', timeout: 10 }];
    const cluster = await Cluster.start(t, { bins: APPS.map((a) => a.bin), ibms: { metrics: { token: TOKEN } } });
    const ip = cluster.ip;
    const [port, ibasMetrics, ibmaMetrics, promPort] = await Promise.all([freePort(ip), freePort(ip), freePort(ip), freePort(ip)]);
    await cluster.configure({
      nodes: { SRV: [`${ip}:${port}`], CLI: [] },
      apps: APPS,
      projects: [{ project: 'P', serverNodes: ['SRV'], clientNodes: ['CLI'], apps: APPS.map((a) => a.app) }],
    });
    const srv: ServerHome = await cluster.server('SRV', { port, maxCount: 2, ibas: { metrics: { ip, port: ibasMetrics } }, ibma: { metrics: { ip, port: ibmaMetrics, token: TOKEN } } });
    await cluster.waitPackages(srv, APPS.map((a) => a.bin));

    // the endpoints' own policy, before Prometheus: the token is required where configured
    const noToken = await fetch(`http://${ip}:${ibmaMetrics}/metrics`);
    t.equal(noToken.status, 401, 'ibma: no token, 401');
    const ibmsNoToken = await fetch(`http://${ip}:${cluster.registryPort}/metrics`);
    t.equal(ibmsNoToken.status, 401, 'ibms: no credential, 401');

    const client = await waitFor('ibas accepting', () => TestClient.connect(ip, port).catch(() => undefined), 30_000, 100);
    t.teardown(() => client.socket.destroy());
    await waitFor('a first transaction', async () => (await client.call('ibp_test_echo', 'ping')).rc === 0, 30_000, 100);
    for (let i = 0; i < 4; i++) t.equal((await client.call('ibp_test_echo', `hello ${i}`)).rc, 0);
    const failed = await client.call('ibp_test_rc', '3:failed on purpose');
    t.not(failed.rc, 0, 'an app failure is a transaction with a non-zero rc');
    t.equal(failed.appRc, 3, 'with the app\'s own rc');
    const ibasText = await (await fetch(`http://${ip}:${ibasMetrics}/metrics`)).text();
    t.match(ibasText, /ibas_app_transactions_total\{app="ibp_test_echo",rc="0"\} 5/, 'the manager counts 5 echo transactions');
    t.match(ibasText, /ibas_app_transaction_duration_seconds_bucket\{app="ibp_test_echo",le="\+Inf"\} 5/, 'and their latency histogram');
    t.match(ibasText, /ibas_workers\{state="(IDLE|LISTEN)"\} [12]/, 'workers by state');

    const dir = privateDir(t, 'prom');
    const targets = (job: string, target: string, token?: string): string => `  - job_name: ${job}\n    scrape_interval: 1s\n    static_configs: [{ targets: ['${target}'] }]\n${token ? `    authorization: { credentials: '${token}' }\n` : ''}`;
    fs.writeFileSync(path.join(dir, 'prometheus.yml'), `global: { scrape_interval: 1s, evaluation_interval: 1s }\nscrape_configs:\n${targets('ibms', `${ip}:${cluster.registryPort}`, TOKEN)}${targets('ibma', `${ip}:${ibmaMetrics}`, TOKEN)}${targets('ibas', `${ip}:${ibasMetrics}`)}`);
    const prom: ChildProcess = spawn(PROMETHEUS, [
      `--config.file=${path.join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${path.join(dir, 'data')}`,
      `--web.listen-address=${ip}:${promPort}`, '--log.level=warn',
    ], { stdio: ['ignore', 'ignore', fs.openSync(path.join(dir, 'prometheus.log'), 'a')] });
    t.teardown(async () => {
      if (prom.exitCode === null && prom.signalCode === null) {
        const exited = new Promise((r) => prom.once('exit', r));
        prom.kill('SIGTERM');
        await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
        if (prom.exitCode === null && prom.signalCode === null) prom.kill('SIGKILL');
      }
    });
    const query = async (q: string): Promise<{ metric: Record<string, string>; value: [number, string] }[]> => {
      const r = await fetch(`http://${ip}:${promPort}/api/v1/query?query=${encodeURIComponent(q)}`).catch(() => undefined);
      if (!r?.ok) return [];
      const j = (await r.json()) as { status: string; data: { result: { metric: Record<string, string>; value: [number, string] }[] } };
      return j.status === 'success' ? j.data.result : [];
    };
    const value = async (q: string): Promise<number | undefined> => {
      const res = await query(q);
      return res.length === 1 ? Number(res[0]!.value[1]) : undefined;
    };
    await waitFor('every target up in Prometheus', async () => (await value('sum(up)')) === 3, 60_000, 250);
    t.equal(await value('ibas_app_transactions_total{app="ibp_test_echo",rc="0"}'), 5, 'Prometheus answers the per-app counter');
    const rcs = await query('ibas_app_transactions_total{app="ibp_test_rc"}');
    t.equal(rcs.length, 1, 'the failed app has one rc series');
    t.not(rcs[0]?.metric.rc, '0', 'under its non-zero result code');
    t.equal(await value('ibas_transactions_total'), 6, 'all transactions of the server');
    t.ok(((await value('ibma_config_version')) ?? 0) >= 1, 'the agent reports the config version it holds');
    t.equal(await value('ibma_registry_up'), 1, 'and that ibms is reachable');
    t.equal(await value('ibms_nodes'), 2, 'ibms reports its nodes');
    t.equal(await value('ibms_sessions{role="ibas"}'), 1, 'and the ibas session');

    // a new call shows up at the next scrape
    t.equal((await client.call('ibp_test_echo', 'one more')).rc, 0);
    await waitFor('the 6th echo in Prometheus', async () => (await value('ibas_app_transactions_total{app="ibp_test_echo",rc="0"}')) === 6, 30_000, 250);
    t.pass('the counter moved in Prometheus after one more call');
    void (srv satisfies NodeHome);
  });
}
