/**
 * ibcmd credentials: one per caller — keys/ibcmd.credential for the caller `default`, and one
 * file per named caller of ibcmd.conf `callers` (each mode 0600, as ssh insists on for private
 * keys). Clients send theirs as `Authorization: Bearer <credential>`; the agent compares digests
 * with every caller's in constant time and names the caller in the audit line. Copy a caller's
 * file to the hosts that caller drives (or name a file per host in ibp_cluster.conf).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { IbpError } from '../lib/errors.js';

export const MIN_CREDENTIAL_LENGTH = 16;

/** Create the credential file if absent. Returns true when it was created. */
export function ensureCredential(file: string): boolean {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const secret = crypto.randomBytes(32).toString('hex');
  try {
    fs.writeFileSync(file, `${secret}\n`, { mode: 0o600, flag: 'wx' });
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw new IbpError('IBP_ERR_CMD_CREDENTIAL', { file, detail: (e as Error).message }, { cause: e });
  }
}

/**
 * Read a credential file. The agent refuses a file others can read (`strictMode`); a client
 * reading a copy only needs it to be readable.
 */
export function readCredential(file: string, strictMode = true): string {
  let text: string;
  try {
    const fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
    try {
      const st = fs.fstatSync(fd);
      if (!st.isFile()) throw new Error('it is not a regular file');
      if (strictMode && (st.mode & 0o077) !== 0) throw new Error(`it is readable by others (mode ${(st.mode & 0o777).toString(8)}): chmod 600 it`);
      if (st.size > 4096) throw new Error('it is larger than 4096 bytes');
      text = fs.readFileSync(fd, 'utf8');
    } finally {
      fs.closeSync(fd);
    }
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const detail = code === 'ENOENT' ? 'it does not exist: run `ibcmd -a init`, or copy the agent\'s file'
      : code === 'ELOOP' ? 'it is a symbolic link'
      : (e as Error).message;
    throw new IbpError('IBP_ERR_CMD_CREDENTIAL', { file, detail }, { cause: e });
  }
  const secret = text.trim();
  if (secret.length < MIN_CREDENTIAL_LENGTH || /\s/.test(secret)) {
    throw new IbpError('IBP_ERR_CMD_CREDENTIAL', { file, detail: `it must hold one token of at least ${MIN_CREDENTIAL_LENGTH} characters` });
  }
  return secret;
}

const digest = (s: string): Buffer => crypto.createHash('sha256').update(s).digest();

/** Compare a presented `Authorization` header with the secret, in constant time. */
export function checkAuthorization(header: string | undefined, secret: string): boolean {
  if (typeof header !== 'string' || !header.startsWith('Bearer ')) return false;
  return crypto.timingSafeEqual(digest(header.slice('Bearer '.length).trim()), digest(secret));
}

export interface CallerSecret {
  name: string;
  secret: string;
}

/** Which caller presents this `Authorization` header (every caller compared, constant time). */
export function identifyCaller(header: string | undefined, callers: readonly CallerSecret[]): string | undefined {
  if (typeof header !== 'string' || !header.startsWith('Bearer ')) return undefined;
  const presented = digest(header.slice('Bearer '.length).trim());
  let found: string | undefined;
  for (const c of callers) if (crypto.timingSafeEqual(presented, digest(c.secret)) && found === undefined) found = c.name;
  return found;
}
