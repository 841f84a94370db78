/**
 * Sessions: who is connected to the registry. Two sources feed it:
 *
 * - heartbeats (POST /v1/agent/heartbeat) from ibma and ibas: `{role, node, ip?, port?, pid, load?}`;
 * - watches (GET /v1/agent/config with wait > 0): an agent blocked in a watch is live even
 *   without heartbeats. A watch from an address that has no heartbeat session yet shows as an
 *   `ibma` session with pid 0 until its first heartbeat replaces it.
 *
 * A session with no watch held and no heartbeat for `expire_seconds` is dropped.
 */

export type SessionRole = 'ibma' | 'ibas';

export interface Session {
  role: SessionRole;
  node: string;
  /** The address the agent reported (or the peer address when it did not). */
  ip: string;
  port: number;
  pid: number;
  load?: number;
  /** Peer address of the last request. */
  remote: string;
  since: number;
  last_seen: number;
  /** Watches held right now. */
  watches: number;
  /** The config version and epoch the agent said it holds (its last heartbeat). */
  version?: number;
  epoch?: string;
  /** An ibas manager's /metrics address (no token). */
  metrics?: string;
}

export interface Heartbeat {
  role: SessionRole;
  node: string;
  ip?: string;
  port?: number;
  pid: number;
  load?: number;
  version?: number;
  epoch?: string;
  metrics?: string;
}

const keyOf = (role: string, node: string, ip: string, port: number, pid: number): string => `${role}|${node}|${ip}|${port}|${pid}`;

export class Sessions {
  readonly #byKey = new Map<string, Session>();
  /** ibma sessions by `node|remote`, to find the session a watch belongs to. */
  readonly #agentByRemote = new Map<string, Session>();
  readonly #expireMs: number;
  readonly #now: () => number;

  constructor(expireSeconds: number, now: () => number = Date.now) {
    this.#expireMs = expireSeconds * 1000;
    this.#now = now;
  }

  heartbeat(hb: Heartbeat, remote: string): Session {
    const now = this.#now();
    const ip = hb.ip ?? remote;
    const port = hb.port ?? 0;
    const key = keyOf(hb.role, hb.node, ip, port, hb.pid);
    let s = this.#byKey.get(key);
    if (!s) {
      s = { role: hb.role, node: hb.node, ip, port, pid: hb.pid, remote, since: now, last_seen: now, watches: 0 };
      // an agent first seen through its watch: carry its watches over to the real session
      const anon = keyOf('ibma', hb.node, remote, 0, 0);
      const w = hb.role === 'ibma' ? this.#byKey.get(anon) : undefined;
      if (w) {
        s.watches = w.watches;
        s.since = w.since;
        this.#byKey.delete(anon);
      }
      this.#byKey.set(key, s);
    }
    if (s.role === 'ibma') this.#agentByRemote.set(`${s.node}|${remote}`, s);
    s.remote = remote;
    s.last_seen = now;
    if (hb.load !== undefined) s.load = hb.load;
    if (hb.version !== undefined) s.version = hb.version;
    if (hb.epoch !== undefined) s.epoch = hb.epoch;
    if (hb.metrics !== undefined) s.metrics = hb.metrics;
    return s;
  }

  /** A daemon stopping gracefully leaves at once (not after expire_seconds); true when it was there. */
  end(hb: Omit<Heartbeat, 'load' | 'version' | 'epoch' | 'metrics'>, remote: string): Session | undefined {
    const key = keyOf(hb.role, hb.node, hb.ip ?? remote, hb.port ?? 0, hb.pid);
    const s = this.#byKey.get(key);
    if (!s) return undefined;
    this.#delete(key, s);
    return s;
  }

  #watchSession(node: string, remote: string): Session {
    const known = this.#agentByRemote.get(`${node}|${remote}`);
    if (known && this.#byKey.get(keyOf(known.role, known.node, known.ip, known.port, known.pid)) === known) return known;
    const now = this.#now();
    const s: Session = { role: 'ibma', node, ip: remote, port: 0, pid: 0, remote, since: now, last_seen: now, watches: 0 };
    this.#byKey.set(keyOf('ibma', node, remote, 0, 0), s);
    this.#agentByRemote.set(`${node}|${remote}`, s);
    return s;
  }

  #delete(k: string, s: Session): void {
    this.#byKey.delete(k);
    const rk = `${s.node}|${s.remote}`;
    if (this.#agentByRemote.get(rk) === s) this.#agentByRemote.delete(rk);
  }

  /** A watch starts; call the returned function when it ends. */
  watchStarted(node: string, remote: string): () => void {
    const s = this.#watchSession(node, remote);
    s.watches++;
    s.last_seen = this.#now();
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      // the session may have been replaced meanwhile (first heartbeat of an anonymous watcher)
      const cur = this.#agentByRemote.get(`${node}|${remote}`) ?? s;
      cur.watches = Math.max(0, cur.watches - 1);
      cur.last_seen = this.#now();
    };
  }

  /** Drop sessions not heard from for expire_seconds; returns the dropped ones. */
  expire(): Session[] {
    const limit = this.#now() - this.#expireMs;
    const dropped: Session[] = [];
    for (const [k, s] of this.#byKey) {
      if (s.watches === 0 && s.last_seen < limit) {
        this.#delete(k, s);
        dropped.push(s);
      }
    }
    return dropped;
  }

  /** Live sessions, oldest first. */
  list(): Session[] {
    this.expire();
    return [...this.#byKey.values()].sort((a, b) => a.since - b.since);
  }

  /** Forget every session of a removed node. */
  dropNode(node: string): void {
    for (const [k, s] of this.#byKey) if (s.node === node) this.#delete(k, s);
  }
}
