/**
 * The inter-process accept lock of a worker pool (IBP's "ACCEPT critical section", tcpdaemon's
 * semaphore): a SysV semaphore of one at homeKeyBase(home) + KEY_SLOT.ACCEPT_LOCK, taken with
 * SEM_UNDO, so when a holder dies — even by SIGKILL while it waits in poll() — the kernel gives
 * the lock back and the next worker in line becomes the leader. At most one worker is in accept at
 * any time.
 *
 * The manager creates it (value 1) at start and removes it at stop; workers open it. A worker
 * waits for it on its main thread in bounded rounds (lockWithin: semtimedop, a signal ends a
 * round early) with a turn of its event loop between rounds, so signals are still handled.
 */
import { Semaphore } from '../lib/shm/sysv.js';

export class AcceptLock {
  readonly sem: Semaphore;
  #held = false;

  private constructor(sem: Semaphore) {
    this.sem = sem;
  }

  /** Manager: create (or reset to free) the lock. */
  static create(key: number): AcceptLock {
    return new AcceptLock(Semaphore.open(key, true));
  }

  /** Worker (or a new generation, issue 5): open the existing lock without resetting it. */
  static open(key: number): AcceptLock {
    return new AcceptLock(Semaphore.open(key, false));
  }

  get held(): boolean {
    return this.#held;
  }

  /** Take the lock; resolves once held. Rejects when the semaphore was removed (the server stops). */
  async lock(): Promise<void> {
    if (!this.sem.tryLock()) await this.sem.lock();
    this.#held = true;
  }

  /**
   * Wait for the lock on the calling thread for at most `ms` (a worker: its loop has nothing else
   * to do; it gives the loop a turn between rounds). 'interrupted': a signal came.
   */
  lockWithin(ms: number): 'locked' | 'timeout' | 'interrupted' {
    const r = this.sem.lockWithin(ms);
    if (r === 'locked') this.#held = true;
    return r;
  }

  unlock(): void {
    if (!this.#held) return;
    this.#held = false;
    this.sem.unlock();
  }

  /** 1 when free, 0 when held (for tests and `-s bbstat`). */
  value(): number {
    return this.sem.value();
  }

  /** Manager at stop: remove the semaphore (wakes every waiter with EIDRM). */
  remove(): void {
    this.sem.remove();
  }
}
