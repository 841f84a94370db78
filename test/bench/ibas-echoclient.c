/*
 * echoclient.c - bounded request/response load generator for the bench anchors.
 *
 * "Concurrency" C = C connections, each with exactly one transaction in flight
 * (closed loop, like wrk).  The connections are driven by T threads (default
 * min(C,2)), each running its own epoll loop over its share of them, so the
 * client costs about as much CPU per transaction as wrk does (this matters: on
 * a 2-core box the load generator shares the cores with the server).
 * Connection i belongs to thread i % T, and the main thread opens connections
 * 0..C-1 in that order before the threads start: a pre-fork server with W
 * workers (FIFO accept queue) then serves connections 0..W-1 first, which sit
 * on different client threads, so "2 of 16 served" runs are not throttled by
 * one client thread (that made such runs bimodal).
 *
 * Transaction = send one request, wait for the complete response.
 *
 * IBP-TS copy (test/bench/ibas-echoclient.c): the bench-anchors' echoclient.c with one protocol
 * added, "-P ibp" = IBP-TS's own binary protocol (docs/ARCHITECTURE.md §6): each transaction
 * writes PRE_REQUEST + REQUEST in one send (pipelined), and reads PRE_ANSWER + RESPONSE; both
 * result codes must be 0 and the response bytes equal the request. "-u" names the app
 * (default ibp_test_echo). Everything else is unchanged, so ibas and the anchors are measured
 * by the same code.
 * Protocols:
 *   tdhb : 4-digit zero-padded decimal length header + body (the framing of
 *          tcpdaemon's test_callback_tdhb_echo.c); the server echoes the frame.
 *   http : HTTP/1.1 "POST /echo" with a Content-Length body; expects 200 and a
 *          Content-Length body equal to the request body (nginx returns a fixed
 *          body made of the same bytes, the Node server echoes the body).
 * Connection modes:
 *   short: connect, 1 transaction, close (latency includes the connect).
 *          http short sends "Connection: close" so the server closes first.
 *          -F: the client half-closes right after the request (its end arrives with
 *          the call: a server never waits on the connection; test/ibas/signal-busy).
 *   long : connect once, then transactions back-to-back on that connection
 *          (latency = first byte written .. last byte of the response read).
 *
 * Bounded: the run stops at warmup+duration seconds (every wait is bounded by
 * that deadline) or after -N transactions in total, whichever comes first.
 * Transactions started during the warm-up are not recorded; in-flight ones at
 * the deadline are dropped.  "served" = connections (slots) that completed at
 * least one measured transaction (a pre-fork server with W workers serves only
 * W long connections at a time, so e.g. served=2/16 is a real result).
 *
 * Output: one line starting with "RESULT " of key=value pairs (latencies in us).
 *
 * Build: gcc -O2 -pthread -o echoclient echoclient.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { PROTO_TDHB = 0, PROTO_HTTP = 1, PROTO_IBP = 2 };
enum { ST_IDLE = 0, ST_CONNECTING, ST_SENDING, ST_RECEIVING, ST_RETRY };

static struct sockaddr_in g_addr;
static const char *g_host = "127.0.0.1";
static int g_port = 9527;
static int g_conc = 1;
static int g_threads = 0;
static int g_long = 0;
static int g_proto = PROTO_TDHB;
static int g_msg = 100;
static int g_linger0 = 0;
static int g_halfclose = 0; /* -F: short mode ends its writing side with the request (FIN with the call) */
static int g_verify = 1;
static double g_duration = 10.0;
static double g_warmup = 1.0;
static long g_max_txn = 20000000L;
static const char *g_label = "-";
static const char *g_uri = "/echo";

static uint64_t g_t_warm_end, g_t_end; /* CLOCK_MONOTONIC ns */
static atomic_long g_total;            /* all completed transactions (for -N) */
static char *g_req;
static size_t g_req_len;
static char *g_body;

#define RBUF_SIZE 16384

typedef struct {
    int fd;
    int state;
    uint64_t t0;
    uint64_t retry_at;
    size_t sent;
    size_t have, need, hdr_end;
    long body_len;
    long ok;
    char *rbuf;
} conn_t;

typedef struct {
    pthread_t th;
    int id;
    int ep;
    conn_t **conns; /* this thread's connections: i % T == id */
    int nconns;
    uint64_t *lat; /* ns, measured window only */
    size_t n, cap;
    long ok, ok_all;
    long err_connect, err_io, err_proto, reconnects;
} worker_t;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void record(worker_t *w, uint64_t v)
{
    if (w->n == w->cap) {
        size_t nc = w->cap ? w->cap * 2 : 65536;
        uint64_t *p = realloc(w->lat, nc * sizeof *p);
        if (!p)
            return;
        w->lat = p;
        w->cap = nc;
    }
    w->lat[w->n++] = v;
}

static void conn_close(conn_t *c)
{
    if (c->fd >= 0)
        close(c->fd); /* also removes it from the epoll set */
    c->fd = -1;
    c->state = ST_IDLE;
}

static void set_events(worker_t *w, conn_t *c, uint32_t ev, int add)
{
    struct epoll_event e;
    e.events = ev;
    e.data.ptr = c;
    epoll_ctl(w->ep, add ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, c->fd, &e);
}

static void fail(worker_t *w, conn_t *c, int kind)
{
    if (kind == 1)
        w->err_connect++;
    else if (kind == 2)
        w->err_io++;
    else
        w->err_proto++;
    if (g_long && kind != 1 && c->fd >= 0)
        w->reconnects++; /* an established long connection was lost */
    conn_close(c);
    c->state = ST_RETRY;
    c->retry_at = now_ns() + 1000000ull; /* 1 ms back-off: never spin on errors */
}

static void start_txn(worker_t *w, conn_t *c);

/* try to write the rest of the request; returns 0 when all is written */
static int do_send(worker_t *w, conn_t *c)
{
    while (c->sent < g_req_len) {
        ssize_t k = send(c->fd, g_req + c->sent, g_req_len - c->sent, MSG_NOSIGNAL);
        if (k > 0) {
            c->sent += (size_t)k;
            continue;
        }
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 1;
        fail(w, c, 2);
        return -1;
    }
    if (g_halfclose && !g_long) shutdown(c->fd, SHUT_WR);
    return 0;
}

static long find_content_length(const char *b, size_t hdr_end)
{
    for (size_t i = 0; i + 15 < hdr_end; i++) {
        if ((i == 0 || b[i - 1] == '\n') && strncasecmp(b + i, "content-length:", 15) == 0) {
            size_t j = i + 15;
            while (j < hdr_end && (b[j] == ' ' || b[j] == '\t'))
                j++;
            long v = 0;
            int digits = 0;
            while (j < hdr_end && b[j] >= '0' && b[j] <= '9') {
                v = v * 10 + (b[j] - '0');
                j++;
                digits++;
            }
            return digits ? v : -1;
        }
    }
    return -1;
}

static void complete_txn(worker_t *w, conn_t *c)
{
    uint64_t t1 = now_ns();
    w->ok_all++;
    atomic_fetch_add_explicit(&g_total, 1, memory_order_relaxed);
    if (c->t0 >= g_t_warm_end && t1 <= g_t_end) {
        record(w, t1 - c->t0);
        w->ok++;
        c->ok++;
    }
    if (!g_long)
        conn_close(c);
    else
        c->state = ST_IDLE;
    if (t1 < g_t_end && atomic_load_explicit(&g_total, memory_order_relaxed) < g_max_txn)
        start_txn(w, c);
}

/* read what is there; on a complete response finish the transaction */
static void do_recv(worker_t *w, conn_t *c)
{
    for (;;) {
        ssize_t k = recv(c->fd, c->rbuf + c->have, RBUF_SIZE - c->have, 0);
        if (k > 0) {
            c->have += (size_t)k;
            if (!c->need) {
                if (g_proto == PROTO_IBP) {
                    /* PRE_ANSWER frame, then RESPONSE frame (12-byte headers, u32 BE length at 8) */
                    if (c->have >= 12) {
                        const unsigned char *b = (const unsigned char *)c->rbuf;
                        size_t l1 = ((size_t)b[8] << 24) | ((size_t)b[9] << 16) | ((size_t)b[10] << 8) | b[11];
                        if (b[0] != 'I' || b[1] != 'B' || b[3] != 0x02 || l1 < 10 || 12 + l1 + 12 > RBUF_SIZE) {
                            fail(w, c, 3);
                            return;
                        }
                        size_t r0 = 12 + l1;
                        if (c->have >= r0 + 12) {
                            const unsigned char *h = b + r0;
                            size_t l2 = ((size_t)h[8] << 24) | ((size_t)h[9] << 16) | ((size_t)h[10] << 8) | h[11];
                            if (h[3] != 0x06 || l2 < 24 || r0 + 12 + l2 > RBUF_SIZE || b[12] | b[13] | b[14] | b[15]) {
                                fail(w, c, 3);
                                return;
                            }
                            c->need = r0 + 12 + l2;
                            if (c->have >= c->need) {
                                const unsigned char *r = h + 12;
                                size_t ml = ((size_t)r[18] << 8) | r[19];
                                size_t off = 20 + ml;
                                if (r[0] | r[1] | r[2] | r[3] || off + 4 > l2) {
                                    fail(w, c, 3);
                                    return;
                                }
                                c->body_len = (long)(((size_t)r[off] << 24) | ((size_t)r[off + 1] << 16) | ((size_t)r[off + 2] << 8) | r[off + 3]);
                                c->hdr_end = r0 + 12 + off + 4;
                                if (c->hdr_end + (size_t)c->body_len != c->need) {
                                    fail(w, c, 3);
                                    return;
                                }
                            } else {
                                c->need = 0; /* parse again once the whole response is in */
                            }
                        }
                    }
                } else if (g_proto == PROTO_TDHB) {
                    if (c->have >= 4) {
                        char h[5];
                        memcpy(h, c->rbuf, 4);
                        h[4] = 0;
                        char *e;
                        long L = strtol(h, &e, 10);
                        if (*e || L < 0 || L > RBUF_SIZE - 4) {
                            fail(w, c, 3);
                            return;
                        }
                        c->hdr_end = 4;
                        c->body_len = L;
                        c->need = 4 + (size_t)L;
                    }
                } else {
                    char *p = memmem(c->rbuf, c->have, "\r\n\r\n", 4);
                    if (p) {
                        c->hdr_end = (size_t)(p - c->rbuf) + 4;
                        if (c->hdr_end < 12 || memcmp(c->rbuf + 8, " 200", 4) != 0) {
                            fail(w, c, 3);
                            return;
                        }
                        c->body_len = find_content_length(c->rbuf, c->hdr_end);
                        if (c->body_len < 0 || (size_t)c->body_len > RBUF_SIZE - c->hdr_end) {
                            fail(w, c, 3);
                            return;
                        }
                        c->need = c->hdr_end + (size_t)c->body_len;
                    }
                }
            }
            if (c->need && c->have >= c->need) {
                if (c->have > c->need ||
                    (g_verify && (c->body_len != g_msg ||
                                  memcmp(c->rbuf + c->hdr_end, g_body, (size_t)g_msg) != 0))) {
                    fail(w, c, 3);
                    return;
                }
                complete_txn(w, c);
                return;
            }
            if (c->have == RBUF_SIZE) {
                fail(w, c, 3);
                return;
            }
            continue;
        }
        if (k == 0) {
            fail(w, c, 2); /* peer closed before the whole response */
            return;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return; /* wait for EPOLLIN */
        fail(w, c, 2);
        return;
    }
}

static void after_connected(worker_t *w, conn_t *c, int registered)
{
    c->state = ST_SENDING;
    int r = do_send(w, c);
    if (r < 0)
        return;
    if (r == 0) {
        c->state = ST_RECEIVING;
        set_events(w, c, EPOLLIN, !registered);
    } else {
        set_events(w, c, EPOLLOUT, !registered);
    }
}

static void start_txn(worker_t *w, conn_t *c)
{
    c->sent = c->have = c->need = c->hdr_end = 0;
    c->body_len = -1;
    c->t0 = now_ns();
    if (c->fd < 0) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            fail(w, c, 1);
            return;
        }
        c->fd = fd;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (g_linger0) {
            struct linger lg = { 1, 0 }; /* close() sends RST: no TIME_WAIT on the client */
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        }
        if (connect(fd, (struct sockaddr *)&g_addr, sizeof g_addr) == 0) {
            after_connected(w, c, 0);
        } else if (errno == EINPROGRESS) {
            c->state = ST_CONNECTING;
            set_events(w, c, EPOLLOUT, 1);
        } else {
            c->fd = fd;
            fail(w, c, 1);
        }
        return;
    }
    /* long connection: socket is registered for EPOLLIN already */
    c->state = ST_SENDING;
    int r = do_send(w, c);
    if (r < 0)
        return;
    if (r == 0)
        c->state = ST_RECEIVING;
    else
        set_events(w, c, EPOLLIN | EPOLLOUT, 0);
}

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    struct epoll_event evs[256];
    for (;;) {
        uint64_t now = now_ns();
        if (now >= g_t_end || atomic_load_explicit(&g_total, memory_order_relaxed) >= g_max_txn)
            break;
        int pending_retry = 0;
        for (int i = 0; i < w->nconns; i++) {
            conn_t *c = w->conns[i];
            if (c->state == ST_RETRY) {
                if (c->retry_at <= now) {
                    c->state = ST_IDLE;
                    start_txn(w, c);
                } else {
                    pending_retry = 1;
                }
            }
        }
        uint64_t left_ms = (g_t_end - now) / 1000000ull + 1;
        int timeout = pending_retry ? 1 : (left_ms > 1000 ? 1000 : (int)left_ms);
        int n = epoll_wait(w->ep, evs, 256, timeout);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            perror("epoll_wait");
            break;
        }
        for (int i = 0; i < n; i++) {
            conn_t *c = evs[i].data.ptr;
            uint32_t ev = evs[i].events;
            if (c->fd < 0)
                continue;
            switch (c->state) {
            case ST_CONNECTING: {
                int err = 0;
                socklen_t l = sizeof err;
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
                if (err || (ev & (EPOLLERR | EPOLLHUP))) {
                    fail(w, c, 1);
                    break;
                }
                after_connected(w, c, 1);
                break;
            }
            case ST_SENDING: {
                int r = do_send(w, c);
                if (r == 0) {
                    c->state = ST_RECEIVING;
                    set_events(w, c, EPOLLIN, 0);
                }
                break;
            }
            case ST_RECEIVING:
                do_recv(w, c);
                break;
            default:
                break;
            }
        }
    }
    return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct(const uint64_t *v, size_t n, double p)
{
    if (!n)
        return -1;
    size_t idx = (size_t)(p * (double)n);
    if (idx >= n)
        idx = n - 1;
    return (double)v[idx] / 1000.0; /* us */
}

static void usage(const char *argv0)
{
    fprintf(stderr,
            "usage: %s [-H host] [-p port] [-P tdhb|http] [-m short|long] [-c conc]\n"
            "          [-t threads] [-d seconds] [-w warmup_seconds] [-s body_bytes]\n"
            "          [-N max_txn] [-L (SO_LINGER 0 on close)] [-F (short: half-close after the request)]\n"
            "          [-n (no verification)] [-l label]\n"
            "          [-u uri (http; default /echo)]\n",
            argv0);
}

int main(int argc, char **argv)
{
    int opt;
    while ((opt = getopt(argc, argv, "H:p:P:m:c:t:d:w:s:N:LFnl:u:h")) != -1) {
        switch (opt) {
        case 'H': g_host = optarg; break;
        case 'p': g_port = atoi(optarg); break;
        case 'P':
            if (!strcmp(optarg, "ibp")) g_proto = PROTO_IBP;
            else if (!strcmp(optarg, "tdhb")) g_proto = PROTO_TDHB;
            else if (!strcmp(optarg, "http")) g_proto = PROTO_HTTP;
            else { usage(argv[0]); return 2; }
            break;
        case 'm':
            if (!strcmp(optarg, "short")) g_long = 0;
            else if (!strcmp(optarg, "long")) g_long = 1;
            else { usage(argv[0]); return 2; }
            break;
        case 'c': g_conc = atoi(optarg); break;
        case 't': g_threads = atoi(optarg); break;
        case 'd': g_duration = atof(optarg); break;
        case 'w': g_warmup = atof(optarg); break;
        case 's': g_msg = atoi(optarg); break;
        case 'N': g_max_txn = atol(optarg); break;
        case 'L': g_linger0 = 1; break;
        case 'F': g_halfclose = 1; break;
        case 'n': g_verify = 0; break;
        case 'l': g_label = optarg; break;
        case 'u': g_uri = optarg; break;
        default: usage(argv[0]); return 2;
        }
    }
    if (g_threads <= 0)
        g_threads = g_conc < 2 ? g_conc : 2;
    if (g_threads > g_conc)
        g_threads = g_conc;
    if (g_conc < 1 || g_conc > 10000 || g_duration <= 0 || g_duration > 3600 || g_warmup < 0 ||
        g_warmup > 600 || g_msg < 1 || g_msg > 9999 || g_max_txn < 1) {
        usage(argv[0]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);

    memset(&g_addr, 0, sizeof g_addr);
    g_addr.sin_family = AF_INET;
    g_addr.sin_port = htons((uint16_t)g_port);
    if (inet_pton(AF_INET, g_host, &g_addr.sin_addr) != 1) {
        fprintf(stderr, "bad IPv4 address %s\n", g_host);
        return 2;
    }

    g_body = malloc((size_t)g_msg);
    for (int i = 0; i < g_msg; i++)
        g_body[i] = (char)('a' + i % 26);
    g_req = malloc((size_t)g_msg + 512);
    if (g_proto == PROTO_IBP) {
        /* PRE_REQUEST: flags 0, no files, timeout 0, node "bench", app, journal "" ; then REQUEST */
        const char *app = g_uri[0] == '/' ? "ibp_test_echo" : g_uri;
        size_t al = strlen(app);
        unsigned char *q = (unsigned char *)g_req;
        size_t body = 8 + 1 + 5 + 1 + al + 1;
        memcpy(q, "IB\x01\x01\0\0\0\0", 8);
        q[8] = (unsigned char)(body >> 24); q[9] = (unsigned char)(body >> 16); q[10] = (unsigned char)(body >> 8); q[11] = (unsigned char)body;
        size_t o = 12;
        memset(q + o, 0, 8); o += 8;
        q[o++] = 5; memcpy(q + o, "bench", 5); o += 5;
        q[o++] = (unsigned char)al; memcpy(q + o, app, al); o += al;
        q[o++] = 0;
        memcpy(q + o, "IB\x01\x04\0\0\0\0", 8);
        q[o + 8] = (unsigned char)((unsigned)g_msg >> 24); q[o + 9] = (unsigned char)((unsigned)g_msg >> 16); q[o + 10] = (unsigned char)((unsigned)g_msg >> 8); q[o + 11] = (unsigned char)g_msg;
        g_req_len = o + 12;
    } else if (g_proto == PROTO_TDHB) {
        g_req_len = (size_t)sprintf(g_req, "%04d", g_msg);
    } else {
        g_req_len = (size_t)sprintf(g_req,
                                    "POST %s HTTP/1.1\r\nHost: %s:%d\r\n"
                                    "Content-Type: application/octet-stream\r\n"
                                    "Content-Length: %d\r\n%s\r\n",
                                    g_uri, g_host, g_port, g_msg, g_long ? "" : "Connection: close\r\n");
    }
    memcpy(g_req + g_req_len, g_body, (size_t)g_msg);
    g_req_len += (size_t)g_msg;

    conn_t *conns = calloc((size_t)g_conc, sizeof *conns);
    worker_t *ws = calloc((size_t)g_threads, sizeof *ws);
    if (!conns || !ws) {
        perror("calloc");
        return 1;
    }
    for (int i = 0; i < g_conc; i++) {
        conns[i].fd = -1;
        conns[i].rbuf = malloc(RBUF_SIZE);
        if (!conns[i].rbuf) {
            perror("malloc");
            return 1;
        }
    }
    /* connection i -> thread i % T */
    for (int t = 0; t < g_threads; t++) {
        ws[t].id = t;
        ws[t].ep = epoll_create1(EPOLL_CLOEXEC);
        ws[t].conns = calloc((size_t)(g_conc / g_threads + 1), sizeof(conn_t *));
        if (ws[t].ep < 0 || !ws[t].conns) {
            perror("epoll_create1/calloc");
            return 1;
        }
    }
    for (int i = 0; i < g_conc; i++) {
        worker_t *w = &ws[i % g_threads];
        w->conns[w->nconns++] = &conns[i];
    }

    uint64_t t_start = now_ns();
    g_t_warm_end = t_start + (uint64_t)(g_warmup * 1e9);
    g_t_end = g_t_warm_end + (uint64_t)(g_duration * 1e9);
    atomic_init(&g_total, 0);

    /* open the connections in index order (see the header comment); no thread
     * runs yet, so touching the owners' epoll sets and counters is safe */
    for (int i = 0; i < g_conc; i++)
        start_txn(&ws[i % g_threads], &conns[i]);

    for (int t = 0; t < g_threads; t++) {
        if (pthread_create(&ws[t].th, NULL, worker_main, &ws[t]) != 0) {
            perror("pthread_create");
            return 1;
        }
    }
    for (int t = 0; t < g_threads; t++)
        pthread_join(ws[t].th, NULL);
    uint64_t t_done = now_ns();
    for (int i = 0; i < g_conc; i++)
        conn_close(&conns[i]);
    for (int t = 0; t < g_threads; t++)
        close(ws[t].ep);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu_s = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                   (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    double wall_s = (double)(t_done - t_start) / 1e9;

    size_t total = 0;
    long ok = 0, errc = 0, erri = 0, errp = 0, rec = 0, served = 0, minc = -1, maxc = 0;
    for (int t = 0; t < g_threads; t++) {
        total += ws[t].n;
        ok += ws[t].ok;
        errc += ws[t].err_connect;
        erri += ws[t].err_io;
        errp += ws[t].err_proto;
        rec += ws[t].reconnects;
    }
    for (int i = 0; i < g_conc; i++) {
        if (conns[i].ok > 0)
            served++;
        if (minc < 0 || conns[i].ok < minc)
            minc = conns[i].ok;
        if (conns[i].ok > maxc)
            maxc = conns[i].ok;
    }
    uint64_t *all = malloc((total ? total : 1) * sizeof *all);
    size_t k = 0;
    for (int t = 0; t < g_threads; t++) {
        if (ws[t].n) {
            memcpy(all + k, ws[t].lat, ws[t].n * sizeof *all);
            k += ws[t].n;
        }
    }
    qsort(all, k, sizeof *all, cmp_u64);
    double mean = 0;
    for (size_t i = 0; i < k; i++)
        mean += (double)all[i];
    mean = k ? mean / (double)k / 1000.0 : -1;

    /* the measured window is g_duration unless the -N bound stopped the run early */
    double window = g_duration;
    double elapsed = (double)(t_done - g_t_warm_end) / 1e9;
    if (elapsed > 0 && elapsed < window)
        window = elapsed;

    printf("RESULT label=%s proto=%s mode=%s conc=%d threads=%d msg=%d dur_s=%.3f txn=%ld tps=%.1f "
           "p50_us=%.1f p90_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f mean_us=%.1f "
           "err_connect=%ld err_io=%ld err_proto=%ld reconnects=%ld served=%ld/%d "
           "min_conn_txn=%ld max_conn_txn=%ld linger0=%d cpu_s=%.2f wall_s=%.2f\n",
           g_label, g_proto == PROTO_TDHB ? "tdhb" : g_proto == PROTO_IBP ? "ibp" : "http", g_long ? "long" : "short", g_conc,
           g_threads, g_msg, window, ok, (double)ok / window, pct(all, k, 0.50), pct(all, k, 0.90),
           pct(all, k, 0.99), pct(all, k, 0.999), k ? (double)all[k - 1] / 1000.0 : -1.0, mean,
           errc, erri, errp, rec, served, g_conc, minc, maxc, g_linger0, cpu_s, wall_s);
    fflush(stdout);
    return 0;
}
