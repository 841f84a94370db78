/**
 * lz4 compression of whole bodies, shared by the REST API (ibms ⇄ ibma/CLI) and the transaction
 * protocol (ibac ⇄ ibas).
 *
 * Wire form ("lz4" content encoding in IBP-TS):
 *
 *   offset 0  uint32 BE   length of the original bytes
 *   offset 4  ...         one raw lz4 block (lz4's block format, not its frame format)
 *
 * The block API of the `lz4` package is used on purpose: its frame decoder reports a truncated
 * stream through an 'error' event that nobody can catch and so takes the process down, while
 * decodeBlock() returns a negative number. Hostile bodies must never crash a daemon.
 *
 * Nor exhaust its memory: before anything is allocated, the block's sequences are walked (a
 * read-only pass over the compressed bytes) to learn exactly how much it expands to. A body whose
 * declared size is over the limit, or whose block expands past its declared size (a "bomb" that
 * lies about its size), is refused (413) without allocating; only then is a buffer of the declared
 * size allocated and decoded into. Servers also bound the total held at once across requests
 * with a {@link DecodeBudget}.
 */
import { createRequire } from 'node:module';
import type Lz4 from 'lz4';
import { IbpError } from '../errors.js';

/**
 * The `lz4` addon, loaded on the first body compressed or decompressed: an ibas worker whose
 * clients never ask for compression does not hold it (issue 9, worker RSS).
 */
let lz4Addon: typeof Lz4 | undefined;
function lz4(): typeof Lz4 {
  lz4Addon ??= createRequire(import.meta.url)('lz4') as typeof Lz4;
  return lz4Addon;
}

export const LZ4_ENCODING = 'lz4';
const HEADER = 4;

/**
 * Compress `raw`. Returns undefined when lz4 cannot make it smaller (incompressible data): the
 * caller then sends it as it is.
 */
export function lz4Compress(raw: Buffer): Buffer | undefined {
  if (raw.length === 0) return undefined;
  const out = Buffer.allocUnsafe(HEADER + lz4().encodeBound(raw.length));
  const n = lz4().encodeBlock(raw, out.subarray(HEADER));
  if (n <= 0 || HEADER + n >= raw.length) return undefined;
  out.writeUInt32BE(raw.length, 0);
  return out.subarray(0, HEADER + n);
}

/** The original size an lz4 body announces (its first 4 bytes). */
export function lz4DeclaredSize(body: Buffer): number {
  if (body.length < HEADER + 1) throw new IbpError('IBP_ERR_CODEC_LZ4', { detail: `${body.length} bytes is too short for an lz4 body` });
  return body.readUInt32BE(0);
}

/**
 * How many bytes an lz4 block decodes to, found by walking its sequences without decoding
 * (token, literal length, literals, offset, match length). Stops as soon as the total passes
 * `stopAbove` and answers that partial total. -1 when the block is malformed.
 */
export function lz4BlockOutputSize(block: Buffer, stopAbove: number): number {
  let i = 0;
  let out = 0;
  const n = block.length;
  while (i < n) {
    const token = block[i++]!;
    let lit = token >>> 4;
    if (lit === 15) {
      let b: number;
      do {
        if (i >= n) return -1;
        b = block[i++]!;
        lit += b;
      } while (b === 255);
    }
    i += lit;
    out += lit;
    if (i > n) return -1;
    if (out > stopAbove) return out;
    if (i === n) return out; // the last sequence holds literals only
    if (i + 2 > n) return -1;
    const offset = block[i]! | (block[i + 1]! << 8);
    i += 2;
    if (offset === 0 || offset > out) return -1;
    let match = token & 15;
    if (match === 15) {
      let b: number;
      do {
        if (i >= n) return -1;
        b = block[i++]!;
        match += b;
      } while (b === 255);
    }
    out += match + 4;
    if (out > stopAbove) return out;
  }
  return -1; // a block must end with a literals-only sequence
}

/**
 * Decompress; `maxSize` bounds the announced original size, and the block must not expand past it.
 * With `scratch` (at least `maxSize` bytes) the result is a view of it, valid until the next use:
 * a server that consumes bodies synchronously decodes them all into one reused buffer.
 */
export function lz4Decompress(body: Buffer, maxSize: number, scratch?: Buffer): Buffer {
  const size = lz4DeclaredSize(body);
  if (size > maxSize) throw new IbpError('IBP_ERR_CODEC_TOO_LARGE', { size, limit: maxSize });
  const real = lz4BlockOutputSize(body.subarray(HEADER), size);
  if (real < 0) throw new IbpError('IBP_ERR_CODEC_LZ4', { detail: 'corrupt block' });
  if (real > size) throw new IbpError('IBP_ERR_CODEC_EXPANDS', { declared: size });
  if (real !== size) throw new IbpError('IBP_ERR_CODEC_LZ4', { detail: `announced ${size} bytes, the block holds ${real}` });
  const out = scratch && scratch.length >= size ? scratch.subarray(0, size) : Buffer.allocUnsafe(size);
  const n = lz4().decodeBlock(body.subarray(HEADER), out);
  if (n !== size) throw new IbpError('IBP_ERR_CODEC_LZ4', { detail: n < 0 ? `corrupt block (lz4 error at ${-n})` : `announced ${size} bytes, got ${n}` });
  return out;
}

/**
 * A bound on the bytes of decoded bodies held at once (a server's whole budget, across requests).
 * `take` reserves before allocating and says whether it fit; `give` returns it.
 */
export class DecodeBudget {
  readonly limit: number;
  #held = 0;

  constructor(limit: number) {
    this.limit = limit;
  }

  get held(): number {
    return this.#held;
  }

  take(n: number): boolean {
    if (this.#held + n > this.limit) return false;
    this.#held += n;
    return true;
  }

  give(n: number): void {
    this.#held = Math.max(0, this.#held - n);
  }
}
