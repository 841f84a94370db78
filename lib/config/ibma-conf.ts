/** etc/ibma.conf: the node agent's settings (also read by ibac and ibas to find the config space). */
import { Type, type Static } from '@sinclair/typebox';
import { Address, LogSection, MetricsSection } from './common.js';
import { Name, Seconds } from './model.js';
import { INDEX_KEY_RANGE } from './ibma-index-key.js';

/** Timings of the agent's loops; every key is optional (see {@link agentTimings} for defaults). */
export const IbmaAgentSection = Type.Object({
  /** Longest blocking watch asked of ibms (`wait=`); ibms may cap it lower. */
  watch_wait: Type.Optional(Seconds),
  /** First delay before reconnecting to ibms after a failure; doubles up to reconnect_max. */
  reconnect_min: Type.Optional(Seconds),
  /** Longest delay between two reconnect attempts. */
  reconnect_max: Type.Optional(Seconds),
  /** Period of the heartbeat POSTed to ibms (`ibms -s sessions`). */
  heartbeat_interval: Type.Optional(Seconds),
  /** Period of the check that removes old config segments nobody but the agent is attached to. */
  gc_interval: Type.Optional(Seconds),
  /** Largest config answer accepted from ibms, in bytes (compressed and uncompressed). */
  max_bundle_size: Type.Optional(Type.Integer({ minimum: 4096, maximum: 2 ** 31 - 1 })),
  /** Largest app package accepted from ibms, in bytes. */
  max_package_size: Type.Optional(Type.Integer({ minimum: 1, maximum: 2 ** 31 - 1 })),
}, { additionalProperties: false });
export type IbmaAgentSection = Static<typeof IbmaAgentSection>;

export const IbmaConf = Type.Object({
  this_node: Name,
  ibms: Address,
  /** The node's credential, from `ibms -s node_credential --node N`. */
  credential: Type.String({ minLength: 16, maxLength: 256 }),
  comm: Type.Object({
    min_compress_size: Type.Integer({ minimum: 0 }),
  }, { additionalProperties: false }),
  ibac: Type.Object({
    /** Seconds a client waits for a TCP connect. */
    connecting_timeout: Seconds,
    /** Seconds a host stays suspended after a failed connect. */
    retry_connect_timeval: Seconds,
  }, { additionalProperties: false }),
  shm: Type.Object({
    /** SysV key of the public index segment; derived from the home by `ibma -a init`. */
    index_key: Type.Integer({ ...INDEX_KEY_RANGE }),
  }, { additionalProperties: false }),
  log: LogSection,
  /** The agent's Prometheus endpoint (off when absent; lib/metrics-server.ts). */
  metrics: Type.Optional(MetricsSection),
  /** The agent's loop timings and size limits (optional; defaults suit production). */
  agent: Type.Optional(IbmaAgentSection),
}, { additionalProperties: false });
export type IbmaConf = Static<typeof IbmaConf>;

export interface AgentTimings {
  watchWaitS: number;
  reconnectMinMs: number;
  reconnectMaxMs: number;
  heartbeatMs: number;
  gcMs: number;
  maxBundleSize: number;
  maxPackageSize: number;
}

/** The agent section with its defaults filled in, in the units the code uses. */
export function agentTimings(conf: IbmaConf): AgentTimings {
  const a = conf.agent ?? {};
  const reconnectMinMs = Math.round((a.reconnect_min ?? 0.2) * 1000);
  return {
    watchWaitS: a.watch_wait ?? 30,
    reconnectMinMs,
    reconnectMaxMs: Math.max(reconnectMinMs, Math.round((a.reconnect_max ?? 5) * 1000)),
    heartbeatMs: Math.round((a.heartbeat_interval ?? 5) * 1000),
    gcMs: Math.round((a.gc_interval ?? 1) * 1000),
    maxBundleSize: a.max_bundle_size ?? 256 * 1024 * 1024,
    maxPackageSize: a.max_package_size ?? 512 * 1024 * 1024,
  };
}
