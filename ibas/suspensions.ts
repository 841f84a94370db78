/**
 * The crash-loop brake (Tuxedo's MAXGEN within GRACE, per app instead of per server): an app that
 * kills its worker `monitor.app_max_crashes` times within `monitor.app_crash_window` seconds is
 * SUSPENDED on this server. The manager keeps the count (the reaper calls {@link CrashBrake.crashed}
 * for every exit whose class counts against the app, ibas/exit-class.ts) and writes the
 * suspension into the scoreboard's table (ibas/scoreboard.ts); every worker reads that table
 * lock-free before it resolves an app (ibas/app-resolver.ts) and answers
 * `IBP_ERR_APP_SUSPENDED` (rc APP_SUSPENDED, in the pre-answer: nothing ran, SAFE) without
 * loading it. Other apps keep serving.
 *
 * A suspension ends when
 *   - the app's package changes: the manager compares `<home>/so/<bin>` (size, mtime, inode)
 *     with what it recorded at suspension, at most once a second ({@link CrashBrake.scan});
 *   - the operator runs `ibas -a resume_app --app A`: the CLI removes the entry from the
 *     scoreboard itself (compare-and-swap, no signal); the manager sees it gone on its next scan,
 *     forgets the app's crash count and logs it.
 * Each suspension and each end is logged (error / warn: the event log too) and `ibas -s status`
 * lists the suspended apps. Suspensions live as long as the scoreboard (a restart clears them).
 */
import fs from 'node:fs';
import path from 'node:path';
import { errorText } from '../lib/errors.js';
import type { Logger } from '../lib/log.js';
import { ConfigSpace } from '../lib/shm/config-space.js';
import type { Scoreboard, Suspension } from './scoreboard.js';

export interface BrakeOptions {
  maxCrashes: number;
  windowMs: number;
  soDir: string;
  ibmaConfFile: string;
  log: Logger;
}

interface PackageIdentity { size: number; mtimeMs: number; ino: number }

function identityOf(file: string): PackageIdentity {
  const st = file ? fs.statSync(file, { throwIfNoEntry: false }) : undefined;
  return st ? { size: st.size, mtimeMs: st.mtimeMs, ino: st.ino } : { size: -1, mtimeMs: 0, ino: 0 };
}

const SCAN_MS = 1000;

export class CrashBrake {
  readonly #o: BrakeOptions;
  /** app → times of the worker deaths it caused within the window. */
  readonly #crashes = new Map<string, number[]>();
  /** Apps this manager knows as suspended (to notice a resume by the operator). */
  readonly #known = new Set<string>();
  #scannedAt = 0;

  constructor(o: BrakeOptions) {
    this.#o = o;
  }

  /** The app that was running killed its worker. Suspends it at the threshold. */
  crashed(sb: Scoreboard, app: string, now = Date.now()): void {
    if (!app || sb.suspension(app)) return;
    const { maxCrashes, windowMs, log } = this.#o;
    const times = (this.#crashes.get(app) ?? []).filter((t) => now - t <= windowMs);
    times.push(now);
    this.#crashes.set(app, times);
    if (times.length < maxCrashes) return;
    const bin = this.#binOf(app);
    const file = bin ? path.join(this.#o.soDir, bin) : '';
    const id = identityOf(file);
    const s: Suspension = { app, bin, crashes: times.length, windowS: Math.round(windowMs / 1000), since: now, ...id };
    if (!sb.suspend(s)) {
      log.error({ alert: 'app_crash_loop', app }, `app crash loop , app[${app}] crashes[${times.length}] within[${s.windowS}s] , the suspension table is full: it keeps being respawned`);
      return;
    }
    this.#known.add(app);
    this.#crashes.delete(app);
    log.error({ alert: 'app_suspended', app, crashes: s.crashes, windowS: s.windowS, bin }, `ALERT app suspended , app[${app}] crashes[${s.crashes}] within[${s.windowS}s] bin[${bin || '?'}] , calls to it are answered APP_SUSPENDED (nothing runs) until its package changes or \`ibas -a resume_app --app ${app}\``);
  }

  /** Every tick (at most once a second): end suspensions whose package changed; notice operator resumes. */
  scan(sb: Scoreboard, now = Date.now()): void {
    if (now - this.#scannedAt < SCAN_MS) return;
    this.#scannedAt = now;
    const current = sb.suspensions();
    const names = new Set(current.map((s) => s.app));
    for (const app of this.#known) {
      if (names.has(app)) continue;
      this.#known.delete(app);
      this.#crashes.delete(app);
      this.#o.log.warn({ app }, `app resumed , app[${app}] reason[resume_app by the operator]`);
    }
    for (const s of current) {
      this.#known.add(s.app);
      if (!s.bin) continue;
      const id = identityOf(path.join(this.#o.soDir, s.bin));
      if (id.size === s.size && id.mtimeMs === s.mtimeMs && id.ino === s.ino) continue;
      if (!sb.resume(s.app)) continue;
      this.#known.delete(s.app);
      this.#crashes.delete(s.app);
      this.#o.log.warn({ app: s.app, bin: s.bin }, `app resumed , app[${s.app}] reason[package ${s.bin} changed]`);
    }
  }

  #binOf(app: string): string {
    let space: ConfigSpace | undefined;
    try {
      space = ConfigSpace.open(this.#o.ibmaConfFile);
      return space.app(app)?.bin ?? '';
    } catch (e) {
      this.#o.log.warn(`app crash loop: no config space to find the package of app[${app}] , reason[${errorText(e)}] , only resume_app ends its suspension`);
      return '';
    } finally {
      space?.close();
    }
  }
}
