/**
 * Raw-fd I/O of a worker's connections: synchronous koffi calls to libc on the main thread, no
 * `net.Socket`, no event-loop hop per connection (BRIEF §5). Every call takes prebuilt Buffers
 * (koffi passes a Buffer to a `void *` as its memory, no marshalling).
 *
 *   recvNow   recv(MSG_DONTWAIT): bytes, EOF, or "nothing yet"      (never blocks)
 *   sendNow   send(MSG_DONTWAIT | MSG_NOSIGNAL): bytes taken or "full" (never blocks)
 *   recvWait  recv() that blocks up to the connection's SO_RCVTIMEO (one wait round): the wait for
 *             the next request and the request itself in one system call, where poll + recv took two
 *   waitFd    poll(2) on one fd for at most `ms`; a signal ends it (EINTR, poll is never
 *             restarted), so the caller gives the event loop a turn and looks again; log lines
 *             held in memory longer than LOG_HOLD_MS are written before either wait blocks
 *             (lib/log.ts flushStaleLogs; the turn after a round without work writes the rest)
 *   acceptNow accept4(SOCK_CLOEXEC) with the peer's address in the same call: the connection is a
 *             blocking socket, so recvWait can block; every other call on it says MSG_DONTWAIT
 *             (and so do the tier-1 guard and the manager's tier 2/3 answer on its duplicate)
 *   closeConn shutdown(SHUT_WR), drop what the peer still sends for a short bounded time, close:
 *             a close with unread bytes would reset the connection and could destroy the last
 *             answer (an ERROR packet, a 408) before the peer reads it
 */
import { IbpError } from '../lib/errors.js';
import { flushStaleLogs } from '../lib/log.js';
import { koffi, lastErrno, libc } from '../lib/native/libc.js';
import { ERRNO, MSG, POLL } from '../lib/native/posix-constants.js';
import { SOCK_CLOEXEC } from './listen-socket.js';

const recv = libc.func('long recv(int fd, void *buf, unsigned long len, int flags)') as (fd: number, b: Buffer, n: number, f: number) => number;
const send = libc.func('long send(int fd, const void *buf, unsigned long len, int flags)') as (fd: number, b: Buffer, n: number, f: number) => number;
const poll = libc.func('int poll(void *fds, unsigned long nfds, int timeout)') as (b: Buffer, n: number, ms: number) => number;
const accept4 = libc.func('int accept4(int fd, void *addr, void *addrlen, int flags)') as (fd: number, a: Buffer, l: Buffer, f: number) => number;
const getsockopt = libc.func('int getsockopt(int fd, int level, int name, void *value, void *len)') as (fd: number, level: number, name: number, v: Buffer, len: Buffer) => number;
const getpeername = libc.func('int getpeername(int fd, void *addr, void *addrlen)') as (fd: number, a: Buffer, l: Buffer) => number;
const setsockopt = libc.func('int setsockopt(int fd, int level, int name, void *value, unsigned int len)') as (fd: number, level: number, name: number, v: Buffer, len: number) => number;
const shutdown = libc.func('int shutdown(int fd, int how)') as (fd: number, how: number) => number;
const close = libc.func('int close(int fd)') as (fd: number) => number;

const { DONTWAIT: MSG_DONTWAIT, NOSIGNAL: MSG_NOSIGNAL } = MSG;
const SHUT_WR = 1;
export const POLLIN = POLL.IN;
export const POLLOUT = POLL.OUT;
const { ERR: POLLERR, HUP: POLLHUP, NVAL: POLLNVAL } = POLL;
const { EAGAIN, EINTR, ECONNABORTED, EMFILE, ENFILE } = ERRNO;
const SOL_SOCKET = 1;
const SO_RCVTIMEO = 20;

/** recvNow: nothing to read yet. */
export const AGAIN = -1;
/** recvNow / sendNow: the connection failed (reset, broken pipe). */
export const BROKEN = -2;

export interface Peer {
  ip: string;
  port: number;
}

const IPPROTO_TCP = 6;
const TCP_NODELAY = 1;
const one = Buffer.from([1, 0, 0, 0]);

/** Answers leave at once (no Nagle delay behind an unacknowledged earlier answer). */
export function noDelay(fd: number): void {
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, one, 4);
}

/**
 * Whether accepted connections come with TCP_NODELAY already: set on the listening socket
 * ({@link noDelayListen}), Linux copies it to every connection accept4 returns. Checked on the
 * first connection (one getsockopt); when it did not come along, every connection gets its own
 * setsockopt as before. Saves a libc call per connection.
 */
let inherited: boolean | undefined;
const optBuf = Buffer.alloc(4);
const optLen = Buffer.alloc(4);

/** TCP_NODELAY on the listening socket, for the connections it will hand out. */
export function noDelayListen(listenFd: number): void {
  noDelay(listenFd);
}

function noDelayAccepted(fd: number): void {
  if (inherited === true) return;
  if (inherited === undefined) {
    optLen.writeUInt32LE(4, 0);
    inherited = getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, optBuf, optLen) === 0 && optBuf.readInt32LE(0) !== 0;
    if (inherited) return;
  }
  noDelay(fd);
}

const pollBuf = Buffer.alloc(8);
const addrBuf = Buffer.alloc(128);
const addrLen = Buffer.alloc(4);

/** One recv into `buf`: n > 0 bytes, 0 end of stream, AGAIN (nothing, or a signal), BROKEN. */
function recvInto(fd: number, buf: Buffer, flags: number): number {
  const n = recv(fd, buf, buf.length, flags);
  if (n >= 0) return n;
  const e = koffi.errno();
  return e === EAGAIN || e === EINTR ? AGAIN : BROKEN;
}

/** Read what is there now into `buf`: n > 0 bytes, 0 end of stream, AGAIN, BROKEN. */
export function recvNow(fd: number, buf: Buffer): number {
  return recvInto(fd, buf, MSG_DONTWAIT);
}

/**
 * Wait for bytes and read them in one call: recv() without MSG_DONTWAIT on a blocking connection
 * from {@link acceptNow}, which waits at most the SO_RCVTIMEO {@link recvTimeoutListen} gave it
 * (a signal ends the wait too: with a receive timeout set, Linux never restarts recv, signal(7)).
 * n > 0 bytes, 0 end of stream, AGAIN (the round passed, or a signal), BROKEN.
 */
export function recvWait(fd: number, buf: Buffer): number {
  flushStaleLogs();
  return recvInto(fd, buf, 0);
}

/** Per listen socket: the receive round its connections get (timeval and ms), and whether they inherit it. */
const rounds = new Map<number, { tv: Buffer; ms: number; inherited: boolean | undefined }>();

/**
 * The receive timeout of the connections a listening socket hands out: set on the listening socket,
 * Linux copies it to each accepted one (like TCP_NODELAY; checked on the first connection, set on
 * each one when it did not come along). Returns the longest wait of a {@link recvWait} in ms: the
 * kernel keeps the timeout in jiffies, so it may be a little longer than asked (50 → 52 at HZ=250).
 */
export function recvTimeoutListen(listenFd: number, ms: number): number {
  const tv = Buffer.alloc(16);
  tv.writeBigInt64LE(BigInt(Math.floor(ms / 1000)), 0);
  tv.writeBigInt64LE(BigInt((ms % 1000) * 1000), 8);
  setsockopt(listenFd, SOL_SOCKET, SO_RCVTIMEO, tv, 16);
  const got = rcvTimeoOf(listenFd);
  rounds.set(listenFd, { tv, ms: got, inherited: undefined });
  return got;
}

/** SO_RCVTIMEO of a socket in ms, rounded up (0: none or unreadable). */
function rcvTimeoOf(fd: number): number {
  const got = Buffer.alloc(16);
  optLen.writeUInt32LE(16, 0);
  if (getsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, got, optLen) !== 0) return 0;
  return Math.ceil(Number(got.readBigInt64LE(0)) * 1000 + Number(got.readBigInt64LE(8)) / 1000);
}

/** The accepted connection's receive round in ms (0: it has none, the driver polls instead). */
function recvTimeoutAccepted(listenFd: number, fd: number): number {
  const r = rounds.get(listenFd);
  if (!r || r.ms === 0) return 0;
  if (r.inherited === true) return r.ms;
  if (r.inherited === undefined) {
    r.inherited = rcvTimeoOf(fd) === r.ms;
    if (r.inherited) return r.ms;
  }
  // not inherited: set on the connection; if even that fails, this connection is waited for with
  // poll (a blocking recv without its timeout would wait past every deadline)
  return setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, r.tv, 16) === 0 ? r.ms : 0;
}

/** Hand bytes to the kernel without blocking: how many it took (0 when its buffer is full), or BROKEN. */
export function sendNow(fd: number, buf: Buffer): number {
  const n = send(fd, buf, buf.length, MSG_DONTWAIT | MSG_NOSIGNAL);
  if (n >= 0) return n;
  const e = koffi.errno();
  return e === EAGAIN || e === EINTR ? 0 : BROKEN;
}

/** What a {@link waitFd} round ended with. */
export type Wait = 'ready' | 'timeout' | 'interrupted';

/**
 * poll(2) one fd for `events` for at most `ms` (≥ 0) on the calling thread. An error or hang-up
 * condition counts as ready (the next recv/send tells what it is); POLLNVAL throws.
 */
export function waitFd(fd: number, events: number, ms: number): Wait {
  // the worker is about to wait: log lines held for a while go out first (lib/log.ts); the rest
  // go out at the turn after a round that ended without work
  if (ms > 0) flushStaleLogs();
  pollBuf.writeInt32LE(fd, 0);
  pollBuf.writeInt16LE(events, 4);
  pollBuf.writeInt16LE(0, 6);
  const r = poll(pollBuf, 1, Math.max(0, Math.ceil(ms)));
  if (r < 0) return 'interrupted';
  if (r === 0) return 'timeout';
  const rev = pollBuf.readInt16LE(6);
  if (rev & POLLNVAL) throw new IbpError('IBP_ERR_NET_SYSCALL', { call: `poll(fd ${fd})`, detail: 'POLLNVAL: the fd is not open' });
  return (rev & (events | POLLERR | POLLHUP)) !== 0 ? 'ready' : 'timeout';
}

/** A connection acceptNow took: its fd, its peer and its receive round (0: none). */
export interface Accepted {
  fd: number;
  peer: Peer;
  recvRoundMs: number;
}

/**
 * accept4 once, without blocking (the listening socket is O_NONBLOCK). Returns the new fd (a
 * blocking socket, close-on-exec), its peer and its receive round (the timeout of
 * {@link recvTimeoutListen}; 0 when it has none: then the driver must not use recvWait), or
 * undefined when nothing was waiting (EAGAIN, EINTR, ECONNABORTED). EMFILE/ENFILE and other
 * errors throw.
 */
export function acceptNow(listenFd: number): Accepted | undefined {
  addrLen.writeUInt32LE(addrBuf.length, 0);
  const c = accept4(listenFd, addrBuf, addrLen, SOCK_CLOEXEC);
  if (c >= 0) {
    noDelayAccepted(c);
    return { fd: c, peer: peerOfSockaddr(addrBuf), recvRoundMs: recvTimeoutAccepted(listenFd, c) };
  }
  const { errno, text } = lastErrno();
  if (errno === EAGAIN || errno === EINTR || errno === ECONNABORTED) return undefined;
  if (errno === EMFILE || errno === ENFILE) throw new IbpError('IBP_ERR_NET_SYSCALL', { call: 'accept4', detail: `${text}: raise the open-file limit` });
  throw new IbpError('IBP_ERR_NET_SYSCALL', { call: 'accept4', detail: text });
}

/** The peer of a connected socket (FORK: the manager accepted it; it also gets TCP_NODELAY). */
export function peerOf(fd: number): Peer {
  noDelay(fd);
  addrLen.writeUInt32LE(addrBuf.length, 0);
  if (getpeername(fd, addrBuf, addrLen) !== 0) return { ip: '', port: 0 };
  return peerOfSockaddr(addrBuf);
}

/** sockaddr_in / sockaddr_in6 → ip and port. */
export function peerOfSockaddr(a: Buffer): Peer {
  const family = a.readUInt16LE(0);
  const port = a.readUInt16BE(2);
  if (family === 2) return { ip: `${a[4]}.${a[5]}.${a[6]}.${a[7]}`, port };
  if (family === 10) {
    const v4mapped = a.readUInt32BE(8) === 0 && a.readUInt32BE(12) === 0 && a.readUInt32BE(16) === 0xffff;
    if (v4mapped) return { ip: `${a[20]}.${a[21]}.${a[22]}.${a[23]}`, port };
    const groups: string[] = [];
    for (let i = 0; i < 8; i++) groups.push(a.readUInt16BE(8 + i * 2).toString(16));
    return { ip: groups.join(':').replace(/(^|:)0(:0)+(:|$)/, '::'), port };
  }
  return { ip: '', port: 0 };
}

/** Time a server-side close waits for the peer's end while dropping what it still sends. */
const LINGER_MS = 100;
const scratch = Buffer.allocUnsafe(16 * 1024);

/**
 * Close a connection. `linger`: the server closes first (error, deadline, leaving) and the peer
 * may still be sending: half-close, drop incoming bytes until the peer's end or LINGER_MS, then
 * close. Without it (the peer already ended), just close.
 */
export function closeConn(fd: number, linger: boolean): void {
  if (fd < 0) return;
  if (linger) {
    shutdown(fd, SHUT_WR);
    const until = Date.now() + LINGER_MS;
    for (let dropped = 0; dropped < 4 * 1024 * 1024;) {
      const n = recvNow(fd, scratch);
      if (n === 0 || n === BROKEN) break;
      if (n > 0) {
        dropped += n;
        continue;
      }
      const left = until - Date.now();
      if (left <= 0 || waitFd(fd, POLLIN, left) !== 'ready') break;
    }
  }
  close(fd);
}
