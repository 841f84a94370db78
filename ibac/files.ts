/**
 * Attached files of a transaction (IBP §2.4.5): they live in `$IBP_HOME/file/`, named
 * `(file_id)_(10 random visible characters).tmp` when created with {@link createTempFile}
 * (IBP's IBPCreateTempFile), so that a receiver can pick files of one kind by their file_id.
 *
 * A request carries at most {@link MAX_FILES} files and so does a response (IBP's limit). Every
 * name is a plain file name (lib/home.ts checkPlainFileName: no path separator, no `..`, no
 * control character, no leading `-`); response files from the server are checked the same way
 * before they are written, so a hostile server cannot write outside `$IBP_HOME/file/`.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { IbpError } from '../lib/errors.js';
import { checkPlainFileName, type Home } from '../lib/home.js';
import { UsageError } from './errors.js';

/** Files per direction per transaction. */
export const MAX_FILES = 4;

/** Characters of the random part: visible and safe in a file name on every system. */
const RANDOM_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
const RANDOM_LENGTH = 10;
/** A file_id: what a receiver filters on; letters, digits, `_ - .` (at most 64). */
const FILE_ID = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/;

export interface TempFile {
  /** The plain name (pass it in a transaction's files). */
  name: string;
  /** Its full path in $IBP_HOME/file. */
  path: string;
}

/** A request file: the name of a file in $IBP_HOME/file, or a name and its bytes. */
export type RequestFile = string | { name: string; data: Buffer | string };

/** A response file, written to $IBP_HOME/file under the name the server gave it. */
export interface ResponseFile {
  name: string;
  path: string;
  size: number;
  data: Buffer;
}

/** Ten random characters of {@link RANDOM_ALPHABET}. */
export function randomVisible(n = RANDOM_LENGTH): string {
  let out = '';
  while (out.length < n) {
    // rejection sampling keeps the characters uniform (62 does not divide 256)
    for (const b of crypto.randomBytes(n * 2)) {
      if (b < 248 && out.length < n) out += RANDOM_ALPHABET[b % RANDOM_ALPHABET.length];
    }
  }
  return out;
}

/**
 * Create an empty file `(fileId)_(10 random).tmp` in the home's file folder (exclusive create: a
 * name is never reused) and return its name and path. Write it with fs, then pass the name.
 */
export function createTempFile(home: Home, fileId: string, data?: Buffer | string): TempFile {
  if (!FILE_ID.test(fileId)) throw new UsageError(`file_id ${JSON.stringify(fileId)} refused: use letters, digits, _ - . (at most 64, not starting with . or -)`);
  const dir = home.dir('file');
  fs.mkdirSync(dir, { recursive: true });
  for (let attempt = 0; ; attempt++) {
    const name = `${fileId}_${randomVisible()}.tmp`;
    const file = path.join(dir, name);
    try {
      fs.writeFileSync(file, data ?? '', { flag: 'wx', mode: 0o644 });
      return { name, path: file };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || attempt >= 8) throw e;
    }
  }
}

function checkName(name: string, what: string): string {
  try {
    return checkPlainFileName(name);
  } catch (e) {
    const err = e as IbpError;
    throw new UsageError('', {}, 'IBP_ERR_FILE_NAME', { name: err.params?.name ?? JSON.stringify(name), detail: `${err.params?.detail ?? err.message} (${what})` });
  }
}

/** Read the request files (at most {@link MAX_FILES}, plain names, no name twice). */
export function loadRequestFiles(home: Home, files: readonly RequestFile[] | undefined): { name: string; data: Buffer }[] {
  if (!files || files.length === 0) return [];
  if (files.length > MAX_FILES) throw new UsageError(`${files.length} request files: at most ${MAX_FILES} per transaction`);
  const seen = new Set<string>();
  return files.map((f) => {
    const name = checkName(typeof f === 'string' ? f : f.name, 'request file');
    if (seen.has(name)) throw new UsageError(`request file ${name} given twice`);
    seen.add(name);
    if (typeof f !== 'string') return { name, data: Buffer.isBuffer(f.data) ? f.data : Buffer.from(f.data) };
    const file = home.file(name);
    try {
      return { name, data: fs.readFileSync(file) };
    } catch (e) {
      throw new UsageError(`request file ${file} cannot be read: ${(e as Error).message}`);
    }
  });
}

/**
 * Write response files to the home's file folder (each through a temporary name and a rename, so
 * a reader never sees half a file). Names were checked by the protocol decoder; checked again.
 */
export function saveResponseFiles(home: Home, files: readonly { name: string; data: Buffer }[]): ResponseFile[] {
  if (files.length === 0) return [];
  const dir = home.dir('file');
  fs.mkdirSync(dir, { recursive: true });
  return files.map((f) => {
    const name = checkName(f.name, 'response file from the server');
    const file = path.join(dir, name);
    const tmp = path.join(dir, `.${name}.${process.pid}.${randomVisible(6)}.part`);
    fs.writeFileSync(tmp, f.data, { mode: 0o644 });
    fs.renameSync(tmp, file);
    return { name, path: file, size: f.data.length, data: f.data };
  });
}
