/**
 * The listen socket, owned by the manager and made through libc (koffi), not through a Node
 * net.Server: libuv would otherwise accept on it in the manager's event loop. The raw fd is handed
 * to every worker as an extra stdio fd (fd 3 in the worker; BRIEF §3), and to a new-generation
 * manager on SIGUSR2 (issue 5) — it is never closed and re-bound while ibas runs.
 *
 * The socket is O_NONBLOCK: workers accept only after poll() says a connection waits, and a
 * worker that loses a race (another generation took the connection) gets EAGAIN instead of
 * blocking inside accept while it holds the accept lock.
 */
import { IbpError } from '../lib/errors.js';
import { lastErrno, libc } from '../lib/native/libc.js';

export const AF_INET = 2;
const SOCK_STREAM = 1;
export const SOCK_NONBLOCK = 0o4000;
export const SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1;
const SO_REUSEADDR = 2;

const socket = libc.func('int socket(int domain, int type, int protocol)');
const setsockopt = libc.func('int setsockopt(int fd, int level, int name, const void *value, unsigned int len)');
const bind = libc.func('int bind(int fd, const void *addr, unsigned int len)');
const listen = libc.func('int listen(int fd, int backlog)');
const getsockname = libc.func('int getsockname(int fd, _Inout_ uint8_t *addr, _Inout_ unsigned int *len)');
const closeFd = libc.func('int close(int fd)');

/** struct sockaddr_in for an IPv4 address and port. */
export function sockaddrIn(ip: string, port: number): Buffer {
  const b = Buffer.alloc(16);
  b.writeUInt16LE(AF_INET, 0);
  b.writeUInt16BE(port, 2);
  const parts = ip.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) {
    throw new IbpError('IBP_ERR_CLI_BAD_ARG', { arg: 'server.ip', detail: `${ip} is not an IPv4 address` });
  }
  for (let i = 0; i < 4; i++) b[4 + i] = parts[i]!;
  return b;
}

/** What to do about a failed bind, by errno. */
const BIND_HINT: Record<string, string> = {
  EADDRINUSE: 'another process listens on this port (`ss -ltnp`): stop it or change server.port in ibas.conf',
  EADDRNOTAVAIL: 'this machine has no such address: change server.ip in ibas.conf',
  EACCES: 'a port below 1024 needs privileges: use a higher server.port',
};

function fail(call: string, ip: string, port: number, fd?: number): never {
  const err = lastErrno().text;
  if (fd !== undefined && fd >= 0) closeFd(fd);
  const hint = call === 'bind' ? BIND_HINT[err.split(/[\s:]/)[0] ?? ''] : undefined;
  throw new IbpError('IBP_ERR_NET_SYSCALL', { call: `${call} ${ip}:${port}`, detail: hint ? `${err}: ${hint}` : err });
}

/** socket + SO_REUSEADDR + bind + listen. Returns the fd (O_NONBLOCK, close-on-exec). */
export function openListenSocket(ip: string, port: number, backlog: number): number {
  const addr = sockaddrIn(ip, port);
  const fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0) as number;
  if (fd < 0) fail('socket', ip, port);
  const one = Buffer.alloc(4);
  one.writeInt32LE(1, 0);
  if ((setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, one, 4) as number) !== 0) fail('setsockopt(SO_REUSEADDR)', ip, port, fd);
  if ((bind(fd, addr, 16) as number) !== 0) fail('bind', ip, port, fd);
  if ((listen(fd, backlog) as number) !== 0) fail('listen', ip, port, fd);
  return fd;
}

/** The address a socket fd is bound to (to check an inherited fd). */
export function boundAddress(fd: number): { ip: string; port: number } | undefined {
  const b = Buffer.alloc(16);
  const len = [16];
  if ((getsockname(fd, b, len) as number) !== 0 || b.readUInt16LE(0) !== AF_INET) return undefined;
  return { ip: `${b[4]}.${b[5]}.${b[6]}.${b[7]}`, port: b.readUInt16BE(2) };
}

export function closeSocket(fd: number): void {
  if (fd >= 0) closeFd(fd);
}
