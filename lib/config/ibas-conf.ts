/** etc/ibas.conf: the transaction server's settings, with IBP's keys. */
import { Type, type Static } from '@sinclair/typebox';
import { Address, LogSection } from './common.js';

export const MpmMode = Type.Union([
  Type.Literal('FORK'),
  Type.Literal('STATIC_WORKERPOOL'),
  Type.Literal('DYNAMIC_WORKERPOOL'),
], { description: 'one of FORK, STATIC_WORKERPOOL, DYNAMIC_WORKERPOOL' });
export type MpmMode = Static<typeof MpmMode>;

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
  }, { additionalProperties: false }),
  security: Type.Object({
    sign_flag: Type.Union([Type.Literal(0), Type.Literal(1)]),
    compress_flag: Type.Union([Type.Literal(0), Type.Literal(1)]),
    encrypt_flag: Type.Union([Type.Literal(0), Type.Literal(1)]),
  }, { additionalProperties: false }),
  app: Type.Object({
    max_so_cache_count: Type.Integer({ minimum: 1, maximum: 4096 }),
  }, { additionalProperties: false }),
  log: LogSection,
  ibma: Type.Object({
    /** The agent's config, to find the config space. */
    config_filename: Type.String({ minLength: 1 }),
  }, { additionalProperties: false }),
}, { additionalProperties: false });
export type IbasConf = Static<typeof IbasConf>;
