/**
 * The one handle on the C library, loaded once per process through koffi. Modules declare the
 * functions they need on it (lib/shm/sysv.ts for SysV IPC, ibas for alarm/poll/accept4, …).
 */
import koffi from 'koffi';
import os from 'node:os';

export const libc = koffi.load('libc.so.6');

const strerror = libc.func('const char *strerror(int errnum)');

/** errno of the last koffi call on this thread, with its text: "EEXIST (File exists)". */
export function lastErrno(): { errno: number; text: string } {
  const errno = koffi.errno();
  const name = Object.entries(os.constants.errno).find(([, v]) => v === errno)?.[0] ?? `errno ${errno}`;
  return { errno, text: `${name} (${strerror(errno) as string})` };
}

export { koffi };
