/** Running the project's bash scripts from tests, with a deadline, in a given home. */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { collect, ROOT, type RunResult } from '../helpers/procs.js';

export const SCRIPT = (name: string): string => path.join(ROOT, 'scripts', name);

export function runScript(name: string, args: string[], opts: { home: string; env?: NodeJS.ProcessEnv; timeoutMs?: number }): Promise<RunResult> {
  const child = spawn('bash', [SCRIPT(name), ...args], {
    env: { ...process.env, IBP_HOME: opts.home, ...opts.env },
    // no stdin: a script that exits at once (usage) must not race a write to its stdin (EPIPE)
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return collect(child, undefined, opts.timeoutMs ?? 90_000, `${name} ${args.join(' ')}`);
}

/** The result lines of a cluster script, by "node ip:port". */
export function resultLines(stdout: string): Map<string, { user: string; status: string; last: string; transport: string }> {
  const out = new Map<string, { user: string; status: string; last: string; transport: string }>();
  for (const line of stdout.split('\n')) {
    const m = /^(\S+) (\S+) (\S+) (ibcmd|ssh) : (OK|FAILED\(\d+\)|SKIPPED) : (.*)$/.exec(line);
    if (m) out.set(`${m[1]} ${m[2]}`, { user: m[3]!, transport: m[4]!, status: m[5]!, last: m[6]! });
  }
  return out;
}
