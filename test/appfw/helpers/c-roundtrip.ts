/**
 * Compiles generated C message code into a small round-trip program and runs it: each stdin line
 * is `<message> <json>`; the program unpacks the JSON with IBPMSGV_UNPACK_JSON_<message>, packs it
 * again with IBPMSGV_PACK_JSON_<message> and prints the result (or `ERR <rc> <text>`).
 * The runtime ibp_msgv.c is compiled once per process (objectOf) and linked into each program.
 */
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import type { MessageFile } from '../../../lib/appfw/msgv/model.js';
import { generateC } from '../../../lib/appfw/msgv/gen-c.js';
import { C_RUNTIME_DIR } from '../../../lib/appfw/msgv/generate.js';

export const CFLAGS = ['-O0', '-g', '-std=c11', '-Wall', '-Wextra', '-Werror', '-Wno-unused-parameter', '-Wno-unused-function'];

function gcc(args: string[], what: string): void {
  const r = spawnSync('gcc', [...CFLAGS, ...args], { encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw new Error(`gcc ${what} failed:\n${r.stderr}`);
}

const objects = new Map<string, string>();

/** ibp_msgv.o, compiled once into dir. */
export function runtimeObject(dir: string, extra: string[] = []): string {
  const key = `${dir}|${extra.join(' ')}`;
  let o = objects.get(key);
  if (!o) {
    o = path.join(dir, `ibp_msgv${extra.length ? '_san' : ''}.o`);
    gcc([...extra, '-I', C_RUNTIME_DIR, '-c', path.join(C_RUNTIME_DIR, 'ibp_msgv.c'), '-o', o], 'ibp_msgv.c');
    objects.set(key, o);
  }
  return o;
}

function mainSource(header: string, names: readonly string[]): string {
  const cases = names.map((n) => `\t\tif (strcmp(name, "${n}") == 0) { static ${n} st; rc = IBPMSGV_UNPACK_JSON_${n}(json, len, &st, err, sizeof err); if (rc == 0) rc = IBPMSGV_PACK_JSON_${n}(&st, &out, &out_len, err, sizeof err); }`).join('\n');
  return `#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "${header}"
int main(void) {
\tsize_t cap = 1 << 22;
\tchar *line = malloc(cap);
\tif (!line) return 2;
\twhile (fgets(line, (int)cap, stdin)) {
\t\tsize_t n = strlen(line);
\t\tif (n && line[n - 1] == '\\n') line[--n] = '\\0';
\t\tchar *sp = strchr(line, ' ');
\t\tif (!sp) { printf("ERR 0 no message name\\n"); continue; }
\t\t*sp = '\\0';
\t\tconst char *name = line, *json = sp + 1;
\t\tsize_t len = n - (size_t)(json - line);
\t\tchar err[512] = "";
\t\tchar *out = NULL;
\t\tsize_t out_len = 0;
\t\tint rc = 99;
${cases}
\t\tif (rc == 0) { fwrite(out, 1, out_len, stdout); fputc('\\n', stdout); }
\t\telse printf("ERR %d %s\\n", rc, err);
\t\tfree(out);
\t\tfflush(stdout);
\t}
\tfree(line);
\treturn 0;
}
`;
}

/** Generates the C code of mf into dir and builds the round-trip program; returns its path. */
export function buildRoundTrip(mf: MessageFile, dir: string, baseName = 'msg.dsc', sanitize: string[] = []): string {
  fs.mkdirSync(dir, { recursive: true });
  const c = generateC(mf, baseName);
  fs.writeFileSync(path.join(dir, c.header.name), c.header.text);
  fs.writeFileSync(path.join(dir, c.source.name), c.source.text);
  fs.writeFileSync(path.join(dir, 'main.c'), mainSource(c.header.name, mf.messages.map((m) => m.name)));
  const exe = path.join(dir, 'roundtrip');
  gcc([...sanitize, '-I', C_RUNTIME_DIR, '-I', dir, '-o', exe, path.join(dir, 'main.c'), path.join(dir, c.source.name), runtimeObject(path.dirname(dir), sanitize), '-lm'], 'round-trip program');
  return exe;
}

/** Runs the program over lines; returns one output line per input line. */
export function runRoundTrip(exe: string, lines: readonly string[]): string[] {
  const r = spawnSync(exe, [], { input: lines.map((l) => `${l}\n`).join(''), encoding: 'utf8', timeout: 30_000, maxBuffer: 256 * 1024 * 1024 });
  if (r.status !== 0) throw new Error(`round-trip program ended ${r.status ?? r.signal}: ${r.stderr}`);
  const out = r.stdout.split('\n');
  out.pop();
  if (out.length !== lines.length) throw new Error(`round-trip program answered ${out.length} lines for ${lines.length}: ${r.stderr}`);
  return out;
}
