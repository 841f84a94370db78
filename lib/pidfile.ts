/**
 * Pid files: written atomically once a daemon is ready, removed on clean exit. A pid file whose
 * process is gone is stale and is ignored (and replaced) by the next start.
 */
import fs from 'node:fs';
import path from 'node:path';

/** Whether the process exists and is not a zombie (exited, waiting to be reaped by its parent). */
export function isAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  return !isZombie(pid);
}

function isZombie(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z';
  } catch {
    return false;
  }
}

export function readPid(file: string): number | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  const pid = Number.parseInt(text.trim(), 10);
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

/** The pid in the file if that process is alive. */
export function runningPid(file: string): number | undefined {
  const pid = readPid(file);
  return pid !== undefined && isAlive(pid) ? pid : undefined;
}

export function writePid(file: string, pid = process.pid): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, `${pid}\n`);
  fs.renameSync(tmp, file);
}

/** Remove the pid file if it still names this process (a new generation may own it by now). */
export function removePid(file: string, pid = process.pid): void {
  if (readPid(file) === pid) {
    try {
      fs.unlinkSync(file);
    } catch {
      // already gone
    }
  }
}
