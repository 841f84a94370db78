/**
 * The app cache of one worker (IBP §2.5.3): loaded app .so files, kept in an LRU of
 * `app.max_so_cache_count` entries keyed by the bin's path, and dropped when the file changes.
 *
 *   get(app)      `<soDir>/<bin>` → LoadedApp. Opening bin failed? Try `<bin>.updating` (IBP's rule
 *                 for an update in progress). Both failed → IBP_ERR_APP_LOAD naming both reasons.
 *   call()        one transaction: somain through the host helper (ibas/app-abi.ts), one crossing.
 *   evictIdle()   the worker calls it while idle: stale entries are unloaded.
 *
 * Fresh code, guaranteed: a .so is never dlopen'ed from the so/ folder itself. Each load copies
 * the file into a private folder of this process, dlopens the copy and unlinks it at once (the
 * mapping stays). So dlopen can never hand back an older handle for the same path or inode, and
 * a `cp` over the original (which rewrites the inode in place) cannot change code under a running
 * worker.
 *
 * Verified code (issue 11): the package file is opened O_NOFOLLOW (a symlink is refused and
 * logged) and read ONCE into a buffer; the sha256 of that buffer is compared with the signed
 * sha256 of the config space (AppRef.sha256, written by ibma after it verified the registry's
 * signature), and the private copy is written from that same buffer (O_EXCL, in a 0700 folder of
 * this process) right before dlopen. What is hashed is what is loaded: no window between check
 * and load. A mismatch is IBP_ERR_APP_TAMPERED, logged; when a good version of the app is loaded
 * it keeps serving (the new bytes are checked BEFORE the old handle is dropped), until a file
 * that matches appears. The so/ folder is refused when group/world-writable (lib/so-folder.ts).
 * An app whose config-space sha256 is '' (the registry has no package for it) is loaded
 * unverified, and its load line says so.
 *
 * Staleness: a chokidar watcher on the so/ folder marks an entry stale when its file (or, for an
 * entry loaded from `.updating`, either name) is added, changed, removed or renamed; as a belt
 * and braces against a lagging watcher, get() (at most every statCheckMs while the watcher is up,
 * every time without one) and evictIdle() also compare the file's identity (dev, ino, size,
 * mtime, ctime) with the one loaded.
 *
 * JS apps (issue 15): a package named `*.mjs` is an ES module app. It goes through the same
 * private copy, staleness and LRU; only the load and the call differ (ibas/app-js.ts).
 *
 * Unloading happens only between transactions (koffi: calling into an unloaded library crashes).
 * JS is single-threaded and app calls are synchronous, so get()/evictIdle()/LRU eviction never run
 * while an app is executing. The one exception is two-phase commit: an app that prepared
 * (call(..., { prepare: true })) stays loaded, even if evicted or replaced meanwhile, until its
 * commit() or rollback().
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { LRUCache } from 'lru-cache';
import { watch, type FSWatcher } from 'chokidar';
import type { LibraryHandle } from 'koffi';
import { koffi } from '../lib/native/libc.js';
import { IbpError, errorText, isIbpError } from '../lib/errors.js';
import { checkPlainFileName } from '../lib/home.js';
import { checkSoFolder, readPackage, sha256Hex } from '../lib/so-folder.js';
import type { Logger } from '../lib/log.js';
import {
  APP_ABI_VERSION, APP_FILE_NAME_MAX, APP_MAX_FILES, APP_SYMBOLS, HOST_TABLE, HostCall, PHASE,
  type Phase, type Pointer, type SymbolName,
} from './app-abi.js';
import { JsApp, isJsPackage, linkFramework, type JsHost } from './app-js.js';
import { APP_LOG_LEVEL, type AppLog } from '../lib/app/api.js';

/** Checked package names remembered by the cache (more than a config holds; cleared when full). */
const KNOWN_NAMES_MAX = 4096;

/** What the cache needs to know of an app (an AppConf fits). */
export interface AppRef {
  /** Transaction (app) code. */
  app: string;
  /** Plain .so file name in the so/ folder. */
  bin: string;
  /** The signed sha256 the loaded bytes must have (config space); '' or absent: not checked. */
  sha256?: string;
  /** A second signed sha256 accepted while ibma installs a new version (config space SHA256_NEXT). */
  sha256Next?: string;
}

/** The context of one call, given to the app (ctx fields of lib/native/ibp_app.h). */
export interface AppCallContext {
  /** Defaults to the cache's thisNode. */
  thisNode?: string;
  /** Defaults to the app code the entry was loaded for. */
  app?: string;
  clientNode?: string;
  clientIp?: string;
  clientPort?: number;
  journal?: string;
  /** The global transaction id of a multi-transaction ('' outside one). */
  gtrid?: string;
  /** Defaults to the cache's workerIndex. */
  workerIndex?: number;
  timeoutMs?: number;
  timeout2Ms?: number;
  /**
   * The worker's early send (issue 15, send-ahead): called with the response the app sent ahead.
   * A JS app's call reaches it at once, while main goes on; a .so app's after somain returns
   * (one crossing). Without it the sent-ahead response is simply the call's response.
   */
  onSendAhead?: (response: Buffer, files: string[]) => void;
}

/** What an app sees of the config space (ctx.kv / ctx.config, kv_get / config_get). */
export interface AppSpaceAccess {
  /** Changes whenever the values below may have changed (the config generation). */
  generation(): number;
  /** This node's key/values. */
  kvs(): Iterable<readonly [string, string]>;
  kv(key: string): string | undefined;
  /** The app's config record (APP_CONFIG_KEYS), or none. */
  appConfig(app: string): Iterable<readonly [string, string]>;
}

export interface AppCallResult {
  /** The app's return code: 0 ok, anything else an app error for the client. */
  rc: number;
  response: Buffer;
  /** Names of the response files the app created in the file folder. */
  files: string[];
  /** true when the app sent the response ahead (onSendAhead was called when there was one); absent otherwise. */
  sentAhead?: true;
}

export interface AppCacheOptions {
  /** app.max_so_cache_count (at least 1). */
  max: number;
  /** The so/ folder (`$IBP_HOME/so`). */
  soDir: string;
  log: Logger;
  /** The attached files folder; default `<soDir>/../file` (`$IBP_HOME/file`). */
  fileDir?: string;
  thisNode?: string;
  workerIndex?: number;
  /** Where private copies are loaded from; default a fresh folder under os.tmpdir(). */
  privateDir?: string;
  /** Remove privateDir at close and at exit (default: only when privateDir is the default one). A worker's is {@link workerPrivateDir}. */
  ownPrivateDir?: boolean;
  /** Watch the so/ folder with chokidar (default true). The identity check works without it. */
  watch?: boolean;
  /** Bytes of the response buffer an app writes into in place (default 64 KiB). */
  responseBufferSize?: number;
  /**
   * While the watcher is up, get() re-checks a cached file's identity at most this often (ms;
   * default 250). 0 = on every get. Without a watcher (or before it is ready) get() checks every
   * time; evictIdle() always does.
   */
  statCheckMs?: number;
  /** The config space as apps see it (kv / config); none = no values. */
  space?: AppSpaceAccess;
}

export interface AppCacheStats {
  hits: number;
  misses: number;
  loads: number;
  loadFailures: number;
  unloads: number;
  staleEvictions: number;
  size: number;
}

interface FileIdentity { dev: number; ino: number; size: number; mtimeMs: number; ctimeMs: number }

function identityOf(file: string): FileIdentity | undefined {
  const st = fs.statSync(file, { throwIfNoEntry: false });
  return st && st.isFile() ? { dev: st.dev, ino: st.ino, size: st.size, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs } : undefined;
}

/** Identity of a package file in so/, without following a symlink (a symlink is not a regular file). */
function soIdentityOf(file: string): FileIdentity | undefined {
  const st = fs.lstatSync(file, { throwIfNoEntry: false });
  return st && st.isFile() ? { dev: st.dev, ino: st.ino, size: st.size, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs } : undefined;
}

function identityOfStats(st: fs.Stats): FileIdentity {
  return { dev: st.dev, ino: st.ino, size: st.size, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs };
}

/** A package read and verified, not loaded yet. */
interface Prepared {
  file: string;
  fromUpdating: boolean;
  identity: FileIdentity;
  bytes: Buffer;
  sha256: string;
}

function sameIdentity(a: FileIdentity | undefined, b: FileIdentity | undefined): boolean {
  return !!a && !!b && a.dev === b.dev && a.ino === b.ino && a.size === b.size && a.mtimeMs === b.mtimeMs && a.ctimeMs === b.ctimeMs;
}

const UPDATING = '.updating';

/** One loaded .so. Obtain it from {@link AppCache.get}; do not keep it across transactions. */
export class LoadedApp {
  /** The app code it was loaded for. */
  readonly app: string;
  readonly bin: string;
  /** The file it was loaded from: `<soDir>/<bin>` or `<soDir>/<bin>.updating`. */
  readonly file: string;
  readonly fromUpdating: boolean;
  /** sha256 of the bytes loaded. */
  readonly sha256: string;
  /** When it was loaded (ms since epoch). */
  readonly loadedAt = Date.now();
  /** Set by the watcher or the identity check: the file on disk is not what is loaded. */
  stale = false;
  #identity: FileIdentity;
  /** performance.now() of the last identity check. */
  checkedAt = performance.now();
  #lib: LibraryHandle | undefined;
  #symbols: Map<SymbolName, Pointer>;
  /** A JS app module instead of a .so (then #lib is undefined). */
  #js: JsApp | undefined;
  #cache: AppCache;
  #pins = 0;
  #retired = false;
  /** The file now on disk was refused (APP_TAMPERED) for this expected sha256: keep serving this version. */
  #refused: { identity: FileIdentity | undefined; expected: string } | undefined;
  readonly #signed: boolean;
  calls = 0;

  /** @internal — built by AppCache. */
  constructor(cache: AppCache, ref: AppRef, p: Prepared, lib: LibraryHandle | JsApp, symbols: Map<SymbolName, Pointer>) {
    this.#cache = cache;
    this.app = ref.app;
    this.bin = ref.bin;
    this.file = p.file;
    this.fromUpdating = p.fromUpdating;
    this.sha256 = p.sha256;
    this.#signed = (ref.sha256 ?? '') !== '';
    this.#identity = p.identity;
    if (lib instanceof JsApp) this.#js = lib;
    else this.#lib = lib;
    this.#symbols = symbols;
  }

  get loaded(): boolean { return this.#lib !== undefined || this.#js !== undefined; }
  /** A JS app module (ibas/app-js.ts), not a .so. */
  get isJs(): boolean { return this.#js !== undefined; }
  /** The app exports both socommit and sorollback. */
  get twoPhase(): boolean { return this.has('socommit') && this.has('sorollback'); }
  /** Prepared two-phase transactions still waiting for commit() or rollback(). */
  get pending(): number { return this.#pins; }
  has(name: SymbolName): boolean { return this.#js ? this.#js.has(name) : this.#symbols.has(name); }

  /**
   * One transaction: somain(ctx) with the request and the request files (plain names in the file
   * folder). With `prepare: true` (two-phase commit) the .so stays loaded until commit() or
   * rollback() even if the cache drops it meanwhile.
   */
  call(ctx: AppCallContext, request: Buffer, files: readonly string[] = [], opts: { prepare?: boolean } = {}): AppCallResult {
    if (opts.prepare && !this.twoPhase) throw new IbpError('IBP_ERR_APP_NO_2PC', { app: ctx.app ?? this.app, symbol: this.has('socommit') ? 'sorollback' : 'socommit' });
    const result = this.#invoke('somain', PHASE.MAIN, ctx, request, files);
    this.calls++;
    if (opts.prepare && result.rc === 0) this.#pins++;
    return result;
  }

  /** Two-phase commit: socommit(ctx) for what somain prepared (the response may be empty). */
  commit(ctx: AppCallContext = {}): AppCallResult {
    return this.#decide('socommit', PHASE.COMMIT, ctx);
  }

  /** Two-phase commit: sorollback(ctx); also the right call when the client went away. */
  rollback(ctx: AppCallContext = {}): AppCallResult {
    return this.#decide('sorollback', PHASE.ROLLBACK, ctx);
  }

  /**
   * Two-phase commit: let go of a prepared transaction without deciding it here (its connection
   * went; it stays in doubt in the participant log and any worker decides it later).
   */
  release(): void {
    if (this.#pins > 0) this.#pins--;
    if (this.#pins === 0 && this.#retired) this.unload('released after two-phase commit');
  }

  #decide(name: 'socommit' | 'sorollback', phase: Phase, ctx: AppCallContext): AppCallResult {
    if (!this.has(name)) throw new IbpError('IBP_ERR_APP_NO_2PC', { app: ctx.app ?? this.app, symbol: name });
    try {
      return this.#invoke(name, phase, ctx, null, []);
    } finally {
      if (this.#pins > 0) this.#pins--;
      if (this.#pins === 0 && this.#retired) this.unload('released after two-phase commit');
    }
  }

  #invoke(name: SymbolName, phase: Phase, ctx: AppCallContext, request: Buffer | null, files: readonly string[]): AppCallResult {
    if (this.#js) return this.#cache.invokeJs(this.#js, name, phase, { app: this.app, ...ctx }, request, files);
    const fn = this.#symbols.get(name);
    if (!this.#lib || fn === undefined) throw new IbpError('IBP_ERR_APP_UNLOADED', { app: ctx.app ?? this.app, file: this.file });
    return this.#cache.invoke(fn, phase, { app: this.app, ...ctx }, request, files);
  }

  /** @internal — identity check: is the file on disk still what is loaded? */
  fileChanged(): boolean {
    this.checkedAt = performance.now();
    if (this.fromUpdating) {
      // the update finished (bin appeared) or the .updating file changed: reload
      return fs.existsSync(this.file.slice(0, -UPDATING.length)) || !sameIdentity(this.#identity, soIdentityOf(this.file));
    }
    return !sameIdentity(this.#identity, soIdentityOf(this.file));
  }

  /** @internal — the file now on disk was refused as tampered while this version keeps serving. */
  noteRefused(expected: string): void {
    this.#refused = { identity: soIdentityOf(this.#cache.pathOf(this.bin)), expected };
  }

  /** @internal — still the refused file, still the same expectation: no need to read it again. */
  refusedStill(expected: string): boolean {
    const r = this.#refused;
    return !!r && r.expected === expected && sameIdentity(r.identity, soIdentityOf(this.#cache.pathOf(this.bin)));
  }

  /** Loaded against a signed sha256 of the config space. */
  get signed(): boolean {
    return this.#signed;
  }

  /** @internal — dropped from the LRU: unload now, or after the last pending commit/rollback. */
  retire(reason: string): void {
    this.#retired = true;
    if (this.#pins === 0) this.unload(reason);
    else this.#cache.log.warn({ app: this.app, bin: this.bin, pending: this.#pins }, `app unload deferred , bin[${this.bin}] pending[${this.#pins}] reason[${reason}]`);
  }

  /** @internal — soclean, then dlclose. Only between transactions. */
  unload(reason: string): void {
    const js = this.#js;
    if (js) {
      if (js.has('soclean')) {
        try {
          this.#cache.invokeJs(js, 'soclean', PHASE.CLEAN, { app: this.app }, null, []);
        } catch (e) {
          this.#cache.log.warn({ app: this.app, bin: this.bin, err: errorText(e) }, `app clean failed , bin[${this.bin}]`);
        }
      }
      this.#js = undefined;
      js.close();
      this.#cache.noteUnload(this, reason); // the module instance goes with its last reference
      return;
    }
    const lib = this.#lib;
    if (!lib) return;
    const clean = this.#symbols.get('soclean');
    if (clean !== undefined) {
      try {
        this.#cache.invoke(clean, PHASE.CLEAN, { app: this.app }, null, []);
      } catch (e) {
        this.#cache.log.warn({ app: this.app, bin: this.bin, err: errorText(e) }, `app soclean failed , bin[${this.bin}]`);
      }
    }
    this.#lib = undefined;
    this.#symbols = new Map();
    lib.unload();
    this.#cache.noteUnload(this, reason);
  }
}

/** The LRU of loaded apps of one worker. */
export class AppCache {
  readonly soDir: string;
  readonly fileDir: string;
  readonly privateDir: string;
  readonly #ownPrivateDir: boolean;
  readonly log: Logger;
  readonly #opts: AppCacheOptions;
  readonly #lru: LRUCache<string, LoadedApp>;
  /** bin → its checked path in so/ (see #keyOf). */
  readonly #keys = new Map<string, string>();
  readonly #host: HostCall;
  #watcher: FSWatcher | undefined;
  #ready: Promise<void> = Promise.resolve();
  /** The watcher reported ready and no error since. */
  #watching = false;
  readonly #statCheckMs: number;
  #loadSeq = 0;
  #closed = false;
  readonly #stats = { hits: 0, misses: 0, loads: 0, loadFailures: 0, unloads: 0, staleEvictions: 0 };

  constructor(opts: AppCacheOptions) {
    if (!Number.isInteger(opts.max) || opts.max < 1) throw new IbpError('IBP_ERR_CFG_INVALID', { file: 'ibas.conf', key: 'app.max_so_cache_count', detail: `must be an integer >= 1, got ${opts.max}` });
    this.#opts = opts;
    this.log = opts.log;
    this.soDir = path.resolve(opts.soDir);
    this.fileDir = path.resolve(opts.fileDir ?? path.join(this.soDir, '..', 'file'));
    this.#host = new HostCall(opts.responseBufferSize);
    this.#statCheckMs = Math.max(0, opts.statCheckMs ?? 250);
    this.#ownPrivateDir = opts.ownPrivateDir ?? opts.privateDir === undefined;
    this.privateDir = opts.privateDir ?? makePrivateDir();
    fs.mkdirSync(this.privateDir, { recursive: true, mode: 0o700 });
    linkFramework(this.privateDir);
    if (this.#ownPrivateDir) PRIVATE_DIRS.add(this.privateDir);
    this.#lru = new LRUCache<string, LoadedApp>({
      max: opts.max,
      dispose: (loaded, _key, reason) => loaded.retire(reason === 'evict' ? 'least recently used' : reason === 'delete' ? 'stale or closed' : reason),
    });
    if (opts.watch !== false) this.#startWatcher();
  }

  /** The loaded app for `ref.bin`, loading it (or a fresh copy of a changed file) when needed. */
  get(ref: AppRef): LoadedApp {
    if (this.#closed) throw new IbpError('IBP_ERR_APP_UNLOADED', { app: ref.app, file: ref.bin });
    const key = this.#keyOf(ref);
    const cached = this.#lru.get(key);
    const next = ref.sha256Next ?? '';
    const expected = ref.sha256 ?? '';
    const accepted = next === '' ? expected : `${expected} ${next}`;
    if (cached) {
      const check = !this.#watching || this.#statCheckMs === 0 || performance.now() - cached.checkedAt >= this.#statCheckMs;
      const shaChanged = expected !== '' && cached.sha256 !== expected && cached.sha256 !== next;
      if (!cached.stale && !shaChanged && !(check && cached.fileChanged())) {
        this.#stats.hits++;
        return cached;
      }
      if (cached.refusedStill(accepted)) {
        this.#stats.hits++;
        return cached;
      }
      // verify the new bytes BEFORE dropping the loaded version: a tampered file leaves it serving
      let prepared: Prepared | undefined;
      try {
        prepared = this.#prepare(ref, key);
      } catch (e) {
        if (isIbpError(e, 'IBP_ERR_APP_TAMPERED') && cached.loaded) {
          cached.noteRefused(accepted);
          this.log.error({ app: ref.app, bin: ref.bin, err: e.message }, `app package refused , bin[${ref.bin}] reason[${e.message}] , the loaded version (sha256[${cached.sha256}]) keeps serving`);
          this.#stats.hits++;
          return cached;
        }
      }
      this.#stats.staleEvictions++;
      this.#lru.delete(key);
      this.#stats.misses++;
      const loaded = this.#load(ref, key, prepared);
      this.#lru.set(key, loaded);
      return loaded;
    }
    this.#stats.misses++;
    const loaded = this.#load(ref, key);
    this.#lru.set(key, loaded);
    return loaded;
  }

  /** Is `bin` loaded and current? (No load, no LRU touch.) */
  has(bin: string): boolean {
    const loaded = this.#lru.peek(path.join(this.soDir, bin));
    return !!loaded && !loaded.stale;
  }

  /**
   * Unload stale entries (file changed, removed or renamed). The worker calls it when idle,
   * between transactions. Returns how many were unloaded. Apps loaded against a signed sha256 are
   * left to get(): it checks the new file first, so a tampered one cannot take the good version down.
   */
  evictIdle(): number {
    let n = 0;
    for (const [key, loaded] of [...this.#lru.entries()]) {
      // a signed app is replaced only by get(), which verifies the new file BEFORE dropping this one
      if (loaded.signed) continue;
      if (loaded.stale || loaded.fileChanged()) {
        this.#stats.staleEvictions++;
        this.#lru.delete(key);
        n++;
      }
    }
    return n;
  }

  /** Resolves once the so/ folder watcher is watching (at once when watching is off). */
  ready(): Promise<void> {
    return this.#ready;
  }

  stats(): AppCacheStats {
    return { ...this.#stats, size: this.#lru.size };
  }

  /** Unload everything (soclean of each), stop watching, free the host context. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const [key, loaded] of [...this.#lru.entries()]) {
      this.#lru.delete(key);
      if (loaded.loaded) loaded.unload('cache closed'); // even with a pending two-phase commit
    }
    this.#host.free();
    if (this.#ownPrivateDir) {
      fs.rmSync(this.privateDir, { recursive: true, force: true });
      PRIVATE_DIRS.delete(this.privateDir);
    }
    const w = this.#watcher;
    this.#watcher = undefined;
    if (w) await w.close();
  }

  /** @internal — `<soDir>/<bin>`. */
  pathOf(bin: string): string {
    return path.join(this.soDir, bin);
  }

  #keyOf(ref: AppRef): string {
    const known = this.#keys.get(ref.bin);
    if (known !== undefined) return known;
    try {
      checkPlainFileName(ref.bin);
    } catch (e) {
      throw new IbpError('IBP_ERR_APP_LOAD', { app: ref.app, file: String(ref.bin), detail: (e as Error).message });
    }
    const key = path.join(this.soDir, ref.bin);
    // checked names, one per app of the config (a transaction's lookup skips the check and the join)
    if (this.#keys.size >= KNOWN_NAMES_MAX) this.#keys.clear();
    this.#keys.set(ref.bin, key);
    return key;
  }

  /**
   * Load `<bin>`, else `<bin>.updating` (IBP's rule for an update in progress), each read and
   * verified by #read, then loaded by #finish. Both failed → IBP_ERR_APP_TAMPERED when one of them
   * was tampered, else IBP_ERR_APP_LOAD naming both reasons; logged either way. `first` is a
   * candidate already read and verified (get() checks before dropping a loaded version).
   */
  #load(ref: AppRef, file: string, first?: Prepared): LoadedApp {
    const reasons: string[] = [];
    let tampered: IbpError | undefined;
    for (const [candidate, fromUpdating] of [[file, false], [file + UPDATING, true]] as const) {
      try {
        const p = first?.file === candidate ? first : this.#read(ref, candidate, fromUpdating);
        return this.#finish(ref, p);
      } catch (e) {
        if (isIbpError(e, 'IBP_ERR_APP_TAMPERED')) tampered ??= e;
        reasons.push(`${path.basename(candidate)}: ${isIbpError(e) ? (e.params.detail ?? e.message) : (e as Error).message}`);
      }
    }
    this.#stats.loadFailures++;
    if (tampered) {
      this.log.error({ app: ref.app, bin: ref.bin, err: tampered.message }, `app package tampered , bin[${ref.bin}] reason[${tampered.message}]`);
      throw tampered;
    }
    const err = new IbpError('IBP_ERR_APP_LOAD', { app: ref.app, file, detail: reasons.join('; ') });
    this.log.warn({ app: ref.app, bin: ref.bin, err: err.message }, `app load failed , bin[${ref.bin}]`);
    throw err;
  }

  /** The first candidate that reads and verifies; else throws the first tampered one's error, else another (not logged). */
  #prepare(ref: AppRef, file: string): Prepared {
    let tampered: IbpError | undefined;
    let other: unknown;
    for (const [candidate, fromUpdating] of [[file, false], [file + UPDATING, true]] as const) {
      try {
        return this.#read(ref, candidate, fromUpdating);
      } catch (e) {
        if (isIbpError(e, 'IBP_ERR_APP_TAMPERED')) tampered ??= e;
        else other ??= e;
      }
    }
    throw tampered ?? other;
  }

  /** One candidate file: O_NOFOLLOW, read once, hashed, compared with the signed sha256. */
  #read(ref: AppRef, file: string, fromUpdating: boolean): Prepared {
    const fail = (detail: string): never => { throw new IbpError('IBP_ERR_APP_LOAD', { app: ref.app, file, detail }); };
    try {
      checkSoFolder(this.soDir);
    } catch (e) {
      fail(errorText(e));
    }
    for (let attempt = 0; ; attempt++) {
      let got: ReturnType<typeof readPackage>;
      try {
        got = readPackage(file);
      } catch (e) {
        if (isIbpError(e, 'IBP_ERR_SO_SYMLINK')) this.log.error({ app: ref.app, file }, `app package refused , file[${file}] reason[${e.message}]`);
        return fail(isIbpError(e) ? e.message : `cannot read it: ${(e as Error).message}`);
      }
      if (!got) return fail('no such file');
      const identity = identityOfStats(got.st);
      // the bytes are of one version: the path still names the inode read, unchanged
      if (got.bytes.length !== got.st.size || !sameIdentity(identity, soIdentityOf(file))) {
        if (attempt >= 2) fail('it keeps changing while being read');
        continue;
      }
      const sha256 = sha256Hex(got.bytes);
      const expected = ref.sha256 ?? '';
      const next = ref.sha256Next ?? '';
      if (expected !== '' && sha256 !== expected && sha256 !== next) throw new IbpError('IBP_ERR_APP_TAMPERED', { app: ref.app, file, got: sha256, expected: next === '' ? expected : `${expected} (or ${next}, being installed)` });
      return { file, fromUpdating, identity, bytes: got.bytes, sha256 };
    }
  }

  /** Write the private copy from the verified buffer, dlopen it, check its symbols, soinit. */
  #finish(ref: AppRef, p: Prepared): LoadedApp {
    const file = p.file;
    const fail = (detail: string): never => { throw new IbpError('IBP_ERR_APP_LOAD', { app: ref.app, file, detail }); };
    const dir = path.join(this.privateDir, `L${++this.#loadSeq}`);
    const copy = path.join(dir, path.basename(ref.bin));
    try {
      fs.mkdirSync(dir, { mode: 0o700 });
      const fd = fs.openSync(copy, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o700);
      try {
        let off = 0;
        while (off < p.bytes.length) off += fs.writeSync(fd, p.bytes, off, p.bytes.length - off);
      } finally {
        fs.closeSync(fd);
      }
    } catch (e) {
      fs.rmSync(dir, { recursive: true, force: true });
      fail(`cannot write its private copy: ${(e as Error).message}`);
    }
    if (isJsPackage(ref.bin)) return this.#loadJs(ref, p, copy, fail);
    let lib: LibraryHandle;
    try {
      lib = koffi.load(copy);
    } catch (e) {
      fail((e as Error).message);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
    const symbols = new Map<SymbolName, Pointer>();
    const missing: string[] = [];
    for (const s of APP_SYMBOLS) {
      let ptr: Pointer | null = null;
      try {
        ptr = lib!.symbol(s.name) as Pointer | null;
      } catch {
        ptr = null;
      }
      if (ptr) symbols.set(s.name, ptr);
      else if (s.required) missing.push(s.name);
    }
    const refuse = (detail: string): never => {
      lib!.unload();
      return fail(detail);
    };
    if (missing.length) refuse(`it does not export ${missing.join(', ')}`);
    const abi = symbols.get('ibp_app_abi_version');
    if (abi !== undefined) {
      const v = koffi.decode(abi, 'uint32_t') as number;
      if (v !== APP_ABI_VERSION) refuse(`it was built for app ABI ${v}, this server speaks ${APP_ABI_VERSION}: rebuild it with this lib/native/ibp_app.h`);
    }
    const loaded = new LoadedApp(this, ref, p, lib!, symbols);
    const init = symbols.get('soinit');
    if (init !== undefined) {
      const { rc } = this.invoke(init, PHASE.INIT, { app: ref.app }, null, []);
      if (rc !== 0) refuse(`soinit returned ${rc}`);
    }
    this.#stats.loads++;
    const signed = (ref.sha256 ?? '') !== '';
    this.log.info({ app: ref.app, bin: ref.bin, file, sha256: p.sha256, signed }, `app loaded , bin[${ref.bin}] file[${file}] sha256[${p.sha256}] ${signed ? 'verified[signed sha256]' : 'verified[no: the registry has no package for it]'}`);
    return loaded;
  }

  #loadJs(ref: AppRef, p: Prepared, copy: string, fail: (detail: string) => never): LoadedApp {
    let js: JsApp;
    try {
      js = JsApp.load(copy, this.#jsHost);
    } catch (e) {
      fail((e as Error).message);
    } finally {
      fs.rmSync(path.dirname(copy), { recursive: true, force: true }); // loaded: the module is in memory
    }
    const loaded = new LoadedApp(this, ref, p, js!, new Map());
    if (js!.has('soinit')) {
      let rc: number;
      try {
        rc = this.invokeJs(js!, 'soinit', PHASE.INIT, { app: ref.app }, null, []).rc;
      } catch (e) {
        fail(`init failed: ${errorText(e)}`);
      }
      if (rc! !== 0) fail(`init returned ${rc!}`);
    }
    this.#stats.loads++;
    const signed = (ref.sha256 ?? '') !== '';
    this.log.info({ app: ref.app, bin: ref.bin, file: p.file, sha256: p.sha256, signed }, `app loaded , bin[${ref.bin}] file[${p.file}] sha256[${p.sha256}] ${signed ? 'verified[signed sha256]' : 'verified[no: the registry has no package for it]'}`);
    return loaded;
  }

  /** The host side of a JS app's context. */
  readonly #jsHost: JsHost = {
    fileDir: '',
    thisNode: '',
    workerIndex: 0,
    kv: (key) => this.#opts.space?.kv(key),
    config: (app, key) => {
      for (const [k, v] of this.#opts.space?.appConfig(app) ?? []) if (k === key) return v;
      return undefined;
    },
    log: (app) => this.appLog(app),
    kvOf: () => this.#opts.space?.kvs() ?? [],
    configOf: (app) => this.#opts.space?.appConfig(app) ?? [],
  };

  readonly #appLogs = new Map<string, AppLog>();

  /** The app's own log: lines with app[<code>] in this worker's log. */
  appLog(app: string): AppLog {
    let l = this.#appLogs.get(app);
    if (!l) {
      const child = this.log.child({ app, source: 'app' });
      l = {
        debug: (m) => child.debug(`app log , ${m}`),
        info: (m) => child.info(`app log , ${m}`),
        warn: (m) => child.warn(`app log , ${m}`),
        error: (m) => child.error(`app log , ${m}`),
      };
      this.#appLogs.set(app, l);
    }
    return l;
  }

  /** @internal — one call into a JS app (same checks and results as {@link invoke}). */
  invokeJs(js: JsApp, name: SymbolName, phase: Phase, ctx: AppCallContext, request: Buffer | null, files: readonly string[]): AppCallResult {
    const app = ctx.app ?? '';
    if (this.#closed && phase !== PHASE.CLEAN) throw new IbpError('IBP_ERR_APP_UNLOADED', { app, file: '(app cache closed)' });
    this.#checkRequestFiles(app, files);
    const host = this.#jsHost;
    host.fileDir = this.fileDir;
    host.thisNode = this.#opts.thisNode ?? '';
    host.workerIndex = this.#opts.workerIndex ?? 0;
    const out = js.invoke(name, phase, { ...ctx, app }, request, files);
    this.#checkResponseFiles(app, out.files);
    return out.sentAhead ? { rc: out.rc, response: out.response, files: out.files, sentAhead: true } : { rc: out.rc, response: out.response, files: out.files };
  }

  #checkRequestFiles(app: string, files: readonly string[]): void {
    if (files.length > APP_MAX_FILES) throw new IbpError('IBP_ERR_APP_FILE', { app, name: files[APP_MAX_FILES], detail: `more than ${APP_MAX_FILES} request files` });
    for (const name of files) {
      try {
        checkPlainFileName(name);
        if (Buffer.byteLength(name) > APP_FILE_NAME_MAX) throw new Error(`it is longer than ${APP_FILE_NAME_MAX} bytes`);
      } catch (e) {
        throw new IbpError('IBP_ERR_APP_FILE', { app, name: JSON.stringify(name), detail: (e as Error).message });
      }
    }
  }

  #checkResponseFiles(app: string, files: readonly string[]): void {
    for (const name of files) {
      if (!identityOf(path.join(this.fileDir, name))) throw new IbpError('IBP_ERR_APP_FILE', { app, name, detail: `the app named it as a response file but ${this.fileDir}/${name} is not a regular file` });
    }
  }

  #tablesKey = '';

  /** kv_get / config_get of a .so: hand the host the tables when generation or app changed. */
  #syncTables(app: string): void {
    const space = this.#opts.space;
    if (!space) return;
    const key = `${space.generation()}|${app}`;
    if (key === this.#tablesKey) return;
    this.#host.setTable(HOST_TABLE.KV, space.kvs());
    this.#host.setTable(HOST_TABLE.CONFIG, space.appConfig(app));
    this.#tablesKey = key;
  }

  /** @internal — one crossing into the app through the host helper. */
  invoke(fn: Pointer, phase: Phase, ctx: AppCallContext, request: Buffer | null, files: readonly string[]): AppCallResult {
    const app = ctx.app ?? '';
    if (!this.#host.open) throw new IbpError('IBP_ERR_APP_UNLOADED', { app, file: '(app cache closed)' });
    this.#checkRequestFiles(app, files);
    this.#syncTables(app);
    const out = this.#host.call(fn, {
      phase,
      clientPort: ctx.clientPort ?? 0,
      workerIndex: ctx.workerIndex ?? this.#opts.workerIndex ?? 0,
      timeoutMs: ctx.timeoutMs ?? 0,
      timeout2Ms: ctx.timeout2Ms ?? 0,
      fileDir: this.fileDir,
      thisNode: ctx.thisNode ?? this.#opts.thisNode ?? '',
      app,
      clientNode: ctx.clientNode ?? '',
      clientIp: ctx.clientIp ?? '',
      journal: ctx.journal ?? '',
      gtrid: ctx.gtrid ?? '',
    }, request, files);
    if (out.badLength) this.log.warn({ app }, `app set rsp_len beyond rsp_cap , app[${app}] (response cut to rsp_cap)`);
    if (out.log.length > 0 || out.logDropped > 0) {
      const l = this.appLog(app);
      for (const { level, msg } of out.log) (level >= APP_LOG_LEVEL.ERROR ? l.error : level === APP_LOG_LEVEL.WARN ? l.warn : level === APP_LOG_LEVEL.INFO ? l.info : l.debug)(msg);
      if (out.logDropped > 0) l.warn(`${out.logDropped} log lines dropped (more than IBP_APP_LOG_MAX bytes in one call)`);
    }
    this.#checkResponseFiles(app, out.files);
    if (out.sentAhead) ctx.onSendAhead?.(out.response, out.files);
    return out.sentAhead ? { rc: out.rc, response: out.response, files: out.files, sentAhead: true } : { rc: out.rc, response: out.response, files: out.files };
  }

  /** @internal */
  noteUnload(loaded: LoadedApp, reason: string): void {
    this.#stats.unloads++;
    this.log.info({ app: loaded.app, bin: loaded.bin, calls: loaded.calls }, `app unloaded , bin[${loaded.bin}] reason[${reason}]`);
  }

  #markStale(changed: string, event: string): void {
    const base = path.basename(changed);
    const updating = base.endsWith(UPDATING);
    const key = path.join(this.soDir, updating ? base.slice(0, -UPDATING.length) : base);
    const loaded = this.#lru.peek(key);
    if (!loaded || loaded.stale) return;
    if (updating && !loaded.fromUpdating) return; // an update being written: bin is still current
    loaded.stale = true;
    this.log.info({ bin: loaded.bin, event }, `app file changed , bin[${loaded.bin}] event[${event}] file[${base}]`);
  }

  #startWatcher(): void {
    const w = watch(this.soDir, { ignoreInitial: true, depth: 0, persistent: false });
    w.on('all', (event, file) => this.#markStale(file, event));
    w.on('error', (e) => {
      this.#watching = false; // fall back to checking on every get
      this.log.warn({ err: errorText(e) }, `so folder watch error , dir[${this.soDir}]`);
    });
    this.#ready = new Promise((resolve) => w.once('ready', () => {
      this.#watching = true;
      resolve();
    }));
    this.#watcher = w;
  }
}

/** Private folders of this process, removed at exit even when a cache was not closed. */
const PRIVATE_DIRS = new Set<string>();

/**
 * Remove this process's private folders now. Runs at a normal exit; a process that leaves with
 * _exit(2) (an ibas worker, ibas/worker-main.ts) calls it itself first.
 */
export function removePrivateDirs(): void {
  for (const d of PRIVATE_DIRS) {
    try {
      fs.rmSync(d, { recursive: true, force: true });
    } catch {
      // leave it to the manager (removeWorkerPrivateDir) or the next cache's cleanup of dead processes' folders
    }
  }
  PRIVATE_DIRS.clear();
}
process.once('exit', removePrivateDirs);

const hash8 = (s: string): string => createHash('sha256').update(s).digest('hex').slice(0, 8);

/**
 * The private folder of the worker in `slot` with `pid` serving the apps of `soDir`:
 * `<tmp>/ibp-so-<hash of soDir>-w<slot>-<pid>`. Derivable, so the manager removes the folder of a
 * worker that died without cleaning up (crash, SIGKILL).
 */
export function workerPrivateDir(soDir: string, slot: number, pid: number): string {
  return path.join(os.tmpdir(), `ibp-so-${hash8(path.resolve(soDir))}-w${slot}-${pid}`);
}

/** The manager, after reaping a worker: its private folder goes too (no-op when already removed). */
export function removeWorkerPrivateDir(soDir: string, slot: number, pid: number): void {
  try {
    fs.rmSync(workerPrivateDir(soDir, slot, pid), { recursive: true, force: true });
  } catch {
    // not ours, or gone
  }
}

/** The pid owning a private folder name (worker or default form), or undefined. */
function ownerPid(name: string): number | undefined {
  const m = /^ibp-so-[0-9a-f]{8}-w\d+-(\d+)$/.exec(name) ?? /^ibp-so-(\d+)-/.exec(name);
  return m ? Number(m[1]) : undefined;
}

/**
 * A private folder for this process's copies, under os.tmpdir(). Folders of processes that died
 * without cleaning up are removed on the way (copies are unlinked right after loading, so they
 * are normally empty).
 */
function makePrivateDir(): string {
  const tmp = os.tmpdir();
  const prefix = 'ibp-so-';
  try {
    for (const d of fs.readdirSync(tmp)) {
      const owner = ownerPid(d);
      if (owner === undefined || owner === process.pid) continue;
      try {
        process.kill(owner, 0);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ESRCH') {
          try {
            fs.rmSync(path.join(tmp, d), { recursive: true, force: true });
          } catch {
            // another user's, or already gone
          }
        }
      }
    }
  } catch {
    // best effort
  }
  return fs.mkdtempSync(path.join(tmp, `${prefix}${process.pid}-`));
}
