/**
 * App packages: the .so files (and .mjs JS apps) in the registry home's so/ folder, with their size and sha256.
 *
 * Hashes are cached by (inode, size, mtime), so a bundle for many nodes does not re-read files;
 * `refresh(bin)` (update_app, the watcher) re-reads one at once. With
 * `misc.auto_download_bin_enable` a chokidar watcher reports every .so added or replaced in so/.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { watch, type FSWatcher } from 'chokidar';
import { checkPlainFileName } from '../lib/home.js';
import { IbpError } from '../lib/errors.js';
import { isAppPackageName } from '../lib/config/model.js';

export interface PackageInfo {
  /** sha256 hex, '' when the registry has no such file. */
  sha256: string;
  size: number;
}

interface Cached extends PackageInfo {
  ino: number;
  mtimeMs: number;
}

const NONE: PackageInfo = { sha256: '', size: 0 };

export class Packages {
  readonly dir: string;
  readonly #cache = new Map<string, Cached>();
  #watcher: FSWatcher | undefined;
  /** Bumped whenever a known package's identity changes (bundles embed it). */
  generation = 0;

  constructor(dir: string) {
    this.dir = dir;
  }

  /** Absolute path of a package; refuses names that are not plain .so file names. */
  pathOf(bin: string): string {
    checkPlainFileName(bin);
    if (!isAppPackageName(bin)) throw new IbpError('IBP_ERR_FILE_NAME', { name: JSON.stringify(bin), detail: 'it is not a .so or .mjs file name' });
    return path.join(this.dir, bin);
  }

  /** Size and sha256 of so/<bin> (cached while the file is unchanged). */
  info(bin: string): PackageInfo {
    let st: fs.Stats;
    try {
      st = fs.statSync(path.join(this.dir, bin));
    } catch {
      if (this.#cache.delete(bin)) this.generation++;
      return NONE;
    }
    if (!st.isFile()) return NONE;
    const c = this.#cache.get(bin);
    if (c && c.ino === st.ino && c.size === st.size && c.mtimeMs === st.mtimeMs) return { sha256: c.sha256, size: c.size };
    return this.#hash(bin);
  }

  /** Re-read one package now. */
  refresh(bin: string): PackageInfo {
    this.#cache.delete(bin);
    return this.info(bin);
  }

  #hash(bin: string): PackageInfo {
    let bytes: Buffer;
    let st: fs.Stats;
    try {
      const fd = fs.openSync(path.join(this.dir, bin), 'r');
      try {
        st = fs.fstatSync(fd);
        bytes = fs.readFileSync(fd);
      } finally {
        fs.closeSync(fd);
      }
    } catch {
      return NONE;
    }
    const sha256 = crypto.createHash('sha256').update(bytes).digest('hex');
    const old = this.#cache.get(bin);
    if (!old || old.sha256 !== sha256) this.generation++;
    this.#cache.set(bin, { sha256, size: bytes.length, ino: st.ino, mtimeMs: st.mtimeMs });
    return { sha256, size: bytes.length };
  }

  /** The bytes of a package with their hash, read in one go so they always agree. */
  read(bin: string): { bytes: Buffer; sha256: string } | undefined {
    let bytes: Buffer;
    try {
      bytes = fs.readFileSync(this.pathOf(bin));
    } catch (e) {
      if (e instanceof IbpError) throw e;
      return undefined;
    }
    return { bytes, sha256: crypto.createHash('sha256').update(bytes).digest('hex') };
  }

  /**
   * Watch so/ for .so files added or replaced (written in place or renamed over). `onChange`
   * gets the file name once the file has stopped growing.
   */
  async watch(onChange: (bin: string) => void, onError: (e: unknown) => void): Promise<void> {
    fs.mkdirSync(this.dir, { recursive: true });
    const w = watch(this.dir, {
      ignoreInitial: true,
      depth: 0,
      awaitWriteFinish: { stabilityThreshold: 150, pollInterval: 50 },
    });
    const report = (p: string): void => {
      const bin = path.basename(p);
      if (!isAppPackageName(bin)) return;
      this.#cache.delete(bin);
      onChange(bin);
    };
    w.on('add', report).on('change', report).on('error', onError);
    await new Promise<void>((resolve) => w.once('ready', () => resolve()));
    this.#watcher = w;
  }

  async close(): Promise<void> {
    await this.#watcher?.close();
    this.#watcher = undefined;
  }
}
