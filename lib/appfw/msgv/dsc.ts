/**
 * Reader of DirectStruct `.dsc` interface declarations (IBP's IDL for messages), line based like
 * DirectStruct's own `dsc` tool:
 *
 *   STRUCT transfer_req MESSAGE TransferRequest      # a message (MESSAGE: XML root name)
 *   {
 *       INCLUDE IDL_request_header.dsc                # lines of another file, read in place
 *       STRING  32     from_account                   # text of at most 32 UTF-8 bytes
 *       NUMERIC 16,2   amount     DEFAULT "0.00"      # exact decimal
 *       INT     4      version    DEFAULT 1
 *       STRUCT  items ARRAY 10                        # nested struct, array of at most 10
 *       {
 *           STRING 64 memo
 *       }
 *   }
 *
 * Also read and kept: `H "…"` lines (copied into the C header), field `# comments` (descriptions),
 * NULL / NOTNULL (ignored). CREATE_SQL / DROP_SQL lines (DirectStruct's SQL generation) are
 * skipped. INCLUDE paths are relative to the including file. Every error is IBP_ERR_MSG_DECL with
 * the file and line.
 */
import fs from 'node:fs';
import path from 'node:path';
import { IbpError } from '../../errors.js';
import { LIMITS, SCALAR_TYPES, TYPE_WIDTHS, type Field, type MessageFile, type ScalarField, type ScalarType, type StructDecl } from './model.js';
import { checkScalar, ScalarRefusal } from './scalar.js';

const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** C and TS words a field or struct may not be named (the generated code would not compile). */
const RESERVED = new Set([
  'auto', 'break', 'case', 'char', 'const', 'continue', 'default', 'do', 'double', 'else', 'enum', 'extern', 'float',
  'for', 'goto', 'if', 'inline', 'int', 'long', 'register', 'restrict', 'return', 'short', 'signed', 'sizeof', 'static',
  'struct', 'switch', 'typedef', 'union', 'unsigned', 'void', 'volatile', 'while', 'bool', 'true', 'false',
  'class', 'delete', 'export', 'extends', 'function', 'import', 'in', 'instanceof', 'new', 'null', 'super', 'this',
  'throw', 'try', 'typeof', 'var', 'with', 'yield', 'let', 'await', 'constructor', '__proto__', 'prototype',
]);

interface Line {
  readonly file: string;
  readonly no: number;
  readonly tokens: string[];
  readonly comment?: string;
}

function declError(line: { file: string; no: number }, detail: string): IbpError {
  return new IbpError('IBP_ERR_MSG_DECL', { file: line.file, line: line.no, detail });
}

/** Splits one line into tokens ("…" and '…' are one token, quotes removed) and its # comment. */
function tokenize(file: string, no: number, text: string): Line {
  const tokens: string[] = [];
  let i = 0;
  let comment: string | undefined;
  while (i < text.length) {
    const c = text[i] as string;
    if (c === ' ' || c === '\t' || c === '\r') { i++; continue; }
    if (c === '#') { comment = text.slice(i + 1).trim(); break; }
    if (c === '"' || c === "'") {
      const end = text.indexOf(c, i + 1);
      if (end < 0) throw declError({ file, no }, `unterminated ${c} quote`);
      tokens.push(text.slice(i + 1, end));
      i = end + 1;
      continue;
    }
    let j = i;
    while (j < text.length && !' \t\r#"\''.includes(text[j] as string)) j++;
    tokens.push(text.slice(i, j));
    i = j;
  }
  return { file, no, tokens, ...(comment ? { comment } : {}) };
}

class DscReader {
  readonly headerLines: string[] = [];
  #lines: Line[] = [];
  #pos = 0;

  constructor(private readonly readText: (file: string) => string) {}

  load(file: string, includeDepth: number, from?: { file: string; no: number }): Line[] {
    if (includeDepth > LIMITS.maxIncludeDepth) throw declError(from ?? { file, no: 0 }, `INCLUDE nested deeper than ${LIMITS.maxIncludeDepth}`);
    let text: string;
    try {
      text = this.readText(file);
    } catch (e) {
      throw declError(from ?? { file, no: 0 }, `cannot read ${file}: ${(e as Error).message}`);
    }
    const out: Line[] = [];
    text.split('\n').forEach((raw, idx) => {
      const line = tokenize(file, idx + 1, raw);
      if (line.tokens.length === 0) return;
      if (line.tokens[0] === 'INCLUDE') {
        if (line.tokens.length !== 2) throw declError(line, 'INCLUDE takes one file name');
        const target = path.resolve(path.dirname(file), line.tokens[1] as string);
        out.push(...this.load(target, includeDepth + 1, line));
        return;
      }
      out.push(line);
    });
    return out;
  }

  parse(file: string): StructDecl[] {
    this.#lines = this.load(file, 0);
    this.#pos = 0;
    const messages: StructDecl[] = [];
    const names = new Set<string>();
    while (this.#pos < this.#lines.length) {
      const line = this.#lines[this.#pos++] as Line;
      if (line.tokens[0] !== 'STRUCT') throw declError(line, `expected STRUCT at top level, found ${line.tokens[0]}`);
      const s = this.#struct(line, 0);
      if (s.arraySize > 0) throw declError(line, 'a top-level STRUCT (a message) cannot be an ARRAY');
      if (names.has(s.name)) throw declError(line, `STRUCT ${s.name} declared twice`);
      names.add(s.name);
      messages.push(s);
    }
    if (messages.length === 0) throw declError({ file, no: 0 }, 'no STRUCT declared');
    return messages;
  }

  #name(line: Line, name: string | undefined, what: string): string {
    if (name === undefined || !IDENT.test(name)) throw declError(line, `${what} name ${name ?? '(missing)'} is not an identifier [A-Za-z_][A-Za-z0-9_]*`);
    if (RESERVED.has(name)) throw declError(line, `${what} name ${name} is a reserved word in C or TypeScript`);
    if (/^_.*_count$/.test(name)) throw declError(line, `${what} name ${name} is reserved for array counts`);
    return name;
  }

  #struct(head: Line, depth: number): StructDecl {
    if (depth >= LIMITS.maxDepth) throw declError(head, `STRUCT nested deeper than ${LIMITS.maxDepth}`);
    const t = head.tokens;
    const name = this.#name(head, t[1], 'STRUCT');
    let arraySize = 0;
    let messageName = name;
    let brace = false;
    for (let i = 2; i < t.length; i++) {
      const kw = t[i];
      if (kw === '{' && i === t.length - 1) { brace = true; continue; }
      const arg = t[++i];
      if (kw === 'ARRAY') {
        if (arg === undefined || !/^[1-9][0-9]*$/.test(arg) || Number(arg) > LIMITS.maxArraySize) throw declError(head, `ARRAY size ${arg ?? '(missing)'} must be 1..${LIMITS.maxArraySize}`);
        arraySize = Number(arg);
      } else if (kw === 'MESSAGE') {
        messageName = this.#name(head, arg, 'MESSAGE');
      } else {
        throw declError(head, `unknown keyword ${kw} after STRUCT ${name} (ARRAY n, MESSAGE name)`);
      }
    }
    if (!brace) {
      const open = this.#lines[this.#pos++];
      if (!open || open.tokens.length !== 1 || open.tokens[0] !== '{') throw declError(open ?? head, `expected { after STRUCT ${name}`);
    }
    const fields: Field[] = [];
    const seen = new Set<string>();
    for (;;) {
      const line = this.#lines[this.#pos++];
      if (!line) throw declError(head, `STRUCT ${name} is not closed with }`);
      const kw = line.tokens[0] as string;
      if (kw === '}') {
        if (line.tokens.length !== 1) throw declError(line, 'nothing may follow } on its line');
        break;
      }
      if (kw === 'H') {
        if (line.tokens.length !== 2) throw declError(line, 'H takes one quoted line');
        this.headerLines.push(line.tokens[1] as string);
        continue;
      }
      if (kw === 'CREATE_SQL' || kw === 'DROP_SQL') continue;
      const field = kw === 'STRUCT' ? this.#struct(line, depth + 1) : this.#scalar(line);
      if (seen.has(field.name)) throw declError(line, `field ${field.name} declared twice in STRUCT ${name}`);
      seen.add(field.name);
      fields.push(field);
    }
    if (fields.length === 0) throw declError(head, `STRUCT ${name} has no fields`);
    return { kind: 'struct', name, arraySize, messageName, fields, ...(head.comment ? { desc: head.comment } : {}) };
  }

  #scalar(line: Line): ScalarField {
    const [type, width, rawName, ...rest] = line.tokens;
    if (!(SCALAR_TYPES as readonly string[]).includes(type as string)) {
      throw declError(line, `unknown field type ${type} (${SCALAR_TYPES.join(', ')}, or STRUCT)`);
    }
    const st = type as ScalarType;
    let len: number;
    let scale = 0;
    if (st === 'NUMERIC') {
      const m = /^([0-9]+),([0-9]+)$/.exec(width ?? '');
      if (!m) throw declError(line, `NUMERIC needs precision,scale (e.g. NUMERIC 16,2), found ${width ?? '(nothing)'}`);
      len = Number(m[1]);
      scale = Number(m[2]);
      if (len < 1 || len > LIMITS.maxNumericPrecision || scale > len) throw declError(line, `NUMERIC ${width}: need 1 <= precision <= ${LIMITS.maxNumericPrecision} and scale <= precision`);
    } else {
      if (!/^[1-9][0-9]*$/.test(width ?? '')) throw declError(line, `${st} needs a byte width, found ${width ?? '(nothing)'}`);
      len = Number(width);
      const allowed = TYPE_WIDTHS[st];
      if (allowed === 'any' ? len > LIMITS.maxStringLen : !allowed.includes(len)) {
        throw declError(line, `${st} ${len} is not supported (${allowed === 'any' ? `1..${LIMITS.maxStringLen}` : allowed.join(', ')})`);
      }
    }
    const name = this.#name(line, rawName, 'field');
    let dflt: string | undefined;
    for (let i = 0; i < rest.length; i++) {
      const kw = rest[i];
      if (kw === 'DEFAULT') {
        dflt = rest[++i];
        if (dflt === undefined) throw declError(line, 'DEFAULT needs a value');
      } else if (kw !== 'NULL' && kw !== 'NOTNULL') {
        throw declError(line, `unknown keyword ${kw} after field ${name} (DEFAULT v, NULL, NOTNULL)`);
      }
    }
    const field: ScalarField = { kind: 'scalar', name, type: st, len, scale, ...(dflt !== undefined ? { default: dflt } : {}), ...(line.comment ? { desc: line.comment } : {}) };
    if (dflt !== undefined) {
      const v = checkScalar(field, dflt, 'dsc');
      if (v instanceof ScalarRefusal) throw declError(line, `DEFAULT ${dflt} of ${name}: expected ${v.expected}`);
    }
    return field;
  }
}

/** Reads a .dsc file (and its INCLUDEs). `readText` defaults to fs; tests may pass their own. */
export function readDscFile(file: string, readText: (f: string) => string = (f) => fs.readFileSync(f, 'utf8')): MessageFile {
  const reader = new DscReader(readText);
  const abs = path.resolve(file);
  const messages = reader.parse(abs);
  return { file: abs, messages, headerLines: reader.headerLines };
}

/** Reads .dsc text given in memory (INCLUDE refused). */
export function parseDsc(text: string, file = '<memory>.dsc'): MessageFile {
  return readDscFile(file, (f) => {
    if (path.resolve(f) === path.resolve(file)) return text;
    throw new Error('INCLUDE is not available for in-memory declarations');
  });
}
