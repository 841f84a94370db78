/**
 * A real registry for the ibma tests: `ibms -a init` in a temporary home on a loopback address of
 * this test file, `ibms -a start`, and the admin CLI (`ibms -a …`, `ibms -s …`) to configure it.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Test } from 'tap';
import type { AppConf, NodeConf, ProjectConf } from '../../lib/config/model.js';
import { freePort, gone, processesOfHome, reapHome, runTool, waitFor, type RunResult } from '../helpers/procs.js';

export interface IbmsHome {
  home: string;
  ip: string;
  port: number;
  /** Run the admin CLI; fails the test when it exits non-zero (unless `allowFail`). */
  ibms(args: string[], allowFail?: boolean): Promise<RunResult>;
  credential(node: string): Promise<string>;
  /** Write the registry's config files (before start): faster than one CLI call per item. */
  writeData(data: { nodes?: NodeConf[]; apps?: AppConf[]; projects?: ProjectConf[] }): void;
  start(): Promise<void>;
  /** SIGKILL every process of the registry's home (monitor and worker): a crash, not a stop. */
  crash(): Promise<void>;
}

export async function makeIbms(t: Test, ip: string, root: string): Promise<IbmsHome> {
  const home = path.join(root, 'ibms');
  fs.mkdirSync(home, { recursive: true });
  t.teardown(() => reapHome(home));
  const port = await freePort(ip);
  const run = async (args: string[], allowFail = false): Promise<RunResult> => {
    const r = await runTool('ibms', args, { home, timeoutMs: 60_000 });
    if (!allowFail && r.code !== 0) throw new Error(`ibms ${args.join(' ')} exited ${r.code}: ${r.stderr}${r.stdout}`);
    return r;
  };
  await run(['-a', 'init', '--ip', ip, '--port', String(port)]);
  const h: IbmsHome = {
    home,
    ip,
    port,
    ibms: run,
    credential: async (node) => (await run(['-s', 'node_credential', '--node', node])).stdout.trim(),
    writeData: (data) => {
      if (data.nodes) fs.writeFileSync(path.join(home, 'etc', 'ibp_nodes.conf'), JSON.stringify({ nodes: data.nodes }, null, 2));
      if (data.apps) fs.writeFileSync(path.join(home, 'etc', 'ibp_apps.conf'), JSON.stringify({ apps: data.apps }, null, 2));
      if (data.projects) fs.writeFileSync(path.join(home, 'etc', 'ibp_projects.conf'), JSON.stringify({ projects: data.projects }, null, 2));
    },
    start: async () => {
      await run(['-a', 'start']);
    },
    crash: async () => {
      const pids = processesOfHome(home);
      for (const pid of pids) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
      await waitFor('the registry processes to die', () => pids.every(gone), 10_000);
      try {
        fs.unlinkSync(path.join(home, 'run', 'ibms.pid'));
      } catch {
        // no pid file
      }
    },
  };
  return h;
}
