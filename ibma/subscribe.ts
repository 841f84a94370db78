/**
 * The blocking watch on ibms (Consul-style): `GET /v1/agent/config?node=N&index=V&epoch=E&wait=S`
 * answers at once when the registry's epoch or N's version differ from what the agent holds, else
 * when N's version changes or after S seconds (then with the same version: nothing to do).
 *
 * An answer is used only when it is a complete, valid `NodeBundle` of this node whose version and
 * epoch agree with the X-Ibp-Index / X-Ibp-Epoch headers. Anything else (HTTP error, truncated or
 * corrupt lz4, bad JSON, a bundle failing the schema, another node's bundle) is rejected as
 * IBP_ERR_REG_ANSWER; the caller logs it and keeps its current config.
 *
 * {@link subscribe} loops until its signal aborts, reconnecting with exponential backoff
 * ({@link Backoff}) after every failure.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { IbpError, isIbpError } from '../lib/errors.js';
import { decodeJsonBody } from '../lib/codec/json-body.js';
import { validate } from '../lib/config/load.js';
import { NodeBundle } from '../lib/config/model.js';
import { answerError, type RegistryClient } from '../lib/registry-client.js';

/** What the agent holds now: sent back to ibms as `epoch` and `index`. */
export interface Held {
  epoch: string;
  version: number;
}

export type WatchResult = { kind: 'changed'; bundle: NodeBundle } | { kind: 'same' };

export interface WatchOptions {
  node: string;
  held: Held | undefined;
  waitS: number;
  maxSize: number;
  signal?: AbortSignal;
}

/** One blocking read. Resolves with the new bundle, or `same` when nothing changed. */
export async function watchConfig(client: RegistryClient, opts: WatchOptions): Promise<WatchResult> {
  const q = new URLSearchParams({
    node: opts.node,
    index: String(opts.held?.version ?? 0),
    epoch: opts.held?.epoch ?? '',
    wait: String(Math.round(opts.waitS * 1000) / 1000),
  });
  const what = `config of node ${opts.node}`;
  // the registry may hold the answer for `wait` seconds: allow that plus a margin for the body
  const ans = await client.get(`/agent/config?${q}`, { signal: opts.signal, timeoutMs: opts.waitS * 1000 + 15_000, maxSize: opts.maxSize });
  if (ans.status === 304) return { kind: 'same' };
  if (ans.status !== 200) throw answerError(ans, what);
  const bundle = parseBundle(ans.body, ans.headers, opts.node, opts.maxSize);
  if (opts.held && bundle.epoch === opts.held.epoch && bundle.version === opts.held.version) return { kind: 'same' };
  return { kind: 'changed', bundle };
}

/** Decode and check one answer body; throws IBP_ERR_REG_ANSWER naming what is wrong. */
export function parseBundle(body: Buffer, headers: Headers, node: string, maxSize: number): NodeBundle {
  const bad = (detail: string, cause?: unknown): IbpError => new IbpError('IBP_ERR_REG_ANSWER', { status: 200, detail: `config of node ${node} rejected: ${detail}` }, { cause });
  let value: unknown;
  try {
    value = decodeJsonBody(body, headers.get('content-encoding') ?? undefined, maxSize);
  } catch (e) {
    throw bad(isIbpError(e) ? e.message : String(e), e);
  }
  let bundle: NodeBundle;
  try {
    bundle = validate(NodeBundle, value, 'answer');
  } catch (e) {
    throw bad(isIbpError(e) ? e.message.replace(/^config file answer: /, '') : String(e), e);
  }
  if (bundle.this_node !== node) throw bad(`it is the bundle of node ${bundle.this_node}`);
  if (!bundle.nodes.some((n) => n.node === node)) throw bad(`node ${node} itself is missing from it`);
  const hIndex = headers.get('x-ibp-index');
  const hEpoch = headers.get('x-ibp-epoch');
  if (hIndex !== null && hIndex !== String(bundle.version)) throw bad(`header X-Ibp-Index ${hIndex} disagrees with version ${bundle.version}`);
  if (hEpoch !== null && hEpoch !== bundle.epoch) throw bad(`header X-Ibp-Epoch ${hEpoch} disagrees with epoch ${bundle.epoch}`);
  return bundle;
}

/** Exponential backoff: min, 2·min, 4·min … max, with ±20 % jitter so agents don't reconnect in step. */
export class Backoff {
  readonly #min: number;
  readonly #max: number;
  #attempt = 0;

  constructor(minMs: number, maxMs: number) {
    this.#min = Math.max(1, minMs);
    this.#max = Math.max(this.#min, maxMs);
  }

  get attempts(): number {
    return this.#attempt;
  }

  /** The delay before the next attempt (and count this failure). */
  next(): number {
    const base = Math.min(this.#max, this.#min * 2 ** Math.min(this.#attempt, 30));
    this.#attempt++;
    return Math.round(base * (0.8 + Math.random() * 0.4));
  }

  reset(): void {
    this.#attempt = 0;
  }
}

export interface SubscribeHandlers {
  /** Current holding, asked before every watch. */
  held(): Held | undefined;
  /** A new bundle arrived; a throw counts as a failure (backoff, then the same bundle comes again). */
  onBundle(bundle: NodeBundle): Promise<void>;
  /** The watch answered (changed or not): the registry is reachable. */
  onAnswer(result: WatchResult): Promise<void> | void;
  /** A failed round; `delayMs` is the wait before the next attempt. */
  onFailure(error: unknown, attempt: number, delayMs: number): void;
}

export interface SubscribeOptions {
  node: string;
  waitS: number;
  maxSize: number;
  backoff: Backoff;
  /** A `same` answer quicker than this is followed by a pause (a registry ignoring `wait` must not make the agent spin). */
  minRoundMs: number;
  signal: AbortSignal;
}

/**
 * Watch until `signal` aborts. Never throws for registry failures; resolves when aborted. The
 * first round, and the first after a failure, asks with wait 0 (ibms answers at once): an agent
 * that starts from its cached config, or comes back after an outage, knows within a round trip
 * that the registry answers (`-s status`, ibma_registry_up) instead of a whole blocking wait later.
 */
export async function subscribe(client: RegistryClient, opts: SubscribeOptions, h: SubscribeHandlers): Promise<void> {
  let probe = true;
  while (!opts.signal.aborted) {
    const started = Date.now();
    try {
      const wasProbe = probe;
      const result = await watchConfig(client, { node: opts.node, held: h.held(), waitS: probe ? 0 : opts.waitS, maxSize: opts.maxSize, signal: opts.signal });
      probe = false;
      if (result.kind === 'changed') await h.onBundle(result.bundle);
      opts.backoff.reset();
      await h.onAnswer(result);
      const quick = opts.minRoundMs - (Date.now() - started);
      if (result.kind === 'same' && quick > 0 && !wasProbe) await sleep(quick, undefined, { signal: opts.signal }).catch(() => undefined);
    } catch (e) {
      probe = true;
      if (opts.signal.aborted) break;
      const delay = opts.backoff.next();
      h.onFailure(e, opts.backoff.attempts, delay);
      try {
        await sleep(delay, undefined, { signal: opts.signal });
      } catch {
        break;
      }
    }
  }
}
