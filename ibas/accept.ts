/**
 * Accepting one connection on the shared listen fd: poll(2) runs on koffi's thread pool
 * (`.async()`, the FORK-mode manager: its event loop stays free), or — a pool worker holding the
 * accept lock — on the main thread in short rounds that a signal cuts short, then accept4(2) — non-blocking, so a lost race is EAGAIN,
 * never a hang — runs on the main thread, and the new fd becomes a `net.Socket` (BRIEF §3).
 *
 * The worker calls {@link acceptOne} only while it holds the accept lock (leader-follower); the
 * FORK-mode manager calls it alone. poll has a timeout so the caller can look at its stop flag
 * between rounds; a stop never abandons an accepted fd: accept4 happens only after the check.
 */
import net from 'node:net';
import { lastErrno, libc } from '../lib/native/libc.js';
import { IbpError } from '../lib/errors.js';
import { SOCK_CLOEXEC, SOCK_NONBLOCK } from './listen-socket.js';

const POLLIN = 0x001;
const POLLERR = 0x008;
const POLLHUP = 0x010;
const POLLNVAL = 0x020;
const EAGAIN = 11;
const EINTR = 4;
const ECONNABORTED = 103;
const EMFILE = 24;
const ENFILE = 23;

const poll = libc.func('int poll(_Inout_ uint8_t *fds, unsigned long nfds, int timeout)');
const accept4 = libc.func('int accept4(int fd, void *addr, void *addrlen, int flags)');
const closeFd = libc.func('int close(int fd)');

function pollfd(fd: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeInt32LE(fd, 0);
  b.writeInt16LE(POLLIN, 4);
  return b;
}

/** Poll the listen fd once on the thread pool; resolves true when a connection may be waiting. */
export function pollReadable(fd: number, timeoutMs: number): Promise<boolean> {
  const b = pollfd(fd);
  // a connection already waiting: no thread hop
  const now = poll(b, 1, 0) as number;
  if (now > 0) return Promise.resolve(checkRevents(b, fd));
  return new Promise((resolve, reject) => {
    poll.async(b, 1, timeoutMs, (err: unknown, r: number) => {
      if (err) reject(err);
      else if (r < 0) {
        // EINTR (a signal on that thread) counts as "look again"
        resolve(false);
      } else resolve(r > 0 && checkRevents(b, fd));
    });
  });
}

function checkRevents(b: Buffer, fd: number): boolean {
  const rev = b.readInt16LE(6);
  if (rev & POLLNVAL) throw new IbpError('IBP_ERR_SHM_SYSCALL', { call: `poll(listen fd ${fd})`, detail: 'POLLNVAL: the listen fd is not open' });
  return (rev & (POLLIN | POLLERR | POLLHUP)) !== 0;
}

/**
 * accept4 once (non-blocking). Returns the new fd, or -1 when nothing was waiting (EAGAIN, EINTR,
 * ECONNABORTED). EMFILE/ENFILE and other errors throw.
 */
export function acceptFd(fd: number): number {
  const c = accept4(fd, null, null, SOCK_NONBLOCK | SOCK_CLOEXEC) as number;
  if (c >= 0) return c;
  const { errno, text } = lastErrno();
  if (errno === EAGAIN || errno === EINTR || errno === ECONNABORTED) return -1;
  if (errno === EMFILE || errno === ENFILE) throw new IbpError('IBP_ERR_SHM_SYSCALL', { call: 'accept4', detail: `${text}: raise the open-file limit` });
  throw new IbpError('IBP_ERR_SHM_SYSCALL', { call: 'accept4', detail: text });
}

/**
 * Poll on the calling (main) thread for at most `ms`: no thread-pool hop, so a connection is
 * picked up without the wake-up of a pool thread and the hand-back to the event loop. Only for a
 * caller whose event loop has nothing else to do meanwhile (a pool worker holding the accept
 * lock). A signal ends poll(2) at once (EINTR; poll is never restarted), so stop, log reopen and
 * the rest are handled in the turn of the event loop the caller gives between rounds.
 */
export function pollReadableNow(fd: number, ms: number): boolean {
  const b = pollfd(fd);
  const r = poll(b, 1, ms) as number;
  return r > 0 && checkRevents(b, fd);
}

const loopTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * Wait for and accept one connection. Between poll rounds `shouldStop()` is asked; when it says
 * yes, resolves -1 without accepting. `blockMs` > 0: poll on the main thread in rounds of that
 * length ({@link pollReadableNow}) with a turn of the event loop between rounds, instead of on
 * the thread pool (a worker's leader; never the manager, whose loop must stay free).
 */
export async function acceptOne(listenFd: number, shouldStop: () => boolean, pollMs = 500, blockMs = 0): Promise<number> {
  for (;;) {
    if (shouldStop()) return -1;
    let ready: boolean;
    if (blockMs > 0) {
      ready = pollReadableNow(listenFd, blockMs);
      if (!ready) await loopTurn();
    } else ready = await pollReadable(listenFd, pollMs);
    if (shouldStop()) return -1;
    if (!ready) continue;
    const c = acceptFd(listenFd);
    if (c >= 0) return c;
  }
}

/** Wrap an accepted fd as a Node socket. */
export function socketOf(fd: number): net.Socket {
  const s = new net.Socket({ fd, readable: true, writable: true });
  s.setNoDelay(true);
  return s;
}

export function closeFdQuietly(fd: number): void {
  if (fd >= 0) closeFd(fd);
}
