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
 */
import lz4 from 'lz4';
import { IbpError } from '../errors.js';

export const LZ4_ENCODING = 'lz4';
const HEADER = 4;

/**
 * Compress `raw`. Returns undefined when lz4 cannot make it smaller (incompressible data): the
 * caller then sends it as it is.
 */
export function lz4Compress(raw: Buffer): Buffer | undefined {
  if (raw.length === 0) return undefined;
  const out = Buffer.allocUnsafe(HEADER + lz4.encodeBound(raw.length));
  const n = lz4.encodeBlock(raw, out.subarray(HEADER));
  if (n <= 0 || HEADER + n >= raw.length) return undefined;
  out.writeUInt32BE(raw.length, 0);
  return out.subarray(0, HEADER + n);
}

/** Decompress; `maxSize` bounds the announced original size (a zip-bomb guard). */
export function lz4Decompress(body: Buffer, maxSize: number): Buffer {
  if (body.length < HEADER + 1) throw new IbpError('IBP_ERR_CODEC_LZ4', { detail: `${body.length} bytes is too short for an lz4 body` });
  const size = body.readUInt32BE(0);
  if (size > maxSize) throw new IbpError('IBP_ERR_CODEC_TOO_LARGE', { size, limit: maxSize });
  const out = Buffer.allocUnsafe(size);
  const n = lz4.decodeBlock(body.subarray(HEADER), out);
  if (n !== size) throw new IbpError('IBP_ERR_CODEC_LZ4', { detail: n < 0 ? `corrupt block (lz4 error at ${-n})` : `announced ${size} bytes, got ${n}` });
  return out;
}
