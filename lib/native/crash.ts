/**
 * Crash capture for workers (the koffi binding of lib/native/ibp_crash.c).
 *
 * A worker calls {@link installCrashCapture} once at start with the fd of its log. From then on a
 * SIGSEGV, SIGBUS, SIGABRT, SIGFPE or SIGILL (a crashing app, a bug in native code) writes
 *
 *   ibp_crash | signal , name[SIGSEGV] signo[11] code[1] addr[0x0] pid[1234]
 *   ibp_crash | backtrace , frames[N]
 *   <one line per frame from backtrace_symbols_fd, e.g. …/ibp_test_crash.so(ibp_crash_here+0x10)[0x…]>
 *   ibp_crash | end , re-raising SIGSEGV with the default action
 *
 * to that fd and the process then dies by the same signal, so the manager's reaper sees it.
 * The handlers run on an alternate stack (an app's stack overflow is reported too) and use only
 * async-signal-safe calls. WebAssembly bounds traps of V8 are handed back to V8 first.
 */
import { IbpError } from '../errors.js';
import { nativeLibrary } from './built-files.js';
import { koffi, lastErrno } from './libc.js';

interface CrashLib {
  guardFrame: (kind: number, frame: Buffer, len: number) => number;
  guardArm: (fd: number, ms: number) => number;
  guardDisarm: () => number;
  install: (fd: number) => number;
  uninstall: () => number;
  installed: () => number;
}

let lib: CrashLib | undefined;

function crashLib(): CrashLib {
  if (!lib) {
    const file = nativeLibrary('ibp_crash');
    const h = koffi.load(file);
    lib = {
      guardFrame: h.func('int ibp_guard_frame(int kind, const uint8_t *frame, size_t len)') as CrashLib['guardFrame'],
      guardArm: h.func('int ibp_guard_arm(int fd, unsigned int ms)') as CrashLib['guardArm'],
      guardDisarm: h.func('int ibp_guard_disarm(void)') as CrashLib['guardDisarm'],
      install: h.func('int ibp_crash_install(int fd)') as (fd: number) => number,
      uninstall: h.func('int ibp_crash_uninstall(void)') as () => number,
      installed: h.func('int ibp_crash_installed(void)') as () => number,
    };
  }
  return lib;
}

/**
 * Install the crash handlers, reporting to `fd` (e.g. the worker log's fd). Calling it again
 * only changes the fd. Throws IBP_ERR_NATIVE_MISSING when build/native/libibp_crash.so is absent.
 */
export function installCrashCapture(fd: number): void {
  if (!Number.isInteger(fd) || fd < 0) throw new IbpError('IBP_ERR_NATIVE_CALL', { call: 'ibp_crash_install', detail: `${fd} is not a file descriptor` });
  if (crashLib().install(fd) !== 0) throw new IbpError('IBP_ERR_NATIVE_CALL', { call: 'ibp_crash_install', detail: lastErrno().text });
}

/** Put back the handlers that were there before (tests). */
export function uninstallCrashCapture(): void {
  if (lib) lib.uninstall();
}

export function crashCaptureInstalled(): boolean {
  return lib !== undefined && lib.installed() === 1;
}

/** Which prepared answer (ibp_guard_frame's `kind`); HELD: the bytes written before either. */
export const GUARD = { TIMEOUT: 0, CRASH: 1, HELD: 2 } as const;

/**
 * Signal-time answers (lib/native/ibp_crash.c "guard"): prepare the bytes written to the armed
 * connection when the process dies by tier 1 (SIGALRM, TIMEOUT) or by a crash (CRASH). Call it
 * only while disarmed.
 */
export function guardFrame(kind: (typeof GUARD)[keyof typeof GUARD], frame: Buffer): void {
  if (crashLib().guardFrame(kind, frame, frame.length) !== 0) throw new IbpError('IBP_ERR_NATIVE_CALL', { call: 'ibp_guard_frame', detail: lastErrno().text });
}

/** Arm: answers go to `fd`; SIGALRM (tier 1) after `ms` (0: no timer). */
export function guardArm(fd: number, ms: number): void {
  if (crashLib().guardArm(fd, Math.max(0, Math.min(Math.round(ms), 0xffffffff))) !== 0) throw new IbpError('IBP_ERR_NATIVE_CALL', { call: 'ibp_guard_arm', detail: lastErrno().text });
}

/** Disarm: stop the timer, forget the connection. */
export function guardDisarm(): void {
  crashLib().guardDisarm();
}
