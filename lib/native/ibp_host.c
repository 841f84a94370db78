/*
 * ibp_host.c → build/native/libibp_host.so: the host side of the app ABI (lib/native/ibp_app.h),
 * loaded by ibas/app-cache.ts through koffi.
 *
 * It owns one ibp_app_ctx per worker and implements the context's functions in C (response
 * growth, response files), so an app never calls back into JavaScript. One transaction is ONE
 * crossing from JS: ibp_host_call() fills the context from a packed input buffer, calls the app's
 * entry point and reports rc, response and response files in an output struct.
 *
 * Response memory: the caller passes a buffer of its own (a Node Buffer, pinned for the
 * duration of the synchronous call). The app writes there in place; only when it outgrows it
 * does rsp_reserve move the response to a malloc'd buffer, which the caller copies out and then
 * frees with ibp_host_release().
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ibp_app.h"

#define VISIBLE __attribute__((visibility("default")))

struct ibp_host {
    ibp_app_ctx ctx; /* first member: an ibp_app_ctx * is an ibp_host * */
    unsigned char *caller_buf;
    unsigned char *heap; /* the response once it outgrew caller_buf, else NULL */
    char rsp_files[IBP_APP_MAX_FILES][IBP_APP_FILE_NAME_MAX + 1];
    /* kv_get / config_get: "key\0value\0...\0" tables set by the caller (ibp_host_set_table) */
    char *tables[2];
    size_t table_len[2];
    /* log lines of the current call: level byte, then the NUL-terminated message */
    char log[IBP_APP_LOG_MAX];
    size_t log_len;
    uint32_t log_dropped;
};

/* Per call input: a byte buffer the caller fills (HOST_IN in ibas/app-abi.ts), no struct
 * marshalling: IN_FIELDS uint32 values (native byte order), then the NUL-terminated strings the
 * *_OFF fields point at by offset into the buffer (0 = empty string). */
enum {
    IN_PHASE, IN_CLIENT_PORT, IN_WORKER_INDEX, IN_TIMEOUT_MS, IN_TIMEOUT2_MS, IN_REQ_FILE_COUNT,
    IN_FILE_DIR_OFF, IN_THIS_NODE_OFF, IN_APP_OFF, IN_CLIENT_NODE_OFF, IN_CLIENT_IP_OFF, IN_JOURNAL_OFF,
    IN_GTRID_OFF, IN_FIELDS
};

/* Per call output, read by the caller through typed-array views (HOST_OUT in ibas/app-abi.ts). */
typedef struct {
    int32_t rc;
    uint32_t in_place;       /* 1: the response is in the caller's buffer */
    uint32_t rsp_file_count;
    uint32_t bad_len;        /* 1: the app set rsp_len beyond rsp_cap (clamped) */
    double rsp_len;          /* a double: exact up to 2^53, and no BigInt on the JS side */
    unsigned char *rsp;
    const char *rsp_files;   /* rsp_file_count names, IBP_APP_FILE_NAME_MAX + 1 bytes apart */
    const char *log;         /* log_len bytes: per line a level byte then a NUL-terminated message */
    uint32_t log_len;
    uint32_t sent_ahead;     /* 1: the app called rsp_send_ahead (rsp_len is what it froze) */
    uint32_t log_dropped;    /* lines beyond IBP_APP_LOG_MAX */
    uint32_t reserved;
} ibp_host_out;

static int host_rsp_reserve(ibp_app_ctx *ctx, size_t extra) {
    struct ibp_host *h = (struct ibp_host *)ctx;
    if (ctx->sent_ahead || ctx->rsp_len > ctx->rsp_cap) return -1;
    if (extra <= ctx->rsp_cap - ctx->rsp_len) return 0;
    if (extra > SIZE_MAX / 2 - ctx->rsp_len) return -1;
    size_t need = ctx->rsp_len + extra;
    size_t cap = ctx->rsp_cap < 4096 ? 4096 : ctx->rsp_cap;
    while (cap < need) cap *= 2;
    unsigned char *p;
    if (h->heap != NULL && ctx->rsp == h->heap) {
        p = realloc(h->heap, cap);
        if (p == NULL) return -1;
    } else {
        p = malloc(cap);
        if (p == NULL) return -1;
        if (ctx->rsp_len > 0) memcpy(p, ctx->rsp, ctx->rsp_len);
    }
    h->heap = p;
    ctx->rsp = p;
    ctx->rsp_cap = cap;
    return 0;
}

static int host_rsp_append(ibp_app_ctx *ctx, const void *data, size_t len) {
    if (ctx->sent_ahead) return -1;
    if (len == 0) return 0;
    if (data == NULL || host_rsp_reserve(ctx, len) != 0) return -1;
    memcpy(ctx->rsp + ctx->rsp_len, data, len);
    ctx->rsp_len += len;
    return 0;
}

/* The rule of lib/home.ts checkPlainFileName: no separator, no "..", no control character. */
static int plain_name(const char *name) {
    size_t n = name == NULL ? 0 : strnlen(name, IBP_APP_FILE_NAME_MAX + 1);
    if (n == 0 || n > IBP_APP_FILE_NAME_MAX) return 0;
    if (strcmp(name, ".") == 0 || strstr(name, "..") != NULL) return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c == '/' || c == '\\' || c < 0x20 || c == 0x7f) return 0;
    }
    return 1;
}

static int host_rsp_file_add(ibp_app_ctx *ctx, const char *name) {
    struct ibp_host *h = (struct ibp_host *)ctx;
    if (ctx->sent_ahead || !plain_name(name) || ctx->rsp_file_count >= IBP_APP_MAX_FILES) return -1;
    for (uint32_t i = 0; i < ctx->rsp_file_count; i++)
        if (strcmp(h->rsp_files[i], name) == 0) return -1;
    strcpy(h->rsp_files[ctx->rsp_file_count++], name);
    return 0;
}

static int host_rsp_send_ahead(ibp_app_ctx *ctx) {
    if (ctx->sent_ahead) return -1;
    if (ctx->rsp_len > ctx->rsp_cap) ctx->rsp_len = ctx->rsp_cap;
    ctx->sent_ahead = 1;
    return 0;
}

static const char *table_get(struct ibp_host *h, int which, const char *key) {
    const char *p = h->tables[which], *end = p + h->table_len[which];
    if (p == NULL || key == NULL) return NULL;
    while (p < end && *p != '\0') {
        const char *value = p + strlen(p) + 1;
        if (value >= end) return NULL;
        if (strcmp(p, key) == 0) return value;
        p = value + strlen(value) + 1;
    }
    return NULL;
}

static const char *host_kv_get(ibp_app_ctx *ctx, const char *key) { return table_get((struct ibp_host *)ctx, 0, key); }
static const char *host_config_get(ibp_app_ctx *ctx, const char *key) { return table_get((struct ibp_host *)ctx, 1, key); }

static void host_log(ibp_app_ctx *ctx, int level, const char *msg) {
    struct ibp_host *h = (struct ibp_host *)ctx;
    if (msg == NULL) return;
    size_t n = strnlen(msg, 4096);
    if (h->log_len + n + 2 > sizeof h->log) {
        h->log_dropped++;
        return;
    }
    h->log[h->log_len++] = (char)(level < IBP_APP_LOG_DEBUG ? IBP_APP_LOG_DEBUG : level > IBP_APP_LOG_ERROR ? IBP_APP_LOG_ERROR : level);
    memcpy(h->log + h->log_len, msg, n);
    h->log_len += n;
    h->log[h->log_len++] = '\0';
}

/* Set the kv_get (which 0) or config_get (which 1) table: "key\0value\0...\0", copied.
 * 0 = ok, -1 = bad arguments or out of memory. */
VISIBLE int32_t ibp_host_set_table(ibp_app_ctx *ctx, int32_t which, const char *table, size_t len) {
    struct ibp_host *h = (struct ibp_host *)ctx;
    if (h == NULL || which < 0 || which > 1) return -1;
    char *copy = NULL;
    if (table != NULL && len > 0) {
        copy = malloc(len + 1);
        if (copy == NULL) return -1;
        memcpy(copy, table, len);
        copy[len] = '\0';
    }
    free(h->tables[which]);
    h->tables[which] = copy;
    h->table_len[which] = copy == NULL ? 0 : len;
    return 0;
}

VISIBLE uint32_t ibp_host_abi_version(void) { return IBP_APP_ABI_VERSION; }
VISIBLE uint32_t ibp_host_ctx_size(void) { return (uint32_t)sizeof(ibp_app_ctx); }
/* The call layouts, checked by ibas/app-abi.ts against its own constants. */
VISIBLE uint32_t ibp_host_in_fields(void) { return IN_FIELDS; }
VISIBLE uint32_t ibp_host_out_size(void) { return (uint32_t)sizeof(ibp_host_out); }

VISIBLE ibp_app_ctx *ibp_host_new(void) {
    struct ibp_host *h = calloc(1, sizeof *h);
    if (h == NULL) return NULL;
    h->ctx.abi_version = IBP_APP_ABI_VERSION;
    h->ctx.ctx_size = (uint32_t)sizeof(ibp_app_ctx);
    h->ctx.rsp_reserve = host_rsp_reserve;
    h->ctx.rsp_append = host_rsp_append;
    h->ctx.rsp_file_add = host_rsp_file_add;
    h->ctx.rsp_send_ahead = host_rsp_send_ahead;
    h->ctx.kv_get = host_kv_get;
    h->ctx.config_get = host_config_get;
    h->ctx.log = host_log;
    h->ctx.host = h;
    return &h->ctx;
}

/* Free the malloc'd response of the last call, if any (after the caller copied it). */
VISIBLE void ibp_host_release(ibp_app_ctx *ctx) {
    struct ibp_host *h = (struct ibp_host *)ctx;
    if (h == NULL) return;
    free(h->heap);
    h->heap = NULL;
    h->caller_buf = NULL;
    ctx->rsp = NULL;
    ctx->rsp_cap = 0;
    ctx->rsp_len = 0;
}

VISIBLE void ibp_host_free(ibp_app_ctx *ctx) {
    if (ctx == NULL) return;
    ibp_host_release(ctx);
    struct ibp_host *h = (struct ibp_host *)ctx;
    free(h->tables[0]);
    free(h->tables[1]);
    free(ctx->host);
}

static uint32_t in_u32(const unsigned char *in, int field) {
    uint32_t v;
    memcpy(&v, in + (size_t)field * sizeof v, sizeof v);
    return v;
}

static const char *in_str(const unsigned char *in, size_t in_len, int field) {
    uint32_t off = in_u32(in, field);
    return off == 0 || off >= in_len ? "" : (const char *)in + off;
}

/* One transaction (or lifecycle call): fill the context, call fn, report in *out.
 * in/in_len: see IN_*; the caller ends the buffer with a NUL (checked). req_files: NULL or the
 * request file names (IN_REQ_FILE_COUNT of them). Returns fn's result, or -1 without calling it
 * when `in` is malformed. */
VISIBLE int32_t ibp_host_call(ibp_app_entry_fn *fn, ibp_app_ctx *ctx, const unsigned char *req, size_t req_len,
                              unsigned char *buf, size_t buf_cap, const unsigned char *in, size_t in_len,
                              const char *const *req_files, ibp_host_out *out) {
    struct ibp_host *h = (struct ibp_host *)ctx;
    memset(out, 0, sizeof *out);
    ibp_host_release(ctx);
    if (in == NULL || in_len < IN_FIELDS * sizeof(uint32_t) + 1 || in[in_len - 1] != '\0' || fn == NULL) {
        out->rc = -1;
        return -1;
    }

    ctx->phase = in_u32(in, IN_PHASE);
    ctx->req = req_len > 0 ? req : NULL;
    ctx->req_len = req_len;
    h->caller_buf = buf;
    ctx->rsp = buf;
    ctx->rsp_cap = buf == NULL ? 0 : buf_cap;
    ctx->rsp_len = 0;
    ctx->file_dir = in_str(in, in_len, IN_FILE_DIR_OFF);
    uint32_t nfiles = in_u32(in, IN_REQ_FILE_COUNT);
    ctx->req_file_count = req_files == NULL ? 0 : (nfiles > IBP_APP_MAX_FILES ? IBP_APP_MAX_FILES : nfiles);
    ctx->req_files = req_files;
    ctx->rsp_file_count = 0;
    ctx->this_node = in_str(in, in_len, IN_THIS_NODE_OFF);
    ctx->app = in_str(in, in_len, IN_APP_OFF);
    ctx->client_node = in_str(in, in_len, IN_CLIENT_NODE_OFF);
    ctx->client_ip = in_str(in, in_len, IN_CLIENT_IP_OFF);
    ctx->client_port = in_u32(in, IN_CLIENT_PORT);
    ctx->worker_index = in_u32(in, IN_WORKER_INDEX);
    ctx->journal = in_str(in, in_len, IN_JOURNAL_OFF);
    ctx->gtrid = in_str(in, in_len, IN_GTRID_OFF);
    ctx->timeout_ms = in_u32(in, IN_TIMEOUT_MS);
    ctx->timeout2_ms = in_u32(in, IN_TIMEOUT2_MS);
    ctx->sent_ahead = 0;
    h->log_len = 0;
    h->log_dropped = 0;

    out->rc = fn(ctx);

    if (ctx->rsp_len > ctx->rsp_cap) {
        ctx->rsp_len = ctx->rsp_cap;
        out->bad_len = 1;
    }
    out->rsp = ctx->rsp;
    out->rsp_len = (double)ctx->rsp_len;
    out->in_place = ctx->rsp == buf ? 1u : 0u;
    out->rsp_file_count = ctx->rsp_file_count > IBP_APP_MAX_FILES ? IBP_APP_MAX_FILES : ctx->rsp_file_count;
    out->rsp_files = h->rsp_files[0];
    out->log = h->log;
    out->log_len = (uint32_t)h->log_len;
    out->sent_ahead = ctx->sent_ahead;
    out->log_dropped = h->log_dropped;

    /* Nothing of this call's inputs outlives it. */
    ctx->req = NULL;
    ctx->req_files = NULL;
    ctx->file_dir = ctx->this_node = ctx->app = ctx->client_node = ctx->client_ip = ctx->journal = "";
    return out->rc;
}
