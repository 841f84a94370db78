/**
 * Durable file writes for the files whose loss or corruption matters (packages in so/, node private
 * keys, transaction logs, registry images): written under a fresh name nobody else can have planted
 * (O_CREAT|O_EXCL|O_NOFOLLOW), fsync'ed, renamed over the target, and the folder fsync'ed so that the
 * rename itself survives a crash.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

/** fsync a folder (makes a rename or a new name in it durable). Filesystems that refuse it are tolerated. */
export function fsyncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, 'r');
    fs.fsyncSync(fd);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EINVAL' && (e as NodeJS.ErrnoException).code !== 'EISDIR') throw e;
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/**
 * Write `bytes` to `temp` (which must not exist: a planted file or link there is refused with
 * EEXIST/ELOOP), fsync it with `mode`, rename it to `target` and fsync the target's folder.
 * On failure the temp file is removed and the error thrown; the target is then untouched.
 */
export function writeFileDurably(temp: string, target: string, bytes: Uint8Array, mode: number): void {
  const fd = fs.openSync(temp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, mode);
  try {
    try {
      let off = 0;
      while (off < bytes.length) off += fs.writeSync(fd, bytes, off, bytes.length - off);
      fs.fchmodSync(fd, mode);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(temp, target);
  } catch (e) {
    fs.rmSync(temp, { force: true });
    throw e;
  }
  fsyncDir(path.dirname(target));
}

/**
 * Read a regular file whole through one O_NOFOLLOW descriptor, so nothing can be swapped between
 * the checks and the read: undefined when it does not exist; `refuse(detail)` is thrown for a
 * symbolic link or anything but a regular file; `check(st)` may refuse it (mode, size) before a
 * byte is read. Other errors are thrown as they are.
 */
export function readFileNoFollow(file: string, refuse: (detail: string, cause?: unknown) => Error, check?: (st: fs.Stats) => void): { bytes: Buffer; st: fs.Stats } | undefined {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    if (code === 'ELOOP') throw refuse('it is a symbolic link', e);
    throw e;
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw refuse('it is not a regular file');
    check?.(st);
    const bytes = Buffer.allocUnsafe(st.size);
    let off = 0;
    while (off < bytes.length) {
      const n = fs.readSync(fd, bytes, off, bytes.length - off, off);
      if (n === 0) break;
      off += n;
    }
    return { bytes: off === bytes.length ? bytes : bytes.subarray(0, off), st };
  } finally {
    fs.closeSync(fd);
  }
}

/** The temp name of {@link createFileExclusive} (group 1: the writer's pid), for cleaning up after dead writers. */
export const EXCLUSIVE_TEMP = /\.new\.(\d+)-[0-9a-f]{12}$/;

/**
 * Create `file` with `bytes` only if it does not exist, never half-written: a fresh temp name
 * (O_EXCL|O_NOFOLLOW) is written (and fsync'ed when `durable`), then hard-linked to `file`, which
 * fails when a file of that name exists. Returns false then (someone else created it). With
 * `durable` the folder is fsync'ed too, so the new name survives a crash.
 */
export function createFileExclusive(file: string, bytes: string | Uint8Array, mode: number, durable: boolean): boolean {
  const temp = `${file}.new.${process.pid}-${crypto.randomBytes(6).toString('hex')}`;
  try {
    const fd = fs.openSync(temp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, mode);
    try {
      const buf = typeof bytes === 'string' ? Buffer.from(bytes) : bytes;
      let off = 0;
      while (off < buf.length) off += fs.writeSync(fd, buf, off, buf.length - off);
      if (durable) fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    try {
      fs.linkSync(temp, file);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw e;
    }
    if (durable) fsyncDir(path.dirname(file));
    return true;
  } finally {
    fs.rmSync(temp, { force: true });
  }
}
