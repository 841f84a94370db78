/**
 * The TS message codec (IBP's ibmsgv pack/unpack, DSCSERIALIZE_JSON_* / DSCDESERIALIZE_JSON_*):
 * validating pack and unpack of one declared message in JSON and XML. Generated TS files
 * (`ibpgen messages --lang ts`) declare the message's types and bind a codec to its declaration:
 *
 *   export const transfer_req: MessageCodec<transfer_req> = messageCodec<transfer_req>(DECL);
 *   const req = transfer_req.unpackJson(body);      // typed, checked, defaults filled
 *   const text = transfer_rsp.packJson(rsp);        // checked before it leaves
 *
 * Wire forms (JSON): an object of the declared fields (no wrapper); nested STRUCT → object;
 * STRUCT … ARRAY n → array of at most n objects; INT 8 / UINT 8 and NUMERIC → JSON strings (exact:
 * a JSON number would pass through binary floating point); other scalars → JSON numbers, strings,
 * booleans. A missing field takes its DEFAULT (or zero); an undeclared field is refused.
 * XML: <MESSAGE-name> with one element per field, arrays as repeated elements; parsed with
 * fast-xml-parser, every value read from text.
 *
 * Every refusal is an IbpError: IBP_ERR_MSG_SYNTAX (not JSON / XML), IBP_ERR_MSG_FIELD (names the
 * field path and what was expected), IBP_ERR_MSG_UNKNOWN_FIELD.
 */
import { XMLBuilder, XMLParser } from 'fast-xml-parser';
import { IbpError } from '../../errors.js';
import type { Field, ScalarField, StructDecl } from './model.js';
import { checkScalar, initialValue, ScalarRefusal, type ScalarValue, type ValueSource } from './scalar.js';

export type MessageFormat = 'json' | 'xml';

export interface MessageCodec<T> {
  readonly decl: StructDecl;
  /** A fresh value with every field at its DEFAULT (DSCINIT_*). */
  init(): T;
  /** Checks a value against the declaration and returns its canonical copy. */
  check(value: T): T;
  packJson(value: T): string;
  unpackJson(text: string | Buffer): T;
  packXml(value: T): string;
  unpackXml(text: string | Buffer): T;
  pack(value: T, format: MessageFormat): string;
  unpack(text: string | Buffer, format: MessageFormat): T;
}

type Tree = Record<string, unknown>;

function fieldError(message: string, field: string, expected: string, got: string): IbpError {
  return new IbpError('IBP_ERR_MSG_FIELD', { message, field, expected, got });
}

function join(path: string, name: string): string {
  return path === '' ? name : `${path}.${name}`;
}

function isPlainObject(v: unknown): v is Tree {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A canonical value in its JSON wire form (bigint → string). */
function toWire(v: ScalarValue): unknown {
  return typeof v === 'bigint' ? v.toString() : v;
}

class Walker {
  constructor(private readonly message: string, private readonly src: ValueSource) {}

  scalar(f: ScalarField, v: unknown, path: string): ScalarValue {
    const r = checkScalar(f, v, this.src);
    if (r instanceof ScalarRefusal) throw fieldError(this.message, path, r.expected, r.got);
    return r;
  }

  /** Reads a struct from a tree (unpack) or an app value (check): missing → initial value. */
  struct(s: StructDecl, v: unknown, path: string): Tree {
    if (!isPlainObject(v)) throw fieldError(this.message, path || s.name, `STRUCT ${s.name} (an object)`, Array.isArray(v) ? 'array' : typeof v);
    const out: Tree = {};
    const known = new Set<string>();
    for (const f of s.fields) {
      known.add(f.name);
      const p = join(path, f.name);
      const x = Object.prototype.hasOwnProperty.call(v, f.name) ? v[f.name] : undefined;
      out[f.name] = this.field(f, x, p);
    }
    for (const key of Object.keys(v)) {
      if (known.has(key)) continue;
      if (this.src === 'xml' && key === '#text' && String(v[key]).trim() === '') continue;
      throw new IbpError('IBP_ERR_MSG_UNKNOWN_FIELD', { message: this.message, field: join(path, key) });
    }
    return out;
  }

  field(f: Field, x: unknown, p: string): unknown {
    if (f.kind === 'scalar') return x === undefined ? initialValue(f) : this.scalar(f, x, p);
    if (f.arraySize === 0) return x === undefined ? initStruct(f) : this.struct(f, this.#element(x), p);
    if (x === undefined || (this.src === 'xml' && x === '')) return [];
    if (!Array.isArray(x)) throw fieldError(this.message, p, `STRUCT ${f.name} ARRAY ${f.arraySize} (an array)`, typeof x);
    if (x.length > f.arraySize) throw fieldError(this.message, p, `at most ${f.arraySize} elements`, `${x.length}`);
    return x.map((e, i) => this.struct(f, this.#element(e), `${p}[${i}]`));
  }

  /** An empty XML element (`<s/>`, a struct whose arrays are all empty) is an empty struct. */
  #element(x: unknown): unknown {
    return this.src === 'xml' && x === '' ? {} : x;
  }
}

function initStruct(s: StructDecl): Tree {
  const out: Tree = {};
  for (const f of s.fields) {
    if (f.kind === 'scalar') out[f.name] = initialValue(f);
    else out[f.name] = f.arraySize === 0 ? initStruct(f) : [];
  }
  return out;
}

/** A checked value in its JSON wire form. */
function wireTree(s: StructDecl, v: Tree): Tree {
  const out: Tree = {};
  for (const f of s.fields) {
    const x = v[f.name];
    if (f.kind === 'scalar') out[f.name] = toWire(x as ScalarValue);
    else if (f.arraySize === 0) out[f.name] = wireTree(f, x as Tree);
    else out[f.name] = (x as Tree[]).map((e) => wireTree(f, e));
  }
  return out;
}

/** fast-xml-parser jpaths ("root.a.items") of the ARRAY structs, so one element still reads as an array. */
function arrayPaths(s: StructDecl, prefix: string, out: Set<string>): Set<string> {
  for (const f of s.fields) {
    if (f.kind !== 'struct') continue;
    const p = `${prefix}.${f.name}`;
    if (f.arraySize > 0) out.add(p);
    arrayPaths(f, p, out);
  }
  return out;
}

/** XML text of a checked value: scalars as text, booleans true/false. */
function xmlTree(s: StructDecl, v: Tree, message: string, path: string): Tree {
  const out: Tree = {};
  for (const f of s.fields) {
    const x = v[f.name];
    const p = join(path, f.name);
    if (f.kind === 'scalar') {
      const text = String(x);
      // XML 1.0 cannot carry these characters at all, and a raw CR comes back as LF (line-end normalisation).
      if (/[\x00-\x08\x0b\x0c\x0d\x0e-\x1f\ufffe\uffff]/.test(text)) throw fieldError(message, p, 'text XML 1.0 can carry (no control character but TAB and LF)', 'a control character');
      out[f.name] = text;
    } else if (f.arraySize === 0) out[f.name] = xmlTree(f, x as Tree, message, p);
    else out[f.name] = (x as Tree[]).map((e, i) => xmlTree(f, e, message, `${p}[${i}]`));
  }
  return out;
}

function text(body: string | Buffer): string {
  return typeof body === 'string' ? body : body.toString('utf8');
}

/** Binds a codec to one declared message. */
export function messageCodec<T>(decl: StructDecl): MessageCodec<T> {
  const name = decl.name;
  const root = decl.messageName;
  const arrays = arrayPaths(decl, root, new Set());
  const parser = new XMLParser({
    ignoreAttributes: true,
    parseTagValue: false,
    trimValues: false,
    ignoreDeclaration: true,
    processEntities: true,
    htmlEntities: false,
    isArray: (_tag: string, jpath: unknown) => arrays.has(String(jpath)),
  });
  const builder = new XMLBuilder({ ignoreAttributes: true, processEntities: true, suppressEmptyNode: false });

  const codec: MessageCodec<T> = {
    decl,
    init: () => initStruct(decl) as T,
    check: (value) => new Walker(name, 'ts').struct(decl, value, '') as T,
    packJson(value) {
      return JSON.stringify(wireTree(decl, codec.check(value) as Tree));
    },
    unpackJson(body) {
      let tree: unknown;
      try {
        tree = JSON.parse(text(body));
      } catch (e) {
        throw new IbpError('IBP_ERR_MSG_SYNTAX', { message: name, format: 'JSON', detail: (e as Error).message });
      }
      return new Walker(name, 'json').struct(decl, tree, '') as T;
    },
    packXml(value) {
      return builder.build({ [root]: xmlTree(decl, codec.check(value) as Tree, name, '') }) as string;
    },
    unpackXml(body) {
      let doc: unknown;
      try {
        doc = parser.parse(text(body), true);
      } catch (e) {
        throw new IbpError('IBP_ERR_MSG_SYNTAX', { message: name, format: 'XML', detail: (e as Error).message });
      }
      if (!isPlainObject(doc) || !(root in doc)) throw new IbpError('IBP_ERR_MSG_SYNTAX', { message: name, format: 'XML', detail: `root element <${root}> missing` });
      const top = doc[root] === '' ? {} : doc[root];
      return new Walker(name, 'xml').struct(decl, top, '') as T;
    },
    pack: (value, format) => (format === 'xml' ? codec.packXml(value) : codec.packJson(value)),
    unpack: (body, format) => (format === 'xml' ? codec.unpackXml(body) : codec.unpackJson(body)),
  };
  return codec;
}
