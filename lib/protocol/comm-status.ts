/**
 * Communication status of a client transaction: how far the request got when something failed.
 * This is what tells a SAFE failure (retry anywhere) from a SUSPICIOUS one (the server may have
 * run the transaction: verify, reverse or escalate) — IBP's IBAC_COMM_STATUS_*, undici's idea of
 * naming the failure phase.
 *
 *   BEFORE_SEND  nothing of the REQUEST packet left this side (connect failed, pre-request
 *                rejected, push of a file failed). The app did not run. Safe to retry.
 *   ON_SENDING   the REQUEST packet was (partly) written but the write did not complete. The
 *                server may or may not have it. Suspicious.
 *   AFTER_SEND   the REQUEST packet was written completely; the RESPONSE did not arrive whole
 *                (timeout, reset, truncated). The app may have run. Suspicious.
 *
 * A complete RESPONSE ends the transaction whatever its result code: the status then only says
 * that the response came back.
 * @enum
 */
export const COMM_STATUS = {
  BEFORE_SEND: 'BEFORE_SEND',
  ON_SENDING: 'ON_SENDING',
  AFTER_SEND: 'AFTER_SEND',
} as const;
export type CommStatus = (typeof COMM_STATUS)[keyof typeof COMM_STATUS];

/** True when a failure at this status may have left a transaction done on the server. */
export function isSuspicious(status: CommStatus): boolean {
  return status !== COMM_STATUS.BEFORE_SEND;
}

/**
 * Tracks the status of one transaction as the client moves through it. The client library calls
 * the marks at the matching points; {@link status} is what it reports when a failure interrupts.
 */
export class CommStatusTracker {
  #status: CommStatus = COMM_STATUS.BEFORE_SEND;

  get status(): CommStatus {
    return this.#status;
  }

  /** The first byte of the REQUEST packet is about to be written. */
  sending(): void {
    if (this.#status === COMM_STATUS.BEFORE_SEND) this.#status = COMM_STATUS.ON_SENDING;
  }

  /** The REQUEST packet was written completely (the write callback fired). */
  sent(): void {
    this.#status = COMM_STATUS.AFTER_SEND;
  }

  /** A new transaction on the same connection. */
  reset(): void {
    this.#status = COMM_STATUS.BEFORE_SEND;
  }

  get suspicious(): boolean {
    return isSuspicious(this.#status);
  }
}
