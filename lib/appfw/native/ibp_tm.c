/*
 * ibp_tm.c: the executor of C function arrays and the structure bus (see ibp_tm.h). The same
 * rules as lib/appfw/tm/tree.ts: stop at the first error outside an IF condition; an IF body runs
 * when its function reports an error; RETURN ends the array with success.
 */
#include "ibp_tm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct block {
	struct block *next;
	size_t size;
	char *name;
	void *data;
} block;

struct ibp_tm_env {
	char trans_code[64];
	char *rsp_code;
	size_t rsp_code_size;
	char *rsp_desc;
	size_t rsp_desc_size;
	const char *para;
	int depth;
	block *blocks;
	ibp_tm_trace_func *trace;
	void *trace_arg;
};

ibp_tm_env *ibp_tm_create_env(const char *trans_code, char *rsp_code, size_t rsp_code_size, char *rsp_desc, size_t rsp_desc_size)
{
	ibp_tm_env *te = calloc(1, sizeof *te);
	if (te == NULL) return NULL;
	snprintf(te->trans_code, sizeof te->trans_code, "%s", trans_code ? trans_code : "");
	te->rsp_code = rsp_code;
	te->rsp_code_size = rsp_code_size;
	te->rsp_desc = rsp_desc;
	te->rsp_desc_size = rsp_desc_size;
	return te;
}

void ibp_tm_destroy_env(ibp_tm_env *te)
{
	if (te == NULL) return;
	for (block *b = te->blocks, *next; b != NULL; b = next) {
		next = b->next;
		free(b->data);
		free(b->name);
		free(b);
	}
	free(te);
}

void ibp_tm_set_trace(ibp_tm_env *te, ibp_tm_trace_func *trace, void *arg)
{
	te->trace = trace;
	te->trace_arg = arg;
}

const char *ibp_tm_trans_code(const ibp_tm_env *te) { return te->trans_code; }
const char *ibp_tm_para(const ibp_tm_env *te) { return te->para; }

void ibp_tm_format_response(ibp_tm_env *te, int code, const char *desc)
{
	if (te->rsp_code != NULL && te->rsp_code_size > 0) snprintf(te->rsp_code, te->rsp_code_size, "%d", code);
	if (te->rsp_desc != NULL && te->rsp_desc_size > 0) snprintf(te->rsp_desc, te->rsp_desc_size, "%s", desc ? desc : "");
}

/* ------------------------------------------------------------------ structure bus */

static block *find(ibp_tm_env *te, const char *name)
{
	for (block *b = te->blocks; b != NULL; b = b->next)
		if (strcmp(b->name, name) == 0) return b;
	return NULL;
}

int ibp_tm_append_block(ibp_tm_env *te, const char *name, size_t size, void **pp)
{
	if (name == NULL || find(te, name) != NULL) return IBP_TM_ERR_BLOCK;
	block *b = calloc(1, sizeof *b);
	if (b == NULL) return IBP_TM_ERR_NOMEM;
	size_t n = strlen(name) + 1;
	b->name = malloc(n);
	if (b->name != NULL) memcpy(b->name, name, n);
	b->data = calloc(1, size ? size : 1);
	if (b->name == NULL || b->data == NULL) {
		free(b->name);
		free(b->data);
		free(b);
		return IBP_TM_ERR_NOMEM;
	}
	b->size = size;
	b->next = te->blocks;
	te->blocks = b;
	*pp = b->data;
	return 0;
}

int ibp_tm_get_block(ibp_tm_env *te, const char *name, size_t size, void **pp)
{
	block *b = name ? find(te, name) : NULL;
	if (b == NULL || b->size != size) return IBP_TM_ERR_BLOCK; /* absent, or another version of the struct */
	*pp = b->data;
	return 0;
}

int ibp_tm_append_get_block(ibp_tm_env *te, const char *name, size_t size, void **pp)
{
	return name && find(te, name) ? ibp_tm_get_block(te, name, size, pp) : ibp_tm_append_block(te, name, size, pp);
}

/* ------------------------------------------------------------------ executor */

/* Whether code is in the comma/space separated list. */
static int in_codes(const char *list, const char *code)
{
	size_t n = strlen(code);
	for (const char *p = list ? list : ""; *p;) {
		while (*p == ',' || *p == ' ') p++;
		const char *e = p;
		while (*e && *e != ',' && *e != ' ') e++;
		if ((size_t)(e - p) == n && n > 0 && strncmp(p, code, n) == 0) return 1;
		p = e;
	}
	return 0;
}

/* From i, the index of the ELSE (when stop_at_else) or ENDIF closing the current IF level; -1 if none. */
static int skip(const ibp_tm_entry *a, int n, int i, int stop_at_else)
{
	int depth = 0;
	for (; i < n; i++) {
		switch (a[i].op) {
		case IBP_TM_OP_IF: depth++; break;
		case IBP_TM_OP_ELSE: if (depth == 0 && stop_at_else) return i; break;
		case IBP_TM_OP_ENDIF: if (depth == 0) return i; depth--; break;
		default: break;
		}
	}
	return -1;
}

int ibp_tm_check(const ibp_tm_entry *a, int n)
{
	int depth = 0, seen_else[IBP_TM_MAX_DEPTH + 1] = { 0 };
	for (int i = 0; i < n; i++) {
		switch (a[i].op) {
		case IBP_TM_OP_DO: break;
		case IBP_TM_OP_IF:
			if (++depth > IBP_TM_MAX_DEPTH) return IBP_TM_ERR_TREE;
			seen_else[depth] = 0;
			break;
		case IBP_TM_OP_ELSE:
			if (depth == 0 || seen_else[depth]) return IBP_TM_ERR_TREE;
			seen_else[depth] = 1;
			break;
		case IBP_TM_OP_ENDIF:
			if (depth == 0) return IBP_TM_ERR_TREE;
			depth--;
			break;
		case IBP_TM_OP_RETURN:
			break;
		default:
			return IBP_TM_ERR_TREE;
		}
	}
	return depth == 0 ? 0 : IBP_TM_ERR_TREE;
}

static int run(ibp_tm_env *te, const ibp_tm_entry *e)
{
	int rc;
	if (e->func == NULL) return ibp_tm_execute(te, e->desc, e->array, e->array_count);
	const char *saved = te->para;
	te->para = e->para;
	rc = e->func(te);
	te->para = saved;
	if (te->trace) te->trace(te->trace_arg, te->depth, e->desc ? e->desc : "", e->para, rc);
	return rc;
}

int ibp_tm_execute(ibp_tm_env *te, const char *desc, const ibp_tm_entry *a, int n)
{
	(void)desc;
	if (a == NULL || n <= 0) return 0;
	if (ibp_tm_check(a, n) != 0) return IBP_TM_ERR_TREE;
	if (te->depth >= IBP_TM_MAX_DEPTH) return IBP_TM_ERR_DEPTH;
	te->depth++;
	int rc = 0;
	for (int i = 0; rc == 0 && i < n;) {
		const ibp_tm_entry *e = &a[i];
		if (e->op == IBP_TM_OP_RETURN) break;
		if (e->op == IBP_TM_OP_DO) {
			if (e->cond == IBP_TM_ALWAYS || in_codes(e->trans_codes, te->trans_code) == (e->cond == IBP_TM_IN)) rc = run(te, e);
			i++;
		} else if (e->op == IBP_TM_OP_IF) {
			if (run(te, e) != 0) {
				i++; /* the IF body */
			} else {
				int j = skip(a, n, i + 1, 1);
				if (j < 0) { rc = IBP_TM_ERR_TREE; break; }
				i = j + 1; /* past ELSE into its body, or past ENDIF */
			}
		} else if (e->op == IBP_TM_OP_ELSE) {
			int j = skip(a, n, i + 1, 0); /* the IF body ended: jump over the ELSE body */
			if (j < 0) { rc = IBP_TM_ERR_TREE; break; }
			i = j + 1;
		} else {
			i++; /* ENDIF */
		}
	}
	te->depth--;
	return rc;
}
