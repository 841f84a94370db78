/**
 * put/get of files in the agent's sandbox folder. A file is named by a plain name
 * (lib/home.ts checkPlainFileName: no path separator, no "..", no control character, no leading
 * "-") and stays directly inside the sandbox:
 *
 * - put writes a temporary file (O_EXCL) in the sandbox, fsyncs it and renames it over the name;
 *   an existing entry of that name that is not a regular file (a symbolic link, a folder…) is
 *   refused, so a link planted in the sandbox can never redirect a write;
 * - get follows a symbolic link only when its target is still inside the sandbox, opens with
 *   O_NOFOLLOW (a link swapped in meanwhile fails), and refuses anything that is not a regular
 *   file or that has other hard links (it could be a file from outside linked in);
 * - sizes are bounded by `files.max_file_size` both ways.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { IbpError } from '../lib/errors.js';
import { checkPlainFileName } from '../lib/home.js';

export interface StoredFile {
  name: string;
  size: number;
  sha256: string;
}

export interface ListedFile {
  name: string;
  size: number;
  mtime: string;
}

const sha256 = (b: Buffer): string => crypto.createHash('sha256').update(b).digest('hex');

export class Sandbox {
  /** The sandbox's real path (symbolic links in its own path resolved once, at open). */
  readonly root: string;
  readonly maxFileSize: number;

  private constructor(root: string, maxFileSize: number) {
    this.root = root;
    this.maxFileSize = maxFileSize;
  }

  /** Create the folder if needed (0700) and resolve it. */
  static open(dir: string, maxFileSize: number): Sandbox {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const root = fs.realpathSync(dir);
    if (!fs.statSync(root).isDirectory()) throw new IbpError('IBP_ERR_HOME_LAYOUT', { home: dir, detail: 'the sandbox is not a folder' });
    return new Sandbox(root, maxFileSize);
  }

  #inside(p: string): boolean {
    return path.dirname(p) === this.root;
  }

  put(name: string, data: Buffer): StoredFile {
    checkPlainFileName(name);
    if (data.length > this.maxFileSize) throw new IbpError('IBP_ERR_CODEC_TOO_LARGE', { size: data.length, limit: this.maxFileSize });
    const target = path.join(this.root, name);
    let st: fs.Stats | undefined;
    try {
      st = fs.lstatSync(target);
    } catch {
      st = undefined;
    }
    if (st && !st.isFile()) {
      throw new IbpError('IBP_ERR_CMD_FILE_REFUSED', { name: JSON.stringify(name), detail: st.isSymbolicLink() ? 'a symbolic link of that name is in the sandbox' : 'an entry of that name is in the sandbox and is not a regular file' });
    }
    const tmp = path.join(this.root, `.ibcmd-put-${process.pid}-${crypto.randomBytes(6).toString('hex')}.tmp`);
    const fd = fs.openSync(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o640);
    try {
      fs.writeSync(fd, data);
      fs.fsyncSync(fd);
    } catch (e) {
      fs.closeSync(fd);
      fs.rmSync(tmp, { force: true });
      throw e;
    }
    fs.closeSync(fd);
    fs.renameSync(tmp, target);
    return { name, size: data.length, sha256: sha256(data) };
  }

  get(name: string): StoredFile & { data: Buffer } {
    checkPlainFileName(name);
    const refused = (detail: string): IbpError => new IbpError('IBP_ERR_CMD_FILE_REFUSED', { name: JSON.stringify(name), detail });
    let target = path.join(this.root, name);
    let st: fs.Stats;
    try {
      st = fs.lstatSync(target);
    } catch {
      throw new IbpError('IBP_ERR_CMD_FILE_NOT_FOUND', { name: JSON.stringify(name) });
    }
    if (st.isSymbolicLink()) {
      let real: string;
      try {
        real = fs.realpathSync(target);
      } catch {
        throw refused('it is a dangling symbolic link');
      }
      if (!this.#inside(real)) throw refused('it is a symbolic link leading out of the sandbox');
      target = real;
    }
    let fd: number;
    try {
      fd = fs.openSync(target, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') throw new IbpError('IBP_ERR_CMD_FILE_NOT_FOUND', { name: JSON.stringify(name) });
      throw refused(code === 'ELOOP' ? 'it is a symbolic link' : (e as Error).message);
    }
    try {
      const fst = fs.fstatSync(fd);
      if (!fst.isFile()) throw refused('it is not a regular file');
      if (fst.nlink > 1) throw refused('it has other hard links (it may be a file from outside the sandbox)');
      if (fst.size > this.maxFileSize) throw new IbpError('IBP_ERR_CODEC_TOO_LARGE', { size: fst.size, limit: this.maxFileSize });
      const data = fs.readFileSync(fd);
      return { name, size: data.length, sha256: sha256(data), data };
    } finally {
      fs.closeSync(fd);
    }
  }

  /** Regular files directly in the sandbox (temporary files of puts in progress excluded). */
  list(): ListedFile[] {
    const out: ListedFile[] = [];
    for (const d of fs.readdirSync(this.root, { withFileTypes: true })) {
      if (!d.isFile() || d.name.startsWith('.ibcmd-put-')) continue;
      try {
        const st = fs.statSync(path.join(this.root, d.name));
        out.push({ name: d.name, size: st.size, mtime: st.mtime.toISOString() });
      } catch {
        // removed meanwhile
      }
    }
    return out.sort((a, b) => a.name.localeCompare(b.name));
  }
}
