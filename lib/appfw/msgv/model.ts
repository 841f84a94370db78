/**
 * The message model: what a `.dsc` declaration (lib/appfw/msgv/dsc.ts) becomes, and what the TS
 * codec (codec.ts), the C runtime (lib/appfw/native/ibp_msgv.c) and the generators read.
 *
 * Field types keep DirectStruct's names and IBP's semantics:
 *   INT 1|2|4|8, UINT 1|2|4|8   integers of that byte width (8 bytes: bigint in TS)
 *   FLOAT 4|8                   binary floating point (FLOAT 4 is rounded to float32)
 *   CHAR 1                      one ASCII character ('' allowed)
 *   UCHAR 1                     a byte 0..255
 *   STRING n                    text of at most n UTF-8 bytes, no NUL (C: char[n+1])
 *   BOOL 1                      true/false
 *   NUMERIC p,s                 exact decimal: at most p digits, s of them after the point;
 *                               a decimal string in TS and C, never a float
 */

export const SCALAR_TYPES = ['INT', 'UINT', 'FLOAT', 'CHAR', 'UCHAR', 'STRING', 'BOOL', 'NUMERIC'] as const;
export type ScalarType = (typeof SCALAR_TYPES)[number];

/** The byte widths each scalar type accepts (STRING: any 1..MAX_STRING_LEN; NUMERIC: precision). */
export const TYPE_WIDTHS: Record<ScalarType, readonly number[] | 'any'> = {
  INT: [1, 2, 4, 8],
  UINT: [1, 2, 4, 8],
  FLOAT: [4, 8],
  CHAR: [1],
  UCHAR: [1],
  STRING: 'any',
  BOOL: [1],
  NUMERIC: 'any',
};

/** Bounds the reader enforces so a declaration can never ask the C side for absurd buffers. */
export const LIMITS = {
  maxStringLen: 1024 * 1024,
  maxNumericPrecision: 38,
  maxArraySize: 100_000,
  maxDepth: 16,
  maxIncludeDepth: 8,
} as const;

export interface ScalarField {
  readonly kind: 'scalar';
  readonly name: string;
  readonly type: ScalarType;
  /** Byte width (STRING: max bytes; NUMERIC: precision p). */
  readonly len: number;
  /** NUMERIC: digits after the point (s); 0 otherwise. */
  readonly scale: number;
  /** DEFAULT value as written in the .dsc (quotes removed), if any. */
  readonly default?: string;
  readonly desc?: string;
}

export interface StructDecl {
  readonly kind: 'struct';
  readonly name: string;
  /** ARRAY n: 0 for a plain nested struct, else the maximum number of elements. */
  readonly arraySize: number;
  /** MESSAGE name (XML root element), defaults to the struct name. */
  readonly messageName: string;
  readonly fields: readonly Field[];
  readonly desc?: string;
}

export type Field = ScalarField | StructDecl;

/** A parsed .dsc file: its top-level STRUCTs (each one a message) and its H lines. */
export interface MessageFile {
  readonly file: string;
  readonly messages: readonly StructDecl[];
  /** `H "…"` lines, copied into the generated C header. */
  readonly headerLines: readonly string[];
}

/** Human description of what a field accepts, used in IBP_ERR_MSG_FIELD messages. */
export function describeField(f: ScalarField): string {
  switch (f.type) {
    case 'INT': return `INT ${f.len} (integer ${intRange(f).join('..')})`;
    case 'UINT': return `UINT ${f.len} (integer ${intRange(f).join('..')})`;
    case 'FLOAT': return `FLOAT ${f.len} (finite number)`;
    case 'CHAR': return 'CHAR 1 (one ASCII character or empty)';
    case 'UCHAR': return 'UCHAR 1 (integer 0..255)';
    case 'STRING': return `STRING ${f.len} (text of at most ${f.len} UTF-8 bytes, no NUL)`;
    case 'BOOL': return 'BOOL 1 (true or false)';
    case 'NUMERIC': return `NUMERIC ${f.len},${f.scale} (decimal string, at most ${f.len - f.scale} integer and ${f.scale} fraction digits)`;
  }
}

/** The inclusive range of an INT/UINT field as bigints. */
export function intRange(f: ScalarField): [bigint, bigint] {
  const bits = BigInt(f.len * 8);
  if (f.type === 'UINT' || f.type === 'UCHAR') return [0n, (1n << bits) - 1n];
  return [-(1n << (bits - 1n)), (1n << (bits - 1n)) - 1n];
}

/** True when the TS value of this field is a bigint (8-byte integers). */
export function isBigIntField(f: ScalarField): boolean {
  return (f.type === 'INT' || f.type === 'UINT') && f.len === 8;
}
