/** etc/ibms.conf: the registry daemon's own settings. */
import { Type, type Static } from '@sinclair/typebox';
import { Address, LogSection } from './common.js';
import { Cron } from './cron.js';
import { IbpError } from '../errors.js';

export const IbmsConf = Type.Object({
  server: Address,
  comm: Type.Object({
    /** Bodies of at least this many bytes are lz4-compressed when the peer accepts it. */
    min_compress_size: Type.Integer({ minimum: 0 }),
    /** Largest request body accepted (413 above). */
    max_body_size: Type.Integer({ minimum: 1024, maximum: 1024 * 1024 * 1024 }),
    /**
     * Bytes of lz4 bodies decoded and held at once over all requests (each held until its answer
     * is sent); a body that does not fit gets 503 (retry). Absent: 4 × max_body_size.
     */
    max_decode_total: Type.Optional(Type.Integer({ minimum: 1024, maximum: 4 * 1024 * 1024 * 1024 })),
  }, { additionalProperties: false }),
  /** Brute-force limit: requests without a valid credential, per client address. Absent: 10 per 60 s. */
  auth: Type.Optional(Type.Object({
    /** Refused-credential requests a client may make per window; the next ones get 429. */
    max_failures: Type.Integer({ minimum: 1, maximum: 1_000_000 }),
    /** Length of the window, seconds. */
    failure_window_seconds: Type.Number({ exclusiveMinimum: 0, maximum: 86400 }),
  }, { additionalProperties: false })),
  /**
   * Node-key rotation (ibms/node-keys.ts, IBP's elapse times). Absent: 60 and 120 s. The old pair
   * must outlive the new one's enable time: old_key_disable_elapse ≥ new_key_enable_elapse.
   */
  security: Type.Optional(Type.Object({
    /** Seconds from `-a rotate_node_key` until senders use the new pair (agents get it meanwhile). */
    new_key_enable_elapse: Type.Number({ minimum: 0, maximum: 86400 * 30 }),
    /** Seconds from `-a rotate_node_key` until receivers refuse the old pair. */
    old_key_disable_elapse: Type.Number({ minimum: 0, maximum: 86400 * 30 }),
  }, { additionalProperties: false })),
  config: Type.Object({
    nodes: Type.String({ minLength: 1 }),
    apps: Type.String({ minLength: 1 }),
    projects: Type.String({ minLength: 1 }),
  }, { additionalProperties: false }),
  misc: Type.Object({
    /** Watch so/ and mark an app's package changed when its .so is added or replaced. */
    auto_download_bin_enable: Type.Union([Type.Literal(0), Type.Literal(1)]),
    /** Where every save also sends the config: a folder, ibcmd://IP[:PORT] or ssh://USER@IP[:PORT]/DIR ('' for none; ibms/second-copy.ts). */
    second_config_dump: Type.String(),
  }, { additionalProperties: false }),
  session: Type.Object({
    /** A session not heard from for this many seconds is dropped. */
    expire_seconds: Type.Number({ exclusiveMinimum: 0 }),
    /** Longest blocking watch an agent may ask for. */
    max_wait_seconds: Type.Number({ exclusiveMinimum: 0 }),
  }, { additionalProperties: false }),
  log: LogSection,
  /** Jobs run by the worker at cron expressions (lib/schedule.ts; each optional). */
  schedule: Type.Optional(Type.Object({
    /** `-a save_config`: the three files, their images and the second copy. */
    save_config: Type.Optional(Cron),
    /** `-a build_config`: the .bin images. */
    build_config: Type.Optional(Cron),
    /** Only the second copy (misc.second_config_dump must be set). */
    second_config_dump: Type.Optional(Cron),
    /** Drop expired sessions (besides the worker's own 1 s check). */
    reap_sessions: Type.Optional(Cron),
  }, { additionalProperties: false })),
  /**
   * `GET /metrics` on the server address (off when absent; ibms/routes/metrics.ts). Scraped with
   * the admin credential or, when set, this token (a scrape-only credential).
   */
  metrics: Type.Optional(Type.Object({
    token: Type.Optional(Type.String({ minLength: 16, maxLength: 256, description: 'a bearer token of 16 to 256 characters' })),
  }, { additionalProperties: false })),
}, { additionalProperties: false });
export type IbmsConf = Static<typeof IbmsConf>;

/** security.* with its defaults, in ms; IBP_ERR_CFG_INVALID when the old pair would die before the new one is enabled. */
export function keyElapses(conf: IbmsConf): { enableMs: number; disableMs: number } {
  const s = conf.security ?? { new_key_enable_elapse: 60, old_key_disable_elapse: 120 };
  if (s.old_key_disable_elapse < s.new_key_enable_elapse) {
    throw new IbpError('IBP_ERR_CFG_INVALID', { file: 'ibms.conf', key: '/security/old_key_disable_elapse', detail: `${s.old_key_disable_elapse} s is less than new_key_enable_elapse ${s.new_key_enable_elapse} s: receivers would refuse the old pair before senders switch to the new one` });
  }
  return { enableMs: s.new_key_enable_elapse * 1000, disableMs: s.old_key_disable_elapse * 1000 };
}

/** Defaults written by `ibms -a init` (every key present, so the file documents itself). */
export function defaultIbmsConf(ip = '127.0.0.1', port = 16001): IbmsConf {
  return {
    server: { ip, port },
    comm: { min_compress_size: 512, max_body_size: 8 * 1024 * 1024, max_decode_total: 32 * 1024 * 1024 },
    auth: { max_failures: 10, failure_window_seconds: 60 },
    security: { new_key_enable_elapse: 60, old_key_disable_elapse: 120 },
    config: { nodes: 'ibp_nodes.conf', apps: 'ibp_apps.conf', projects: 'ibp_projects.conf' },
    misc: { auto_download_bin_enable: 0, second_config_dump: '' },
    session: { expire_seconds: 30, max_wait_seconds: 300 },
    log: {
      level: 'info',
      event: 'log/event.log',
      main: 'log/ibms_main.log',
      monitor: 'log/ibms_monitor.log',
      worker: 'log/ibms_worker.log',
    },
  };
}
