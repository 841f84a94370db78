/*
 * ibp_msgv.c: JSON pack / unpack of declared messages for C apps, driven by the descriptor tables
 * that `ibpgen messages --lang c` generates (see ibp_msgv.h). Self-contained: libc only.
 *
 * The reader is schema directed: it walks the JSON text once, descending only where the
 * declaration has a STRUCT, so its recursion is bounded by the declaration's depth, not by the
 * input. Every buffer it writes is bounded by the declared sizes; the writer by
 * IBP_MSGV_MAX_OUTPUT. The value rules mirror lib/appfw/msgv/scalar.ts.
 */
#include "ibp_msgv.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PATH_MAX_LEN 512
#define KEY_MAX 256
#define TEXT_MAX 128 /* a non-STRING scalar written as a JSON string */

typedef struct {
	char text[PATH_MAX_LEN];
	size_t len;
} field_path;

typedef struct {
	char *err;
	size_t errsize;
	field_path path;
} context;

static int fail(context *c, int rc, const char *fmt, ...)
{
	if (c->err != NULL && c->errsize > 0) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(c->err, c->errsize, fmt, ap);
		va_end(ap);
	}
	return rc;
}

static int fail_field(context *c, const char *expected, const char *got)
{
	return fail(c, IBP_MSGV_ERR_FIELD, "field %s: expected %s, got %s", c->path.len ? c->path.text : "(message)", expected, got);
}

static size_t path_push(field_path *p, const char *name, long index)
{
	size_t saved = p->len;
	int n;
	if (index >= 0)
		n = snprintf(p->text + p->len, sizeof p->text - p->len, "[%ld]", index);
	else
		n = snprintf(p->text + p->len, sizeof p->text - p->len, "%s%s", p->len ? "." : "", name != NULL ? name : "");
	if (n > 0)
		p->len += (size_t)n < sizeof p->text - p->len ? (size_t)n : sizeof p->text - p->len - 1;
	return saved;
}

static void path_pop(field_path *p, size_t saved)
{
	p->len = saved;
	p->text[saved] = '\0';
}

/* ------------------------------------------------------------------ scalar value rules */

static const char *type_name(int type)
{
	switch (type) {
	case IBP_MSGV_INT: return "INT";
	case IBP_MSGV_UINT: return "UINT";
	case IBP_MSGV_FLOAT: return "FLOAT";
	case IBP_MSGV_CHAR: return "CHAR";
	case IBP_MSGV_UCHAR: return "UCHAR";
	case IBP_MSGV_STRING: return "STRING";
	case IBP_MSGV_BOOL: return "BOOL";
	case IBP_MSGV_NUMERIC: return "NUMERIC";
	default: return "STRUCT";
	}
}

static const char *expected_text(const ibp_msgv_field *f, char *buf, size_t n)
{
	if (f->type == IBP_MSGV_NUMERIC)
		snprintf(buf, n, "NUMERIC %d,%d (decimal string, at most %d integer and %d fraction digits)", f->len, f->scale, f->len - f->scale, f->scale);
	else if (f->type == IBP_MSGV_STRING)
		snprintf(buf, n, "STRING %d (text of at most %d UTF-8 bytes, no NUL)", f->len, f->len);
	else
		snprintf(buf, n, "%s %d", type_name(f->type), f->len);
	return buf;
}

static int refuse(context *c, const ibp_msgv_field *f, const char *got)
{
	char exp[160];
	return fail_field(c, expected_text(f, exp, sizeof exp), got);
}

/* Length of a valid UTF-8 sequence without NUL and without surrogates, or (size_t)-1. */
static size_t utf8_valid(const unsigned char *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		unsigned char b = s[i];
		size_t k;
		uint32_t cp;
		if (b == 0)
			return (size_t)-1;
		if (b < 0x80) { i++; continue; }
		if (b >= 0xc2 && b <= 0xdf) { k = 1; cp = b & 0x1f; }
		else if (b >= 0xe0 && b <= 0xef) { k = 2; cp = b & 0x0f; }
		else if (b >= 0xf0 && b <= 0xf4) { k = 3; cp = b & 0x07; }
		else return (size_t)-1;
		if (i + k >= n) return (size_t)-1;
		for (size_t j = 1; j <= k; j++) {
			if ((s[i + j] & 0xc0) != 0x80) return (size_t)-1;
			cp = (cp << 6) | (s[i + j] & 0x3f);
		}
		if ((k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return (size_t)-1;
		i += k + 1;
	}
	return n;
}

static int set_integer(context *c, const ibp_msgv_field *f, void *dst, const char *t, size_t n)
{
	int neg = 0;
	uint64_t v = 0;
	size_t i = 0;
	char got[80];
	snprintf(got, sizeof got, "\"%.*s\"", (int)(n < 60 ? n : 60), t);
	if (i < n && t[i] == '-') { neg = 1; i++; }
	if (i == n || (t[i] == '0' && i + 1 < n)) return refuse(c, f, got);
	for (; i < n; i++) {
		if (t[i] < '0' || t[i] > '9') return refuse(c, f, got);
		if (v > (UINT64_MAX - (uint64_t)(t[i] - '0')) / 10) return refuse(c, f, got);
		v = v * 10 + (uint64_t)(t[i] - '0');
	}
	if (f->type == IBP_MSGV_INT) {
		uint64_t limit = (uint64_t)1 << (f->len * 8 - 1); /* |min| */
		if ((neg && v > limit) || (!neg && v > limit - 1)) return refuse(c, f, got);
		int64_t s = neg ? (int64_t)(0 - v) : (int64_t)v;
		switch (f->len) {
		case 1: *(int8_t *)dst = (int8_t)s; break;
		case 2: *(int16_t *)dst = (int16_t)s; break;
		case 4: *(int32_t *)dst = (int32_t)s; break;
		default: *(int64_t *)dst = s; break;
		}
		return 0;
	}
	if (neg && v != 0) return refuse(c, f, got);
	if (f->len < 8 && v > (((uint64_t)1 << (f->len * 8)) - 1)) return refuse(c, f, got);
	switch (f->len) {
	case 1: *(uint8_t *)dst = (uint8_t)v; break;
	case 2: *(uint16_t *)dst = (uint16_t)v; break;
	case 4: *(uint32_t *)dst = (uint32_t)v; break;
	default: *(uint64_t *)dst = v; break;
	}
	return 0;
}

/* Canonical NUMERIC text of t (exactly f->scale fraction digits) into out[IBP_MSGV_NUMERIC_SIZE]. */
static int canonical_numeric(const ibp_msgv_field *f, const char *t, size_t n, char *out)
{
	size_t i = 0, int_start, int_end, frac_start = 0, frac_end = 0;
	int neg = 0, zero = 1;
	if (i < n && t[i] == '-') { neg = 1; i++; }
	int_start = i;
	while (i < n && t[i] >= '0' && t[i] <= '9') i++;
	int_end = i;
	if (int_end == int_start) return -1;
	if (i < n && t[i] == '.') {
		frac_start = ++i;
		while (i < n && t[i] >= '0' && t[i] <= '9') i++;
		frac_end = i;
		if (frac_end == frac_start) return -1;
	}
	if (i != n) return -1;
	while (int_start + 1 < int_end && t[int_start] == '0') int_start++;
	size_t int_len = int_end - int_start, frac_len = frac_end - frac_start;
	if (!(int_len == 1 && t[int_start] == '0') && int_len > (size_t)(f->len - f->scale)) return -2;
	for (size_t j = (size_t)f->scale; j < frac_len; j++)
		if (t[frac_start + j] != '0') return -3;
	for (size_t j = int_start; j < int_end; j++) if (t[j] != '0') zero = 0;
	for (size_t j = 0; j < frac_len && j < (size_t)f->scale; j++) if (t[frac_start + j] != '0') zero = 0;
	size_t o = 0;
	if (neg && !zero) out[o++] = '-';
	memcpy(out + o, t + int_start, int_len);
	o += int_len;
	if (f->scale > 0) {
		out[o++] = '.';
		for (size_t j = 0; j < (size_t)f->scale; j++) out[o++] = j < frac_len ? t[frac_start + j] : '0';
	}
	out[o] = '\0';
	return 0;
}

static int set_numeric(context *c, const ibp_msgv_field *f, void *dst, const char *t, size_t n)
{
	char got[96];
	int rc = canonical_numeric(f, t, n, (char *)dst);
	if (rc == 0) return 0;
	snprintf(got, sizeof got, "\"%.*s\"%s", (int)(n < 60 ? n : 60), t,
		rc == -2 ? " (too many integer digits)" : rc == -3 ? " (too many fraction digits)" : "");
	return refuse(c, f, got);
}

static int set_float(context *c, const ibp_msgv_field *f, void *dst, const char *t, size_t n)
{
	char buf[TEXT_MAX], *end;
	char got[80];
	snprintf(got, sizeof got, "\"%.*s\"", (int)(n < 60 ? n : 60), t);
	if (n == 0 || n >= sizeof buf) return refuse(c, f, got);
	memcpy(buf, t, n);
	buf[n] = '\0';
	double d = strtod(buf, &end);
	if (end != buf + n || !isfinite(d)) return refuse(c, f, got);
	if (f->len == 4) {
		if (!isfinite((float)d)) return refuse(c, f, got);
		*(float *)dst = (float)d;
	} else {
		*(double *)dst = d;
	}
	return 0;
}

/* A scalar from text: a DEFAULT, or the content of a JSON string. */
static int set_from_text(context *c, const ibp_msgv_field *f, void *dst, const char *t, size_t n)
{
	char got[80];
	switch (f->type) {
	case IBP_MSGV_INT:
	case IBP_MSGV_UINT:
	case IBP_MSGV_UCHAR:
		if (f->type == IBP_MSGV_UCHAR) {
			ibp_msgv_field u = *f;
			u.type = IBP_MSGV_UINT;
			u.len = 1;
			return set_integer(c, &u, dst, t, n);
		}
		return set_integer(c, f, dst, t, n);
	case IBP_MSGV_FLOAT:
		return set_float(c, f, dst, t, n);
	case IBP_MSGV_NUMERIC:
		return set_numeric(c, f, dst, t, n);
	case IBP_MSGV_BOOL:
		if ((n == 4 && memcmp(t, "true", 4) == 0) || (n == 1 && t[0] == '1')) { *(char *)dst = 1; return 0; }
		if ((n == 5 && memcmp(t, "false", 5) == 0) || (n == 1 && t[0] == '0')) { *(char *)dst = 0; return 0; }
		snprintf(got, sizeof got, "\"%.*s\"", (int)(n < 60 ? n : 60), t);
		return refuse(c, f, got);
	case IBP_MSGV_CHAR:
		if (n == 0) { *(char *)dst = 0; return 0; }
		if (n == 1 && (unsigned char)t[0] >= 1 && (unsigned char)t[0] <= 0x7f) { *(char *)dst = t[0]; return 0; }
		return refuse(c, f, "more than one ASCII character");
	case IBP_MSGV_STRING:
		if (n > (size_t)f->len) {
			snprintf(got, sizeof got, "%zu bytes", n);
			return refuse(c, f, got);
		}
		if (utf8_valid((const unsigned char *)t, n) != n) return refuse(c, f, "text that is not UTF-8 or holds a NUL");
		memcpy(dst, t, n);
		((char *)dst)[n] = '\0';
		return 0;
	default:
		return refuse(c, f, "a scalar");
	}
}

/* ------------------------------------------------------------------ init */

static int init_struct(context *c, const ibp_msgv_struct *d, char *base)
{
	memset(base, 0, d->size);
	for (int i = 0; i < d->nfields; i++) {
		const ibp_msgv_field *f = &d->fields[i];
		char *dst = base + f->offset;
		int rc = 0;
		if (f->type == IBP_MSGV_STRUCT) {
			int n = f->array_size > 0 ? f->array_size : 1;
			for (int k = 0; k < n && rc == 0; k++) rc = init_struct(c, f->sub, dst + (size_t)k * f->elem_size);
		} else if (f->dflt != NULL) {
			rc = set_from_text(c, f, dst, f->dflt, strlen(f->dflt));
		} else if (f->type == IBP_MSGV_NUMERIC) {
			rc = set_numeric(c, f, dst, "0", 1);
		}
		if (rc != 0) return rc;
	}
	return 0;
}

int ibp_msgv_init(const ibp_msgv_struct *d, void *st)
{
	context c = { NULL, 0, { "", 0 } };
	return init_struct(&c, d, (char *)st);
}

/* ------------------------------------------------------------------ JSON reader */

typedef struct {
	const char *start, *p, *end;
	context *c;
} reader;

static void skip_ws(reader *r)
{
	while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r')) r->p++;
}

static int syntax(reader *r, const char *what)
{
	return fail(r->c, IBP_MSGV_ERR_SYNTAX, "not valid JSON at byte %ld: %s", (long)(r->p - r->start), what);
}

static int hex4(const char *p, uint32_t *v)
{
	*v = 0;
	for (int i = 0; i < 4; i++) {
		char h = p[i];
		*v <<= 4;
		if (h >= '0' && h <= '9') *v |= (uint32_t)(h - '0');
		else if (h >= 'a' && h <= 'f') *v |= (uint32_t)(h - 'a' + 10);
		else if (h >= 'A' && h <= 'F') *v |= (uint32_t)(h - 'A' + 10);
		else return -1;
	}
	return 0;
}

/*
 * Decodes the JSON string at r->p into dst (at most cap bytes, not NUL-terminated), *len = its
 * byte length. Returns 0; -1 syntax (error set); 1 longer than cap (the rest is skipped, *len is
 * the full length); 2 holds NUL or a lone surrogate.
 */
static int read_string(reader *r, char *dst, size_t cap, size_t *len)
{
	size_t o = 0;
	int bad = 0;
	r->p++; /* opening quote */
	for (;;) {
		if (r->p >= r->end) return syntax(r, "unterminated string");
		unsigned char b = (unsigned char)*r->p;
		char enc[4];
		size_t k = 0;
		if (b == '"') { r->p++; break; }
		if (b < 0x20) return syntax(r, "control character in a string");
		if (b == '\\') {
			if (r->p + 1 >= r->end) return syntax(r, "unterminated escape");
			char e = r->p[1];
			r->p += 2;
			switch (e) {
			case '"': enc[k++] = '"'; break;
			case '\\': enc[k++] = '\\'; break;
			case '/': enc[k++] = '/'; break;
			case 'b': enc[k++] = '\b'; break;
			case 'f': enc[k++] = '\f'; break;
			case 'n': enc[k++] = '\n'; break;
			case 'r': enc[k++] = '\r'; break;
			case 't': enc[k++] = '\t'; break;
			case 'u': {
				uint32_t cp, lo;
				if (r->end - r->p < 4 || hex4(r->p, &cp) != 0) return syntax(r, "bad \\u escape");
				r->p += 4;
				if (cp >= 0xd800 && cp <= 0xdbff) {
					if (r->end - r->p >= 6 && r->p[0] == '\\' && r->p[1] == 'u' && hex4(r->p + 2, &lo) == 0 && lo >= 0xdc00 && lo <= 0xdfff) {
						r->p += 6;
						cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
					} else {
						bad = 1;
						cp = 0xfffd;
					}
				} else if (cp >= 0xdc00 && cp <= 0xdfff) {
					bad = 1;
					cp = 0xfffd;
				}
				if (cp == 0) bad = 1;
				if (cp < 0x80) enc[k++] = (char)cp;
				else if (cp < 0x800) { enc[k++] = (char)(0xc0 | (cp >> 6)); enc[k++] = (char)(0x80 | (cp & 0x3f)); }
				else if (cp < 0x10000) { enc[k++] = (char)(0xe0 | (cp >> 12)); enc[k++] = (char)(0x80 | ((cp >> 6) & 0x3f)); enc[k++] = (char)(0x80 | (cp & 0x3f)); }
				else { enc[k++] = (char)(0xf0 | (cp >> 18)); enc[k++] = (char)(0x80 | ((cp >> 12) & 0x3f)); enc[k++] = (char)(0x80 | ((cp >> 6) & 0x3f)); enc[k++] = (char)(0x80 | (cp & 0x3f)); }
				break;
			}
			default:
				return syntax(r, "bad escape");
			}
		} else {
			/* a raw UTF-8 sequence: copy it whole, checked */
			size_t seq = b < 0x80 ? 1 : b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : 2;
			if ((size_t)(r->end - r->p) < seq || utf8_valid((const unsigned char *)r->p, seq) != seq)
				return syntax(r, "text is not UTF-8");
			memcpy(enc, r->p, seq);
			k = seq;
			r->p += seq;
		}
		if (o + k <= cap) memcpy(dst + o, enc, k);
		o += k;
	}
	*len = o;
	if (bad) return 2;
	return o > cap ? 1 : 0;
}

/* Scans a JSON number token; *is_int when it has no fraction and no exponent. */
static int scan_number(reader *r, const char **start, size_t *len, int *is_int)
{
	const char *p = r->p;
	*start = p;
	*is_int = 1;
	if (p < r->end && *p == '-') p++;
	if (p >= r->end) return syntax(r, "bad number");
	if (*p == '0') p++;
	else if (*p >= '1' && *p <= '9') while (p < r->end && *p >= '0' && *p <= '9') p++;
	else return syntax(r, "bad number");
	if (p < r->end && *p == '.') {
		*is_int = 0;
		p++;
		if (p >= r->end || *p < '0' || *p > '9') return syntax(r, "bad number");
		while (p < r->end && *p >= '0' && *p <= '9') p++;
	}
	if (p < r->end && (*p == 'e' || *p == 'E')) {
		*is_int = 0;
		p++;
		if (p < r->end && (*p == '+' || *p == '-')) p++;
		if (p >= r->end || *p < '0' || *p > '9') return syntax(r, "bad number");
		while (p < r->end && *p >= '0' && *p <= '9') p++;
	}
	*len = (size_t)(p - *start);
	r->p = p;
	return 0;
}

static int literal(reader *r, const char *word)
{
	size_t n = strlen(word);
	if ((size_t)(r->end - r->p) < n || memcmp(r->p, word, n) != 0) return syntax(r, "unexpected character");
	r->p += n;
	return 0;
}

static int read_struct(reader *r, const ibp_msgv_struct *d, char *base);

static int read_scalar(reader *r, const ibp_msgv_field *f, char *dst)
{
	char tmp[TEXT_MAX];
	size_t n;
	int rc;
	char c0 = *r->p;
	if (c0 == '"') {
		if (f->type == IBP_MSGV_STRING) {
			rc = read_string(r, dst, (size_t)f->len, &n);
			if (rc < 0) return rc;
			if (rc == 1) { char got[40]; snprintf(got, sizeof got, "%zu bytes", n); return refuse(r->c, f, got); }
			if (rc == 2) return refuse(r->c, f, "text with NUL or a lone surrogate");
			dst[n] = '\0';
			return 0;
		}
		rc = read_string(r, tmp, sizeof tmp, &n);
		if (rc < 0) return rc;
		if (rc != 0) return refuse(r->c, f, "a string too long for it");
		return set_from_text(r->c, f, dst, tmp, n);
	}
	if (c0 == '-' || (c0 >= '0' && c0 <= '9')) {
		const char *t;
		int is_int;
		if ((rc = scan_number(r, &t, &n, &is_int)) != 0) return rc;
		switch (f->type) {
		case IBP_MSGV_FLOAT:
			return set_float(r->c, f, dst, t, n);
		case IBP_MSGV_INT:
		case IBP_MSGV_UINT:
		case IBP_MSGV_UCHAR:
			/* a JSON number reaches JS as a double: only safe integers are exact */
			if (!is_int || n > 17 || (n >= 16 && (t[0] == '-' ? n - 1 : n) == 16 && strncmp(t[0] == '-' ? t + 1 : t, "9007199254740991", 16) > 0))
				return refuse(r->c, f, "a number that is not a safe integer (send 8-byte integers as strings)");
			return set_from_text(r->c, f, dst, t, n);
		default:
			return refuse(r->c, f, "a number");
		}
	}
	if (c0 == 't' || c0 == 'f') {
		if ((rc = literal(r, c0 == 't' ? "true" : "false")) != 0) return rc;
		if (f->type != IBP_MSGV_BOOL) return refuse(r->c, f, "a boolean");
		*dst = c0 == 't';
		return 0;
	}
	if (c0 == 'n') {
		if ((rc = literal(r, "null")) != 0) return rc;
		return refuse(r->c, f, "null");
	}
	if (c0 == '{' || c0 == '[') return refuse(r->c, f, c0 == '{' ? "an object" : "an array");
	return syntax(r, "unexpected character");
}

static int read_field(reader *r, const ibp_msgv_field *f, char *base)
{
	char *dst = base + f->offset;
	int rc;
	if (f->type != IBP_MSGV_STRUCT) return read_scalar(r, f, dst);
	if (f->array_size == 0) {
		if (*r->p != '{') return fail_field(r->c, "an object", "another value");
		if ((rc = init_struct(r->c, f->sub, dst)) != 0) return rc;
		return read_struct(r, f->sub, dst);
	}
	if (*r->p != '[') return fail_field(r->c, "an array", "another value");
	int *count = (int *)(base + f->count_offset);
	*count = 0;
	r->p++;
	skip_ws(r);
	if (r->p < r->end && *r->p == ']') { r->p++; return 0; }
	for (;;) {
		if (*count >= f->array_size) {
			char exp[48];
			snprintf(exp, sizeof exp, "at most %d elements", f->array_size);
			return fail_field(r->c, exp, "more");
		}
		char *elem = dst + (size_t)(*count) * f->elem_size;
		size_t saved = path_push(&r->c->path, NULL, *count);
		if (r->p >= r->end) return syntax(r, "unterminated array");
		if (*r->p != '{') return fail_field(r->c, "an object", "another value");
		if ((rc = init_struct(r->c, f->sub, elem)) != 0) return rc;
		if ((rc = read_struct(r, f->sub, elem)) != 0) return rc;
		path_pop(&r->c->path, saved);
		(*count)++;
		skip_ws(r);
		if (r->p >= r->end) return syntax(r, "unterminated array");
		if (*r->p == ']') { r->p++; return 0; }
		if (*r->p != ',') return syntax(r, "expected , or ]");
		r->p++;
		skip_ws(r);
	}
}

static int read_struct(reader *r, const ibp_msgv_struct *d, char *base)
{
	char key[KEY_MAX];
	size_t n;
	int rc;
	r->p++; /* { */
	skip_ws(r);
	if (r->p < r->end && *r->p == '}') { r->p++; return 0; }
	for (;;) {
		if (r->p >= r->end || *r->p != '"') return syntax(r, "expected a field name");
		rc = read_string(r, key, sizeof key - 1, &n);
		if (rc < 0) return rc;
		key[rc == 0 ? n : 0] = '\0';
		const ibp_msgv_field *f = NULL;
		for (int i = 0; rc == 0 && i < d->nfields; i++)
			if (strlen(d->fields[i].name) == n && memcmp(d->fields[i].name, key, n) == 0) f = &d->fields[i];
		if (f == NULL) {
			size_t saved = path_push(&r->c->path, key, -1);
			rc = fail(r->c, IBP_MSGV_ERR_UNKNOWN, "no field %s: remove it or declare it in the .dsc", r->c->path.text);
			path_pop(&r->c->path, saved);
			return rc;
		}
		skip_ws(r);
		if (r->p >= r->end || *r->p != ':') return syntax(r, "expected :");
		r->p++;
		skip_ws(r);
		if (r->p >= r->end) return syntax(r, "expected a value");
		size_t saved = path_push(&r->c->path, f->name, -1);
		if ((rc = read_field(r, f, base)) != 0) return rc;
		path_pop(&r->c->path, saved);
		skip_ws(r);
		if (r->p >= r->end) return syntax(r, "unterminated object");
		if (*r->p == '}') { r->p++; return 0; }
		if (*r->p != ',') return syntax(r, "expected , or }");
		r->p++;
		skip_ws(r);
	}
}

int ibp_msgv_unpack_json(const ibp_msgv_struct *d, const char *buf, size_t len, void *st, char *err, size_t errsize)
{
	context c = { err, errsize, { "", 0 } };
	reader r = { buf, buf, buf + len, &c };
	int rc = init_struct(&c, d, (char *)st);
	if (rc != 0) return rc;
	skip_ws(&r);
	if (r.p >= r.end || *r.p != '{') return syntax(&r, "expected an object");
	if ((rc = read_struct(&r, d, (char *)st)) != 0) return rc;
	skip_ws(&r);
	if (r.p != r.end) return syntax(&r, "data after the message");
	return 0;
}

/* ------------------------------------------------------------------ JSON writer */

typedef struct {
	char *buf;
	size_t len, cap;
	context *c;
} writer;

static int put(writer *w, const char *s, size_t n)
{
	if (w->len + n + 1 > w->cap) {
		size_t cap = w->cap ? w->cap : 256;
		while (cap < w->len + n + 1) cap *= 2;
		if (cap > IBP_MSGV_MAX_OUTPUT) return fail(w->c, IBP_MSGV_ERR_LIMIT, "packed message over %u bytes", IBP_MSGV_MAX_OUTPUT);
		char *nb = realloc(w->buf, cap);
		if (nb == NULL) return fail(w->c, IBP_MSGV_ERR_NOMEM, "out of memory");
		w->buf = nb;
		w->cap = cap;
	}
	memcpy(w->buf + w->len, s, n);
	w->len += n;
	w->buf[w->len] = '\0';
	return 0;
}

static int puts_(writer *w, const char *s) { return put(w, s, strlen(s)); }

static int put_string(writer *w, const char *s, size_t n)
{
	int rc = put(w, "\"", 1);
	for (size_t i = 0; i < n && rc == 0; i++) {
		unsigned char b = (unsigned char)s[i];
		char esc[8];
		if (b == '"') rc = put(w, "\\\"", 2);
		else if (b == '\\') rc = put(w, "\\\\", 2);
		else if (b < 0x20) { snprintf(esc, sizeof esc, "\\u%04x", b); rc = put(w, esc, 6); }
		else rc = put(w, (const char *)&s[i], 1);
	}
	return rc ? rc : put(w, "\"", 1);
}

static int write_struct(writer *w, const ibp_msgv_struct *d, const char *base);

static int write_scalar(writer *w, const ibp_msgv_field *f, const char *src)
{
	char num[64];
	switch (f->type) {
	case IBP_MSGV_INT: {
		long long v = f->len == 1 ? *(const int8_t *)src : f->len == 2 ? *(const int16_t *)src : f->len == 4 ? *(const int32_t *)src : (long long)*(const int64_t *)src;
		snprintf(num, sizeof num, f->len == 8 ? "\"%lld\"" : "%lld", v);
		return puts_(w, num);
	}
	case IBP_MSGV_UINT: {
		unsigned long long v = f->len == 1 ? *(const uint8_t *)src : f->len == 2 ? *(const uint16_t *)src : f->len == 4 ? *(const uint32_t *)src : (unsigned long long)*(const uint64_t *)src;
		snprintf(num, sizeof num, f->len == 8 ? "\"%llu\"" : "%llu", v);
		return puts_(w, num);
	}
	case IBP_MSGV_UCHAR:
		snprintf(num, sizeof num, "%u", (unsigned)*(const unsigned char *)src);
		return puts_(w, num);
	case IBP_MSGV_FLOAT: {
		double v = f->len == 4 ? (double)*(const float *)src : *(const double *)src;
		if (!isfinite(v)) return refuse(w->c, f, "a value that is not finite");
		snprintf(num, sizeof num, f->len == 4 ? "%.9g" : "%.17g", v);
		return puts_(w, num);
	}
	case IBP_MSGV_BOOL:
		return puts_(w, *src ? "true" : "false");
	case IBP_MSGV_CHAR:
		if (*src == 0) return put(w, "\"\"", 2);
		if ((unsigned char)*src > 0x7f) return refuse(w->c, f, "a byte over 0x7f");
		return put_string(w, src, 1);
	case IBP_MSGV_STRING: {
		const char *nul = memchr(src, '\0', (size_t)f->len + 1);
		if (nul == NULL) return refuse(w->c, f, "text not NUL-terminated within its size");
		size_t n = (size_t)(nul - src);
		if (utf8_valid((const unsigned char *)src, n) != n) return refuse(w->c, f, "text that is not UTF-8");
		return put_string(w, src, n);
	}
	case IBP_MSGV_NUMERIC: {
		char canon[IBP_MSGV_NUMERIC_SIZE(64)];
		size_t size = (size_t)IBP_MSGV_NUMERIC_SIZE(f->len);
		const char *nul = memchr(src, '\0', size);
		if (nul == NULL) return refuse(w->c, f, "text not NUL-terminated within its size");
		if (canonical_numeric(f, src, (size_t)(nul - src), canon) != 0) {
			char got[96];
			snprintf(got, sizeof got, "\"%.60s\"", src);
			return refuse(w->c, f, got);
		}
		return put_string(w, canon, strlen(canon));
	}
	default:
		return refuse(w->c, f, "a scalar");
	}
}

static int write_struct(writer *w, const ibp_msgv_struct *d, const char *base)
{
	int rc = put(w, "{", 1);
	for (int i = 0; i < d->nfields && rc == 0; i++) {
		const ibp_msgv_field *f = &d->fields[i];
		const char *src = base + f->offset;
		size_t saved = path_push(&w->c->path, f->name, -1);
		if (i > 0 && (rc = put(w, ",", 1)) != 0) break;
		if ((rc = put_string(w, f->name, strlen(f->name))) != 0 || (rc = put(w, ":", 1)) != 0) break;
		if (f->type != IBP_MSGV_STRUCT) {
			rc = write_scalar(w, f, src);
		} else if (f->array_size == 0) {
			rc = write_struct(w, f->sub, src);
		} else {
			int count = *(const int *)(base + f->count_offset);
			if (count < 0 || count > f->array_size) {
				char exp[48], got[24];
				snprintf(exp, sizeof exp, "_%s_count 0..%d", f->name, f->array_size);
				snprintf(got, sizeof got, "%d", count);
				rc = fail_field(w->c, exp, got);
				break;
			}
			rc = put(w, "[", 1);
			for (int k = 0; k < count && rc == 0; k++) {
				size_t saved_k = path_push(&w->c->path, NULL, k);
				if (k > 0) rc = put(w, ",", 1);
				if (rc == 0) rc = write_struct(w, f->sub, src + (size_t)k * f->elem_size);
				if (rc == 0) path_pop(&w->c->path, saved_k);
			}
			if (rc == 0) rc = put(w, "]", 1);
		}
		if (rc == 0) path_pop(&w->c->path, saved);
	}
	return rc ? rc : put(w, "}", 1);
}

int ibp_msgv_pack_json(const ibp_msgv_struct *d, const void *st, char **out, size_t *out_len, char *err, size_t errsize)
{
	context c = { err, errsize, { "", 0 } };
	writer w = { NULL, 0, 0, &c };
	int rc = write_struct(&w, d, (const char *)st);
	if (rc != 0) {
		free(w.buf);
		return rc;
	}
	*out = w.buf;
	if (out_len != NULL) *out_len = w.len;
	return 0;
}
