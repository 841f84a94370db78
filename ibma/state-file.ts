/**
 * What the running agent tells `ibma -s status`: `<home>/run/ibma_<node>.state.json`, rewritten
 * atomically whenever the agent's view changes (ibms reachable or not, what it holds, what it
 * published, packages that failed). Information only: nothing reads it to make a decision.
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import type { Home } from '../lib/home.js';

interface WriteFileAtomic {
  sync(file: string, data: string | Buffer, opts?: { mode?: number; fsync?: boolean }): void;
}
const writeFileAtomic = createRequire(import.meta.url)('write-file-atomic') as WriteFileAtomic;

export type IbmsLink = 'starting' | 'connected' | 'unreachable' | 'rejected';

export interface AgentState {
  pid: number;
  node: string;
  ibms: { url: string; link: IbmsLink; since: number; lastError?: string; failures: number };
  held?: { epoch: string; version: number; source: 'ibms' | 'cache' };
  published?: { key: number; generation: number; at: number };
  /** Publications (index flips) by this process. */
  flips?: number;
  packages: { failed: string[]; installed: number };
}

export function stateFile(home: Home, node: string): string {
  return home.run(`ibma_${node}.state.json`);
}

export function writeState(file: string, state: AgentState): void {
  try {
    writeFileAtomic.sync(file, `${JSON.stringify(state)}\n`, { fsync: false, mode: 0o644 });
  } catch {
    // status information only: never stop the agent for it
  }
}

export function readState(file: string): AgentState | undefined {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as AgentState;
  } catch {
    return undefined;
  }
}
