/**
 * What a command name really runs: the agent's command PATH checked for planted-program traps,
 * and programs resolved the way execFile resolves them (a name with a `/` relative to the cwd,
 * else the first executable file of that name along PATH), then to their real path.
 *
 * PATH safety (checked by `-a check` and at start): a folder of the command PATH is unsafe when it
 * (or, unless sticky, a folder above it) is group- or world-writable, or is owned by someone other
 * than root or the agent's user: anyone able to write there could plant a program that shadows a
 * system one. An unsafe folder that comes before a system folder (/usr/local/sbin … /bin) is
 * refused — the agent does not start; one after every system folder is left out with a warning,
 * as is a folder that does not exist.
 */
import fs from 'node:fs';
import path from 'node:path';

export const SYSTEM_DIRS: readonly string[] = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];

export interface CommandPath {
  /** The folders commands search, in order (absolute, existing, safe). */
  dirs: string[];
  /** Why the agent must not start. */
  errors: string[];
  /** What was left out, and why. */
  warnings: string[];
}

const mode = (m: number): string => (m & 0o7777).toString(8).padStart(4, '0');

/** Why a folder is unsafe to run programs from, or undefined. */
export function unsafeFolder(dir: string, uid = process.getuid?.() ?? 0): string | undefined {
  let real: string;
  try {
    real = fs.realpathSync(dir);
  } catch {
    return undefined;
  }
  const owners = new Set([0, uid]);
  let cur = real;
  let first = true;
  for (;;) {
    const st = fs.statSync(cur);
    const where = first ? 'it' : `the folder above it, ${cur},`;
    if (!owners.has(st.uid)) return `is unsafe: ${where} is owned by uid ${st.uid} (neither root nor the agent's user)`;
    const writable = (st.mode & 0o022) !== 0;
    const sticky = (st.mode & 0o1000) !== 0;
    if (writable && (first || !sticky)) return `is unsafe: ${where} is group/world-writable (mode ${mode(st.mode)})`;
    const up = path.dirname(cur);
    if (up === cur) return undefined;
    cur = up;
    first = false;
  }
}

/**
 * The command PATH: `extra` (exec.path; relative entries resolved against `cwd`, the sandbox) in
 * front of the agent's own PATH, checked.
 */
export function commandPath(extra: readonly string[], cwd: string, envPath = process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin'): CommandPath {
  const all: string[] = [];
  for (const p of [...extra.map((e) => path.resolve(cwd, e)), ...envPath.split(':').filter((p) => p.length > 0).map((p) => path.resolve(cwd, p))]) {
    if (!all.includes(p)) all.push(p);
  }
  const systemReal = new Set(SYSTEM_DIRS.map((d) => {
    try {
      return fs.realpathSync(d);
    } catch {
      return d;
    }
  }));
  const realOf = (d: string): string | undefined => {
    try {
      return fs.realpathSync(d);
    } catch {
      return undefined;
    }
  };
  const isSystem = all.map((d) => SYSTEM_DIRS.includes(d) || systemReal.has(realOf(d) ?? ''));
  const out: CommandPath = { dirs: [], errors: [], warnings: [] };
  all.forEach((d, i) => {
    let st: fs.Stats;
    try {
      st = fs.statSync(d);
    } catch {
      out.warnings.push(`PATH folder ${d} does not exist: left out`);
      return;
    }
    if (!st.isDirectory()) {
      out.warnings.push(`PATH folder ${d} is not a folder: left out`);
      return;
    }
    const why = unsafeFolder(d);
    if (why) {
      const sys = all.findIndex((_, j) => j > i && isSystem[j]);
      if (sys >= 0) {
        out.errors.push(`PATH folder ${d} ${why}, and it comes before the system folder ${all[sys]}: a program planted there would run instead of the system's; chmod go-w / chown it, or take it out of exec.path and the agent's PATH`);
      } else {
        out.warnings.push(`PATH folder ${d} ${why}: left out`);
      }
      return;
    }
    out.dirs.push(d);
  });
  return out;
}

function isExecutableFile(file: string): boolean {
  try {
    if (!fs.statSync(file).isFile()) return false;
    fs.accessSync(file, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Resolves program names as execFile would, with this PATH and cwd, to real paths. */
export class ProgramResolver {
  readonly dirs: readonly string[];
  readonly cwd: string;

  constructor(dirs: readonly string[], cwd: string) {
    this.dirs = dirs;
    this.cwd = cwd;
  }

  /** The real path of what `program` runs, or undefined when nothing would run. */
  resolve(program: string): string | undefined {
    if (program.length === 0) return undefined;
    const candidates = program.includes('/') ? [path.resolve(this.cwd, program)] : this.dirs.map((d) => path.join(d, program));
    for (const c of candidates) {
      if (!isExecutableFile(c)) continue;
      try {
        return fs.realpathSync(c);
      } catch {
        // vanished meanwhile
      }
    }
    return undefined;
  }
}
