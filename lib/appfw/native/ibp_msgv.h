/*
 * ibp_msgv.h: the C side of IBP-TS declared messages (IBP's ibmsgv), table driven.
 *
 * `ibpgen messages FILE.dsc --lang c --out DIR` writes FILE.dsc.h / FILE.dsc.c (the structs and
 * one descriptor table per message) and copies this header and ibp_msgv.c beside them. An app
 * compiles all of them in:
 *
 *   transfer_req req;
 *   char err[256];
 *   if (IBPMSGV_UNPACK_JSON_transfer_req(body, body_len, &req, err, sizeof err) != 0) { ... err names the field ... }
 *   char *out; size_t out_len;
 *   if (IBPMSGV_PACK_JSON_transfer_rsp(&rsp, &out, &out_len, err, sizeof err) == 0) { ...; free(out); }
 *
 * The wire form is the one of the TS codec (lib/appfw/msgv/codec.ts): INT 8 / UINT 8 and NUMERIC
 * travel as JSON strings; NUMERIC p,s is held as a decimal string with exactly s fraction digits
 * (char[p + 4]), never a double; STRING n is char[n + 1] holding at most n UTF-8 bytes.
 * Everything is bounded: keys, numbers and the output size (IBP_MSGV_MAX_OUTPUT).
 */
#ifndef IBP_MSGV_H
#define IBP_MSGV_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum ibp_msgv_type {
	IBP_MSGV_INT = 1,
	IBP_MSGV_UINT,
	IBP_MSGV_FLOAT,
	IBP_MSGV_CHAR,
	IBP_MSGV_UCHAR,
	IBP_MSGV_STRING,
	IBP_MSGV_BOOL,
	IBP_MSGV_NUMERIC,
	IBP_MSGV_STRUCT
};

/* Return codes of the pack / unpack functions (0 = ok); err then holds the explanation. */
#define IBP_MSGV_ERR_SYNTAX   (-1) /* not JSON, or trailing data */
#define IBP_MSGV_ERR_FIELD    (-2) /* a field's value is not what the declaration allows */
#define IBP_MSGV_ERR_UNKNOWN  (-3) /* a field that is not declared */
#define IBP_MSGV_ERR_NOMEM    (-4)
#define IBP_MSGV_ERR_LIMIT    (-5) /* output over IBP_MSGV_MAX_OUTPUT */

#define IBP_MSGV_MAX_OUTPUT   (64u * 1024u * 1024u)
/* Bytes of a NUMERIC p,s member: sign, digits, point, NUL ("-0.xx" when p == s). */
#define IBP_MSGV_NUMERIC_SIZE(p) ((p) + 4)

typedef struct ibp_msgv_struct ibp_msgv_struct;

typedef struct ibp_msgv_field {
	const char *name;
	int type;                     /* enum ibp_msgv_type */
	int len;                      /* byte width; STRING: max bytes; NUMERIC: precision */
	int scale;                    /* NUMERIC: fraction digits */
	size_t offset;                /* of the member in its struct */
	const char *dflt;             /* DEFAULT text, or NULL */
	const ibp_msgv_struct *sub;   /* IBP_MSGV_STRUCT: the nested struct */
	int array_size;               /* IBP_MSGV_STRUCT: 0, or ARRAY n */
	size_t elem_size;             /* IBP_MSGV_STRUCT: sizeof one element */
	size_t count_offset;          /* ARRAY: offset of the int _name_count member */
} ibp_msgv_field;

struct ibp_msgv_struct {
	const char *name;
	size_t size;
	int nfields;
	const ibp_msgv_field *fields;
};

/* Zeroes *st and applies the DEFAULT values. */
int ibp_msgv_init(const ibp_msgv_struct *d, void *st);
/* Checks *st and writes its JSON into a malloc'ed NUL-terminated buffer (*out, free it). */
int ibp_msgv_pack_json(const ibp_msgv_struct *d, const void *st, char **out, size_t *out_len, char *err, size_t errsize);
/* Reads JSON into *st (initialised first: missing fields keep their DEFAULT). */
int ibp_msgv_unpack_json(const ibp_msgv_struct *d, const char *buf, size_t len, void *st, char *err, size_t errsize);

#ifdef __cplusplus
}
#endif

#endif
