/**
 * JSON bodies, lz4-compressed when they are at least `minCompressSize` bytes and the peer accepts
 * lz4 (header `Accept-Encoding: lz4`; the compressed body carries `Content-Encoding: lz4`).
 * Used by the ibms REST server, by ibma and by the admin CLI, so both directions agree.
 */
import sjson from 'secure-json-parse';
import { IbpError } from '../errors.js';
import { LZ4_ENCODING, lz4Compress, lz4Decompress } from './lz4.js';

export interface EncodedBody {
  body: Buffer;
  /** `lz4` when compressed, undefined for plain JSON. */
  encoding: typeof LZ4_ENCODING | undefined;
}

export function encodeJsonBody(value: unknown, opts: { minCompressSize: number; peerAcceptsLz4: boolean }): EncodedBody {
  const raw = Buffer.from(JSON.stringify(value));
  if (opts.peerAcceptsLz4 && opts.minCompressSize >= 0 && raw.length >= opts.minCompressSize) {
    const packed = lz4Compress(raw);
    if (packed) return { body: packed, encoding: LZ4_ENCODING };
  }
  return { body: raw, encoding: undefined };
}

/**
 * Decode a body by its content encoding; rejects prototype poisoning (`__proto__`, `constructor`).
 * `scratch`: a reusable buffer for the decompressed bytes (see lz4Decompress).
 */
export function decodeJsonBody(body: Buffer, encoding: string | undefined, maxSize: number, scratch?: Buffer): unknown {
  if (body.length > maxSize) throw new IbpError('IBP_ERR_CODEC_TOO_LARGE', { size: body.length, limit: maxSize });
  let raw = body;
  const enc = (encoding ?? '').trim().toLowerCase();
  if (enc === LZ4_ENCODING) raw = lz4Decompress(body, maxSize, scratch);
  else if (enc !== '' && enc !== 'identity') throw new IbpError('IBP_ERR_CODEC_LZ4', { detail: `unsupported content encoding "${encoding}" (use lz4 or none)` });
  if (raw.length === 0) return undefined;
  try {
    return sjson.parse(raw.toString('utf8'), undefined, { protoAction: 'error', constructorAction: 'error' });
  } catch (e) {
    throw new IbpError('IBP_ERR_CODEC_JSON', { detail: (e as Error).message });
  }
}

/** Whether an Accept-Encoding header value lists lz4. */
export function acceptsLz4(acceptEncoding: string | string[] | undefined): boolean {
  const v = Array.isArray(acceptEncoding) ? acceptEncoding.join(',') : acceptEncoding ?? '';
  return v.split(',').some((p) => p.trim().split(';')[0]!.toLowerCase() === LZ4_ENCODING);
}
