/**
 * One scalar field's value rules, shared by the .dsc reader (DEFAULT values), the TS codec (pack
 * and unpack, JSON and XML) and the tests. Each rule turns an input into the field's canonical TS
 * value or says what was expected.
 *
 * Canonical TS values: INT/UINT up to 4 bytes and UCHAR → number; INT 8 / UINT 8 → bigint;
 * FLOAT → number (FLOAT 4 rounded to float32); CHAR / STRING → string; BOOL → boolean;
 * NUMERIC p,s → decimal string with exactly s fraction digits ("-12.50"), never a float.
 */
import { describeField, intRange, isBigIntField, type ScalarField } from './model.js';

export type ScalarValue = number | bigint | string | boolean;

/** Where a value comes from: a TS object (pack), JSON text, XML text or a .dsc DEFAULT. */
export type ValueSource = 'ts' | 'json' | 'xml' | 'dsc';

export class ScalarRefusal {
  constructor(readonly expected: string, readonly got: string) {}
}

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
const INT_TEXT = /^-?(0|[1-9][0-9]*)$/;
const DECIMAL_TEXT = /^(-?)([0-9]+)(?:\.([0-9]+))?$/;

function show(v: unknown): string {
  if (typeof v === 'string') return v.length > 40 ? `string "${v.slice(0, 40)}…"` : `string "${v}"`;
  if (typeof v === 'bigint') return `bigint ${v}`;
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return `${typeof v} ${typeof v === 'object' ? '' : String(v)}`.trim();
}

function integer(f: ScalarField, v: unknown, src: ValueSource): bigint | ScalarRefusal {
  let n: bigint | undefined;
  // a TS value has the field's own type: bigint for 8 bytes, number below
  if (typeof v === 'bigint' && src === 'ts' && isBigIntField(f)) n = v;
  else if (typeof v === 'number' && Number.isSafeInteger(v) && !(src === 'ts' && isBigIntField(f))) n = BigInt(v);
  else if (typeof v === 'string' && src !== 'ts' && INT_TEXT.test(v.trim())) n = BigInt(v.trim());
  if (n === undefined) return new ScalarRefusal(describeField(f), show(v));
  const [lo, hi] = intRange(f);
  if (n < lo || n > hi) return new ScalarRefusal(describeField(f), `${n} (out of range)`);
  return n;
}

/** The canonical decimal string of a NUMERIC p,s value, or a refusal. */
export function canonicalDecimal(f: ScalarField, v: unknown, src: ValueSource): string | ScalarRefusal {
  const text = typeof v === 'string' ? v.trim() : typeof v === 'bigint' && src === 'ts' ? v.toString() : undefined;
  const m = text === undefined ? null : DECIMAL_TEXT.exec(text);
  if (!m) return new ScalarRefusal(describeField(f), show(v));
  const sign = m[1] ?? '';
  const intDigits = (m[2] ?? '0').replace(/^0+(?=[0-9])/, '');
  let frac = m[3] ?? '';
  if (frac.length > f.scale) {
    // More fraction digits are accepted only when they are zeros: no rounding, ever.
    if (/[1-9]/.test(frac.slice(f.scale))) return new ScalarRefusal(describeField(f), `${text} (more than ${f.scale} fraction digits)`);
    frac = frac.slice(0, f.scale);
  }
  frac = frac.padEnd(f.scale, '0');
  const integerRoom = f.len - f.scale;
  if (intDigits !== '0' && intDigits.length > integerRoom) return new ScalarRefusal(describeField(f), `${text} (more than ${integerRoom} integer digits)`);
  const isZero = /^0*$/.test(intDigits + frac);
  const body = f.scale > 0 ? `${intDigits}.${frac}` : intDigits;
  return isZero ? body : `${sign}${body}`;
}

/** A NUMERIC p,s decimal string as a scaled integer (value × 10^s), exact. */
export function decimalToScaled(value: string, scale: number): bigint {
  const m = DECIMAL_TEXT.exec(value.trim());
  if (!m) throw new RangeError(`not a decimal: ${value}`);
  const frac = (m[3] ?? '').padEnd(scale, '0');
  if (frac.length > scale && /[1-9]/.test(frac.slice(scale))) throw new RangeError(`${value} has more than ${scale} fraction digits`);
  const n = BigInt(`${m[2]}${frac.slice(0, scale)}`);
  return m[1] === '-' ? -n : n;
}

/** A scaled integer (value × 10^s) as the decimal string with exactly s fraction digits. */
export function scaledToDecimal(scaled: bigint, scale: number): string {
  const neg = scaled < 0n;
  const digits = (neg ? -scaled : scaled).toString().padStart(scale + 1, '0');
  const body = scale > 0 ? `${digits.slice(0, digits.length - scale)}.${digits.slice(digits.length - scale)}` : digits;
  return neg ? `-${body}` : body;
}

/** Checks and canonicalises one scalar value; a ScalarRefusal says what was expected. */
export function checkScalar(f: ScalarField, v: unknown, src: ValueSource): ScalarValue | ScalarRefusal {
  switch (f.type) {
    case 'INT':
    case 'UINT':
    case 'UCHAR': {
      const n = integer(f, v, src);
      if (n instanceof ScalarRefusal) return n;
      if (isBigIntField(f)) return n;
      return Number(n);
    }
    case 'FLOAT': {
      let n: number | undefined;
      if (typeof v === 'number') n = v;
      else if (typeof v === 'string' && src !== 'ts' && v.trim() !== '') n = Number(v.trim());
      if (n === undefined || !Number.isFinite(n)) return new ScalarRefusal(describeField(f), show(v));
      return f.len === 4 ? Math.fround(n) : n;
    }
    case 'CHAR':
      if (typeof v !== 'string' || v.length > 1 || /[^\x01-\x7f]/.test(v)) return new ScalarRefusal(describeField(f), show(v));
      return v;
    case 'STRING': {
      if (typeof v !== 'string' && !(src === 'xml' && typeof v === 'number')) return new ScalarRefusal(describeField(f), show(v));
      const s = String(v);
      if (LONE_SURROGATE.test(s)) return new ScalarRefusal(describeField(f), 'text with a lone surrogate');
      if (s.includes('\0')) return new ScalarRefusal(describeField(f), 'text with a NUL character');
      const bytes = Buffer.byteLength(s, 'utf8');
      if (bytes > f.len) return new ScalarRefusal(describeField(f), `${bytes} bytes`);
      return s;
    }
    case 'BOOL':
      if (typeof v === 'boolean') return v;
      if (src !== 'ts' && (v === 'true' || v === 'false')) return v === 'true';
      if (src !== 'ts' && (v === '1' || v === '0')) return v === '1';
      return new ScalarRefusal(describeField(f), show(v));
    case 'NUMERIC':
      return canonicalDecimal(f, v, src);
  }
}

/** The value of a field that was not given: its DEFAULT, else zero / empty / false. */
export function initialValue(f: ScalarField): ScalarValue {
  if (f.default !== undefined) {
    const v = checkScalar(f, f.default, 'dsc');
    if (!(v instanceof ScalarRefusal)) return v;
  }
  switch (f.type) {
    case 'INT':
    case 'UINT':
    case 'UCHAR':
      return isBigIntField(f) ? 0n : 0;
    case 'FLOAT': return 0;
    case 'CHAR':
    case 'STRING': return '';
    case 'BOOL': return false;
    case 'NUMERIC': return scaledToDecimal(0n, f.scale);
  }
}
