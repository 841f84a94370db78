/**
 * The folder of `npm start` (scripts/local-cluster.ts). Every run starts from a fresh folder: the
 * previous run's folder is removed first. Only a folder that `npm start` made may be removed, so
 * a user's data never goes with it (IBP_LOCAL_DIR may name any folder):
 *
 *   - missing or empty: made (or used) and marked;
 *   - holding the marker file MARKER (written when npm start makes the folder): removed, then made
 *     again and marked;
 *   - holding only what npm start makes (its three homes, request.txt, node_modules: a folder of
 *     a version before the marker): the same;
 *   - anything else (a file, or a folder with something npm start did not make): refused,
 *     nothing touched.
 */
import fs from 'node:fs';
import path from 'node:path';

/** The file that says "npm start made this folder; it may remove it". */
export const MARKER = '.ibp-local-cluster';
/** What npm start puts in its folder (a folder holding only these is one of its own). */
export const OWN_ENTRIES: readonly string[] = [MARKER, 'ibms-home', 'ecif-home', 'channel-home', 'request.txt', 'node_modules'];

/** Why `dir` may not be wiped, with what to do; undefined when npm start may (re)make it. */
export function refusal(dir: string): string | undefined {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  const pick = 'set IBP_LOCAL_DIR to a new or empty folder (default ./local-cluster)';
  if (!st.isDirectory()) return `${dir} exists and is not a folder: ${pick}`;
  const entries = fs.readdirSync(dir);
  if (entries.includes(MARKER)) return undefined;
  const foreign = entries.filter((e) => !OWN_ENTRIES.includes(e));
  if (foreign.length === 0) return undefined;
  const shown = foreign.slice(0, 3).join(', ') + (foreign.length > 3 ? `, … (${foreign.length} in all)` : '');
  return (
    `${dir} holds files npm start did not make (${shown}) and no ${MARKER} marker; ` +
    `npm start removes its folder on every run, so it leaves this one alone: ${pick}, or empty this one yourself`
  );
}

/**
 * Make `dir` a fresh, marked folder for npm start, removing the previous run's one. Throws (having
 * touched nothing) when refusal(dir) says no.
 */
export function freshDir(dir: string): void {
  const no = refusal(dir);
  if (no) throw new Error(no);
  // the ibp-ts link below dir points at this project: unlink it first, never recurse through it
  fs.rmSync(path.join(dir, 'node_modules', 'ibp-ts'), { force: true });
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(
    path.join(dir, MARKER),
    'Made by `npm start` (scripts/local-cluster.ts). The next `npm start` with this folder removes it whole.\n',
  );
}
