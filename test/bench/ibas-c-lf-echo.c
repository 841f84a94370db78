/*
 * ibas-c-lf-echo.c - the bench's model of what ibas implements: a minimal C pre-fork
 * leader-follower server that speaks ibas's binary protocol (docs/ARCHITECTURE.md §6) for an
 * echo, so that test/bench/ibas-echoclient.c -P ibp drives it and ibas with the same bytes.
 *
 *   manager   socket/bind/listen once, a SysV semaphore as the accept lock, fork W workers,
 *             print "READY <worker pids>", wait; SIGTERM/SIGINT: KILL the workers (an echo has
 *             nothing to flush, SEM_UNDO gives the lock back, and a TERM landing just before a
 *             blocking call would be lost), reap, remove the semaphore, exit. A worker dies
 *             with its manager (PR_SET_PDEATHSIG).
 *   worker    loop: take the lock (semop, SEM_UNDO) → accept4 → give the lock back → serve the
 *             connection until the peer closes: recv what is there, cut 12-byte-header frames,
 *             answer each PRE_REQUEST with a PRE_ANSWER (rc 0, nothing granted) and each REQUEST
 *             with a RESPONSE echoing its bytes (KEEPALIVE → KEEPALIVE_ACK, PUSH_FILE read and
 *             dropped); the answers of one recv leave in one send, like ibas's pipelined answers.
 *             Anything malformed closes the connection.
 *
 * What it leaves out on purpose (the model's floor, stated in docs/bench/ibas.md): no .so call
 * (the echo is a memcpy), no scoreboard, no transaction log line, no deadlines.
 *
 * usage: ibas-c-lf-echo IP PORT [WORKERS=2]
 * Build: gcc -O2 -o ibas-c-lf-echo ibas-c-lf-echo.c   (npm run bench:ibas does it)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/prctl.h>
#include <sys/sem.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

enum { T_PRE_REQUEST = 0x01, T_PRE_ANSWER = 0x02, T_PUSH_FILE = 0x03, T_REQUEST = 0x04, T_RESPONSE = 0x06, T_KEEPALIVE = 0x07, T_KEEPALIVE_ACK = 0x08 };
#define HDR 12
#define MAX_BODY (16u * 1024u * 1024u)

static volatile sig_atomic_t stopping = 0;
static int workers_n = 2;

static void on_stop(int sig)
{
    (void)sig;
    stopping = 1;
}

/* a growable byte buffer */
typedef struct {
    unsigned char *p;
    size_t len, cap;
} buf_t;

static int reserve(buf_t *b, size_t extra)
{
    if (b->len + extra <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 65536;
    while (cap < b->len + extra)
        cap *= 2;
    unsigned char *q = realloc(b->p, cap);
    if (!q)
        return -1;
    b->p = q;
    b->cap = cap;
    return 0;
}

static void put_u16(unsigned char *p, unsigned v) { p[0] = (unsigned char)(v >> 8); p[1] = (unsigned char)v; }
static void put_u32(unsigned char *p, uint32_t v) { p[0] = (unsigned char)(v >> 24); p[1] = (unsigned char)(v >> 16); p[2] = (unsigned char)(v >> 8); p[3] = (unsigned char)v; }
static uint32_t get_u32(const unsigned char *p) { return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3]; }

/* append one frame header + room for `body` bytes; returns where the body goes */
static unsigned char *frame(buf_t *out, int type, size_t body)
{
    if (reserve(out, HDR + body))
        return NULL;
    unsigned char *h = out->p + out->len;
    memset(h, 0, HDR);
    h[0] = 'I';
    h[1] = 'B';
    h[2] = 1;
    h[3] = (unsigned char)type;
    put_u32(h + 8, (uint32_t)body);
    out->len += HDR + body;
    return h + HDR;
}

static int send_all(int fd, const unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* answer every whole frame in `in`; keeps a cut last frame for the next recv. -1: close */
static int answer(buf_t *in, buf_t *out, int *in_tx)
{
    size_t at = 0;
    while (in->len - at >= HDR) {
        const unsigned char *h = in->p + at;
        uint32_t len = get_u32(h + 8);
        if (h[0] != 'I' || h[1] != 'B' || h[2] != 1 || h[4] != 0 || len > MAX_BODY)
            return -1;
        if (in->len - at < HDR + (size_t)len)
            break;
        const unsigned char *body = h + HDR;
        unsigned char *b;
        switch (h[3]) {
        case T_PRE_REQUEST:
            if (*in_tx)
                return -1;
            *in_tx = 1;
            if (!(b = frame(out, T_PRE_ANSWER, 10)))
                return -1;
            memset(b, 0, 10); /* rc 0, load, nothing granted, no message */
            put_u16(b + 4, 1);
            put_u16(b + 6, (unsigned)workers_n);
            break;
        case T_PUSH_FILE:
            if (!*in_tx)
                return -1;
            break;
        case T_REQUEST:
            if (!*in_tx)
                return -1;
            *in_tx = 0;
            if (!(b = frame(out, T_RESPONSE, 24 + len)))
                return -1;
            body = in->p + at + HDR; /* frame() may have moved `out`, never `in` */
            memset(b, 0, 24);        /* rc, app rc, load, no files, app us, no message */
            put_u16(b + 8, 1);
            put_u16(b + 10, (unsigned)workers_n);
            put_u32(b + 20, len);
            memcpy(b + 24, body, len);
            break;
        case T_KEEPALIVE:
            if (*in_tx || !(b = frame(out, T_KEEPALIVE_ACK, 4)))
                return -1;
            put_u16(b, 1);
            put_u16(b + 2, (unsigned)workers_n);
            break;
        default:
            return -1;
        }
        at += HDR + len;
    }
    memmove(in->p, in->p + at, in->len - at);
    in->len -= at;
    return 0;
}

static void serve(int fd, buf_t *in, buf_t *out)
{
    int in_tx = 0;
    in->len = 0;
    for (;;) {
        if (reserve(in, 65536))
            return;
        ssize_t k = recv(fd, in->p + in->len, in->cap - in->len, 0);
        if (k < 0 && errno == EINTR) {
            if (stopping)
                return;
            continue;
        }
        if (k <= 0)
            return;
        in->len += (size_t)k;
        out->len = 0;
        if (answer(in, out, &in_tx) < 0)
            return;
        if (out->len && send_all(fd, out->p, out->len) < 0)
            return;
    }
}

static int lock_op(int sem, int delta)
{
    struct sembuf op = { 0, (short)delta, SEM_UNDO };
    while (semop(sem, &op, 1) < 0) {
        if (errno != EINTR || stopping)
            return -1;
    }
    return 0;
}

static void worker(int lfd, int sem, pid_t manager)
{
    buf_t in = { 0 }, out = { 0 };
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != manager)
        _exit(0);
    while (!stopping) {
        if (lock_op(sem, -1) < 0)
            break;
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        lock_op(sem, 1);
        if (fd < 0)
            continue;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        serve(fd, &in, &out);
        close(fd);
    }
    _exit(0);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s IP PORT [WORKERS]\n", argv[0]);
        return 2;
    }
    workers_n = argc > 3 ? atoi(argv[3]) : 2;
    if (workers_n < 1 || workers_n > 64)
        workers_n = 2;
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[2])) };
    if (inet_pton(AF_INET, argv[1], &a.sin_addr) != 1) {
        fprintf(stderr, "bad IPv4 address %s\n", argv[1]);
        return 2;
    }
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof a) < 0 || listen(lfd, 1024) < 0) {
        perror("listen");
        return 1;
    }
    int sem = semget(IPC_PRIVATE, 1, 0600 | IPC_CREAT);
    if (sem < 0 || semctl(sem, 0, SETVAL, 1) < 0) {
        perror("semget");
        return 1;
    }
    struct sigaction sa = { 0 };
    sa.sa_handler = on_stop; /* no SA_RESTART: blocking calls return EINTR */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    pid_t pids[64];
    pid_t self = getpid();
    for (int i = 0; i < workers_n; i++) {
        pids[i] = fork();
        if (pids[i] == 0)
            worker(lfd, sem, self);
    }
    printf("READY");
    for (int i = 0; i < workers_n; i++)
        printf(" %d", (int)pids[i]);
    printf("\n");
    fflush(stdout);
    while (!stopping)
        pause();
    for (int i = 0; i < workers_n; i++)
        kill(pids[i], SIGKILL);
    for (int i = 0; i < workers_n; i++)
        waitpid(pids[i], NULL, 0);
    semctl(sem, 0, IPC_RMID);
    return 0;
}
