/**
 * The POSIX constants the raw-fd code passes to libc through koffi (Linux values): poll(2) event
 * bits, send/recv flags, and errno numbers (from Node's own table, so they match the platform).
 */
import os from 'node:os';

/** poll(2) events / revents. @enum */
export const POLL = { IN: 0x001, OUT: 0x004, ERR: 0x008, HUP: 0x010, NVAL: 0x020 } as const;

/** send/recv flags. @enum */
export const MSG = { DONTWAIT: 0x40, NOSIGNAL: 0x4000 } as const;

const e = os.constants.errno;
/** errno values the accept/recv/send paths tell apart. */
export const ERRNO = { EAGAIN: e.EAGAIN, EINTR: e.EINTR, ECONNABORTED: e.ECONNABORTED, EMFILE: e.EMFILE, ENFILE: e.ENFILE } as const;
