/**
 * Scale-out and scale-in in one command (IBP lists them as "in development"):
 *
 *   ibms -a scale_out --node N --host IP[:PORT] [--user U] [--transport ssh|ibcmd]
 *   ibms -a scale_in  --node N --host IP[:PORT] [--user U] [--transport ssh|ibcmd]
 *
 * Each is a list of steps run in order. Every step first looks whether its work is already done
 * (and then reports SKIPPED), so a command is idempotent and resumes where a failed run stopped;
 * the first failing step ends the run (exit non-zero) with what it saw. The report is one row per
 * step: STEP | RESULT (DONE, SKIPPED, FAILED, NOT_RUN) | DETAIL.
 *
 * scale_out: reach the host → it has a release (`current`) → agent home initialised with the
 * node's credential → (server node) ibas home initialised on IP:PORT → host line in the admin's
 * etc/ibp_cluster.conf → agent running → (server) ibas running → the registry sees its heartbeat
 * (session) → host registered with the node → distribute_config (clients see it only now, once it
 * serves).
 *
 * scale_in: host unregistered + distribute_config (clients stop choosing it) → drained (its
 * heartbeats report no transaction running for two heartbeats in a row, at least
 * `drain_seconds`) → ibas stopped gracefully → agent stopped (config space removed) → host line
 * removed from etc/ibp_cluster.conf.
 *
 * A node is a server node when a project names it in server_nodes; otherwise only the agent runs.
 */
import fs from 'node:fs';
import path from 'node:path';
import { IbpError, errorText } from '../lib/errors.js';
import type { NodeConf, ProjectConf } from '../lib/config/model.js';
import type { IbmsClient } from './client.js';
import { runOnHost, type HostAddress, type RemoteResult, type TransportFiles } from './host-transport.js';
import type { Session } from './sessions.js';

export type StepResult = 'DONE' | 'SKIPPED' | 'FAILED' | 'NOT_RUN';
export interface StepRow { step: string; result: StepResult; detail: string }

export interface ScaleTarget {
  node: string;
  host: HostAddress;
  /** ibas port of a server host (default 18001). */
  ibasPort: number;
  /** The registry's address as the host's agent reaches it. */
  ibms: { ip: string; port: number };
  files: TransportFiles;
  /** The admin's cluster file (etc/ibp_cluster.conf of the admin home). */
  clusterConf: string;
  /** Longest wait for a heartbeat / a drain, ms. */
  waitMs?: number;
  /** Shortest drain, ms (clients' agents need a watch round to see the removal). */
  drainMs?: number;
}

interface Step {
  name: string;
  /** A reason it is already done, or undefined. */
  done?(): Promise<string | undefined>;
  run(): Promise<string>;
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

async function remote(t: ScaleTarget, cmd: string, timeoutMs?: number): Promise<RemoteResult> {
  return runOnHost(t.host, cmd, t.files, timeoutMs);
}

function lastLine(s: string): string {
  return s.trim().split('\n').filter((l) => l.trim() !== '').pop()?.slice(0, 200) ?? '';
}

async function must(t: ScaleTarget, cmd: string, what: string, timeoutMs?: number): Promise<string> {
  const r = await remote(t, cmd, timeoutMs);
  if (r.code !== 0) throw new IbpError('IBP_ERR_REG_SCALE_STEP', { step: what, host: t.host.ip, detail: `exit ${r.code}: ${lastLine(r.output) || '(no output)'}` });
  return lastLine(r.output);
}

async function isServerNode(client: IbmsClient, node: string): Promise<boolean> {
  const r = await client.request<{ projects: ProjectConf[] }>('GET', '/v1/projects');
  return r.projects.some((p) => p.server_nodes.includes(node));
}

async function nodeConf(client: IbmsClient, node: string): Promise<NodeConf> {
  const r = await client.request<{ nodes: NodeConf[] }>('GET', `/v1/nodes?node=${encodeURIComponent(node)}`);
  const n = r.nodes[0];
  if (!n) throw new IbpError('IBP_ERR_REG_NOT_FOUND', { kind: 'node', name: node });
  return n;
}

async function sessionsOf(client: IbmsClient, t: ScaleTarget): Promise<Session[]> {
  const r = await client.request<{ sessions: Session[] }>('GET', '/v1/sessions');
  return r.sessions.filter((s) => s.node === t.node && s.ip === t.host.ip);
}

async function waitUntil(what: string, t: ScaleTarget, cond: () => Promise<string | undefined>): Promise<string> {
  const deadline = Date.now() + (t.waitMs ?? 60_000);
  for (;;) {
    const ok = await cond();
    if (ok !== undefined) return ok;
    if (Date.now() > deadline) throw new IbpError('IBP_ERR_REG_SCALE_STEP', { step: what, host: t.host.ip, detail: `not seen within ${t.waitMs ?? 60_000} ms` });
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** The line of this host in the cluster file. */
function clusterLine(t: ScaleTarget): string {
  const port = t.host.port;
  return `${t.node} ${t.host.ip} ${t.host.user} ${t.host.transport}${port ? `:${port}` : ''}`;
}

function clusterFileHas(t: ScaleTarget): boolean {
  if (!fs.existsSync(t.clusterConf)) return false;
  return fs.readFileSync(t.clusterConf, 'utf8').split('\n').some((l) => {
    const [node, ip] = l.replace(/#.*/, '').trim().split(/\s+/);
    return node === t.node && ip === t.host.ip;
  });
}

function clusterFileEdit(t: ScaleTarget, add: boolean): void {
  const lines = fs.existsSync(t.clusterConf) ? fs.readFileSync(t.clusterConf, 'utf8').replace(/\n$/, '').split('\n') : ['# node ip user transport [credential]'];
  const kept = lines.filter((l) => {
    const [node, ip] = l.replace(/#.*/, '').trim().split(/\s+/);
    return !(node === t.node && ip === t.host.ip);
  });
  if (add) kept.push(clusterLine(t));
  fs.mkdirSync(path.dirname(t.clusterConf), { recursive: true });
  const tmp = `${t.clusterConf}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, `${kept.join('\n')}\n`);
  fs.renameSync(tmp, t.clusterConf);
}

function scaleOutSteps(client: IbmsClient, t: ScaleTarget, server: boolean): Step[] {
  const hostKey = `${t.host.ip}:${t.ibasPort}`;
  const registered = async (): Promise<boolean> => (await nodeConf(client, t.node)).hosts.some((h) => h.ip === t.host.ip && h.port === t.ibasPort);
  const steps: Step[] = [
    { name: 'reach', run: async () => `reached as ${t.host.user} over ${t.host.transport}: ${await must(t, 'hostname', 'reach')}` },
    {
      // the tools answer with their own exit codes (< 10); a shell's 127 or the agent's refusal mean no release
      name: 'release',
      done: async () => ((await remote(t, 'ibma -a check')).code < 10 ? 'the host runs the tools of its current release' : undefined),
      run: async () => {
        throw new IbpError('IBP_ERR_REG_SCALE_STEP', { step: 'release', host: t.host.ip, detail: 'no release answers there (ibma not found): push one first (scripts/ibp_release.sh push)' });
      },
    },
    {
      name: 'init_agent',
      done: async () => ((await remote(t, 'ibma -a check')).code === 0 ? 'its ibma.conf checks out' : undefined),
      run: async () => {
        const cred = (await client.request<{ credential: string }>('GET', `/v1/nodes/${encodeURIComponent(t.node)}/credential`)).credential;
        return must(t, `ibma -a init --node ${shellQuote(t.node)} --ibms-ip ${t.ibms.ip} --ibms-port ${t.ibms.port} --credential ${shellQuote(cred)}`, 'init_agent');
      },
    },
  ];
  if (server) {
    steps.push({
      name: 'init_server',
      done: async () => ((await remote(t, 'ibas -a check')).code === 0 ? 'its ibas.conf checks out' : undefined),
      run: () => must(t, `ibas -a init --ip ${t.host.ip} --port ${t.ibasPort}`, 'init_server'),
    });
  }
  steps.push(
    {
      name: 'cluster_file',
      done: async () => (clusterFileHas(t) ? `${path.basename(t.clusterConf)} has the host` : undefined),
      run: async () => {
        clusterFileEdit(t, true);
        return `added "${clusterLine(t)}" to ${t.clusterConf}`;
      },
    },
    {
      name: 'start_agent',
      done: async () => ((await remote(t, 'ibma.sh status')).code === 0 ? 'ibma is running' : undefined),
      run: () => must(t, 'ibma.sh start', 'start_agent'),
    },
  );
  if (server) {
    steps.push(
      {
        name: 'start_server',
        done: async () => ((await remote(t, 'ibas.sh status')).code === 0 ? 'ibas is running' : undefined),
        run: () => must(t, 'ibas.sh start', 'start_server'),
      },
      {
        name: 'heartbeat',
        run: () => waitUntil('heartbeat', t, async () => {
          const s = (await sessionsOf(client, t)).find((x) => x.role === 'ibas' && x.port === t.ibasPort);
          return s ? `ibas pid ${s.pid} reports load ${s.load ?? '-'}` : undefined;
        }),
      },
    );
  } else {
    steps.push({
      name: 'heartbeat',
      run: () => waitUntil('heartbeat', t, async () => {
        const s = (await sessionsOf(client, t)).find((x) => x.role === 'ibma');
        return s ? `ibma pid ${s.pid} holds a session` : undefined;
      }),
    });
  }
  if (server) {
    steps.push({
      name: 'register',
      done: async () => ((await registered()) ? `${hostKey} is a host of ${t.node}` : undefined),
      run: async () => {
        await client.request('POST', `/v1/nodes/${encodeURIComponent(t.node)}/hosts`, { ip: t.host.ip, port: t.ibasPort });
        return `${hostKey} added to ${t.node}`;
      },
    });
  }
  steps.push({
    name: 'distribute',
    done: async () => ((await client.request<{ nodes: string[] }>('GET', '/v1/nodes_changed')).nodes.length === 0 ? 'nothing changed since the last distribution' : undefined),
    run: async () => {
      const r = await client.request<{ distributed: { node: string; version: number }[] }>('POST', '/v1/config/distribute');
      return `distributed to ${r.distributed.map((d) => `${d.node}@${d.version}`).join(' ')}`;
    },
  });
  return steps;
}

function scaleInSteps(client: IbmsClient, t: ScaleTarget, server: boolean): Step[] {
  const steps: Step[] = [];
  if (server) {
    steps.push({
      name: 'unregister',
      done: async () => ((await nodeConf(client, t.node)).hosts.some((h) => h.ip === t.host.ip && h.port === t.ibasPort) ? undefined : `${t.host.ip}:${t.ibasPort} is not a host of ${t.node}`),
      run: async () => {
        await client.request('DELETE', `/v1/nodes/${encodeURIComponent(t.node)}/hosts/${t.host.ip}/${t.ibasPort}`);
        const r = await client.request<{ distributed: { node: string; version: number }[] }>('POST', '/v1/config/distribute');
        return `removed from ${t.node}, distributed to ${r.distributed.map((d) => `${d.node}@${d.version}`).join(' ')}`;
      },
    });
  }
  steps.push({ name: 'reach', run: async () => `reached as ${t.host.user} over ${t.host.transport}: ${await must(t, 'hostname', 'reach')}` });
  if (server) {
    steps.push(
      {
        name: 'drain',
        done: async () => ((await remote(t, 'ibas.sh status')).code === 0 ? undefined : 'ibas is not running'),
        run: async () => {
          const since = Date.now();
          let idle = 0;
          let lastSeen = 0;
          return waitUntil('drain', t, async () => {
            const s = (await sessionsOf(client, t)).find((x) => x.role === 'ibas' && x.port === t.ibasPort);
            if (s && s.last_seen !== lastSeen) {
              lastSeen = s.last_seen;
              idle = (s.load ?? 0) === 0 ? idle + 1 : 0;
            }
            return (idle >= 2 || !s) && Date.now() - since >= (t.drainMs ?? 2000) ? `no transaction running after ${Date.now() - since} ms` : undefined;
          });
        },
      },
      {
        name: 'stop_server',
        done: async () => ((await remote(t, 'ibas.sh status')).code === 0 ? undefined : 'ibas is not running'),
        run: () => must(t, 'ibas.sh stop', 'stop_server'),
      },
    );
  }
  steps.push(
    {
      name: 'stop_agent',
      done: async () => ((await remote(t, 'ibma.sh status')).code === 0 ? undefined : 'ibma is not running'),
      run: () => must(t, 'ibma.sh stop_cleanly', 'stop_agent'),
    },
    {
      name: 'cluster_file',
      done: async () => (clusterFileHas(t) ? undefined : `${path.basename(t.clusterConf)} does not have the host`),
      run: async () => {
        clusterFileEdit(t, false);
        return `removed ${t.node} ${t.host.ip} from ${t.clusterConf}`;
      },
    },
  );
  return steps;
}

/** Run scale_out or scale_in; answers the report rows and whether every step succeeded. */
export async function scale(kind: 'out' | 'in', client: IbmsClient, t: ScaleTarget, progress?: (row: StepRow) => void): Promise<{ ok: boolean; rows: StepRow[] }> {
  const server = await isServerNode(client, t.node);
  await nodeConf(client, t.node);
  const steps = kind === 'out' ? scaleOutSteps(client, t, server) : scaleInSteps(client, t, server);
  const rows: StepRow[] = [];
  let failed = false;
  for (const s of steps) {
    if (failed) {
      rows.push({ step: s.name, result: 'NOT_RUN', detail: '' });
      continue;
    }
    let row: StepRow;
    try {
      const already = s.done ? await s.done() : undefined;
      row = already !== undefined ? { step: s.name, result: 'SKIPPED', detail: already } : { step: s.name, result: 'DONE', detail: await s.run() };
    } catch (e) {
      failed = true;
      row = { step: s.name, result: 'FAILED', detail: errorText(e) };
    }
    rows.push(row);
    progress?.(row);
  }
  return { ok: !failed, rows };
}
