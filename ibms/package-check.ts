/**
 * What `ibms -a add_app` / `-a update_app` check of an app's package in the registry's so/
 * before telling ibms (warnings; `--strict` refuses): the file exists, it is an ELF shared object
 * (or a JavaScript module), and it exports the entry point ibas calls — `somain` for a .so
 * (docs/apps.md), `main` for a module. The ELF check reads the dynamic symbol table (.dynsym /
 * .dynstr through the section headers, ELF64 little-endian as built here): the symbol must be
 * defined (not an undefined import) in a function or object.
 */
import fs from 'node:fs';

export interface PackageReport {
  file: string;
  kind: 'missing' | 'elf' | 'js' | 'unknown';
  /** What is wrong (empty when the package looks right). */
  problems: string[];
}

/** Names of the symbols an ELF64 LE shared object defines in its dynamic symbol table. */
export function elfDynamicSymbols(buf: Buffer): Set<string> | undefined {
  if (buf.length < 64 || buf.readUInt32BE(0) !== 0x7f454c46 || buf[4] !== 2 || buf[5] !== 1) return undefined; // ELF64 LE only
  const shoff = Number(buf.readBigUInt64LE(0x28));
  const shentsize = buf.readUInt16LE(0x3a);
  const shnum = buf.readUInt16LE(0x3c);
  if (shoff <= 0 || shentsize < 64 || shoff + shnum * shentsize > buf.length) return undefined;
  const sec = (i: number) => {
    const o = shoff + i * shentsize;
    return { type: buf.readUInt32LE(o + 4), offset: Number(buf.readBigUInt64LE(o + 0x18)), size: Number(buf.readBigUInt64LE(o + 0x20)), link: buf.readUInt32LE(o + 0x28), entsize: Number(buf.readBigUInt64LE(o + 0x38)) };
  };
  const SHT_DYNSYM = 11;
  const names = new Set<string>();
  for (let i = 0; i < shnum; i++) {
    const s = sec(i);
    if (s.type !== SHT_DYNSYM || s.entsize < 24) continue;
    const str = sec(s.link);
    if (s.offset + s.size > buf.length || str.offset + str.size > buf.length) return undefined;
    for (let o = s.offset; o + 24 <= s.offset + s.size; o += s.entsize) {
      const nameOff = buf.readUInt32LE(o);
      const shndx = buf.readUInt16LE(o + 6);
      if (shndx === 0 || nameOff >= str.size) continue; // undefined: an import, not an export
      const start = str.offset + nameOff;
      const end = buf.indexOf(0, start);
      names.add(buf.toString('utf8', start, end < 0 ? str.offset + str.size : end));
    }
  }
  return names;
}

export function inspectPackage(file: string): PackageReport {
  let buf: Buffer;
  try {
    buf = fs.readFileSync(file);
  } catch {
    return { file, kind: 'missing', problems: [`${file} does not exist: copy the package into so/ first`] };
  }
  if (buf.length >= 4 && buf.readUInt32BE(0) === 0x7f454c46) {
    const syms = elfDynamicSymbols(buf);
    if (!syms) return { file, kind: 'elf', problems: [`${file} is not a 64-bit little-endian ELF shared object with a dynamic symbol table`] };
    return { file, kind: 'elf', problems: syms.has('somain') ? [] : [`${file} does not export somain (docs/apps.md): ibas cannot run it`] };
  }
  if (/\.(m?js)$/.test(file)) {
    const text = buf.toString('utf8');
    const exportsMain = /\bexport\s+(async\s+)?function\s+main\b|\bexport\s+(const|let)\s+main\b|\bexport\s*\{[^}]*\bmain\b[^}]*\}/.test(text);
    return { file, kind: 'js', problems: exportsMain ? [] : [`${file} does not export main: ibas cannot run it`] };
  }
  return { file, kind: 'unknown', problems: [`${file} is neither an ELF shared object nor a JavaScript module`] };
}
