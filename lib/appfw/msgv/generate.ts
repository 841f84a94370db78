/**
 * `ibpgen messages FILE.dsc --lang ts|c --out DIR`: reads a .dsc and writes the generated code.
 *   ts: DIR/FILE.dsc.ts (types, codecs, client stubs)
 *   c:  DIR/FILE.dsc.h, DIR/FILE.dsc.c and the runtime DIR/ibp_msgv.h, DIR/ibp_msgv.c
 * Files are written atomically; a file whose text is unchanged is left alone (no rebuilds).
 */
import fs from 'node:fs';
import path from 'node:path';
import writeFileAtomic from 'write-file-atomic';
import { PROJECT_ROOT } from '../../native/built-files.js';
import { readDscFile } from './dsc.js';
import { generateC } from './gen-c.js';
import { generateTs, type CallSpec } from './gen-ts.js';

export type GenLang = 'ts' | 'c';
export const GEN_LANGS: readonly GenLang[] = ['ts', 'c'];

/** The C runtime copied beside generated C code. */
export const C_RUNTIME_DIR = path.join(PROJECT_ROOT, 'lib', 'appfw', 'native');
export const C_RUNTIME_FILES = ['ibp_msgv.h', 'ibp_msgv.c'] as const;

export interface GenerateOptions {
  lang: GenLang;
  out: string;
  calls?: readonly CallSpec[];
  runtimeBase?: string;
  ibacModule?: string;
}

function writeIfChanged(file: string, text: string): boolean {
  try {
    if (fs.readFileSync(file, 'utf8') === text) return false;
  } catch {
    // not there yet
  }
  writeFileAtomic.sync(file, text);
  return true;
}

/** Generates the code of one .dsc; returns the files written (changed or not). */
export function generateMessages(dscFile: string, opts: GenerateOptions): string[] {
  const mf = readDscFile(dscFile);
  const base = `${path.basename(dscFile)}`;
  const source = path.basename(dscFile);
  fs.mkdirSync(opts.out, { recursive: true });
  const files: Array<[string, string]> = [];
  if (opts.lang === 'ts') {
    files.push([`${base}.ts`, generateTs(mf, { source, ...(opts.calls ? { calls: opts.calls } : {}), ...(opts.runtimeBase ? { runtimeBase: opts.runtimeBase } : {}), ...(opts.ibacModule ? { ibacModule: opts.ibacModule } : {}) })]);
  } else {
    const c = generateC(mf, base, source);
    files.push([c.header.name, c.header.text], [c.source.name, c.source.text]);
    for (const rt of C_RUNTIME_FILES) files.push([rt, fs.readFileSync(path.join(C_RUNTIME_DIR, rt), 'utf8')]);
  }
  return files.map(([name, text]) => {
    const file = path.join(opts.out, name);
    writeIfChanged(file, text);
    return file;
  });
}

/** Parses `APP=REQ:RSP`. */
export function parseCallSpec(spec: string): CallSpec | undefined {
  const m = /^([A-Za-z0-9_.-]{1,64})=([A-Za-z_][A-Za-z0-9_]*):([A-Za-z_][A-Za-z0-9_]*)$/.exec(spec);
  return m ? { app: m[1] as string, request: m[2] as string, response: m[3] as string } : undefined;
}
