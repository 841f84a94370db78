/*
 * ibp_test_echo.so (app code ibp_test_echo): answers the request bytes unchanged.
 * The smallest complete app: see lib/native/ibp_app.h and docs/apps.md.
 */
#include "ibp_app.h"

IBP_APP_DECLARE();

int somain(ibp_app_ctx *ctx) {
    return ibp_rsp_append(ctx, ctx->req, ctx->req_len) == 0 ? IBP_APP_OK : 1;
}
