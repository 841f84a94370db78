/*
 * ibp_tm.h: function trees and the structure bus for C apps (IBP's ibtm), the C face of
 * lib/appfw/tm/ (docs/app-framework.md). Self-contained: libc only; compile ibp_tm.c into the app.
 *
 *   static int check_amount(ibp_tm_env *te) { ... return 0; }      // 0 ok, else the error
 *   static const ibp_tm_entry TFA_BP[] = {
 *       FUNC( "check amount" , check_amount )
 *       FUNC_PARA( "channel" , check_channel , "WEB,ATM" )          // ibp_tm_para(te) inside
 *       FUNCARRAY( "fees" , TFA_FEES )
 *       IF_IN_TRANSCODES_THEN_FUNC( "transfers only" , "TRANSFER,TRANSFER2" , f3 )
 *       IF_FUNC_THEN( "memo empty?" , memo_is_empty )              // body runs when it REPORTS AN ERROR
 *           FUNC( "default memo" , default_memo )
 *       ELSE
 *           FUNC( "keep memo" , keep_memo )
 *       ENDIF
 *       RETURN                                                      // ends the array here, ok (optional at the end)
 *   };
 *   ibp_tm_env *te = ibp_tm_create_env("TRANSFER", rsp.code_text, sizeof rsp.code_text, rsp.desc, sizeof rsp.desc);
 *   int rc = IBP_TM_EXECUTE(te, "business processing", TFA_BP);   // IBTMExecuteFuncArray
 *
 * Arrays carry their length (FUNCARRAY and IBP_TM_EXECUTE take it with sizeof), so a malformed
 * array is refused without reading past its end; declare an array before a FUNCARRAY names it.
 *   ibp_tm_destroy_env(te);
 *
 * Define IBP_TM_NO_SHORT_NAMES before including to get only the IBP_TM_* forms of the macros.
 */
#ifndef IBP_TM_H
#define IBP_TM_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ibp_tm_env ibp_tm_env;
/* A TM function (IBP: int TransFunc(struct TransEnv *)): 0 = ok, anything else = an error. */
typedef int ibp_tm_func(ibp_tm_env *te);

enum ibp_tm_op { IBP_TM_OP_DO = 1, IBP_TM_OP_IF, IBP_TM_OP_ELSE, IBP_TM_OP_ENDIF, IBP_TM_OP_RETURN };
enum ibp_tm_cond { IBP_TM_ALWAYS = 0, IBP_TM_IN, IBP_TM_NOTIN };

typedef struct ibp_tm_entry {
	int op;                              /* enum ibp_tm_op */
	int cond;                            /* enum ibp_tm_cond */
	const char *desc;
	ibp_tm_func *func;                   /* a function, or NULL when array is set */
	const struct ibp_tm_entry *array;    /* a nested function array */
	int array_count;                     /* its number of entries */
	const char *para;                    /* FUNC_PARA parameter */
	const char *trans_codes;             /* "A,B,C" for IF_(NOT)IN_TRANSCODES */
} ibp_tm_entry;

/* Framework errors (negative, below any sane app code). */
#define IBP_TM_ERR_TREE   (-9001) /* IF / ELSE / ENDIF do not nest */
#define IBP_TM_ERR_DEPTH  (-9002) /* arrays nested deeper than IBP_TM_MAX_DEPTH */
#define IBP_TM_ERR_BLOCK  (-9003) /* a block is missing, already there, or of another size */
#define IBP_TM_ERR_NOMEM  (-9004)
#define IBP_TM_MAX_DEPTH  64
#define IBP_TM_COUNT(a)   ((int)(sizeof(a) / sizeof((a)[0])))

/* entry fields: op, cond, desc, func, array, array_count, para, trans_codes */
#define IBP_TM_FUNC(d, f)                                     { IBP_TM_OP_DO, IBP_TM_ALWAYS, d, f, NULL, 0, NULL, NULL },
#define IBP_TM_FUNC_PARA(d, f, p)                             { IBP_TM_OP_DO, IBP_TM_ALWAYS, d, f, NULL, 0, p, NULL },
#define IBP_TM_FUNCARRAY(d, a)                                { IBP_TM_OP_DO, IBP_TM_ALWAYS, d, NULL, a, IBP_TM_COUNT(a), NULL, NULL },
#define IBP_TM_IF_IN_TRANSCODES_THEN_FUNC(d, c, f)            { IBP_TM_OP_DO, IBP_TM_IN, d, f, NULL, 0, NULL, c },
#define IBP_TM_IF_IN_TRANSCODES_THEN_FUNC_PARA(d, c, f, p)    { IBP_TM_OP_DO, IBP_TM_IN, d, f, NULL, 0, p, c },
#define IBP_TM_IF_IN_TRANSCODES_THEN_FUNCARRAY(d, c, a)       { IBP_TM_OP_DO, IBP_TM_IN, d, NULL, a, IBP_TM_COUNT(a), NULL, c },
#define IBP_TM_IF_NOTIN_TRANSCODES_THEN_FUNC(d, c, f)         { IBP_TM_OP_DO, IBP_TM_NOTIN, d, f, NULL, 0, NULL, c },
#define IBP_TM_IF_NOTIN_TRANSCODES_THEN_FUNC_PARA(d, c, f, p) { IBP_TM_OP_DO, IBP_TM_NOTIN, d, f, NULL, 0, p, c },
#define IBP_TM_IF_NOTIN_TRANSCODES_THEN_FUNCARRAY(d, c, a)    { IBP_TM_OP_DO, IBP_TM_NOTIN, d, NULL, a, IBP_TM_COUNT(a), NULL, c },
#define IBP_TM_IF_FUNC_THEN(d, f)                             { IBP_TM_OP_IF, IBP_TM_ALWAYS, d, f, NULL, 0, NULL, NULL },
#define IBP_TM_IF_FUNC_PARA_THEN(d, f, p)                     { IBP_TM_OP_IF, IBP_TM_ALWAYS, d, f, NULL, 0, p, NULL },
#define IBP_TM_IF_FUNCARRAY_THEN(d, a)                        { IBP_TM_OP_IF, IBP_TM_ALWAYS, d, NULL, a, IBP_TM_COUNT(a), NULL, NULL },
#define IBP_TM_ELSE                                           { IBP_TM_OP_ELSE, 0, NULL, NULL, NULL, 0, NULL, NULL },
#define IBP_TM_ENDIF                                          { IBP_TM_OP_ENDIF, 0, NULL, NULL, NULL, 0, NULL, NULL },
#define IBP_TM_RETURN                                         { IBP_TM_OP_RETURN, 0, NULL, NULL, NULL, 0, NULL, NULL },

#ifndef IBP_TM_NO_SHORT_NAMES
#define FUNC IBP_TM_FUNC
#define FUNC_PARA IBP_TM_FUNC_PARA
#define FUNCARRAY IBP_TM_FUNCARRAY
#define IF_IN_TRANSCODES_THEN_FUNC IBP_TM_IF_IN_TRANSCODES_THEN_FUNC
#define IF_IN_TRANSCODES_THEN_FUNC_PARA IBP_TM_IF_IN_TRANSCODES_THEN_FUNC_PARA
#define IF_IN_TRANSCODES_THEN_FUNCARRAY IBP_TM_IF_IN_TRANSCODES_THEN_FUNCARRAY
#define IF_NOTIN_TRANSCODES_THEN_FUNC IBP_TM_IF_NOTIN_TRANSCODES_THEN_FUNC
#define IF_NOTIN_TRANSCODES_THEN_FUNC_PARA IBP_TM_IF_NOTIN_TRANSCODES_THEN_FUNC_PARA
#define IF_NOTIN_TRANSCODES_THEN_FUNCARRAY IBP_TM_IF_NOTIN_TRANSCODES_THEN_FUNCARRAY
#define IF_FUNC_THEN IBP_TM_IF_FUNC_THEN
#define IF_FUNC_PARA_THEN IBP_TM_IF_FUNC_PARA_THEN
#define IF_FUNCARRAY_THEN IBP_TM_IF_FUNCARRAY_THEN
#define ELSE IBP_TM_ELSE
#define ENDIF IBP_TM_ENDIF
#define RETURN IBP_TM_RETURN
#endif

/* Called after every function run (the trace; log it at debug level). */
typedef void ibp_tm_trace_func(void *arg, int depth, const char *desc, const char *para, int rc);

/* IBTMCreateTransEnv: the response code / description are written into the caller's buffers. */
ibp_tm_env *ibp_tm_create_env(const char *trans_code, char *rsp_code, size_t rsp_code_size, char *rsp_desc, size_t rsp_desc_size);
void ibp_tm_destroy_env(ibp_tm_env *te);
void ibp_tm_set_trace(ibp_tm_env *te, ibp_tm_trace_func *trace, void *arg);
/* The checked nesting of an array of n entries (0 or IBP_TM_ERR_TREE); ibp_tm_execute checks it first. */
int ibp_tm_check(const ibp_tm_entry *array, int n);
/* IBTMExecuteFuncArray: 0, the code of the first function that reported an error, or IBP_TM_ERR_*. */
int ibp_tm_execute(ibp_tm_env *te, const char *desc, const ibp_tm_entry *array, int n);
#define IBP_TM_EXECUTE(te, desc, a) ibp_tm_execute((te), (desc), (a), IBP_TM_COUNT(a))
const char *ibp_tm_trans_code(const ibp_tm_env *te);
/* The FUNC_PARA parameter of the function now running (NULL without one). */
const char *ibp_tm_para(const ibp_tm_env *te);
/* The structure bus: named blocks of a fixed size (a size mismatch is IBP_TM_ERR_BLOCK). */
int ibp_tm_append_block(ibp_tm_env *te, const char *name, size_t size, void **pp);
int ibp_tm_get_block(ibp_tm_env *te, const char *name, size_t size, void **pp);
int ibp_tm_append_get_block(ibp_tm_env *te, const char *name, size_t size, void **pp);
/* IBTMFormatResponseInfo: the code as decimal text and the description, truncated to the buffers. */
void ibp_tm_format_response(ibp_tm_env *te, int code, const char *desc);

#ifdef __cplusplus
}
#endif

#endif
