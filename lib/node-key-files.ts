/**
 * A node's private key files in an agent home (docs/security.md): ibma writes them, the keyring of
 * ibac and ibas (lib/node-keyring.ts) reads them.
 *
 *   keys/<node>.<kcv>.prikey   JSON NodePrivateKeyWire (lib/node-keys.ts), mode 0600
 *
 * Rules, as for so/ (lib/so-folder.ts): keys/ must be a real folder (not a symlink) of this user
 * with no group/other access; a file is written under a FRESH name created
 * O_CREAT|O_EXCL|O_NOFOLLOW (mode 0600), fsynced, then rename(2)d over its final name (which
 * replaces a symlink planted there, never its target), and the folder is fsynced. A reader opens
 * with O_NOFOLLOW and refuses a file that is not regular or is readable by group or others.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { IbpError } from './errors.js';
import { readFileNoFollow, writeFileDurably } from './durable-file.js';
import { nodePrivateKeyFromWire, parsePrivateKeyFileName, privateKeyFileName, type NodePrivateKey, type NodePrivateKeyWire } from './node-keys.js';

/** Refuse a keys/ folder others could read or write, or that is a symlink. Creates it (0700) when missing. */
export function checkKeysFolder(dir: string, create = false): void {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' && create) {
      fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
      fs.chmodSync(dir, 0o700);
      return;
    }
    throw new IbpError('IBP_ERR_NODE_KEY_FILE', { file: dir, detail: (e as Error).message }, { cause: e });
  }
  if (st.isSymbolicLink()) throw new IbpError('IBP_ERR_NODE_KEY_FILE', { file: dir, detail: 'the keys folder is a symbolic link: make it a real folder (mode 0700)' });
  if (!st.isDirectory()) throw new IbpError('IBP_ERR_NODE_KEY_FILE', { file: dir, detail: 'it is not a folder' });
  if ((st.mode & 0o077) !== 0) throw new IbpError('IBP_ERR_NODE_KEY_FILE', { file: dir, detail: `the keys folder has mode ${(st.mode & 0o777).toString(8)}: chmod 700 ${dir}` });
  const uid = process.getuid?.();
  if (uid !== undefined && st.uid !== uid) throw new IbpError('IBP_ERR_NODE_KEY_FILE', { file: dir, detail: `the keys folder belongs to uid ${st.uid}, not to this user (${uid})` });
}

/** Write one private pair (see the file comment). Returns the file. */
export function writePrivateKeyFile(dir: string, key: NodePrivateKeyWire): string {
  checkKeysFolder(dir, true);
  const target = path.join(dir, privateKeyFileName(key.node, key.kcv));
  const temp = `${target}.tmp.${process.pid}-${crypto.randomBytes(6).toString('hex')}`;
  const bytes = Buffer.from(`${JSON.stringify(key)}\n`);
  try {
    writeFileDurably(temp, target, bytes, 0o600);
  } catch (e) {
    throw new IbpError('IBP_ERR_NODE_KEY_FILE', { file: target, detail: `cannot write it: ${(e as Error).message}` }, { cause: e });
  }
  return target;
}

/**
 * Read one private pair of `node` with KCV `kcv`: undefined when there is no such file;
 * IBP_ERR_NODE_KEY_FILE when it is a symlink, not a regular file, readable by others, or not the
 * pair its name says.
 */
export function readPrivateKeyFile(dir: string, node: string, kcv: string): NodePrivateKey | undefined {
  const file = path.join(dir, privateKeyFileName(node, kcv));
  const refuse = (detail: string, cause?: unknown): IbpError => new IbpError('IBP_ERR_NODE_KEY_FILE', { file, detail }, { cause });
  let text: string;
  try {
    const read = readFileNoFollow(file, refuse, (st) => {
      if ((st.mode & 0o077) !== 0) throw refuse(`its mode is ${(st.mode & 0o777).toString(8)}: run chmod 600 on it`);
      if (st.size > 64 * 1024) throw refuse(`${st.size} bytes is too big for a key file`);
    });
    if (read === undefined) return undefined;
    text = read.bytes.toString('utf8');
  } catch (e) {
    if (e instanceof IbpError) throw e;
    throw refuse((e as Error).message, e);
  }
  try {
    const w = JSON.parse(text) as NodePrivateKeyWire;
    if (w.node !== node || w.kcv !== kcv) throw new Error(`it holds kcv ${String(w.kcv)} of node ${String(w.node)}`);
    return nodePrivateKeyFromWire(w);
  } catch (e) {
    if (e instanceof IbpError) throw e;
    throw new IbpError('IBP_ERR_NODE_KEY_FILE', { file, detail: (e as Error).message }, { cause: e });
  }
}

/** The KCVs of `node` that have a private key file in `dir`. */
export function listPrivateKeyFiles(dir: string, node: string): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const name of names) {
    const p = parsePrivateKeyFileName(name);
    if (p && p.node === node) out.push(p.kcv);
  }
  return out;
}

/** Remove a pair's file. Returns whether a file was removed. */
export function removePrivateKeyFile(dir: string, node: string, kcv: string): boolean {
  try {
    fs.unlinkSync(path.join(dir, privateKeyFileName(node, kcv)));
    return true;
  } catch {
    return false;
  }
}

