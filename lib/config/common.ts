/** Pieces shared by the daemons' own config files. */
import { Type, type Static } from '@sinclair/typebox';
import { Ip, Port } from './model.js';
import { Cron } from './cron.js';

export const LogLevel = Type.Union(['trace', 'debug', 'info', 'warn', 'error', 'fatal'].map((l) => Type.Literal(l)), {
  description: 'one of trace, debug, info, warn, error, fatal',
});

/** log: { level, main|monitor|worker file names (relative to the home), event } */
export const LogSection = Type.Object({
  level: Type.Optional(LogLevel),
  /** The home's event log: starts, stops, kills, crashes, alerts. */
  event: Type.Optional(Type.String({ minLength: 1 })),
  /** The tool's own log (ibms worker, ibma, ibcmd). */
  main: Type.Optional(Type.String({ minLength: 1 })),
  /** The daemon parent's log. */
  monitor: Type.Optional(Type.String({ minLength: 1 })),
  /** Worker logs; `{n}` becomes the worker's index. */
  worker: Type.Optional(Type.String({ minLength: 1 })),
  /** Rotation besides SIGUSR1 reopen (lib/log-rotate.ts): by size, by cron, or both. */
  rotate: Type.Optional(Type.Object({
    /** Rotate a file at or over this many bytes. */
    size: Type.Optional(Type.Integer({ minimum: 4096 })),
    /** Rotate every file at these times, whatever its size. */
    cron: Type.Optional(Cron),
    /** Rotated copies kept (`<file>.1` … `<file>.<keep>`), default 5. */
    keep: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
  }, { additionalProperties: false })),
}, { additionalProperties: false });
export type LogSection = Static<typeof LogSection>;

export const Address = Type.Object({ ip: Ip, port: Port }, { additionalProperties: false });
export type Address = Static<typeof Address>;

/**
 * metrics: { ip, port, token? } — the daemon's Prometheus endpoint (`GET /metrics`), off when the
 * section is absent. A token, when set, must come as `Authorization: Bearer <token>` (Prometheus:
 * `authorization: { credentials: … }`); an address outside 127.0.0.0/8 requires one
 * (lib/metrics-server.ts `checkMetricsPolicy`).
 */
export const MetricsSection = Type.Object({
  ip: Ip,
  port: Port,
  token: Type.Optional(Type.String({ minLength: 16, maxLength: 256, description: 'a bearer token of 16 to 256 characters' })),
}, { additionalProperties: false });
export type MetricsSection = Static<typeof MetricsSection>;
