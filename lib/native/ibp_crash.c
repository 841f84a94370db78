/*
 * ibp_crash.c → build/native/libibp_crash.so: crash capture for ibas workers (lib/native/crash.ts).
 *
 * ibp_crash_install(fd) installs handlers for SIGSEGV, SIGBUS, SIGABRT, SIGFPE and SIGILL on an
 * alternate signal stack (so a stack overflow in an app is reported too). On a crash the handler
 * writes, with async-signal-safe calls only,
 *
 *   ibp_crash | signal , name[SIGSEGV] signo[11] code[1] addr[0x0] pid[1234]
 *       (addr[…] for a fault; from[<pid>] for a signal sent by a process, as abort() does)
 *   ibp_crash | backtrace , frames[9]
 *   /…/ibp_test_crash.so(ibp_crash_here+0x11)[0x7f…]
 *   …
 *   ibp_crash | end , re-raising SIGSEGV with the default action
 *
 * to the given fd (the worker's log), then restores the default action and re-raises the signal,
 * so the process dies BY that signal and its manager sees which one.
 *
 * Last answers (the "guard", issue 5): while a worker runs a transaction it arms the guard with
 * the connection's fd and a deadline of timeout2 (ibp_guard_arm). Three frames are prepared
 * beforehand (ibp_guard_frame): a TIMEOUT answer and a CRASH answer, complete frames of the
 * connection's protocol (binary RESPONSE or an HTTP response), kept while app and timeout2 stay
 * the same, and the HELD bytes of this transaction (answers the adapter queued but has not sent
 * yet, e.g. a pipelined PRE_ANSWER), written before either. When the deadline passes (tier 1 of
 * the three-tier timeouts) the guard writes the TIMEOUT answer to the connection and a line to the
 * crash fd, then the process dies BY SIGALRM (default action); a crash writes the CRASH answer
 * before its report. So the client reads a clear error instead of a bare close.
 * ibp_guard_disarm() forgets the fd and the deadline right after the app returns.
 *
 * The deadline is watched by a thread of this library (the watchdog), not by setitimer: arming and
 * disarming are two memory stores, not two system calls per transaction. The watchdog sleeps on a
 * futex until the deadline it saw; a transaction armed after it went to sleep has a later deadline
 * (same timeout2, later start), so it is not woken: it wakes at the old deadline, sees the new one
 * and sleeps again. It is woken (one futex call) only when an arm's deadline is earlier than its
 * wake-up time, which after an idle spell (it parks) is the first arm. The watchdog blocks every
 * signal, so the worker's threads see no timer signal at all unless a deadline really passes.
 *
 * Node/V8 use SIGSEGV for WebAssembly bounds checks (the "trap handler"): a fault that V8
 * recognises as a wasm trap is handed back to V8 (v8::TryHandleWebAssemblyTrapPosix, exported by
 * the node binary) and is not a crash.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <execinfo.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>
#include <pthread.h>
#include <linux/futex.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>

#define VISIBLE __attribute__((visibility("default")))
#define ALT_STACK_SIZE (256 * 1024)
#define MAX_FRAMES 64

typedef int v8_trap_fn(int, siginfo_t *, void *);

static const struct { int signo; const char *name; } SIGNALS[] = {
    { SIGSEGV, "SIGSEGV" }, { SIGBUS, "SIGBUS" }, { SIGABRT, "SIGABRT" }, { SIGFPE, "SIGFPE" }, { SIGILL, "SIGILL" },
};
#define NSIGNALS (sizeof SIGNALS / sizeof SIGNALS[0])

static volatile int crash_fd = -1;
static struct sigaction previous[NSIGNALS];
static int installed;
static void *alt_stack;
static v8_trap_fn *v8_trap;

static void put(const char *s) {
    size_t n = strlen(s);
    while (n > 0) {
        ssize_t w = write(crash_fd, s, n);
        if (w <= 0) {
            if (w < 0 && errno == EINTR) continue;
            return;
        }
        s += w;
        n -= (size_t)w;
    }
}

/* Unsigned number in base 10 or 16 into a static-free buffer. */
static void put_num(uintptr_t v, int hex) {
    char buf[2 + 2 * sizeof v + 1];
    char *p = buf + sizeof buf - 1;
    *p = '\0';
    do {
        unsigned d = (unsigned)(v % (hex ? 16u : 10u));
        *--p = (char)(d < 10 ? '0' + d : 'a' + d - 10);
        v /= hex ? 16u : 10u;
    } while (v != 0);
    if (hex) {
        *--p = 'x';
        *--p = '0';
    }
    put(p);
}

/* ---------------------------------------------------------------- guard state */
enum { GUARD_TIMEOUT = 0, GUARD_CRASH = 1, GUARD_HELD = 2, GUARD_KINDS = 3 };
static volatile int guard_fd = -1;
static unsigned char *guard_buf[GUARD_KINDS];
static size_t guard_len[GUARD_KINDS];
static size_t guard_cap[GUARD_KINDS];

/* The connection is a blocking socket (its wait is a recv with SO_RCVTIMEO, ibas/conn-io.ts): the
 * answer is offered without waiting (MSG_DONTWAIT; what a full window does not take is lost, as
 * before) and without SIGPIPE for a peer that left. send is async-signal-safe. */
static void put_fd(int fd, const unsigned char *s, size_t n) {
    while (n > 0) {
        ssize_t w = send(fd, s, n, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w < 0 && errno == ENOTSOCK) w = write(fd, s, n);
        if (w <= 0) {
            if (w < 0 && errno == EINTR) continue;
            return;
        }
        s += w;
        n -= (size_t)w;
    }
}

/* Write the held bytes, then the prepared answer `kind`, to the armed connection (once: the fd
 * is forgotten). */
static void guard_answer(int kind) {
    int fd = guard_fd;
    guard_fd = -1;
    if (fd < 0 || guard_len[kind] == 0) return;
    if (guard_len[GUARD_HELD] > 0) put_fd(fd, guard_buf[GUARD_HELD], guard_len[GUARD_HELD]);
    put_fd(fd, guard_buf[kind], guard_len[kind]);
}

static void on_crash(int signo, siginfo_t *si, void *uc) {
    if ((signo == SIGSEGV || signo == SIGBUS) && v8_trap != NULL && v8_trap(signo, si, uc)) return;
    int saved_errno = errno;
    guard_answer(GUARD_CRASH);
    const char *name = "signal";
    for (size_t i = 0; i < NSIGNALS; i++)
        if (SIGNALS[i].signo == signo) name = SIGNALS[i].name;

    int code = si != NULL ? si->si_code : 0;
    put("ibp_crash | signal , name[");
    put(name);
    put("] signo[");
    put_num((uintptr_t)signo, 0);
    put("] code[");
    if (code < 0) put("-");
    put_num((uintptr_t)(code < 0 ? -(long)code : code), 0);
    if (si != NULL && code > 0) { /* a fault: the address */
        put("] addr[");
        put_num((uintptr_t)si->si_addr, 1);
    } else if (si != NULL) { /* sent by a process (kill, abort, raise): who */
        put("] from[");
        put_num((uintptr_t)si->si_pid, 0);
    }
    put("] pid[");
    put_num((uintptr_t)getpid(), 0);
    put("]\n");

    void *frames[MAX_FRAMES];
    int n = backtrace(frames, MAX_FRAMES);
    put("ibp_crash | backtrace , frames[");
    put_num((uintptr_t)n, 0);
    put("]\n");
    backtrace_symbols_fd(frames, n, crash_fd);
    put("ibp_crash | end , re-raising ");
    put(name);
    put(" with the default action\n");

    /* Default action, then re-raise: the signal stays blocked until this handler returns, and a
     * returning SIGSEGV/SIGBUS/SIGILL/SIGFPE faults again anyway; either way the process dies by
     * `signo`. */
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(signo, &dfl, NULL);
    raise(signo);
    errno = saved_errno;
}

/* Install the handlers, writing reports to fd. Calling it again only changes the fd.
 * 0 = ok, -1 = failed (errno set). */
VISIBLE int ibp_crash_install(int fd) {
    if (fd < 0) {
        errno = EBADF;
        return -1;
    }
    crash_fd = fd;
    if (installed) return 0;

    /* backtrace() loads libgcc_s on first use (malloc, dlopen): do it now, not in the handler. */
    void *warm[4];
    (void)backtrace(warm, 4);
    v8_trap = (v8_trap_fn *)dlsym(RTLD_DEFAULT, "_ZN2v829TryHandleWebAssemblyTrapPosixEiP9siginfo_tPv");

    if (alt_stack == NULL) {
        alt_stack = malloc(ALT_STACK_SIZE);
        if (alt_stack == NULL) return -1;
    }
    stack_t ss;
    memset(&ss, 0, sizeof ss);
    ss.ss_sp = alt_stack;
    ss.ss_size = ALT_STACK_SIZE;
    if (sigaltstack(&ss, NULL) != 0) return -1;

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_crash;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < NSIGNALS; i++) {
        if (sigaction(SIGNALS[i].signo, &sa, &previous[i]) != 0) {
            int e = errno;
            while (i-- > 0) sigaction(SIGNALS[i].signo, &previous[i], NULL);
            errno = e;
            return -1;
        }
    }
    installed = 1;
    return 0;
}

/* Prepare answer `kind` (0 TIMEOUT, 1 CRASH, 2 HELD: written before either): a copy of `len`
 * bytes (0 clears it). Call it while not armed.
 * 0 = ok, -1 = failed (errno set). */
VISIBLE int ibp_guard_frame(int kind, const unsigned char *frame, size_t len) {
    if (kind < 0 || kind >= GUARD_KINDS) {
        errno = EINVAL;
        return -1;
    }
    if (len > guard_cap[kind]) {
        unsigned char *b = realloc(guard_buf[kind], len);
        if (b == NULL) return -1;
        guard_buf[kind] = b;
        guard_cap[kind] = len;
    }
    if (len > 0) memcpy(guard_buf[kind], frame, len);
    guard_len[kind] = len;
    return 0;
}

/* ---------------------------------------------------------------- the watchdog (tier 1) */
/* Monotonic nanoseconds (clock_gettime through the vDSO: no system call). */
static int64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

#define PARKED INT64_MAX
#define FIRING (-1)                  /* wd_deadline while the watchdog acts on a passed deadline */
static int64_t wd_deadline;          /* the armed deadline, 0 = none, FIRING (atomic) */
static int64_t wd_wake_at = PARKED;  /* when the watchdog looks next (atomic) */
static uint32_t wd_seq;              /* futex word: bumped to wake the watchdog */
static int64_t wd_last_ms = 1000;    /* the last timeout: how long an idle watchdog lingers (atomic) */
static pthread_once_t wd_once = PTHREAD_ONCE_INIT;
static int wd_error;

static void wd_wait(uint32_t seen, int64_t until) {
    if (until == PARKED) {
        syscall(SYS_futex, &wd_seq, FUTEX_WAIT_PRIVATE, seen, NULL, NULL, 0);
        return;
    }
    int64_t left = until - mono_ns();
    if (left <= 0) return;
    struct timespec ts = { (time_t)(left / 1000000000LL), (long)(left % 1000000000LL) };
    syscall(SYS_futex, &wd_seq, FUTEX_WAIT_PRIVATE, seen, &ts, NULL, 0);
}

/* The armed deadline passed: answer the client, say so in the log, end the process BY SIGALRM
 * (whatever handler Node or a library put on SIGALRM: the default action is restored first).
 * Tier 1 stays what it is in IBP, a SIGALRM: an app that set SIGALRM to SIG_IGN refuses it, and
 * tiers 2/3 of the manager end the worker. */
static void wd_fire(void) {
    struct sigaction cur;
    sigaction(SIGALRM, NULL, &cur);
    int ignored = !(cur.sa_flags & SA_SIGINFO) && cur.sa_handler == SIG_IGN;
    if (ignored) {
        if (crash_fd >= 0) {
            put("ibp_guard | tier 1 , SIGALRM: the transaction ran past timeout2 , the app ignores SIGALRM: tiers 2/3 end it , pid[");
            put_num((uintptr_t)getpid(), 0);
            put("]\n");
        }
        int64_t firing = FIRING;
        __atomic_compare_exchange_n(&wd_deadline, &firing, 0, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
        kill(getpid(), SIGALRM);
        return;
    }
    int had = guard_fd >= 0;
    guard_answer(GUARD_TIMEOUT);
    if (crash_fd >= 0) {
        put("ibp_guard | tier 1 , SIGALRM: the transaction ran past timeout2 , ");
        put(had ? "timeout answer written to the client" : "no connection armed");
        put(" , pid[");
        put_num((uintptr_t)getpid(), 0);
        put("] ending the worker\n");
    }
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(SIGALRM, &dfl, NULL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGALRM);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    raise(SIGALRM); /* to this thread, which now takes it: the default action ends the process */
    for (;;) pause();
}

static void *wd_main(void *arg) {
    (void)arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    int idle_rounds = 0;
    for (;;) {
        uint32_t seen = __atomic_load_n(&wd_seq, __ATOMIC_SEQ_CST);
        int64_t dl = __atomic_load_n(&wd_deadline, __ATOMIC_SEQ_CST);
        int64_t now = mono_ns();
        if (dl > 0 && now >= dl) {
            /* claim it: still armed with this deadline (not disarmed or re-armed meanwhile)?
             * From here the main thread cannot disarm or arm (wd_settle) until the process ends. */
            if (__atomic_compare_exchange_n(&wd_deadline, &dl, FIRING, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) wd_fire();
            continue;
        }
        if (dl < 0) dl = 0;
        int64_t until;
        if (dl != 0) {
            until = dl;
            idle_rounds = 0;
        } else {
            /* nothing armed: linger one timeout (the next arm is later than that: no wake-up), then park */
            until = idle_rounds++ == 0 ? now + __atomic_load_n(&wd_last_ms, __ATOMIC_RELAXED) * 1000000LL : PARKED;
        }
        __atomic_store_n(&wd_wake_at, until, __ATOMIC_SEQ_CST);
        if (__atomic_load_n(&wd_deadline, __ATOMIC_SEQ_CST) != dl) continue; /* armed meanwhile: look again */
        wd_wait(seen, until);
    }
    return NULL;
}

static void wd_start(void) {
    pthread_t t;
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&a, 64 * 1024);
    wd_error = pthread_create(&t, &a, wd_main, NULL);
    pthread_attr_destroy(&a);
}

/* The main thread's side of a FIRING watchdog: wait until it has acted (the process ends, or the
 * app ignores SIGALRM and the deadline is dropped), so the answers are not changed under it. */
static void wd_settle(void) {
    while (__atomic_load_n(&wd_deadline, __ATOMIC_SEQ_CST) == FIRING) {
        struct timespec ms = { 0, 1000000L };
        nanosleep(&ms, NULL);
    }
}

/* Arm: answers go to `fd` if the process dies now; the TIMEOUT answer and the end of the process
 * after `ms` milliseconds (0 = no deadline). 0 = ok, -1 = failed (errno set). */
VISIBLE int ibp_guard_arm(int fd, unsigned int ms) {
    pthread_once(&wd_once, wd_start);
    if (wd_error != 0) {
        errno = wd_error;
        return -1;
    }
    wd_settle();
    guard_fd = fd;
    if (ms == 0) {
        __atomic_store_n(&wd_deadline, 0, __ATOMIC_SEQ_CST);
        return 0;
    }
    __atomic_store_n(&wd_last_ms, (int64_t)ms, __ATOMIC_RELAXED);
    int64_t dl = mono_ns() + (int64_t)ms * 1000000LL;
    __atomic_store_n(&wd_deadline, dl, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&wd_wake_at, __ATOMIC_SEQ_CST) > dl) {
        /* the watchdog would look too late (parked, or a later deadline): wake it */
        __atomic_add_fetch(&wd_seq, 1, __ATOMIC_SEQ_CST);
        syscall(SYS_futex, &wd_seq, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    }
    return 0;
}

/* Disarm: forget the deadline and the connection (no system call). */
VISIBLE int ibp_guard_disarm(void) {
    for (;;) {
        int64_t cur = __atomic_load_n(&wd_deadline, __ATOMIC_SEQ_CST);
        if (cur == FIRING) {
            wd_settle();
            continue;
        }
        if (__atomic_compare_exchange_n(&wd_deadline, &cur, 0, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) break;
    }
    guard_fd = -1;
    return 0;
}

/* Restore the handlers that were there before ibp_crash_install. */
VISIBLE int ibp_crash_uninstall(void) {
    if (!installed) return 0;
    for (size_t i = 0; i < NSIGNALS; i++) sigaction(SIGNALS[i].signo, &previous[i], NULL);
    installed = 0;
    crash_fd = -1;
    return 0;
}

/* 1 when the handlers are installed (for status output and tests). */
VISIBLE int ibp_crash_installed(void) { return installed; }
