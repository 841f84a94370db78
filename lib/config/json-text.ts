/**
 * Reading and parsing JSON config files, without validating them (lib/config/load.ts validates).
 * Comments (`//`, `/* *\/`) are allowed, as IBP allows them. No ajv or TypeBox here: an ibas
 * worker reads the one key of ibma.conf it needs through this (lib/config/ibma-index-key.ts).
 */
import fs from 'node:fs';
import stripJsonComments from 'strip-json-comments';
import sjson from 'secure-json-parse';
import { IbpError } from '../errors.js';

/** Parse JSON text with comments; throws IBP_ERR_CFG_PARSE naming the file. */
export function parseJsonText(text: string, file: string): unknown {
  const stripped = stripJsonComments(text); // comments become spaces: positions stay those of `text`
  try {
    return sjson.parse(stripped, undefined, { protoAction: 'error', constructorAction: 'error' });
  } catch (e) {
    throw new IbpError('IBP_ERR_CFG_PARSE', { file, detail: withLineColumn((e as Error).message, stripped) });
  }
}

/**
 * JSON.parse says "… at position N" for some errors and nothing for others ("Unexpected token '}',
 * "…" is not valid JSON"): say line and column, 1-based. Without a position, the offending
 * character is found by bisection on prefixes — a prefix that stops before it only fails at its
 * end ("Unexpected end of JSON input", or a position equal to its length), one that contains it
 * fails on it.
 */
export function withLineColumn(message: string, text: string): string {
  if (/line \d+ column \d+/.test(message)) return message;
  const m = /at position (\d+)/.exec(message);
  let pos = m ? Number(m[1]) : /Unexpected end of JSON input/.test(message) ? text.length : undefined;
  if (pos === undefined) {
    const failsOnIt = (k: number): boolean => {
      try {
        JSON.parse(text.slice(0, k));
        return false;
      } catch (e) {
        const msg = (e as Error).message;
        const at = /at position (\d+)/.exec(msg);
        return !/Unexpected end of JSON input/.test(msg) && !(at && Number(at[1]) >= k);
      }
    };
    if (failsOnIt(text.length)) {
      let lo = 0;
      let hi = text.length; // failsOnIt(hi) holds
      while (hi - lo > 1) {
        const mid = (lo + hi) >> 1;
        if (failsOnIt(mid)) hi = mid;
        else lo = mid;
      }
      pos = hi - 1;
    }
  }
  if (pos === undefined) return message;
  const before = text.slice(0, pos);
  const line = before.split('\n').length;
  const column = pos - before.lastIndexOf('\n');
  const what = message.replace(/\s*(in JSON )?at position \d+.*$/s, '').replace(/, ".*" is not valid JSON$/s, '');
  return `${what} at line ${line} column ${column}`;
}

/** Read and parse a config file (not validated). `tool` names the command that creates it (for the hint). */
export function readConfigJson(file: string, tool: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new IbpError('IBP_ERR_CFG_NOT_FOUND', { file, tool });
    throw new IbpError('IBP_ERR_CFG_PARSE', { file, detail: (e as Error).message });
  }
  return parseJsonText(text, file);
}
