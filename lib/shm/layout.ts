/**
 * The shared-memory layout of the config space: every magic number, offset and record size, in one
 * place. docs/ARCHITECTURE.md §5 draws the same tables; test/lib/shm-layout.test.ts pins them.
 *
 * Rules of the layout:
 * - No pointers in shm: every reference is a byte offset from the start of the segment.
 * - Little-endian; every region starts 8-byte aligned; every record size is a multiple of 4 (host
 *   records of 8, because of their BigInt64 slot).
 * - Strings live in one string area, each as `u32 byte length` + UTF-8 bytes, padded to 4. A string
 *   reference is the offset of its length word; equal strings are stored once.
 * - Hash tables are open-addressed with linear probing: `u32` slots holding `record index + 1`
 *   (0 = empty), a power-of-two slot count at least twice the record count. The hash is FNV-1a over
 *   the UTF-8 bytes of the name ({@link hashBytes}); records keep their hash so a probe compares
 *   strings only on a hash match.
 * - A segment is written once. Afterwards only two fields of a host record change, and only through
 *   Atomics: the load (int32, one CAS per write) and the retry-connect time (BigInt64, ms since the
 *   epoch, 0 = not suspended, one CAS per write).
 */

/** Bumped on every incompatible change; readers refuse other versions (IBP_ERR_SHM_LAYOUT). */
export const LAYOUT_VERSION = 2;

/** 'IBPI' as a little-endian u32: the index segment. */
export const INDEX_MAGIC = 0x49504249;
/** 'IBPC' as a little-endian u32: a config segment. */
export const CONFIG_MAGIC = 0x43504249;

/**
 * The index segment (public key = ibma.conf shm.index_key). The current config segment is ONE
 * 64-bit word, `generation << 32 | key`, stored and loaded with Atomics on a BigInt64Array: a reader
 * can never see the key of one publication with the generation of another.
 */
export const INDEX = {
  MAGIC: 0, // u32 INDEX_MAGIC
  VERSION: 4, // u32 LAYOUT_VERSION
  CURRENT: 8, // i64 (generation << 32) | key; 0 = nothing published yet
  WRITER_PID: 16, // i32 pid of the last writer (information only)
  RESERVED: 20, // u32
  PUBLISHED_AT: 24, // f64 ms since the epoch of the last flip (information only)
  SIZE: 64,
} as const;

/** Header of a config segment. */
export const HEADER = {
  MAGIC: 0, // u32 CONFIG_MAGIC
  VERSION: 4, // u32 LAYOUT_VERSION
  READY: 8, // i32 0 while building, READY_VALUE once complete (Atomics.store, written last)
  USED_SIZE: 12, // u32 bytes of the segment in use (≤ the segment's size)
  GENERATION: 16, // u32 generation of this publication (the index word carries the same)
  MIN_COMPRESS_SIZE: 20, // u32 comm.min_compress_size, bytes
  BUILD_TIME: 24, // f64 ms since the epoch
  CONNECTING_TIMEOUT: 32, // f64 ibac.connecting_timeout, seconds
  RETRY_CONNECT_TIMEVAL: 40, // f64 ibac.retry_connect_timeval, seconds
  BUNDLE_VERSION: 48, // f64 NodeBundle.version
  THIS_NODE: 56, // str
  IBMS_IP: 60, // str
  IBMS_PORT: 64, // u32
  EPOCH: 68, // str NodeBundle.epoch
  NODE_COUNT: 72, // u32
  HOST_COUNT: 76, // u32
  APP_COUNT: 80, // u32
  KV_COUNT: 84, // u32
  NODE_SLOTS: 88, // u32 slots of the node hash table (power of two)
  APP_SLOTS: 92, // u32
  KV_SLOTS: 96, // u32
  NODE_TABLE: 100, // u32 offset of the node hash table (NODE_SLOTS × u32)
  NODE_RECORDS: 104, // u32 offset of the node records (NODE_COUNT × NODE.SIZE)
  HOST_RECORDS: 108, // u32 offset of the host records (HOST_COUNT × HOST.SIZE)
  APP_TABLE: 112, // u32
  APP_RECORDS: 116, // u32
  KV_TABLE: 120, // u32
  KV_RECORDS: 124, // u32
  STRINGS: 128, // u32 offset of the string area
  STRINGS_SIZE: 132, // u32 bytes of the string area
  WRITER_PID: 136, // i32 pid of the writer (information only)
  PACKAGE_KEY: 140, // str the package-signing public key ibma trusts, base64 SPKI DER ('' when none)
  NODE_KEY_COUNT: 144, // u32 node key records (0 in a segment written before node keys)
  NODE_KEY_RECORDS: 148, // u32 offset of the node key records (NODE_KEY_COUNT × NODE_KEY.SIZE)
  SIZE: 256,
} as const;

export const READY_VALUE = 1;

/** A node record. Its hosts are HOST records [FIRST_HOST, FIRST_HOST + HOST_COUNT), its kvs likewise. */
export const NODE = {
  NAME: 0, // str
  HASH: 4, // u32 hashBytes(name)
  INVALID: 8, // u32 0 | 1
  KEY_EXP: 12, // str ('' when none)
  FIRST_HOST: 16, // u32
  HOST_COUNT: 20, // u32
  FIRST_KV: 24, // u32
  KV_COUNT: 28, // u32
  SIZE: 32,
} as const;

/** A host record; the index of a host is its position in the host array of the segment. */
export const HOST = {
  NODE: 0, // u32 index of its node record
  IP: 4, // str
  PORT: 8, // u32
  INVALID: 12, // u32 0 | 1
  LOAD: 16, // i32 load reported by the server; written by Atomics.compareExchange
  RESERVED: 20, // u32
  RETRY_AT: 24, // i64 ms since the epoch until which connects are suspended (0 = not); CAS
  SIZE: 32,
} as const;

/** An app record. TIMEOUT2 is the effective server timeout (0 in the config → TIMEOUT × 1.5). */
export const APP = {
  CODE: 0, // str
  HASH: 4, // u32 hashBytes(code)
  DESC: 8, // str
  BIN: 12, // str
  TIMEOUT: 16, // f64 seconds
  TIMEOUT2: 24, // f64 seconds, effective
  SERVER_NODE: 32, // str ('' when none)
  INVALID: 36, // u32 0 | 1
  SHA256: 40, // str hex, the SIGNED sha256 ibma verified ('' when the registry has no package)
  PACKAGE_SIZE: 44, // u32 bytes of the package
  MANIFEST: 48, // str the signed manifest vouching for SHA256, canonical JSON ('' when none)
  SIGNATURE: 52, // str base64 Ed25519 signature of MANIFEST ('' when none)
  SHA256_NEXT: 56, // str hex, the signed sha256 of a package ibma is installing now ('' when none): ibas accepts it too
  RESERVED: 60, // u32
  SIZE: 64,
} as const;

/** A key/value record; the table is keyed by (node record index, key): hash = kvHash(node, hash(key)). */
export const KV = {
  NODE: 0, // u32 index of its node record
  KEY: 4, // str
  VALUE: 8, // str
  HASH: 12, // u32 kvHash(node index, hashBytes(key))
  SIZE: 16,
} as const;

/**
 * A node key record: one public key pair of a node (lib/node-keys.ts NodeKeyWire), grouped by node
 * in node order. Read whole by the keyring (lib/node-keyring.ts) at each flip, never looked up.
 */
export const NODE_KEY = {
  NODE: 0, // u32 index of its node record
  KCV: 4, // str key check value, 16 hex digits
  SIGN_PUBLIC: 8, // str Ed25519 public key, raw 32 bytes in base64url
  AGREE_PUBLIC: 12, // str X25519 public key, raw 32 bytes in base64url
  ENABLE_AT: 16, // f64 ms since the epoch from when senders use it (0 = at once)
  DISABLE_AT: 24, // f64 ms since the epoch after which receivers refuse it (0 = never)
  SIZE: 32,
} as const;

/** Region starts are aligned to this many bytes. */
export const REGION_ALIGN = 8;

/** Config segments of an index key k use keys k + CONFIG_KEY_FIRST … k + CONFIG_KEY_LAST (lib/shm/keys.ts KEY_SLOT). */
export const CONFIG_KEY_FIRST = 16;
export const CONFIG_KEY_LAST = 255;

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

/** FNV-1a, 32 bits, over bytes [start, end) of a buffer. */
export function hashBytes(buf: Uint8Array, start = 0, end = buf.length): number {
  let h = FNV_OFFSET;
  for (let i = start; i < end; i++) h = Math.imul(h ^ buf[i]!, FNV_PRIME);
  return h >>> 0;
}

/**
 * FNV-1a of the UTF-8 bytes of a string, without allocating when the string is ASCII (every name
 * of the model is). Equal to hashBytes(Buffer.from(s)).
 */
export function hashString(s: string): number {
  let h = FNV_OFFSET;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x80) return hashBytes(Buffer.from(s, 'utf8'));
    h = Math.imul(h ^ c, FNV_PRIME);
  }
  return h >>> 0;
}

/** Hash of a kv entry: its key's hash mixed with the index of its node record. */
export function kvHash(nodeIndex: number, keyHash: number): number {
  return Math.imul(keyHash ^ Math.imul(nodeIndex + 1, 0x9e3779b1), FNV_PRIME) >>> 0;
}

/** Slots of a hash table for `count` records: a power of two ≥ 2 × count (at least 2). */
export function tableSlots(count: number): number {
  let n = 2;
  while (n < count * 2) n *= 2;
  return n;
}

export function align(n: number, to = REGION_ALIGN): number {
  return Math.ceil(n / to) * to;
}

/** Bytes a string takes in the string area. */
export function stringSize(byteLength: number): number {
  return 4 + align(byteLength, 4);
}
