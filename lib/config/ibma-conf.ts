/** etc/ibma.conf: the node agent's settings (also read by ibac and ibas to find the config space). */
import { Type, type Static } from '@sinclair/typebox';
import { Address, LogSection } from './common.js';
import { Name, Seconds } from './model.js';

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
    index_key: Type.Integer({ minimum: 1, maximum: 0x7fffffff }),
  }, { additionalProperties: false }),
  log: LogSection,
}, { additionalProperties: false });
export type IbmaConf = Static<typeof IbmaConf>;
