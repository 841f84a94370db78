/**
 * Helpers of the ibma tests: an agent home made by the real `ibma -a init` (with fast loop timings
 * so tests finish quickly), its log, and polling the config space through the real reader.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Test } from 'tap';
import { parseJsonText } from '../../lib/config/load.js';
import type { IbmaConf } from '../../lib/config/ibma-conf.js';
import { ConfigSpace } from '../../lib/shm/config-space.js';
import { reapHome, runTool, type RunResult } from '../helpers/procs.js';

export interface AgentHome {
  home: string;
  node: string;
  confFile: string;
  conf: IbmaConf;
  indexKey: number;
  /** Run bin/ibma with this home's IBP_HOME. */
  ibma(args: string[], timeoutMs?: number): Promise<RunResult>;
  /** Parsed lines of the agent's main log. */
  logLines(): { level: string; msg: string; [k: string]: unknown }[];
  logText(): string;
}

export const FAST_AGENT = { watch_wait: 2, reconnect_min: 0.05, reconnect_max: 0.4, heartbeat_interval: 0.5, gc_interval: 0.2 };

export async function makeAgentHome(
  t: Test,
  o: { node: string; ibmsIp: string; ibmsPort: number; credential: string; root: string; agent?: IbmaConf['agent'] },
): Promise<AgentHome> {
  // t.testdir() wipes its folder on every call: the test calls it once and passes it as root
  const home = path.join(o.root, `agent-${o.node}`);
  fs.mkdirSync(home, { recursive: true });
  t.teardown(() => reapHome(home));
  const init = await runTool('ibma', ['-a', 'init', '--node', o.node, '--ibms-ip', o.ibmsIp, '--ibms-port', String(o.ibmsPort), '--credential', o.credential], { home });
  t.equal(init.code, 0, `ibma -a init for ${o.node}: ${init.stderr}`);
  const confFile = path.join(home, 'etc', 'ibma.conf');
  const conf = parseJsonText(fs.readFileSync(confFile, 'utf8'), confFile) as IbmaConf;
  conf.agent = { ...FAST_AGENT, ...o.agent };
  fs.writeFileSync(confFile, JSON.stringify(conf, null, 2), { mode: 0o600 });
  const logFile = path.join(home, conf.log.main!);
  const logText = (): string => (fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8') : '');
  return {
    home,
    node: o.node,
    confFile,
    conf,
    indexKey: conf.shm.index_key,
    ibma: (args, timeoutMs) => runTool('ibma', args, { home, timeoutMs: timeoutMs ?? 30_000 }),
    logText,
    logLines: () =>
      logText()
        .split('\n')
        .filter((l) => l.trim())
        .map((l) => JSON.parse(l) as { level: string; msg: string }),
  };
}

/** Open the space (polling until it exists); closed at teardown. */
export async function openSpace(t: Test, indexKey: number, timeoutMs = 10_000): Promise<ConfigSpace> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const s = ConfigSpace.openKey(indexKey);
      t.teardown(() => s.close());
      return s;
    } catch (e) {
      if (Date.now() > deadline) throw e;
      await new Promise((r) => setTimeout(r, 25));
    }
  }
}
