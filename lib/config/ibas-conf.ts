/** etc/ibas.conf: the transaction server's settings, with IBP's keys. */
import { Type, type Static } from '@sinclair/typebox';
import { Address, LogSection, MetricsSection } from './common.js';
import { Seconds } from './model.js';
import { Cron } from './cron.js';

export const MpmMode = Type.Union([
  Type.Literal('FORK'),
  Type.Literal('STATIC_WORKERPOOL'),
  Type.Literal('DYNAMIC_WORKERPOOL'),
], { description: 'one of FORK, STATIC_WORKERPOOL, DYNAMIC_WORKERPOOL' });
export type MpmMode = Static<typeof MpmMode>;

export const Protection = Type.Union([
  Type.Literal(0), Type.Literal(1), Type.Literal('none'), Type.Literal('optional'), Type.Literal('required'),
], { description: 'none, optional or required (0 = none, 1 = optional)' });

export const IbasConf = Type.Object({
  server: Address,
  mpm: Type.Object({
    mode: MpmMode,
    /** Workers of a static pool; upper bound of a dynamic pool; concurrent FORK workers. */
    max_count: Type.Integer({ minimum: 1, maximum: 1024 }),
    DYNAMIC_WORKERPOOL: Type.Object({
      min_idle_count: Type.Integer({ minimum: 0 }),
      max_idle_count: Type.Integer({ minimum: 1 }),
      /** Most workers created in one adjustment period. */
      create_interval: Type.Integer({ minimum: 1 }),
      /** Most workers removed in one adjustment period. */
      destroy_interval: Type.Integer({ minimum: 1 }),
    }, { additionalProperties: false }),
    /** A worker exits after this many transactions and is replaced (0 = never). */
    max_process_count: Type.Integer({ minimum: 0 }),
    /** Each worker adds a random 0..jitter to max_process_count, so a pool does not recycle all at once (gunicorn's max_requests_jitter). */
    max_process_count_jitter: Type.Optional(Type.Integer({ minimum: 0 })),
  }, { additionalProperties: false }),
  security: Type.Object({
    /** Signed transactions: none, optional (granted when asked), required (unsigned ones refused). 0 = none, 1 = optional. */
    sign_flag: Protection,
    compress_flag: Type.Union([Type.Literal(0), Type.Literal(1)]),
    /** Encrypted transactions (implies signing): none, optional, required. 0 = none, 1 = optional. */
    encrypt_flag: Protection,
    /** Seconds a signed pre-request's time may be off the server's clock (default 60); its nonce is remembered that long, by all workers (replay_cache_size). */
    replay_window: Type.Optional(Seconds),
    /** Entries of the replay cache all workers share (signed hellos seen within replay_window; 16 bytes each, rounded up to a power of two; default 1048576 = 16 MiB: room for ~8,000 signed hellos a second at the default window). Full: signed transactions are refused (TX_REPLAY_CACHE_FULL). */
    replay_cache_size: Type.Optional(Type.Integer({ minimum: 64, maximum: 16 * 1024 * 1024 })),
    /** Apps the HTTP adapter (which cannot sign) still serves when sign_flag is required; "*" = all. */
    http_unsigned_allow: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 64 }), { maxItems: 256 })),
  }, { additionalProperties: false }),
  app: Type.Object({
    max_so_cache_count: Type.Integer({ minimum: 1, maximum: 4096 }),
    /** Apps every worker loads at start; a load failure is a boot error (exit APP_LOAD, counted by the restart budget). */
    preload: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 64 }), { maxItems: 64 })),
    /** V8 heap limit of each worker, MiB (node --max-old-space-size): a JS app that allocates without bound ends only its worker. Unset = Node's default. */
    js_max_heap_mb: Type.Optional(Type.Integer({ minimum: 32, maximum: 65536 })),
  }, { additionalProperties: false }),
  /** Wire limits and connection handling (optional; defaults in {@link commOf}). */
  comm: Type.Optional(Type.Object({
    /** Largest frame body accepted, bytes (also the HTTP adapter's body limit). */
    max_frame_size: Type.Optional(Type.Integer({ minimum: 1024, maximum: 256 * 1024 * 1024 })),
    /** Largest attached file, bytes. */
    max_file_size: Type.Optional(Type.Integer({ minimum: 0, maximum: 256 * 1024 * 1024 })),
    /** Most attached files per direction per transaction. */
    max_files: Type.Optional(Type.Integer({ minimum: 0, maximum: 1024 })),
    /** Old name of keepalive_timeout (still accepted; keepalive_timeout wins when both are set). */
    idle_timeout: Type.Optional(Seconds),
    /** Seconds from connection open (or the first byte of a later transaction) to a complete request header. */
    header_timeout: Type.Optional(Seconds),
    /** Seconds from the first byte of a transaction to its complete request (files and body). */
    request_timeout: Type.Optional(Seconds),
    /** Seconds a connection may sit idle between transactions before the server closes it. */
    keepalive_timeout: Type.Optional(Seconds),
    /** Seconds the peer has to take in a response before the connection is abandoned. */
    send_timeout: Type.Optional(Seconds),
    /** Total attached-file bytes per transaction per direction (checked from declared sizes before buffering). */
    max_files_bytes: Type.Optional(Type.Integer({ minimum: 0, maximum: 4 * 1024 * 1024 * 1024 })),
    /**
     * HTTP: requests one keep-alive connection may carry; the last one's response says
     * `Connection: close`, so a worker goes back to the accept queue (0 = no limit; Apache's
     * MaxKeepAliveRequests).
     */
    keepalive_max_requests: Type.Optional(Type.Integer({ minimum: 0, maximum: 1_000_000_000 })),
    /** listen(2) backlog of the server socket. */
    listen_backlog: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535 })),
  }, { additionalProperties: false })),
  /** The manager's own timings (optional; defaults in {@link monitorOf}). */
  monitor: Type.Optional(Type.Object({
    /** Milliseconds between manager ticks (signals → reap → timeouts → pool). */
    tick_ms: Type.Optional(Type.Integer({ minimum: 10, maximum: 5000 })),
    /** Seconds between dynamic-pool adjustments. */
    adjust_interval: Type.Optional(Seconds),
    /** Seconds between heartbeats to ibms. */
    heartbeat_interval: Type.Optional(Seconds),
    /** Seconds a graceful stop waits for running transactions before SIGKILL. */
    stop_timeout: Type.Optional(Seconds),
    /** Restart budget: this many workers dying at start (boot error, or before ready) within restart_window stop the respawning. */
    max_restarts: Type.Optional(Type.Integer({ minimum: 1, maximum: 10000 })),
    /** Seconds of the restart budget's window. */
    restart_window: Type.Optional(Seconds),
    /** Seconds a USR2 new generation has to report ready before it is killed and rolled back. */
    upgrade_timeout: Type.Optional(Seconds),
    /** Crash-loop brake (Tuxedo's MAXGEN): an app that kills its worker this many times within app_crash_window is suspended on this server. */
    app_max_crashes: Type.Optional(Type.Integer({ minimum: 1, maximum: 10000 })),
    /** Seconds of the crash-loop brake's window (Tuxedo's GRACE). */
    app_crash_window: Type.Optional(Seconds),
  }, { additionalProperties: false })),
  log: LogSection,
  /**
   * Transactions the manager runs at cron expressions through its own listen address, served by
   * a worker like any other (ibas/scheduled.ts). A run still going when the next is due is skipped.
   */
  schedule: Type.Optional(Type.Array(Type.Object({
    name: Type.String({ minLength: 1, maxLength: 32, pattern: '^[A-Za-z0-9_.-]+$', description: 'letters, digits, _ . -' }),
    cron: Cron,
    app: Type.String({ minLength: 1, maxLength: 64 }),
    /** The request body (UTF-8). */
    request: Type.Optional(Type.String({ maxLength: 65536 })),
    /** The journal of every run (default `sched:<name>:<n>`). */
    journal: Type.Optional(Type.String({ maxLength: 64 })),
    /** Seconds to wait for the answer (default 60). */
    timeout: Type.Optional(Seconds),
  }, { additionalProperties: false }), { maxItems: 64 })),
  /** The manager's Prometheus endpoint (off when absent; lib/metrics-server.ts). */
  metrics: Type.Optional(MetricsSection),
  ibma: Type.Object({
    /** The agent's config, to find the config space. */
    config_filename: Type.String({ minLength: 1 }),
  }, { additionalProperties: false }),
}, { additionalProperties: false });
export type IbasConf = Static<typeof IbasConf>;

/** The sections with their defaults, importable without TypeBox (lib/config/ibas-settings.ts). */
export { commOf, monitorOf, type CommSettings, type MonitorSettings } from './ibas-settings.js';
