/**
 * fast-check arbitraries of message declarations (random .dsc files) and of values that fit them,
 * plus the .dsc text of a declaration (so the reader is exercised too).
 */
import fc from 'fast-check';
import type { Field, ScalarField, StructDecl } from '../../../lib/appfw/msgv/model.js';
import { intRange, isBigIntField } from '../../../lib/appfw/msgv/model.js';
import { scaledToDecimal } from '../../../lib/appfw/msgv/scalar.js';

const scalarArb: fc.Arbitrary<Omit<ScalarField, 'name'>> = fc.oneof(
  fc.record({ type: fc.constant('INT' as const), len: fc.constantFrom(1, 2, 4, 8), scale: fc.constant(0) }),
  fc.record({ type: fc.constant('UINT' as const), len: fc.constantFrom(1, 2, 4, 8), scale: fc.constant(0) }),
  fc.record({ type: fc.constant('FLOAT' as const), len: fc.constantFrom(4, 8), scale: fc.constant(0) }),
  fc.record({ type: fc.constantFrom('CHAR' as const, 'UCHAR' as const, 'BOOL' as const), len: fc.constant(1), scale: fc.constant(0) }),
  fc.record({ type: fc.constant('STRING' as const), len: fc.integer({ min: 1, max: 40 }), scale: fc.constant(0) }),
  fc.integer({ min: 1, max: 30 }).chain((p) => fc.record({ type: fc.constant('NUMERIC' as const), len: fc.constant(p), scale: fc.integer({ min: 0, max: p }) })),
).map((s) => ({ kind: 'scalar' as const, ...s }));

function structArb(name: string, depth: number, array: boolean): fc.Arbitrary<StructDecl> {
  const fieldArb = (i: number): fc.Arbitrary<Field> =>
    depth < 2
      ? fc.oneof({ weight: 5, arbitrary: scalarArb.map((s) => ({ ...s, name: `f${i}` }) as Field) }, { weight: 1, arbitrary: fc.boolean().chain((arr) => structArb(`s${i}`, depth + 1, arr)) as fc.Arbitrary<Field> })
      : scalarArb.map((s) => ({ ...s, name: `f${i}` }) as Field);
  return fc.integer({ min: 1, max: 6 }).chain((n) =>
    fc.tuple(...Array.from({ length: n }, (_, i) => fieldArb(i)), array ? fc.integer({ min: 1, max: 4 }) : fc.constant(0)).map((parts) => {
      const arraySize = parts[parts.length - 1] as number;
      return { kind: 'struct' as const, name, arraySize, messageName: name, fields: parts.slice(0, -1) as Field[] };
    }),
  );
}

/** 1 to 3 messages m0, m1, … */
export const messagesArb: fc.Arbitrary<StructDecl[]> = fc.integer({ min: 1, max: 3 }).chain((n) => fc.tuple(...Array.from({ length: n }, (_, i) => structArb(`m${i}`, 0, false))));

/** Text of at most `bytes` UTF-8 bytes, no NUL, well-formed. */
function textArb(bytes: number): fc.Arbitrary<string> {
  return fc.string({ unit: fc.oneof(fc.constantFrom('a', 'Z', ' ', '"', '\\', '/', '\n', '\t', '\u0001', '\u001f', 'é', '中', '😀', '\u2028', '<', '&'), fc.integer({ min: 1, max: 0x7e }).map((c) => String.fromCharCode(c))), maxLength: bytes }).map((s) => {
    let out = '';
    for (const ch of s) {
      if (Buffer.byteLength(out + ch) > bytes) break;
      out += ch;
    }
    return out;
  });
}

function scalarValueArb(f: ScalarField): fc.Arbitrary<unknown> {
  switch (f.type) {
    case 'INT':
    case 'UINT':
    case 'UCHAR': {
      const [lo, hi] = intRange(f);
      const big = fc.bigInt({ min: lo, max: hi });
      return isBigIntField(f) ? big : big.map(Number);
    }
    case 'FLOAT':
      return f.len === 4 ? fc.float({ noNaN: true, noDefaultInfinity: true }).map((x) => Math.fround(x)) : fc.double({ noNaN: true, noDefaultInfinity: true });
    case 'CHAR':
      return fc.oneof(fc.constant(''), fc.integer({ min: 1, max: 0x7f }).map((c) => String.fromCharCode(c)));
    case 'BOOL':
      return fc.boolean();
    case 'STRING':
      return textArb(f.len);
    case 'NUMERIC': {
      const max = 10n ** BigInt(f.len) - 1n;
      return fc.bigInt({ min: -max, max }).map((v) => scaledToDecimal(v, f.scale));
    }
  }
}

export function valueArb(s: StructDecl): fc.Arbitrary<Record<string, unknown>> {
  const rec: Record<string, fc.Arbitrary<unknown>> = {};
  for (const f of s.fields) {
    if (f.kind === 'scalar') rec[f.name] = scalarValueArb(f);
    else if (f.arraySize === 0) rec[f.name] = valueArb(f);
    else rec[f.name] = fc.array(valueArb(f), { maxLength: f.arraySize });
  }
  return fc.record(rec);
}

/** The .dsc text of declarations. */
export function dscText(messages: readonly StructDecl[]): string {
  const lines: string[] = [];
  const emit = (s: StructDecl, indent: string): void => {
    lines.push(`${indent}STRUCT ${s.name}${s.arraySize ? ` ARRAY ${s.arraySize}` : ''}${s.messageName !== s.name ? ` MESSAGE ${s.messageName}` : ''}`, `${indent}{`);
    for (const f of s.fields) {
      if (f.kind === 'struct') emit(f, `${indent}\t`);
      else lines.push(`${indent}\t${f.type}\t${f.type === 'NUMERIC' ? `${f.len},${f.scale}` : f.len}\t${f.name}`);
    }
    lines.push(`${indent}}`);
  };
  for (const m of messages) emit(m, '');
  return `${lines.join('\n')}\n`;
}
