/**
 * The so/ folder's safety rules (issue 11), shared by ibma (which installs packages) and ibas
 * (which loads them):
 *
 * - the folder must not be writable by group or others, and must belong to this user or root:
 *   {@link checkSoFolder} refuses it otherwise (IBP_ERR_SO_FOLDER), at ibma and ibas start, at
 *   every install and at every load;
 * - package files are opened with O_NOFOLLOW: a symlink is refused (IBP_ERR_SO_SYMLINK), never
 *   followed ({@link readPackage});
 * - an install writes a FRESH name `<bin>.updating.<pid>-<random>` created O_CREAT|O_EXCL|O_NOFOLLOW
 *   (a planted file or symlink there makes the open fail instead of writing through it), fsyncs
 *   it, then rename(2)s it over `<bin>` (which replaces a symlink at `<bin>` itself, never its
 *   target) and fsyncs the folder ({@link installPackage}). rename is atomic: a reader sees the
 *   old file or the new one, never a gap.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { IbpError } from './errors.js';
import { readFileNoFollow, writeFileDurably } from './durable-file.js';
import { checkPlainFileName } from './home.js';

/** Temporary install names: `<bin>.updating.<pid>-<hex>`. */
export const INSTALL_TEMP = /^(.+)\.updating\.(\d+)-[0-9a-f]{12}$/;

/** Refuse a so/ folder that others could write into. Returns the folder's stats. */
export function checkSoFolder(dir: string): fs.Stats {
  let st: fs.Stats;
  try {
    st = fs.statSync(dir);
  } catch (e) {
    throw new IbpError('IBP_ERR_SO_FOLDER', { dir, detail: (e as Error).message }, { cause: e });
  }
  if (!st.isDirectory()) throw new IbpError('IBP_ERR_SO_FOLDER', { dir, detail: 'it is not a folder' });
  if ((st.mode & 0o022) !== 0) throw new IbpError('IBP_ERR_SO_FOLDER', { dir, detail: `its mode ${(st.mode & 0o777).toString(8)} lets ${st.mode & 0o020 ? 'the group' : 'others'} write into it: chmod go-w ${dir}` });
  const uid = process.getuid?.();
  if (uid !== undefined && st.uid !== uid && st.uid !== 0) throw new IbpError('IBP_ERR_SO_FOLDER', { dir, detail: `it belongs to uid ${st.uid}, not to this user (${uid}) or root: chown it` });
  return st;
}

/** The bytes of a package file with the identity of the inode they were read from. */
export interface PackageBytes {
  bytes: Buffer;
  st: fs.Stats;
}

/**
 * Read `file` whole through one O_NOFOLLOW descriptor. A symlink → IBP_ERR_SO_SYMLINK; not a
 * regular file → IBP_ERR_SO_SYMLINK too (detail says which); missing → undefined.
 */
export function readPackage(file: string): PackageBytes | undefined {
  return readFileNoFollow(file, (detail, cause) => new IbpError('IBP_ERR_SO_SYMLINK', { file, detail }, { cause }));
}

export function sha256Hex(bytes: Uint8Array): string {
  return crypto.createHash('sha256').update(bytes).digest('hex');
}

/**
 * Write `bytes` as `<dir>/<bin>`: a fresh O_EXCL temporary name, fsync, rename over `<bin>`,
 * fsync the folder. The folder is checked first. On failure the temporary file is removed.
 */
export function installPackage(dir: string, bin: string, bytes: Buffer, mode = 0o755): void {
  checkSoFolder(dir);
  const target = path.join(dir, checkPlainFileName(bin));
  const temp = `${target}.updating.${process.pid}-${crypto.randomBytes(6).toString('hex')}`;
  writeFileDurably(temp, target, bytes, mode);
}

/** Remove temporary install files left by processes that are gone. Returns their names. */
export function removeStaleTemps(dir: string): string[] {
  const removed: string[] = [];
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return removed;
  }
  for (const name of names) {
    const m = INSTALL_TEMP.exec(name);
    if (!m) continue;
    if (isAlive(Number(m[2]))) continue; // its writer may still be installing it
    try {
      fs.unlinkSync(path.join(dir, name));
      removed.push(name);
    } catch {
      // gone already
    }
  }
  return removed;
}

function isAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code !== 'ESRCH'; // EPERM: alive, another user's
  }
}
