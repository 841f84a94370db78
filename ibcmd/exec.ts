/**
 * Running an audited command: an argv array and no shell (what child_process.execFile does), in
 * the sandbox, with PATH extended by the configured folders and IBP_HOME set to the agent's home.
 *
 * It is child_process.spawn with execFile's behaviour written out, because execFile drops the
 * `detached` option and the command must lead its own process group (below):
 *
 * - stdin is /dev/null (EOF at once);
 * - stdout and stderr are kept up to `maxOutput` bytes each; a command writing more is killed
 *   (as with execFile's maxBuffer) and the result says `truncated`;
 * - each command leads its own process group (`detached`), so the timeout — and a stop of the
 *   agent — SIGKILLs the command together with everything it started in that group. Daemons a
 *   command starts (`ibas.sh start`) make their own session and are left alone.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { IbpError } from '../lib/errors.js';

export interface ExecOptions {
  cwd: string;
  /** The command PATH (checked folders, resolve.ts), or folders put in front of the agent's PATH. */
  path: readonly string[];
  /** `path` is the whole PATH (default: put in front of the agent's). */
  pathIsWhole?: boolean;
  /** IBP_HOME of the command. */
  home: string;
  timeoutMs: number;
  maxOutput: number;
}

export interface ExecResult {
  /** Exit code, or null when a signal ended the command. */
  code: number | null;
  signal: string | null;
  timedOut: boolean;
  truncated: { stdout: boolean; stderr: boolean };
  stdout: string;
  stderr: string;
  ms: number;
}

/** The environment of a command: the agent's, without the daemon-child marker. */
export function commandEnv(opts: Pick<ExecOptions, 'path' | 'home' | 'pathIsWhole'>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, IBP_HOME: opts.home };
  delete env.IBP_DAEMON_CHILD;
  env.PATH = (opts.pathIsWhole ? [...opts.path] : [...opts.path, ...(process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin').split(':')]).filter((p) => p.length > 0).join(':');
  return env;
}

/** The first `cap` bytes of a stream. */
class OutputCap {
  readonly #cap: number;
  readonly #chunks: Buffer[] = [];
  #size = 0;
  truncated = false;

  constructor(cap: number) {
    this.#cap = cap;
  }

  /** Keep what fits; false once the stream went over the cap. */
  add(chunk: Buffer): boolean {
    if (this.truncated) return false;
    const room = this.#cap - this.#size;
    if (chunk.length > room) {
      this.#chunks.push(chunk.subarray(0, room));
      this.#size = this.#cap;
      this.truncated = true;
      return false;
    }
    this.#chunks.push(chunk);
    this.#size += chunk.length;
    return true;
  }

  text(): string {
    return Buffer.concat(this.#chunks).toString('utf8');
  }
}

function killGroup(child: ChildProcess): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    try { child.kill('SIGKILL'); } catch { /* gone */ }
  }
}

export class Runner {
  readonly #running = new Set<ChildProcess>();
  readonly #max: number;

  constructor(maxConcurrent: number) {
    this.#max = maxConcurrent;
  }

  get running(): number {
    return this.#running.size;
  }

  /**
   * Run argv; resolves with the result (a non-zero exit is a result, not an error). `program`
   * is the file to run (the audit's resolved real path, so what runs is what was checked);
   * argv[0] is passed to it as its name.
   */
  run(argv: readonly string[], opts: ExecOptions & { program?: string }): Promise<ExecResult> {
    if (this.#running.size >= this.#max) return Promise.reject(new IbpError('IBP_ERR_CMD_BUSY', { count: this.#running.size }));
    const started = Date.now();
    const cap = opts.maxOutput;
    return new Promise((resolve, reject) => {
      let timedOut = false;
      let settled = false;
      const streams = { stdout: new OutputCap(cap), stderr: new OutputCap(cap) };
      const child = spawn(opts.program ?? argv[0]!, argv.slice(1), {
        argv0: argv[0]!,
        cwd: opts.cwd,
        env: commandEnv(opts),
        shell: false,
        detached: true,
        stdio: ['ignore', 'pipe', 'pipe'],
        windowsHide: true,
      });
      this.#running.add(child);
      const done = (): void => {
        settled = true;
        clearTimeout(timer);
        this.#running.delete(child);
      };
      for (const name of ['stdout', 'stderr'] as const) {
        child[name]!.on('data', (chunk: Buffer) => {
          if (!streams[name].add(chunk)) {
            // over the cap: stop the command (as execFile's maxBuffer does) and stop reading
            killGroup(child);
            child.stdout!.destroy();
            child.stderr!.destroy();
          }
        });
      }
      child.on('error', (e: NodeJS.ErrnoException) => {
        if (settled) return;
        done();
        if (child.pid !== undefined) killGroup(child);
        reject(new IbpError('IBP_ERR_CMD_EXEC', { cmd: argv[0], detail: e.code === 'ENOENT' ? 'no such program on the agent\'s PATH' : e.message }));
      });
      child.on('close', (code, signal) => {
        if (settled) return;
        done();
        resolve({
          code,
          signal,
          timedOut,
          truncated: { stdout: streams.stdout.truncated, stderr: streams.stderr.truncated },
          stdout: streams.stdout.text(),
          stderr: streams.stderr.text(),
          ms: Date.now() - started,
        });
      });
      const timer = setTimeout(() => {
        timedOut = true;
        killGroup(child);
        child.stdout!.destroy();
        child.stderr!.destroy();
      }, opts.timeoutMs);
    });
  }

  /** SIGKILL every running command's process group (agent stop). */
  killAll(): void {
    for (const c of this.#running) killGroup(c);
  }
}
