/**
 * The registry on disk: the three config files (etc/ibp_nodes.conf, ibp_apps.conf,
 * ibp_projects.conf by default), their `.bin` images and the second copy.
 *
 * Loading: for each file, a `<file>.bin` image strictly newer than the JSON file is preferred
 * (IBP's precompiled config: no comment stripping, no schema validation, no reference checks when
 * all three come from images). The JSON path validates everything and names file and key on error.
 *
 * Saving (`-a save_config`): each file is written with write-file-atomic (temp file, fsync,
 * rename) after the current file is hard-linked to `<file>.bak`, so a crash at any point leaves
 * either the old or the new file in place, never a half-written one, and the previous version
 * stays as the backup. With `misc.second_config_dump` the same text is also written atomically
 * into that folder.
 *
 * Image format: ibms/image.ts.
 */
import fs from 'node:fs';
import path from 'node:path';
import writeFileAtomic from 'write-file-atomic';
import { AppsFile, NodesFile, ProjectsFile } from '../lib/config/model.js';
import type { IbmsConf } from '../lib/config/ibms-conf.js';
import { loadConfigFile } from '../lib/config/load.js';
import { IbpError } from '../lib/errors.js';
import { fsyncDir } from '../lib/durable-file.js';
import type { Home } from '../lib/home.js';
import { Store, type ConfigData, type DataFiles } from './store.js';
import { decodeImage, encodeImage, type Part } from './image.js';

export { decodeImage, encodeImage, type Part } from './image.js';

export const PARTS: readonly Part[] = ['nodes', 'apps', 'projects'];

/** Absolute paths of the three config files named by ibms.conf. */
export function dataFiles(home: Home, conf: IbmsConf): DataFiles {
  return { nodes: home.confPath(conf.config.nodes), apps: home.confPath(conf.config.apps), projects: home.confPath(conf.config.projects) };
}

export const binOf = (file: string): string => `${file}.bin`;
export const bakOf = (file: string): string => `${file}.bak`;

function mtime(file: string): number | undefined {
  try {
    return fs.statSync(file).mtimeMs;
  } catch {
    return undefined;
  }
}

/** Whether the image of `file` is to be loaded instead of the file: it exists and is strictly newer. */
export function prefersImage(file: string): boolean {
  const b = mtime(binOf(file));
  if (b === undefined) return false;
  const j = mtime(file);
  return j === undefined || b > j;
}

// ---------------------------------------------------------------- loading

export interface Loaded {
  store: Store;
  /** Where each part came from. */
  sources: Record<Part, 'json' | 'bin'>;
  /** Wall time of the load. */
  ms: number;
  /** CPU time of the load (user + system; on a busy machine much less than the wall time). */
  cpuMs: number;
}

const SCHEMAS = { nodes: NodesFile, apps: AppsFile, projects: ProjectsFile } as const;

function loadPart(part: Part, file: string, useImages: boolean): { items: unknown[]; source: 'json' | 'bin' } {
  if (useImages && prefersImage(file)) {
    let bytes: Buffer;
    try {
      bytes = fs.readFileSync(binOf(file));
    } catch (e) {
      throw new IbpError('IBP_ERR_CFG_BIN_IMAGE', { file: binOf(file), detail: (e as Error).message });
    }
    return { items: decodeImage(binOf(file), part, bytes), source: 'bin' };
  }
  const doc = loadConfigFile(SCHEMAS[part], file, 'ibms') as Record<Part, unknown[]>;
  return { items: doc[part], source: 'json' };
}

/** Load the registry's data (images where newer), with every check a JSON source needs. */
export function loadData(files: DataFiles, opts: { useImages?: boolean } = {}): Loaded {
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  const useImages = opts.useImages ?? true;
  const got = { nodes: loadPart('nodes', files.nodes, useImages), apps: loadPart('apps', files.apps, useImages), projects: loadPart('projects', files.projects, useImages) };
  const data = { nodes: got.nodes.items, apps: got.apps.items, projects: got.projects.items } as ConfigData;
  const allImages = PARTS.every((p) => got[p].source === 'bin');
  const store = allImages ? Store.fromTrustedData(data) : Store.fromData(data, files);
  const cpu = process.cpuUsage(c0);
  return { store, sources: { nodes: got.nodes.source, apps: got.apps.source, projects: got.projects.source }, ms: performance.now() - t0, cpuMs: (cpu.user + cpu.system) / 1000 };
}

// ---------------------------------------------------------------- saving

/**
 * What a save writes, computed at once from the live data (a later mutation cannot tear it):
 * the JSON text of each part, and fresh images for the parts that have one on disk already
 * (so an existing image never goes stale behind a newer save).
 */
export interface SaveSnapshot {
  texts: Record<Part, string>;
  images: Partial<Record<Part, Buffer>>;
}

export function snapshotForSave(files: DataFiles, data: ConfigData): SaveSnapshot {
  const texts = {
    nodes: `${JSON.stringify({ nodes: data.nodes }, null, 2)}\n`,
    apps: `${JSON.stringify({ apps: data.apps }, null, 2)}\n`,
    projects: `${JSON.stringify({ projects: data.projects }, null, 2)}\n`,
  };
  const images: Partial<Record<Part, Buffer>> = {};
  for (const part of PARTS) if (fs.existsSync(binOf(files[part]))) images[part] = encodeImage(part, data[part]);
  return { texts, images };
}

/** Images of every part, for `-a build_config`. */
export function snapshotImages(data: ConfigData): Record<Part, Buffer> {
  return { nodes: encodeImage('nodes', data.nodes), apps: encodeImage('apps', data.apps), projects: encodeImage('projects', data.projects) };
}


/** Keep the current file as `<file>.bak` (hard link swapped in by rename: atomic). */
function keepBackup(file: string): void {
  const tmp = `${bakOf(file)}.${process.pid}.tmp`;
  try {
    fs.rmSync(tmp, { force: true });
    try {
      fs.linkSync(file, tmp);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return; // no previous version
      fs.copyFileSync(file, tmp);
    }
    fs.renameSync(tmp, bakOf(file));
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw new IbpError('IBP_ERR_REG_SAVE', { file: bakOf(file), detail: (e as Error).message }, { cause: e });
  }
}

async function writeAtomic(file: string, data: string | Buffer): Promise<void> {
  try {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    await writeFileAtomic(file, data, { fsync: true, mode: 0o644 });
    fsyncDir(path.dirname(file));
  } catch (e) {
    throw new IbpError('IBP_ERR_REG_SAVE', { file, detail: (e as Error).message }, { cause: e });
  }
}

/** Write an image and make sure it is strictly newer than its JSON file (coarse clocks). */
async function writeImage(file: string, bytes: Buffer): Promise<string> {
  const bin = binOf(file);
  await writeAtomic(bin, bytes);
  const j = mtime(file);
  const b = mtime(bin);
  if (j !== undefined && b !== undefined && b <= j) {
    const t = new Date(j + 10);
    fs.utimesSync(bin, t, t);
  }
  return bin;
}

export interface SaveResult {
  files: string[];
  images: string[];
  second: string[];
}

/**
 * Write the three files (each: backup, then atomic write), refresh existing images, then the
 * second copy when `secondDir` is set. A failure throws IBP_ERR_REG_SAVE naming the file; files
 * already written stay written, the one that failed keeps its previous content.
 */
export async function saveData(files: DataFiles, snap: SaveSnapshot, secondDir?: string): Promise<SaveResult> {
  const out: SaveResult = { files: [], images: [], second: [] };
  for (const part of PARTS) {
    keepBackup(files[part]);
    await writeAtomic(files[part], snap.texts[part]);
    out.files.push(files[part]);
  }
  for (const part of PARTS) {
    const img = snap.images[part];
    if (img) out.images.push(await writeImage(files[part], img));
  }
  if (secondDir) {
    for (const part of PARTS) {
      const file = path.join(secondDir, path.basename(files[part]));
      await writeAtomic(file, snap.texts[part]);
      out.second.push(file);
    }
  }
  return out;
}

/** Write only the second copy of the three files into `secondDir` (the `second_config_dump` schedule). */
export async function saveSecond(files: DataFiles, snap: SaveSnapshot, secondDir: string): Promise<string[]> {
  const out: string[] = [];
  for (const part of PARTS) {
    const file = path.join(secondDir, path.basename(files[part]));
    await writeAtomic(file, snap.texts[part]);
    out.push(file);
  }
  return out;
}

/** Write the `.bin` images (`-a build_config`), each strictly newer than its JSON file. */
export async function writeImages(files: DataFiles, images: Record<Part, Buffer>): Promise<string[]> {
  const written: string[] = [];
  for (const part of PARTS) written.push(await writeImage(files[part], images[part]));
  return written;
}
