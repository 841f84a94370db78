/**
 * The inter-process accept lock of a worker pool (IBP's "ACCEPT critical section", tcpdaemon's
 * semaphore): a SysV semaphore of one at homeKeyBase(home) + KEY_SLOT.ACCEPT_LOCK, taken with
 * SEM_UNDO, so when a holder dies — even by SIGKILL while it waits in poll() — the kernel gives
 * the lock back and the next worker in line becomes the leader. At most one worker is in accept at
 * any time.
 *
 * The manager creates it (value 1) at start and removes it at stop; workers open it. Waiting for
 * it runs on koffi's thread pool (Semaphore.lock), so a waiting worker's event loop stays free to
 * take signals. A first non-blocking try saves the thread hop when the lock is free.
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
