/**
 * From a bundle to the config space: build a NEW config segment from the bundle and the agent's
 * settings, then flip the public index segment to it (lib/shm/config-segment.ts does both, in that
 * order, so readers never see a half-built segment). Old segments stay until {@link ./gc.ts}
 * finds nobody but the agent attached to them.
 */
import { ConfigSpaceWriter, type SpaceSettings } from '../lib/shm/config-segment.js';
import type { IbmaConf } from '../lib/config/ibma-conf.js';
import type { NodeBundle } from '../lib/config/model.js';
import type { Logger } from '../lib/log.js';

export function spaceSettings(conf: IbmaConf): SpaceSettings {
  return {
    ibms: { ip: conf.ibms.ip, port: conf.ibms.port },
    connecting_timeout: conf.ibac.connecting_timeout,
    retry_connect_timeval: conf.ibac.retry_connect_timeval,
    min_compress_size: conf.comm.min_compress_size,
  };
}

export interface Published {
  key: number;
  generation: number;
  epoch: string;
  version: number;
  at: number;
}

export class Publisher {
  readonly writer: ConfigSpaceWriter;
  readonly #settings: SpaceSettings;
  readonly #log: Logger;
  #last: Published | undefined;

  constructor(writer: ConfigSpaceWriter, conf: IbmaConf, log: Logger) {
    this.writer = writer;
    this.#settings = spaceSettings(conf);
    this.#log = log;
  }

  get last(): Published | undefined {
    return this.#last;
  }

  /** Build and flip; `source` names where the bundle came from (ibms, cache) for the log. */
  publish(bundle: NodeBundle, source: string): Published {
    const t0 = performance.now();
    const { key, generation } = this.writer.publish(bundle, this.#settings);
    const ms = Math.round((performance.now() - t0) * 10) / 10;
    this.#last = { key, generation, epoch: bundle.epoch, version: bundle.version, at: Date.now() };
    this.#log.info(
      { key, generation, epoch: bundle.epoch, version: bundle.version, nodes: bundle.nodes.length, apps: bundle.apps.length, ms, source },
      `config published , source[${source}] version[${bundle.version}] epoch[${bundle.epoch}] key[0x${key.toString(16)}] generation[${generation}] nodes[${bundle.nodes.length}] apps[${bundle.apps.length}] ms[${ms}]`,
    );
    return this.#last;
  }
}
