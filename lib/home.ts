/**
 * The home layout of one IBP node instance (IBP_HOME, default $HOME), as in IBP:
 *
 *   $IBP_HOME/etc   config files (ibms.conf, ibma.conf, ibas.conf, ibp_*.conf)
 *   $IBP_HOME/log   log files
 *   $IBP_HOME/file  attached files of transactions
 *   $IBP_HOME/so    app packages (.so)
 *   $IBP_HOME/keys  credentials (mode 0700)
 *   $IBP_HOME/run   pid files, lock files, caches
 *
 * Many instances may share a machine: each has its own home.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { IbpError } from './errors.js';

export const HOME_DIRS = ['etc', 'log', 'file', 'so', 'keys', 'run'] as const;
export type HomeDir = (typeof HOME_DIRS)[number];

export class Home {
  readonly root: string;

  constructor(root?: string) {
    this.root = path.resolve(root ?? process.env.IBP_HOME ?? os.homedir());
  }

  dir(d: HomeDir): string {
    return path.join(this.root, d);
  }

  etc(name: string): string { return path.join(this.root, 'etc', name); }
  log(name: string): string { return path.join(this.root, 'log', name); }
  so(name: string): string { return path.join(this.root, 'so', name); }
  file(name: string): string { return path.join(this.root, 'file', name); }
  keys(name: string): string { return path.join(this.root, 'keys', name); }
  run(name: string): string { return path.join(this.root, 'run', name); }

  /** Create every folder of the layout (idempotent). keys/ is private to the owner. */
  ensure(): void {
    try {
      const newSo = !fs.existsSync(this.dir('so'));
      for (const d of HOME_DIRS) fs.mkdirSync(this.dir(d), { recursive: true, mode: d === 'keys' ? 0o700 : 0o755 });
      fs.chmodSync(this.dir('keys'), 0o700);
      // so/ must not be group/world-writable (lib/so-folder.ts), whatever the umask
      if (newSo) fs.chmodSync(this.dir('so'), 0o755);
    } catch (e) {
      throw new IbpError('IBP_ERR_HOME_LAYOUT', { home: this.root, detail: (e as Error).message }, { cause: e });
    }
  }

  /**
   * A config file name given without a path means $IBP_HOME/etc/NAME (IBP's rule); a name with a
   * path is taken relative to the current directory.
   */
  confPath(name: string): string {
    return name.includes('/') ? path.resolve(name) : this.etc(name);
  }

  /** A path from a config file (log files, so/ folders): relative paths are relative to the home. */
  resolve(p: string): string {
    return path.isAbsolute(p) ? p : path.join(this.root, p);
  }
}

/**
 * The home that owns a config file: for `<home>/etc/x.conf` that is `<home>`; otherwise IBP_HOME.
 * Lets `-f /abs/path/etc/ibas.conf` work without setting IBP_HOME.
 */
export function homeOfConf(confFile: string): Home {
  const dir = path.dirname(path.resolve(confFile));
  if (path.basename(dir) === 'etc') return new Home(path.dirname(dir));
  return new Home();
}

/** A plain file name for files/, so/: no path separators, no `..`, no control characters. */
export function checkPlainFileName(name: string): string {
  const bad =
    name.length === 0 ? 'it is empty'
    : name.length > 255 ? 'it is longer than 255 characters'
    : /[/\\]/.test(name) ? 'it contains a path separator'
    : name === '.' || name === '..' || name.includes('..') ? 'it contains ".."'
    : /[\x00-\x1f\x7f]/.test(name) ? 'it contains a control character'
    : name.startsWith('-') ? 'it starts with "-"'
    : undefined;
  if (bad) throw new IbpError('IBP_ERR_FILE_NAME', { name: JSON.stringify(name), detail: bad });
  return name;
}
