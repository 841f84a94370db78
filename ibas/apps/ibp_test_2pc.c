/*
 * ibp_test_2pc.so (app code ibp_test_2pc): an app taking part in two-phase commit.
 *
 *   somain      prepares: writes <dir>/ibp_test_2pc.<journal>.prepared holding the request,
 *               answers "prepared:<request>"
 *   socommit    writes <dir>/ibp_test_2pc.<journal>.committed, answers "committed:<journal>"
 *   sorollback  writes <dir>/ibp_test_2pc.<journal>.rolledback, answers "rolledback:<journal>"
 *
 * In a global transaction (ctx->gtrid not empty) every step also appends "<gtrid> <state>
 * <journal>\n" to <dir>/ibp_test_2pc.journal with O_APPEND and fsync before answering: the
 * side-effect journal the two-phase crash matrix (test/ibac/2pc-crash-matrix.test.ts) checks.
 *
 * A test reads those marker files to check which outcome the server delivered. <dir> must
 * outlive the transaction (ibas empties a worker's file folder after each one), so it is
 * $IBP_TEST_2PC_DIR if set, else $IBP_HOME/file if IBP_HOME is set, else ctx->file_dir. A request that
 * is exactly "fail" makes the prepare fail with rc 7 (no marker written), for the client's
 * "one participant refuses" case.
 *
 * Result codes: 0 ok; 5 journal missing or not [A-Za-z0-9_-]; 6 marker cannot be written;
 * 7 prepare refused on request.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "ibp_app.h"

IBP_APP_DECLARE();

static int journal_ok(const char *j) {
    if (j == NULL || j[0] == '\0' || strlen(j) > 128) return 0;
    for (const char *p = j; *p; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-')) return 0;
    }
    return 1;
}

static int dir_of(ibp_app_ctx *ctx, char *path, size_t size) {
    const char *dir = getenv("IBP_TEST_2PC_DIR");
    const char *home = getenv("IBP_HOME");
    int n = dir != NULL && dir[0] != '\0' ? snprintf(path, size, "%s", dir)
            : home != NULL && home[0] != '\0' ? snprintf(path, size, "%s/file", home)
            : snprintf(path, size, "%s", ctx->file_dir);
    return n < 0 || (size_t)n >= size ? -1 : n;
}

/* "<gtrid> <state> <journal>\n" appended and fsync'ed (global transactions only). */
static int journal_line(ibp_app_ctx *ctx, const char *state) {
    if (ctx->ctx_size < sizeof(ibp_app_ctx) || ctx->gtrid == NULL || ctx->gtrid[0] == '\0') return IBP_APP_OK;
    char path[4096], line[512];
    int n = dir_of(ctx, path, sizeof path);
    if (n < 0 || snprintf(path + n, sizeof path - (size_t)n, "/ibp_test_2pc.journal") >= (int)(sizeof path - (size_t)n)) return 6;
    int len = snprintf(line, sizeof line, "%s %s %s\n", ctx->gtrid, state, ctx->journal);
    if (len < 0 || (size_t)len >= sizeof line) return 6;
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) return 6;
    int rc = write(fd, line, (size_t)len) == len && fsync(fd) == 0 ? IBP_APP_OK : 6;
    if (close(fd) != 0) rc = 6;
    return rc;
}

static int marker(ibp_app_ctx *ctx, const char *state, const unsigned char *data, size_t len) {
    char path[4096];
    int n = dir_of(ctx, path, sizeof path);
    if (n < 0) return 6;
    int m = snprintf(path + n, sizeof path - (size_t)n, "/ibp_test_2pc.%s.%s", ctx->journal, state);
    if (m < 0 || (size_t)m >= sizeof path - (size_t)n) return 6;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return 6;
    int rc = IBP_APP_OK;
    if (len > 0 && write(fd, data, len) != (ssize_t)len) rc = 6;
    if (close(fd) != 0) rc = 6;
    return rc;
}

int somain(ibp_app_ctx *ctx) {
    if (!journal_ok(ctx->journal)) return 5;
    if (ctx->req_len == 4 && memcmp(ctx->req, "fail", 4) == 0) return 7;
    int rc = marker(ctx, "prepared", ctx->req, ctx->req_len);
    if (rc == IBP_APP_OK) rc = journal_line(ctx, "prepared");
    if (rc != IBP_APP_OK) return rc;
    if (ibp_rsp_puts(ctx, "prepared:") != 0 || ibp_rsp_append(ctx, ctx->req, ctx->req_len) != 0) return 1;
    return IBP_APP_OK;
}

static int decide(ibp_app_ctx *ctx, const char *state) {
    if (!journal_ok(ctx->journal)) return 5;
    int rc = marker(ctx, state, (const unsigned char *)ctx->journal, strlen(ctx->journal));
    if (rc == IBP_APP_OK) rc = journal_line(ctx, state);
    if (rc != IBP_APP_OK) return rc;
    return ibp_rsp_printf(ctx, "%s:%s", state, ctx->journal) == 0 ? IBP_APP_OK : 1;
}

int socommit(ibp_app_ctx *ctx) { return decide(ctx, "committed"); }
int sorollback(ibp_app_ctx *ctx) { return decide(ctx, "rolledback"); }
