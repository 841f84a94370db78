/*
 * ibp_test_file.so (app code ibp_test_file): answers the request bytes unchanged AND sends every
 * attached request file back as a response file named "<name>.echo" with the same content.
 *
 * Result codes: 0 ok; 2 a request file cannot be read; 3 a response file cannot be written;
 * 4 a response file name is refused (too long) or too many files; 1 out of memory.
 */
#include <fcntl.h>
#include <unistd.h>

#include "ibp_app.h"

IBP_APP_DECLARE();

static int copy_file(const char *from, const char *to) {
    int in = open(from, O_RDONLY | O_CLOEXEC);
    if (in < 0) return 2;
    int out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0) {
        close(in);
        return 3;
    }
    int rc = IBP_APP_OK;
    char buf[65536];
    for (;;) {
        ssize_t n = read(in, buf, sizeof buf);
        if (n == 0) break;
        if (n < 0) {
            rc = 2;
            break;
        }
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(out, buf + off, (size_t)(n - off));
            if (w <= 0) {
                rc = 3;
                break;
            }
            off += w;
        }
        if (rc != IBP_APP_OK) break;
    }
    close(in);
    if (close(out) != 0 && rc == IBP_APP_OK) rc = 3;
    return rc;
}

int somain(ibp_app_ctx *ctx) {
    if (ibp_rsp_append(ctx, ctx->req, ctx->req_len) != 0) return 1;
    for (uint32_t i = 0; i < ctx->req_file_count; i++) {
        char from[4096], to[4096], name[IBP_APP_FILE_NAME_MAX + 1];
        int n = snprintf(name, sizeof name, "%s.echo", ctx->req_files[i]);
        if (n < 0 || (size_t)n >= sizeof name) return 4;
        if (ibp_file_path(ctx, ctx->req_files[i], from, sizeof from) != 0) return 2;
        if (ibp_file_path(ctx, name, to, sizeof to) != 0) return 3;
        int rc = copy_file(from, to);
        if (rc != IBP_APP_OK) return rc;
        if (ctx->rsp_file_add(ctx, name) != 0) return 4;
    }
    return IBP_APP_OK;
}
