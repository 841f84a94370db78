/**
 * App packages: keep `<home>/so/<bin>` equal to the registry's SIGNED package for every app this
 * node serves.
 *
 * For each app of a bundle with a package (sha256 ≠ '') whose bin is in the bundle's package_bins:
 *   1. the bundle's signed manifest must verify with the trusted package-signing key (below) and
 *      name this bin, the bundle's sha256 and size; otherwise nothing is downloaded (refused, logged);
 *   2. a local so/<bin> (opened O_NOFOLLOW: a symlink is refused, logged and replaced) whose sha256
 *      already is the signed one is recorded as verified and kept;
 *   3. otherwise GET /v1/agent/packages/<bin> (bytes + X-Ibp-Sha256), at most the signed size;
 *      sha256(bytes) must equal the signed sha256 (and the header, and the size): otherwise the
 *      download is discarded and logged, and the old file stays;
 *   4. install (lib/so-folder.ts): a fresh O_EXCL `<bin>.updating.<pid>-<random>`, fsync, rename
 *      over `<bin>`, fsync the folder. The folder is checked first (not group/world-writable).
 *
 * The trusted key: `keys/package-signing.pub` of the agent home. An admin may place it there
 * (configured trust: copy the registry's keys/package-signing.pub); when it is missing the key the
 * first bundle carries is pinned there (trust on first use, logged as a warning). A bundle signed
 * by another key is refused until the file is replaced. See docs/security.md.
 *
 * What the config space carries ({@link PackageInstaller.spaceBundle}): per app, the signed
 * sha256/manifest/signature of the package ibma verified and that is in so/ now; when a newer
 * package was refused, the previous verified one keeps its place, so ibas keeps loading it.
 * The verified records survive restarts in `run/ibma_<node>.packages.json`.
 *
 * Which packages a node installs is decided by the registry, by one rule (ibms store.entitledToBin:
 * a server node of a project holding an app of the bin, or such an app's server_node), which both
 * answers GET /v1/agent/packages/:bin and fills the bundle's `package_bins`. The agent installs the
 * bins of `package_bins` and asks for no other (a client-only node asks for none); a 403 for one of
 * them is a failure carrying the registry's reason (retried). From an older registry whose bundle
 * has no `package_bins`, the agent asks for every changed package and takes a 403 as "not ours";
 * the (bin, sha256) pair is then remembered so that it is not asked again until it changes.
 */
import type crypto from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import { errorText, IbpError, isIbpError } from '../lib/errors.js';
import { checkPlainFileName, type Home } from '../lib/home.js';
import type { Logger } from '../lib/log.js';
import type { AppWithPackage, NodeBundle } from '../lib/config/model.js';
import { LZ4_ENCODING, lz4Decompress } from '../lib/codec/lz4.js';
import { answerError, type RegistryClient } from '../lib/registry-client.js';
import { SIGNING_PUB_FILE, publicKeyB64, publicKeyOf, verifyManifest, type Manifest } from '../lib/package-signing.js';
import { installPackage, readPackage, sha256Hex } from '../lib/so-folder.js';

interface WriteFileAtomic {
  sync(file: string, data: string | Buffer, opts?: { mode?: number; fsync?: boolean }): void;
}
const writeFileAtomic = createRequire(import.meta.url)('write-file-atomic') as WriteFileAtomic;

export interface PackageResult {
  installed: string[];
  /** Packages that failed (signature, download, verification or install): retried with the next bundle or round. */
  failed: string[];
  /** Packages of apps this node does not serve: not in the bundle's package_bins (or, from an older registry, answered 403). */
  notOurs: string[];
}

/** A package ibma verified and installed (or found in place): what the config space carries for its bin. */
export interface VerifiedPackage {
  sha256: string;
  size: number;
  manifest: string;
  signature: string;
}

interface LocalHash { ino: number; size: number; mtimeMs: number; ctimeMs: number; sha256: string }

export function packageRecordFile(home: Home, node: string): string {
  return home.run(`ibma_${node}.packages.json`);
}

export class PackageInstaller {
  readonly #home: Home;
  readonly #client: RegistryClient;
  readonly #log: Logger;
  readonly #maxSize: number;
  readonly #recordFile: string;
  readonly #hashes = new Map<string, LocalHash>();
  readonly #notOurs = new Map<string, string>();
  readonly #verified: Map<string, VerifiedPackage>;
  /** Keys of bundles refused for not being the pinned one (logged once each). */
  readonly #foreignKeys = new Set<string>();

  constructor(home: Home, client: RegistryClient, log: Logger, maxSize: number, recordFile: string) {
    this.#home = home;
    this.#client = client;
    this.#log = log;
    this.#maxSize = maxSize;
    this.#recordFile = recordFile;
    this.#verified = loadRecords(recordFile, log);
  }

  /**
   * Bring so/ in line with the bundle. Never throws for a single package: each failure is logged.
   * Every manifest is verified first; then, before the first download, `onPending` gets the signed
   * sha256 of each package about to be installed (the agent publishes them as SHA256_NEXT, so
   * ibas accepts the new file from the moment it is renamed in place).
   */
  async sync(bundle: NodeBundle, signal?: AbortSignal, onPending?: (next: Map<string, string>) => void | Promise<void>): Promise<PackageResult> {
    const result: PackageResult = { installed: [], failed: [], notOurs: [] };
    const key = this.trustedKey(bundle);
    const todo: { app: AppWithPackage; manifest: Manifest; signed: VerifiedPackage }[] = [];
    const { mine, others } = wanted(bundle);
    const guessing = bundle.package_bins === undefined;
    result.notOurs.push(...others);
    for (const app of mine) {
      if (signal?.aborted) break;
      const refuse = (reason: string): void => {
        this.#log.error({ app: app.app, bin: app.bin, sha256: app.sha256 }, `package refused , app[${app.app}] bin[${app.bin}] reason[${reason}] , the old file stays`);
        result.failed.push(app.bin);
      };
      try {
        checkPlainFileName(app.bin);
      } catch (e) {
        refuse(errorText(e));
        continue;
      }
      if (guessing && this.#notOurs.get(app.bin) === app.sha256) {
        result.notOurs.push(app.bin);
        continue;
      }
      if (!key) {
        refuse('no trusted package-signing key: the registry sent none and keys/package-signing.pub of this home is missing');
        continue;
      }
      if (app.manifest === undefined || app.signature === undefined) {
        refuse('the registry sent no signed manifest for it');
        continue;
      }
      const v = verifyManifest(key, { manifest: app.manifest, signature: app.signature }, { app: app.app, bin: app.bin });
      if (!v.ok) {
        refuse(v.reason);
        continue;
      }
      if (v.manifest.sha256 !== app.sha256 || v.manifest.size !== app.size) {
        refuse(`the signed manifest says sha256 ${v.manifest.sha256} size ${v.manifest.size}, the bundle ${app.sha256} size ${app.size}`);
        continue;
      }
      const signed: VerifiedPackage = { sha256: v.manifest.sha256, size: v.manifest.size, manifest: app.manifest, signature: app.signature };
      if ((await this.localSha256(app.bin)) === signed.sha256) {
        this.#record(app.bin, signed);
        continue;
      }
      todo.push({ app, manifest: v.manifest, signed });
    }
    if (todo.length > 0 && onPending && !signal?.aborted) {
      try {
        await onPending(new Map(todo.map((x) => [x.app.bin, x.signed.sha256])));
      } catch (e) {
        this.#log.error({}, `announcing the packages being installed failed , reason[${errorText(e)}]`);
      }
    }
    for (const { app, manifest, signed } of todo) {
      if (signal?.aborted) break;
      try {
        const outcome = await this.#install(app, manifest, guessing, signal);
        if (outcome === 'not-ours') {
          this.#notOurs.set(app.bin, app.sha256);
          result.notOurs.push(app.bin);
        } else {
          this.#record(app.bin, signed);
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

  /**
   * The package-signing key to verify with: keys/package-signing.pub of this home; pinned from
   * the bundle when there is none yet. A bundle carrying another key is logged (once per key).
   */
  trustedKey(bundle?: NodeBundle): crypto.KeyObject | undefined {
    const file = this.#home.keys(SIGNING_PUB_FILE);
    let pinned: crypto.KeyObject | undefined;
    try {
      pinned = publicKeyOf(fs.readFileSync(file, 'utf8'), file);
    } catch (e) {
      if (isIbpError(e, 'IBP_ERR_PKG_KEY')) {
        this.#log.error({ file }, `package-signing key refused , file[${file}] reason[${errorText(e)}]`);
        return undefined;
      }
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') {
        this.#log.error({ file }, `package-signing key unreadable , file[${file}] reason[${errorText(e)}]`);
        return undefined;
      }
    }
    const offered = bundle?.package_key;
    if (pinned) {
      if (offered && offered !== publicKeyB64(pinned) && !this.#foreignKeys.has(offered)) {
        this.#foreignKeys.add(offered);
        this.#log.error({ file, offered }, `package-signing key of the registry differs from the pinned one , file[${file}] , packages signed by it are refused: replace ${file} with the registry's keys/${SIGNING_PUB_FILE} if the key was rotated`);
      }
      return pinned;
    }
    if (!offered) return undefined;
    let key: crypto.KeyObject;
    try {
      key = publicKeyOf(offered, 'the bundle');
    } catch (e) {
      this.#log.error({}, `package-signing key of the bundle refused , reason[${errorText(e)}]`);
      return undefined;
    }
    try {
      fs.mkdirSync(this.#home.dir('keys'), { recursive: true, mode: 0o700 });
      fs.writeFileSync(file, key.export({ format: 'pem', type: 'spki' }), { flag: 'wx', mode: 0o644 });
      this.#log.warn({ file, key: offered }, `package-signing key pinned on first use , file[${file}] key[${offered}]`);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') return this.trustedKey(bundle);
      this.#log.error({ file }, `pinning the package-signing key failed , file[${file}] reason[${errorText(e)}]`);
      return undefined;
    }
    return key;
  }

  /**
   * The bundle as the config space carries it: the trusted key in package_key, and for each app
   * the verified package that is in so/ now (when there is one), else the bundle's own values;
   * `next` (bin → signed sha256 being installed) fills sha256_next.
   */
  async spaceBundle(bundle: NodeBundle, next?: Map<string, string>): Promise<NodeBundle> {
    const key = this.trustedKey();
    const apps: AppWithPackage[] = [];
    for (const b of bundle.apps) {
      const n = next?.get(b.bin);
      const a = n !== undefined ? { ...b, sha256_next: n } : b;
      const rec = this.#verified.get(a.bin);
      let local: string | undefined;
      if (rec) {
        try {
          local = await this.localSha256(a.bin);
        } catch {
          local = undefined;
        }
      }
      if (rec && local === rec.sha256) apps.push({ ...a, sha256: rec.sha256, size: rec.size, manifest: rec.manifest, signature: rec.signature });
      else apps.push(a);
    }
    return { ...bundle, apps, package_key: key ? publicKeyB64(key) : '' };
  }

  /** sha256 (hex) of so/<bin>, undefined when there is no such file or it is refused (a symlink, logged). */
  async localSha256(bin: string): Promise<string | undefined> {
    const file = this.#home.so(bin);
    let st: fs.Stats;
    try {
      st = await fs.promises.lstat(file);
    } catch {
      this.#hashes.delete(bin);
      return undefined;
    }
    const known = this.#hashes.get(bin);
    if (known && known.ino === st.ino && known.size === st.size && known.mtimeMs === st.mtimeMs && known.ctimeMs === st.ctimeMs) return known.sha256;
    let got: ReturnType<typeof readPackage>;
    try {
      got = readPackage(file);
    } catch (e) {
      this.#hashes.delete(bin);
      this.#log.warn({ bin, file }, `package file refused , file[${file}] reason[${errorText(e)}] , it is replaced by the verified package`);
      return undefined;
    }
    if (!got) return undefined;
    const sha256 = sha256Hex(got.bytes);
    this.#hashes.set(bin, { ino: got.st.ino, size: got.st.size, mtimeMs: got.st.mtimeMs, ctimeMs: got.st.ctimeMs, sha256 });
    return sha256;
  }

  #record(bin: string, p: VerifiedPackage): void {
    const old = this.#verified.get(bin);
    if (old && old.sha256 === p.sha256 && old.manifest === p.manifest && old.signature === p.signature) return;
    this.#verified.set(bin, p);
    try {
      writeFileAtomic.sync(this.#recordFile, `${JSON.stringify(Object.fromEntries(this.#verified))}\n`, { mode: 0o600 });
    } catch (e) {
      this.#log.error({ file: this.#recordFile }, `saving the verified packages failed , file[${this.#recordFile}] reason[${errorText(e)}]`);
    }
  }

  /** `guessing`: the bundle has no package_bins (an older registry), so a 403 means "not ours". */
  async #install(app: AppWithPackage, signed: Manifest, guessing: boolean, signal?: AbortSignal): Promise<'installed' | 'not-ours'> {
    if (signed.size > this.#maxSize) throw new IbpError('IBP_ERR_AGENT_PACKAGE', { bin: app.bin, detail: `signed size ${signed.size} is over agent.max_package_size ${this.#maxSize}` });
    const ans = await this.#client.get(`/agent/packages/${encodeURIComponent(app.bin)}`, { signal, timeoutMs: 120_000, maxSize: Math.max(signed.size, 1) });
    if (ans.status === 403 && guessing) {
      this.#log.debug({ bin: app.bin }, `package offered to other nodes , bin[${app.bin}]`);
      return 'not-ours';
    }
    if (ans.status !== 200) throw answerError(ans, `package ${app.bin}`);
    const body = decodePackage(ans.body, ans.headers.get('content-encoding'), app.bin, signed.size);
    const got = sha256Hex(body);
    const header = ans.headers.get('x-ibp-sha256');
    if (got !== signed.sha256 || (header !== null && header !== signed.sha256) || body.length !== signed.size) {
      this.#log.error(
        { bin: app.bin, expected: signed.sha256, header, got, size: body.length, expectedSize: signed.size },
        `package rejected , bin[${app.bin}] sha256[${got}] expected[${signed.sha256}] header[${header ?? ''}] size[${body.length}/${signed.size}] , discarded, the old file stays`,
      );
      throw new IbpError('IBP_ERR_AGENT_PACKAGE', { bin: app.bin, detail: `sha256 ${got} of ${body.length} bytes, signed ${signed.sha256} of ${signed.size} bytes` });
    }
    installPackage(this.#home.dir('so'), app.bin, body);
    this.#hashes.delete(app.bin);
    this.#log.info({ bin: app.bin, sha256: got, size: body.length }, `package installed , bin[${app.bin}] sha256[${got}] size[${body.length}] signature verified`);
    return 'installed';
  }
}

/** The verified packages of a previous run; a bad file is ignored (packages are verified again). */
function loadRecords(file: string, log: Logger): Map<string, VerifiedPackage> {
  const out = new Map<string, VerifiedPackage>();
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') log.warn({ file }, `verified packages file ignored , file[${file}] reason[${errorText(e)}]`);
    return out;
  }
  if (typeof raw !== 'object' || raw === null) return out;
  for (const [bin, v] of Object.entries(raw as Record<string, unknown>)) {
    const r = v as Partial<VerifiedPackage> | null;
    if (r && typeof r.sha256 === 'string' && /^[0-9a-f]{64}$/.test(r.sha256) && Number.isSafeInteger(r.size) && typeof r.manifest === 'string' && typeof r.signature === 'string') {
      out.set(bin, { sha256: r.sha256, size: r.size!, manifest: r.manifest, signature: r.signature });
    }
  }
  return out;
}

/** The package bytes; an lz4 content encoding is undone (bounded by the announced size). */
function decodePackage(body: Buffer, encoding: string | null, bin: string, size: number): Buffer {
  const enc = (encoding ?? '').trim().toLowerCase();
  if (enc === '' || enc === 'identity') return body;
  if (enc !== LZ4_ENCODING) throw new IbpError('IBP_ERR_AGENT_PACKAGE', { bin, detail: `unsupported content encoding "${encoding}"` });
  try {
    return lz4Decompress(body, size);
  } catch (e) {
    throw new IbpError('IBP_ERR_AGENT_PACKAGE', { bin, detail: `corrupt lz4 body: ${errorText(e)}` }, { cause: e });
  }
}

/**
 * One entry per bin (several apps may share one package), only those the registry has a package
 * for; `mine` the bins of the bundle's package_bins (all of them when it has none: an older
 * registry), `others` the bins left out.
 */
function wanted(bundle: NodeBundle): { mine: AppWithPackage[]; others: string[] } {
  const entitled = bundle.package_bins === undefined ? undefined : new Set(bundle.package_bins);
  const byBin = new Map<string, AppWithPackage>();
  const others = new Set<string>();
  for (const app of bundle.apps) {
    if (app.sha256 === '') continue;
    if (entitled && !entitled.has(app.bin)) {
      others.add(app.bin);
      continue;
    }
    const prev = byBin.get(app.bin);
    // prefer the app that names this node as its server: it is certainly ours
    if (!prev || (app.server_node === bundle.this_node && prev.server_node !== bundle.this_node)) byBin.set(app.bin, app);
  }
  return { mine: [...byBin.values()], others: [...others] };
}
