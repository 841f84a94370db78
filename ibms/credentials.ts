/**
 * Credentials: bearer tokens in the home's keys/ folder, each file readable only by its owner.
 *
 *   keys/admin.credential        the administrator (written by `ibms -a init`)
 *   keys/admin-ro.credential     the read-only administrator: `admin-read` routes only (written by
 *                                `ibms -a init`, or at the daemon's start when absent)
 *   keys/node_<NODE>.credential  one per node, generated when the node is added (or first seen)
 *
 * A credential is 32 random bytes in hex. Files are created exclusively (O_EXCL), so the daemon
 * and a CLI never both generate one for the same node; whoever loses the race reads the winner's.
 * Comparisons are constant-time (timingSafeEqual over sha256 digests). `rotate` (`ibms -a
 * rotate_credential`) replaces one credential: the new file is written atomically (0600) and the
 * old credential is refused from then on.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import type { Home } from '../lib/home.js';
import writeFileAtomic from 'write-file-atomic';
import { IbpError } from '../lib/errors.js';

export const ADMIN_CREDENTIAL_FILE = 'admin.credential';
export const ADMIN_RO_CREDENTIAL_FILE = 'admin-ro.credential';
export const nodeCredentialFile = (node: string): string => `node_${node}.credential`;

export function generateCredential(): string {
  return crypto.randomBytes(32).toString('hex');
}

function readCredential(file: string): string | undefined {
  try {
    const text = fs.readFileSync(file, 'utf8').trim();
    return text.length > 0 ? text : undefined;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

/** Create the credential file if absent (0600). Returns the credential and whether it was created. */
export function ensureCredentialFile(file: string): { credential: string; created: boolean } {
  const existing = readCredential(file);
  if (existing) return { credential: existing, created: false };
  const credential = generateCredential();
  try {
    fs.writeFileSync(file, `${credential}\n`, { flag: 'wx', mode: 0o600 });
    return { credential, created: true };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') {
      const raced = readCredential(file);
      if (raced) return { credential: raced, created: false };
    }
    throw new IbpError('IBP_ERR_HOME_LAYOUT', { home: file, detail: `cannot write credential: ${(e as Error).message}` });
  }
}

/** Replace a credential file with a new credential (atomic, 0600); answers the new credential. */
export function replaceCredentialFile(file: string): string {
  const credential = generateCredential();
  try {
    writeFileAtomic.sync(file, `${credential}\n`, { mode: 0o600 });
  } catch (e) {
    throw new IbpError('IBP_ERR_HOME_LAYOUT', { home: file, detail: `cannot write credential: ${(e as Error).message}` });
  }
  return credential;
}

/** The admin credential of a home, for the CLI. */
export function readAdminCredential(home: Home): string {
  const file = home.keys(ADMIN_CREDENTIAL_FILE);
  const c = readCredential(file);
  if (!c) throw new IbpError('IBP_ERR_CLI_USAGE', { detail: `no admin credential ${file}: run this on the registry's home (IBP_HOME, made by \`ibms -a init\`), or give one with --token-file FILE or $IBMS_TOKEN` });
  return c;
}

function sameSecret(a: string, b: string): boolean {
  const ha = crypto.createHash('sha256').update(a).digest();
  const hb = crypto.createHash('sha256').update(b).digest();
  return crypto.timingSafeEqual(ha, hb);
}

export type Principal = { kind: 'admin' } | { kind: 'admin-ro' } | { kind: 'node'; node: string };

/** What `rotate` replaces. */
export type CredentialKind = 'admin' | 'admin-ro' | 'node';

/** The daemon's view: the admin credentials and every node's, by credential. */
export class Credentials {
  readonly #home: Home;
  #admin: string;
  #adminRo: string;
  readonly #byNode = new Map<string, string>();
  /** sha256(credential) → node, so a lookup does not scan. */
  readonly #byDigest = new Map<string, string>();

  constructor(home: Home) {
    this.#home = home;
    this.#admin = ensureCredentialFile(home.keys(ADMIN_CREDENTIAL_FILE)).credential;
    this.#adminRo = ensureCredentialFile(home.keys(ADMIN_RO_CREDENTIAL_FILE)).credential;
  }

  static digest(credential: string): string {
    return crypto.createHash('sha256').update(credential).digest('hex');
  }

  /** Make sure a node has a credential (generate it when the node is new). */
  ensureNode(node: string): string {
    const known = this.#byNode.get(node);
    if (known) return known;
    const { credential } = ensureCredentialFile(this.#home.keys(nodeCredentialFile(node)));
    this.#setNode(node, credential);
    return credential;
  }

  #setNode(node: string, credential: string): void {
    const old = this.#byNode.get(node);
    if (old) this.#byDigest.delete(Credentials.digest(old));
    this.#byNode.set(node, credential);
    this.#byDigest.set(Credentials.digest(credential), node);
  }

  /** A removed node's credential stops working and its file is deleted. */
  removeNode(node: string): void {
    const c = this.#byNode.get(node);
    if (c) this.#byDigest.delete(Credentials.digest(c));
    this.#byNode.delete(node);
    try {
      fs.unlinkSync(this.#home.keys(nodeCredentialFile(node)));
    } catch {
      // never written
    }
  }

  nodeCredential(node: string): string | undefined {
    return this.#byNode.get(node);
  }

  /** The file holding a credential. */
  fileOf(kind: CredentialKind, node?: string): string {
    if (kind === 'admin') return this.#home.keys(ADMIN_CREDENTIAL_FILE);
    if (kind === 'admin-ro') return this.#home.keys(ADMIN_RO_CREDENTIAL_FILE);
    return this.#home.keys(nodeCredentialFile(node!));
  }

  /** Issue a new credential (file rewritten atomically); the old one is refused from now on. */
  rotate(kind: CredentialKind, node?: string): string {
    const file = this.fileOf(kind, node);
    const credential = replaceCredentialFile(file);
    if (kind === 'admin') this.#admin = credential;
    else if (kind === 'admin-ro') this.#adminRo = credential;
    else this.#setNode(node!, credential);
    return file;
  }

  /** Who presents this bearer token, if anyone (every comparison constant-time). */
  identify(token: string | undefined): Principal | undefined {
    if (!token) return undefined;
    const isAdmin = sameSecret(token, this.#admin);
    const isAdminRo = sameSecret(token, this.#adminRo);
    if (isAdmin) return { kind: 'admin' };
    if (isAdminRo) return { kind: 'admin-ro' };
    const node = this.#byDigest.get(Credentials.digest(token));
    if (node === undefined || !sameSecret(token, this.#byNode.get(node)!)) return undefined;
    return { kind: 'node', node };
  }
}

/** The token of an `Authorization: Bearer <token>` header. */
export function bearerToken(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return m?.[1];
}
