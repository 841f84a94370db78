/**
 * App packages: keep `<home>/so/<bin>` equal to the registry's package for every app this node
 * serves.
 *
 * For each app of a bundle whose package sha256 (registry side) differs from the local file's:
 *   1. GET /v1/agent/packages/<bin> (bytes + X-Ibp-Sha256), at most the announced size;
 *   2. verify: sha256(bytes) must equal the bundle's sha256 and the header's, and the size the
 *      bundle's; otherwise the download is discarded and logged, and the old file stays;
 *   3. IBP's install order: write `<bin>.updating`, fsync it, remove the old `<bin>`, rename
 *      `<bin>.updating` to `<bin>`, fsync the folder. A server that fails to open `<bin>` in the
 *      short gap between 3b and 3c can open the `.updating` file, which is already complete.
 *
 * Which apps a node serves is decided by the registry: a package is offered to a server node of a
 * project holding the app, or to the app's server_node. The bundle does not say which projects
 * this node serves, so the agent asks for every changed package and takes a 403 as "not ours";
 * the (bin, sha256) pair is then remembered so that it is not asked again until it changes.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { errorText, IbpError } from '../lib/errors.js';
import { checkPlainFileName, type Home } from '../lib/home.js';
import type { Logger } from '../lib/log.js';
import type { AppWithPackage, NodeBundle } from '../lib/config/model.js';
import { LZ4_ENCODING, lz4Decompress } from '../lib/codec/lz4.js';
import { answerError, type RegistryClient } from '../lib/registry-client.js';

export interface PackageResult {
  installed: string[];
  /** Packages that failed (download, verification or install): retried with the next bundle or round. */
  failed: string[];
  /** Offered to other nodes only (HTTP 403). */
  notOurs: string[];
}

interface LocalHash { ino: number; size: number; mtimeMs: number; sha256: string }

export class PackageInstaller {
  readonly #home: Home;
  readonly #client: RegistryClient;
  readonly #log: Logger;
  readonly #maxSize: number;
  readonly #hashes = new Map<string, LocalHash>();
  readonly #notOurs = new Map<string, string>();

  constructor(home: Home, client: RegistryClient, log: Logger, maxSize: number) {
    this.#home = home;
    this.#client = client;
    this.#log = log;
    this.#maxSize = maxSize;
  }

  /** Bring so/ in line with the bundle. Never throws for a single package: each failure is logged. */
  async sync(bundle: NodeBundle, signal?: AbortSignal): Promise<PackageResult> {
    const result: PackageResult = { installed: [], failed: [], notOurs: [] };
    for (const app of wanted(bundle)) {
      if (signal?.aborted) break;
      try {
        checkPlainFileName(app.bin);
      } catch (e) {
        this.#log.error({ app: app.app, bin: app.bin }, `package refused , app[${app.app}] reason[${errorText(e)}]`);
        result.failed.push(app.bin);
        continue;
      }
      if (this.#notOurs.get(app.bin) === app.sha256) {
        result.notOurs.push(app.bin);
        continue;
      }
      if ((await this.localSha256(app.bin)) === app.sha256) continue;
      try {
        const outcome = await this.#install(app, signal);
        if (outcome === 'not-ours') {
          this.#notOurs.set(app.bin, app.sha256);
          result.notOurs.push(app.bin);
        } else {
          result.installed.push(app.bin);
        }
      } catch (e) {
        if (signal?.aborted) break;
        this.#log.error({ app: app.app, bin: app.bin, sha256: app.sha256 }, `package update failed , bin[${app.bin}] reason[${errorText(e)}] , the old file stays`);
        result.failed.push(app.bin);
      }
    }
    return result;
  }

  /** sha256 (hex) of so/<bin>, undefined when there is no such file. Cached by inode, size and mtime. */
  async localSha256(bin: string): Promise<string | undefined> {
    const file = this.#home.so(bin);
    let st: fs.Stats;
    try {
      st = await fs.promises.stat(file);
    } catch {
      this.#hashes.delete(bin);
      return undefined;
    }
    const known = this.#hashes.get(bin);
    if (known && known.ino === st.ino && known.size === st.size && known.mtimeMs === st.mtimeMs) return known.sha256;
    const sha256 = crypto.createHash('sha256').update(await fs.promises.readFile(file)).digest('hex');
    this.#hashes.set(bin, { ino: st.ino, size: st.size, mtimeMs: st.mtimeMs, sha256 });
    return sha256;
  }

  async #install(app: AppWithPackage, signal?: AbortSignal): Promise<'installed' | 'not-ours'> {
    if (app.size > this.#maxSize) throw new IbpError('IBP_ERR_AGENT_PACKAGE', { bin: app.bin, detail: `announced size ${app.size} is over agent.max_package_size ${this.#maxSize}` });
    const ans = await this.#client.get(`/agent/packages/${encodeURIComponent(app.bin)}`, { signal, timeoutMs: 120_000, maxSize: Math.max(app.size, 1) });
    if (ans.status === 403) {
      this.#log.debug({ bin: app.bin }, `package offered to other nodes , bin[${app.bin}]`);
      return 'not-ours';
    }
    if (ans.status !== 200) throw answerError(ans, `package ${app.bin}`);
    const body = decodePackage(ans.body, ans.headers.get('content-encoding'), app);
    const got = crypto.createHash('sha256').update(body).digest('hex');
    const header = ans.headers.get('x-ibp-sha256');
    if (got !== app.sha256 || (header !== null && header !== app.sha256) || body.length !== app.size) {
      this.#log.error(
        { bin: app.bin, expected: app.sha256, header, got, size: body.length, expectedSize: app.size },
        `package rejected , bin[${app.bin}] sha256[${got}] expected[${app.sha256}] header[${header ?? ''}] size[${body.length}/${app.size}] , discarded, the old file stays`,
      );
      throw new IbpError('IBP_ERR_AGENT_PACKAGE', { bin: app.bin, detail: `sha256 ${got} of ${body.length} bytes, expected ${app.sha256} of ${app.size} bytes` });
    }
    installAtomically(this.#home.dir('so'), app.bin, body);
    this.#hashes.delete(app.bin);
    this.#log.info({ bin: app.bin, sha256: got, size: body.length }, `package installed , bin[${app.bin}] sha256[${got}] size[${body.length}]`);
    return 'installed';
  }
}

/** The package bytes; an lz4 content encoding is undone (bounded by the announced size). */
function decodePackage(body: Buffer, encoding: string | null, app: AppWithPackage): Buffer {
  const enc = (encoding ?? '').trim().toLowerCase();
  if (enc === '' || enc === 'identity') return body;
  if (enc !== LZ4_ENCODING) throw new IbpError('IBP_ERR_AGENT_PACKAGE', { bin: app.bin, detail: `unsupported content encoding "${encoding}"` });
  try {
    return lz4Decompress(body, app.size);
  } catch (e) {
    throw new IbpError('IBP_ERR_AGENT_PACKAGE', { bin: app.bin, detail: `corrupt lz4 body: ${errorText(e)}` }, { cause: e });
  }
}

/** One entry per bin (several apps may share one package), only those the registry has a package for. */
function wanted(bundle: NodeBundle): AppWithPackage[] {
  const byBin = new Map<string, AppWithPackage>();
  for (const app of bundle.apps) {
    if (app.sha256 === '') continue;
    const prev = byBin.get(app.bin);
    // prefer the app that names this node as its server: it is certainly ours
    if (!prev || (app.server_node === bundle.this_node && prev.server_node !== bundle.this_node)) byBin.set(app.bin, app);
  }
  return [...byBin.values()];
}

/** IBP's order: `<bin>.updating` written and fsynced, old `<bin>` removed, rename, folder fsynced. */
export function installAtomically(dir: string, bin: string, bytes: Buffer): void {
  const target = path.join(dir, checkPlainFileName(bin));
  const updating = `${target}.updating`;
  const fd = fs.openSync(updating, 'w', 0o755);
  try {
    let off = 0;
    while (off < bytes.length) off += fs.writeSync(fd, bytes, off, bytes.length - off);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  try {
    fs.unlinkSync(target);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  fs.renameSync(updating, target);
  const dfd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(dfd);
  } finally {
    fs.closeSync(dfd);
  }
}
