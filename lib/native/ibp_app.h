/*
 * ibp_app.h: the C ABI between an IBP-TS transaction server (ibas) and an app package (.so).
 *
 * An app is a shared library exporting well-known symbols (the table below, mirrored in
 * ibas/app-abi.ts). Only `somain` is required:
 *
 *   symbol                       required  when the host calls it
 *   ---------------------------  --------  -----------------------------------------------------
 *   int somain(ibp_app_ctx *)    yes       once per transaction (IBP_APP_PHASE_MAIN)
 *   int soinit(ibp_app_ctx *)    no        once after the worker loads the .so; non-zero refuses
 *                                          the load (IBP_ERR_APP_LOAD), the .so is unloaded
 *   int soclean(ibp_app_ctx *)   no        once before the worker unloads the .so (evicted by the
 *                                          LRU, replaced on disk, worker exit); result ignored
 *   int socommit(ibp_app_ctx *)  no        two-phase commit: after a `somain` that prepared, on
 *   int sorollback(ibp_app_ctx *)no        the same connection, the client's decision
 *   const unsigned               no        the ABI version the app was built against; set it
 *     ibp_app_abi_version                  with IBP_APP_DECLARE(); a different major is refused
 *
 * Return code of every entry point: 0 (IBP_APP_OK) = success; anything else is an app error that
 * ibas passes to the client as the transaction's result code, together with whatever response
 * the app wrote.
 *
 * Threading and lifetime: the host calls an app from the worker's main thread, one call at a
 * time. Every pointer in the context (request bytes, strings, file names) is valid only during
 * the call: copy what you keep. The response buffer belongs to the host: grow it only through
 * rsp_reserve/rsp_append, never free() or realloc() it yourself.
 *
 * Signals: the host arms alarm(2) at the app's timeout2 before calling somain (tier 1 of IBP's
 * three-tier timeouts) and installs crash handlers (SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL)
 * that log a backtrace and let the worker die. Do not install handlers for these signals nor
 * for SIGALRM; an app that must block signals restores the mask before it returns.
 *
 * Stability: existing fields of ibp_app_ctx never move; a new field takes a `reserved` slot or
 * goes after it. An incompatible change bumps IBP_APP_ABI_VERSION; the host refuses an app whose
 * ibp_app_abi_version differs. ctx->ctx_size tells an app built against a newer header which
 * fields this host fills.
 *
 * The same API in TypeScript (an app package that is an ES module, `--bin name.mjs`) is
 * `AppContext` / `AppModule` of lib/app/api.ts (`import type { AppContext } from 'ibp-ts/app'`);
 * lib/app/context-table.ts is the ONE table both are checked against (test/lib/app-api.test.ts).
 *
 * Build: gcc -O2 -g -fPIC -shared -I<ibp-ts>/lib/native -o my_app.so my_app.c
 * (scripts/build-apps.sh does this for ibas/apps/ and test/fixtures/apps/ → build/apps/).
 */
#ifndef IBP_APP_H
#define IBP_APP_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

/** The ABI version of this header. Bumped only on an incompatible change. */
#define IBP_APP_ABI_VERSION 1u

/** Most attached files each way (request files, response files) in one transaction. */
#define IBP_APP_MAX_FILES 64
/** Longest attached file name in bytes, without the terminating NUL. */
#define IBP_APP_FILE_NAME_MAX 255

/** Success. Any other value is an app error passed to the client. */
#define IBP_APP_OK 0

/** Levels of ctx->log. */
#define IBP_APP_LOG_DEBUG 1
#define IBP_APP_LOG_INFO 2
#define IBP_APP_LOG_WARN 3
#define IBP_APP_LOG_ERROR 4
/** Bytes of log lines kept per call. */
#define IBP_APP_LOG_MAX 65536

/** Why the host is calling (ctx->phase). */
#define IBP_APP_PHASE_INIT 1u     /* soinit */
#define IBP_APP_PHASE_MAIN 2u     /* somain */
#define IBP_APP_PHASE_COMMIT 3u   /* socommit */
#define IBP_APP_PHASE_ROLLBACK 4u /* sorollback */
#define IBP_APP_PHASE_CLEAN 5u    /* soclean */

typedef struct ibp_app_ctx ibp_app_ctx;

struct ibp_app_ctx {
    /* ---- identification (host) ---- */
    uint32_t abi_version;  /* IBP_APP_ABI_VERSION of the host */
    uint32_t ctx_size;     /* sizeof(ibp_app_ctx) as the host was built */
    uint32_t phase;        /* IBP_APP_PHASE_* */
    uint32_t reserved0;

    /* ---- request (read only) ---- */
    const unsigned char *req; /* request bytes (not NUL-terminated); NULL when req_len is 0 */
    size_t req_len;

    /* ---- response ---- */
    unsigned char *rsp;    /* response bytes written so far: rsp[0 .. rsp_len) */
    size_t rsp_len;        /* the app may set it directly (<= rsp_cap) after writing into rsp */
    size_t rsp_cap;        /* bytes available at rsp */
    /* Make room for `extra` more bytes after rsp_len (rsp may move). 0 = ok, -1 = out of memory. */
    int (*rsp_reserve)(ibp_app_ctx *ctx, size_t extra);
    /* Append len bytes to the response. 0 = ok, -1 = out of memory. */
    int (*rsp_append)(ibp_app_ctx *ctx, const void *data, size_t len);

    /* ---- attached files ---- */
    const char *file_dir;           /* the folder of attached files: $IBP_HOME/file */
    uint32_t req_file_count;        /* request files received with this transaction */
    uint32_t rsp_file_count;        /* response files added so far (read only: use rsp_file_add) */
    const char *const *req_files;   /* req_file_count plain names, each in file_dir */
    /* Send file_dir/name back with the response. The app creates the file first. `name` is a
     * plain name (no '/', no "..", 1..IBP_APP_FILE_NAME_MAX bytes). 0 = ok, -1 = refused (bad
     * name, more than IBP_APP_MAX_FILES, or the same name twice). */
    int (*rsp_file_add)(ibp_app_ctx *ctx, const char *name);

    /* ---- context of the transaction ---- */
    const char *this_node;   /* the server node */
    const char *app;         /* the transaction (app) code */
    const char *client_node; /* the calling node ("" when unknown) */
    const char *client_ip;   /* the client's address */
    uint32_t client_port;
    uint32_t worker_index;   /* the worker's slot in the pool */
    const char *journal;     /* the transaction's journal number ("" when none) */
    uint32_t timeout_ms;     /* client timeout T of the app */
    uint32_t timeout2_ms;    /* server timeout: the worker's alarm; TERM at 1.5x, KILL at 2x */

    /* ---- host private ---- */
    void *host;

    /* ---- send-ahead, config space, log (took 5 of the 8 reserved slots: ctx_size unchanged) ---- */
    /* Freeze the response written so far as THE response: the host sends it as soon as it can
     * (a worker path with early send: before somain returns; otherwise when it returns) and the
     * app goes on with post-processing. Later rsp_append/rsp_reserve/rsp_file_add are refused.
     * 0 = ok, -1 = already sent ahead. */
    int (*rsp_send_ahead)(ibp_app_ctx *ctx);
    uint32_t sent_ahead;     /* 1 once rsp_send_ahead succeeded (read only) */
    uint32_t reserved1;
    /* A key/value of this node from the config space; NULL when not set. Valid during the call. */
    const char *(*kv_get)(ibp_app_ctx *ctx, const char *key);
    /* A config value of this app: "app", "desc", "bin", "timeout", "timeout2", "server_node";
     * NULL for another key. Valid during the call. */
    const char *(*config_get)(ibp_app_ctx *ctx, const char *key);
    /* The app's own log: a line at IBP_APP_LOG_* level in the worker's log, with app[<code>].
     * Lines are kept (up to IBP_APP_LOG_MAX bytes a call, then counted as dropped) and written
     * when the call returns. */
    void (*log)(ibp_app_ctx *ctx, int level, const char *msg);

    /* ---- two-phase commit (took 1 of the 3 reserved slots: ctx_size unchanged) ---- */
    /* The global transaction id of a multi-transaction (docs/ibas.md "Two-phase commit you can
     * recover"), "" outside one. socommit/sorollback may run on another worker or after a server
     * restart: find what somain prepared by this id, not by process memory. */
    const char *gtrid;

    /* ---- room to grow ---- */
    void *reserved[2];
};

/** The shape of every entry point (somain, soinit, soclean, socommit, sorollback). */
typedef int ibp_app_entry_fn(ibp_app_ctx *ctx);

/** Put once in an app's source: exports the ABI version the app was built against. */
#define IBP_APP_DECLARE() \
    __attribute__((visibility("default"))) const unsigned ibp_app_abi_version = IBP_APP_ABI_VERSION

/* Entry point declarations, for the compiler to check an app's definitions. */
int somain(ibp_app_ctx *ctx);
int soinit(ibp_app_ctx *ctx);
int soclean(ibp_app_ctx *ctx);
int socommit(ibp_app_ctx *ctx);
int sorollback(ibp_app_ctx *ctx);

/* ---- conveniences (inline, no link dependency on the host) ---- */

static inline int ibp_rsp_append(ibp_app_ctx *ctx, const void *data, size_t len) {
    return ctx->rsp_append(ctx, data, len);
}

static inline int ibp_rsp_puts(ibp_app_ctx *ctx, const char *s) {
    return ctx->rsp_append(ctx, s, strlen(s));
}

/** printf into the response. 0 = ok, -1 = out of memory or format error. */
static inline int ibp_rsp_printf(ibp_app_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline int ibp_rsp_printf(ibp_app_ctx *ctx, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || ctx->rsp_reserve(ctx, (size_t)n + 1) != 0) return -1;
    va_start(ap, fmt);
    vsnprintf((char *)ctx->rsp + ctx->rsp_len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    ctx->rsp_len += (size_t)n;
    return 0;
}

/** printf into the app's log at level IBP_APP_LOG_*. */
static inline void ibp_log(ibp_app_ctx *ctx, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static inline void ibp_log(ibp_app_ctx *ctx, int level, const char *fmt, ...) {
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    ctx->log(ctx, level, line);
}

/** The full path of a file in file_dir into buf. 0 = ok, -1 = does not fit. */
static inline int ibp_file_path(const ibp_app_ctx *ctx, const char *name, char *buf, size_t size) {
    int n = snprintf(buf, size, "%s/%s", ctx->file_dir, name);
    return n < 0 || (size_t)n >= size ? -1 : 0;
}

#ifdef __cplusplus
}
#endif

#endif /* IBP_APP_H */
