/**
 * Declared messages: generated TS and C code round-trip the same messages. fast-check generates
 * random declarations (all scalar types and widths, nested structs and arrays) and values that
 * fit them; for each: the .dsc text is read back into the same declaration, the C code is
 * generated and compiled with gcc, and TS pack → C unpack + pack → TS unpack gives the value back
 * (canonical form), as does TS JSON and XML alone.
 */
import t from 'tap';
import fc from 'fast-check';
import fs from 'node:fs';
import path from 'node:path';
import { parseDsc } from '../../lib/appfw/msgv/dsc.js';
import { messageCodec } from '../../lib/appfw/msgv/codec.js';
import { buildRoundTrip, runRoundTrip } from './helpers/c-roundtrip.js';
import { dscText, messagesArb, valueArb } from './helpers/arbitrary-messages.js';
import type { StructDecl } from '../../lib/appfw/msgv/model.js';

const caseArb = messagesArb.chain((messages) => fc.tuple(fc.constant(messages), fc.tuple(...messages.map((m) => fc.array(valueArb(m), { minLength: 1, maxLength: 4 })))));

/** Same values, -0 and 0 told apart, bigints compared as such. */
function same(a: unknown, b: unknown): boolean {
  if (typeof a === 'number' && typeof b === 'number') return Object.is(a, b) || (a === b);
  if (typeof a === 'bigint' || typeof b === 'bigint') return a === b;
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => same(x, b[i]));
  if (a && b && typeof a === 'object' && typeof b === 'object') {
    const ka = Object.keys(a);
    return ka.length === Object.keys(b).length && ka.every((k) => same((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
  }
  return a === b;
}

function show(v: unknown): string {
  return JSON.stringify(v, (_, x) => (typeof x === 'bigint' ? `${x}n` : x));
}

t.test('TS pack → C unpack/pack → TS unpack gives the value back, for random declarations', async (t) => {
  const dir = t.testdir();
  let run = 0;
  fc.assert(
    fc.property(caseArb, ([messages, valueSets]) => {
      const text = dscText(messages);
      const mf = parseDsc(text, path.join(dir, 'msg.dsc'));
      if (!same(mf.messages, messages)) throw new Error(`the reader did not give back the declaration of:\n${text}`);
      const exe = buildRoundTrip(mf, path.join(dir, `run${run++}`));
      const lines: string[] = [];
      const expected: unknown[] = [];
      const codecs = messages.map((m: StructDecl) => messageCodec<Record<string, unknown>>(m));
      messages.forEach((m, i) => {
        for (const v of valueSets[i] as Record<string, unknown>[]) {
          const codec = codecs[i]!;
          const canonical = codec.check(v);
          expected.push(canonical);
          const json = codec.packJson(v);
          if (!same(codec.unpackJson(json), canonical)) throw new Error(`TS JSON round trip of ${m.name}: ${json}`);
          let xml: string | undefined;
          try {
            xml = codec.packXml(v);
          } catch (e) {
            if (!/control character/.test((e as Error).message)) throw e;
          }
          if (xml !== undefined && !same(codec.unpackXml(xml), canonical)) throw new Error(`TS XML round trip of ${m.name}: ${xml}\n${show(codec.unpackXml(xml))}\n${show(canonical)}`);
          lines.push(`${m.name} ${json}`);
        }
      });
      const out = runRoundTrip(exe, lines);
      out.forEach((o, k) => {
        const name = lines[k]!.slice(0, lines[k]!.indexOf(' '));
        if (o.startsWith('ERR ')) throw new Error(`C refused ${lines[k]}: ${o}\n${text}`);
        const back = codecs[messages.findIndex((m) => m.name === name)]!.unpackJson(o);
        if (!same(back, expected[k])) throw new Error(`C round trip differs:\nsent ${lines[k]}\ngot  ${o}\n${text}`);
      });
      fs.rmSync(path.dirname(exe), { recursive: true, force: true });
    }),
    { numRuns: 25, endOnFailure: true, seed: Number(process.env.APPFW_SEED ?? Date.now() % 100000) },
  );
  t.pass(`${run} random declarations round-tripped through TS and C`);
});
