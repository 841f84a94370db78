/**
 * Global transaction ids (gtrid) of multi-transactions and two-phase commit (docs/ibac.md
 * "Two-phase commit you can recover").
 *
 * Form: `<client node>.<pid base36>.<ms base36>.<12 random hex>`, e.g. `CLI.1k3.lw2x9a.9f2c01ab33de`:
 * readable in logs (who started it, when) and unique without coordination (pid + time + 48 random
 * bits). The client node is cut to the characters allowed and 24 bytes. A gtrid is 1..64 bytes of
 * `[A-Za-z0-9._-]`, starting with a letter or digit: safe as a file name on every participant.
 */
import crypto from 'node:crypto';
import { IbpError } from './errors.js';

const GTRID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** A new gtrid for a multi-transaction started by `clientNode`. */
export function newGtrid(clientNode: string): string {
  const node = clientNode.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 24) || 'node';
  return `${/^[A-Za-z0-9]/.test(node) ? node : `n${node}`.slice(0, 24)}.${process.pid.toString(36)}.${Date.now().toString(36)}.${crypto.randomBytes(6).toString('hex')}`;
}

/** The gtrid if well-formed; IBP_ERR_TX_GTRID otherwise. */
export function checkGtrid(gtrid: string): string {
  if (!GTRID_RE.test(gtrid) || gtrid.includes('..')) {
    throw new IbpError('IBP_ERR_TX_GTRID', { gtrid: JSON.stringify(gtrid), detail: 'it must be 1..64 characters of A-Z a-z 0-9 . _ - starting with a letter or digit' });
  }
  return gtrid;
}

/** The coordinator part of a gtrid (its first dot-separated part: the client node of newGtrid). */
export function gtridNode(gtrid: string): string {
  const at = gtrid.indexOf('.');
  return at < 0 ? gtrid : gtrid.slice(0, at);
}
