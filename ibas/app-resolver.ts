/**
 * App resolution in a worker (issue 4, "App resolution"): transaction code → the config space
 * (lib/shm/config-space.ts, written by ibma) → the app's bin → the worker's app cache
 * (ibas/app-cache.ts) → a loaded .so ready to call.
 *
 *   suspended on this server           IBP_ERR_APP_SUSPENDED (rc APP_SUSPENDED; the scoreboard's
 *                                      table, ibas/suspensions.ts: checked first, nothing loaded)
 *   not in the config space            IBP_ERR_APP_UNKNOWN   (rc APP_UNKNOWN)
 *   configured but invalid             IBP_ERR_APP_INVALID   (rc APP_INVALID)
 *   .so missing / not loadable         IBP_ERR_APP_LOAD      (rc APP_LOAD, from the cache)
 *   .so not the signed sha256          IBP_ERR_APP_TAMPERED  (rc APP_TAMPERED, from the cache, only
 *                                      when no good version is loaded: else that one serves)
 *   no config space (ibma not started) IBP_ERR_POOL_NO_SPACE (rc POOL_NO_SPACE)
 *
 * Single-app mode (`ibas -a start --foreground --app FILE`, issue 15): {@link serveSingleApp}
 * makes every resolver of this process serve that one file for any transaction code (or only for
 * its code), without a config space: the app's timeouts come from the call, kv()/config() are
 * empty but for the app's own record.
 *
 * The config space is opened lazily (ibas may start before ibma has published) and re-tried at
 * most once a second while missing. Between transactions {@link idle} lets the reader switch to a
 * newer segment and the cache drop stale .so files.
 */
import { IbpError, errorText, isIbpError } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import { ConfigSpace, type AppView } from '../lib/shm/config-space.js';
import path from 'node:path';
import { AppCache, workerPrivateDir, type AppSpaceAccess, type LoadedApp } from './app-cache.js';
import type { Scoreboard } from './scoreboard.js';

/** The one app a single-app process serves (see the header). */
export interface SingleApp {
  /** The app file (.so or .mjs). */
  file: string;
  /** Serve only this code (default: any code). */
  app?: string;
  /** Client timeout, seconds (default 5); timeout2 is 1.5x. */
  timeout?: number;
}
let singleApp: SingleApp | undefined;

/** Serve `one` for every resolver of this process (foreground debugging). */
export function serveSingleApp(one: SingleApp | undefined): void {
  singleApp = one ? { ...one, file: path.resolve(one.file) } : undefined;
}

export interface Resolved {
  view: AppView;
  loaded: LoadedApp;
}

export interface ResolverOptions {
  ibmaConfFile: string;
  soDir: string;
  fileDir: string;
  maxCache: number;
  workerIndex: number;
  log: Logger;
  /** The scoreboard whose suspended-apps table {@link AppResolver.lookup} checks (ibas/suspensions.ts). */
  suspensions?: Pick<Scoreboard, 'suspension'>;
}

const RETRY_SPACE_MS = 1000;

export class AppResolver {
  readonly #opts: ResolverOptions;
  readonly #log: Logger;
  #space: ConfigSpace | undefined;
  #spaceError: IbpError | undefined;
  #spaceTriedAt = 0;
  #cache: AppCache | undefined;
  #minCompress: number | undefined;
  /**
   * The views of the apps found in the segment this reader uses, by code: a published segment
   * never changes (a new config is a new segment), so a transaction's second lookup (pre-answer,
   * then the run) and every later one decode nothing. Emptied when the reader switches segment.
   */
  readonly #views = new Map<string, AppView>();
  #viewsOf: ConfigSpace | undefined;

  constructor(opts: ResolverOptions) {
    this.#opts = opts;
    this.#log = opts.log;
  }

  /** The config space, opened on first use; throws IBP_ERR_POOL_NO_SPACE while there is none. */
  space(): ConfigSpace {
    if (this.#space && !this.#space.closed) return this.#space;
    const now = Date.now();
    if (this.#spaceError && now - this.#spaceTriedAt < RETRY_SPACE_MS) throw this.#spaceError;
    this.#spaceTriedAt = now;
    try {
      this.#space = ConfigSpace.open(this.#opts.ibmaConfFile);
      this.#spaceError = undefined;
      this.#log.info({ generation: this.#space.generation }, `config space attached , generation[${this.#space.generation}]`);
      return this.#space;
    } catch (e) {
      this.#spaceError = new IbpError('IBP_ERR_POOL_NO_SPACE', { detail: errorText(e) }, { cause: e });
      this.#log.warn(`config space not available , reason[${errorText(e)}]`);
      throw this.#spaceError;
    }
  }

  /** comm.min_compress_size of the config space (the ibma setting); 1 KiB without a space. */
  minCompressSize(): number {
    if (this.#minCompress === undefined) {
      try {
        this.#minCompress = this.space().header().minCompressSize;
      } catch {
        return 1024;
      }
    }
    return this.#minCompress;
  }

  /** This node's name as the config space knows it ('' without a space). */
  thisNode(): string {
    try {
      return this.space().header().thisNode;
    } catch {
      return '';
    }
  }

  /**
   * The app's config; throws APP_SUSPENDED / APP_UNKNOWN / APP_INVALID / POOL_NO_SPACE. Every
   * lookup (each transaction's first step) follows a newer config segment first (one atomic load
   * of the index word), and a refusal is only given after one more full check for a newer
   * segment, so the first call to a freshly distributed app succeeds on any worker, on any
   * connection. A suspended app (crash loop, ibas/exit-class.ts) is refused without loading it.
   */
  lookup(code: string): AppView {
    if (singleApp) {
      if (singleApp.app !== undefined && singleApp.app !== code) throw new IbpError('IBP_ERR_APP_UNKNOWN', { app: code });
      const timeout = singleApp.timeout ?? 5;
      return { app: code, desc: `single app ${singleApp.file}`, bin: path.basename(singleApp.file), timeout, timeout2: timeout * 1.5, serverNode: '', invalid: 0, sha256: '', packageSize: 0, manifest: '', signature: '', sha256Next: '' };
    }
    const suspended = this.#opts.suspensions?.suspension(code);
    if (suspended) throw new IbpError('IBP_ERR_APP_SUSPENDED', { app: code, crashes: suspended.crashes, window: suspended.windowS });
    const space = this.space();
    if (space.moved()) this.#switch(space);
    if (this.#viewsOf !== space) {
      this.#views.clear();
      this.#viewsOf = space;
    }
    let view = this.#views.get(code);
    if (view) return view;
    view = space.app(code);
    if (!view || view.invalid) {
      if (this.#switch(space)) view = space.app(code);
    }
    if (!view) throw new IbpError('IBP_ERR_APP_UNKNOWN', { app: code });
    if (view.invalid) throw new IbpError('IBP_ERR_APP_INVALID', { app: code });
    this.#views.set(code, view);
    return view;
  }

  /** Attach the newest segment if there is one; true when it switched. */
  #switch(space: ConfigSpace): boolean {
    try {
      if (space.closed || !space.checkSwitch()) return false;
    } catch (e) {
      this.#log.warn(`config space switch failed , reason[${errorText(e)}]`);
      return false;
    }
    this.#minCompress = undefined;
    this.#views.clear();
    this.#log.info({ generation: space.generation }, `config space switched , generation[${space.generation}]`);
    return true;
  }

  /** The loaded .so of an app (from the cache, loading it when needed); throws APP_LOAD. */
  load(view: AppView): LoadedApp {
    return this.cache().get({ app: view.app, bin: view.bin, sha256: view.sha256, sha256Next: view.sha256Next });
  }

  resolve(code: string): Resolved {
    const view = this.lookup(code);
    return { view, loaded: this.load(view) };
  }

  cache(): AppCache {
    if (!this.#cache) {
      this.#cache = new AppCache({
        max: this.#opts.maxCache,
        soDir: singleApp ? path.dirname(singleApp.file) : this.#opts.soDir,
        space: this.#spaceAccess(),
        fileDir: this.#opts.fileDir,
        thisNode: this.thisNode(),
        workerIndex: this.#opts.workerIndex,
        privateDir: workerPrivateDir(this.#opts.soDir, this.#opts.workerIndex, process.pid),
        ownPrivateDir: true,
        log: this.#log,
      });
    }
    return this.#cache;
  }

  /** ctx.kv / ctx.config of apps: this node's key/values and the app's record. */
  #spaceAccess(): AppSpaceAccess {
    const live = (): ConfigSpace | undefined => {
      if (singleApp) return undefined;
      try {
        return this.space();
      } catch {
        return undefined;
      }
    };
    const view = (app: string): AppView | undefined => {
      try {
        return this.lookup(app);
      } catch {
        return undefined;
      }
    };
    return {
      generation: () => live()?.generation ?? -1,
      kvs: () => {
        const s = live();
        return s ? s.kvs(s.header().thisNode) : [];
      },
      kv: (key) => {
        const s = live();
        return s ? s.kv(s.header().thisNode, key) : undefined;
      },
      appConfig: (app) => {
        const v = view(app);
        return v ? [['app', v.app], ['desc', v.desc], ['bin', v.bin], ['timeout', String(v.timeout)], ['timeout2', String(v.timeout2)], ['server_node', v.serverNode]] : [];
      },
    };
  }

  /** Between transactions: follow a newer config segment, drop stale .so handles. */
  idle(): void {
    try {
      if (this.#space && !this.#space.closed && this.#space.checkSwitch()) {
        this.#minCompress = undefined;
        this.#views.clear();
        this.#log.info({ generation: this.#space.generation }, `config space switched , generation[${this.#space.generation}]`);
      }
    } catch (e) {
      this.#log.warn(`config space switch failed , reason[${errorText(e)}]`);
      if (!isIbpError(e, 'IBP_ERR_SHM_NO_SPACE')) return;
      this.#space?.close();
      this.#space = undefined;
    }
    try {
      this.#cache?.evictIdle();
    } catch (e) {
      this.#log.warn(`app cache eviction failed , reason[${errorText(e)}]`);
    }
  }

  async close(): Promise<void> {
    const cache = this.#cache;
    this.#cache = undefined;
    if (cache) await cache.close().catch(() => undefined);
    this.#space?.close();
    this.#space = undefined;
  }
}
