/**
 * The FORK-mode manager's accept: poll(2) on koffi's thread pool (`.async()`: the manager's event
 * loop stays free), then accept4(2) — non-blocking, so a lost race is EAGAIN, never a hang — on
 * the main thread; the fd goes to a new worker as its fd 3. (Pool and foreground workers accept
 * on their main thread: ibas/conn-io.ts, ibas/worker.ts.)
 *
 * poll has a timeout so the caller can look at its stop flag between rounds; a stop never
 * abandons an accepted fd: accept4 happens only after the check.
 */
import { lastErrno, libc } from '../lib/native/libc.js';
import { IbpError } from '../lib/errors.js';
import { SOCK_CLOEXEC, SOCK_NONBLOCK } from './listen-socket.js';
import { ERRNO, POLL } from '../lib/native/posix-constants.js';

const { IN: POLLIN, ERR: POLLERR, HUP: POLLHUP, NVAL: POLLNVAL } = POLL;
const { EAGAIN, EINTR, ECONNABORTED, EMFILE, ENFILE } = ERRNO;

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
  if (rev & POLLNVAL) throw new IbpError('IBP_ERR_NET_SYSCALL', { call: `poll(listen fd ${fd})`, detail: 'POLLNVAL: the listen fd is not open' });
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
  if (errno === EMFILE || errno === ENFILE) throw new IbpError('IBP_ERR_NET_SYSCALL', { call: 'accept4', detail: `${text}: raise the open-file limit` });
  throw new IbpError('IBP_ERR_NET_SYSCALL', { call: 'accept4', detail: text });
}

/**
 * Wait for and accept one connection. Between poll rounds `shouldStop()` is asked; when it says
 * yes, resolves -1 without accepting.
 */
export async function acceptOne(listenFd: number, shouldStop: () => boolean, pollMs = 500): Promise<number> {
  for (;;) {
    if (shouldStop()) return -1;
    const ready = await pollReadable(listenFd, pollMs);
    if (shouldStop()) return -1;
    if (!ready) continue;
    const c = acceptFd(listenFd);
    if (c >= 0) return c;
  }
}

export function closeFdQuietly(fd: number): void {
  if (fd >= 0) closeFd(fd);
}
