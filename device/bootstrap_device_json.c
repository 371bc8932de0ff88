/* The device library's JSON half: the request, and the reply read with jsmn (Debian's
 * libjsmn-dev, header-only, no allocation: a fixed token array on the stack; its code is
 * compiled in bootstrap_device_jsmn.c). The request
 * holds only validated characters (ProductKey, deviceId, hex), so it needs no escaping. */
#include <string.h>

#define JSMN_HEADER
#define JSMN_STRICT
#include <jsmn.h>

#include "bootstrap_device_internal.h"

/* enough for every reply the service sends (13 for a sealed success), and a bound on work */
#define TOKENS 24

bootdev_status bootdev_request_json(bootdev_client *c, uint8_t *out, size_t out_size, size_t *out_len)
{
	/* the members in the order of bootdev__prepare()'s values: \1 to \5 stand for them */
	static const char tmpl[] = "{\"productKey\":\"\1\",\"deviceId\":\"\2\",\"random\":\"\3\",\"signMethod\":\"\4\","
		"\"sign\":\"\5\"}";
	char sign[2 * BOOTDEV_MAC_MAX + 1];
	const char *values[5];
	size_t n = 0;
	bootdev_status rc;

	if(!out || !out_len) return BOOTDEV_ERR_ARG;
	/* the template but its five values is 70 */
	rc = bootdev__prepare(c, out_size < 70 ? 0 : out_size - 70, sign, values);
	if(rc != BOOTDEV_OK) return rc;
	for(const char *p = tmpl; *p; p++){
		const char *v = *p < 6 ? values[*p - 1] : p;
		size_t len = *p < 6 ? strlen(v) : 1;

		memcpy(out + n, v, len);
		n += len;
	}
	*out_len = n;
	return BOOTDEV_OK;
}

/* the index of the token after the subtree at i (jsmn: an object's size counts its keys, a
 * key's size is 1 for its value, an array's its elements) */
static int skip(const jsmntok_t *t, int i, int n)
{
	int pending = 1;
	while(pending > 0 && i < n){
		pending += t[i].size - 1;
		i++;
	}
	return i;
}

static int tok_is(const uint8_t *js, const jsmntok_t *t, const char *text)
{
	size_t n = strlen(text);
	return (size_t)(t->end - t->start) == n && !memcmp(js + t->start, text, n);
}

static struct bootdev__span span(const uint8_t *js, const jsmntok_t *t)
{
	struct bootdev__span s = { js + t->start, (size_t)(t->end - t->start) };
	return s;
}

/* The object of n tokens at js: its tokens, or -1 when it is not exactly one JSON object
 * (white space around it allowed: jsmn takes a second value, a stray , or : and stops at a
 * NUL, so everything outside the first token is looked at). */
static int parse(const uint8_t *js, size_t len, jsmntok_t *t)
{
	jsmn_parser p;
	int n;

	jsmn_init(&p);
	n = jsmn_parse(&p, (const char *)js, len, t, TOKENS);
	if(n < 1 || t[0].type != JSMN_OBJECT) return -1;
	for(size_t i = 0; i < len; i++){
		if((i < (size_t)t[0].start || i >= (size_t)t[0].end) && !memchr(" \t\r\n", js[i], 4)) return -1;
	}
	return n;
}

/* The members of the object at t (n tokens from t) that names[] names, each at most once: v[k]
 * is names[k]'s value, or NULL. A name's first byte has a bit for each jsmn type its value may
 * have, | REQUIRED when it must be there. -1 when malformed (not an object, a member twice,
 * mistyped, missing). */
#define REQUIRED 0x80
/* The bits below are Debian's jsmn 1.1.0's type values (0 to 4); jsmn's later sources made the
 * types bit flags (1, 2, 4, 8): a firmware built with those must fail here, not read wrongly. */
typedef char bootdev__jsmn_types_are_1_1_0s[(JSMN_OBJECT == 1 && JSMN_ARRAY == 2 && JSMN_STRING == 3
		&& JSMN_PRIMITIVE == 4) ? 1 : -1];
#define S "\010" /* JSMN_STRING, JSMN_OBJECT, JSMN_PRIMITIVE, any: a name's first byte */
#define O "\002"
#define P "\020"
#define ANY "\036"
#define RS "\210" /* required */
#define RP "\220"
static int members(const uint8_t *js, const jsmntok_t *t, int n, const char *const *names, int count,
		const jsmntok_t **v)
{
	int i = 1;

	for(int k = 0; k < count; k++) v[k] = NULL;
	if(t->type != JSMN_OBJECT) return -1;
	for(int m = 0; m < t->size; m++){
		if(i + 1 >= n || t[i].type != JSMN_STRING || t[i].size != 1) return -1;
		for(int k = 0; k < count; k++){
			if(tok_is(js, &t[i], names[k] + 1)){
				if(v[k] || !((unsigned char)names[k][0] >> t[i + 1].type & 1)) return -1; /* twice, or mistyped */
				v[k] = &t[i + 1];
			}
		}
		i = skip(t, i + 1, n);
	}
	for(int k = 0; k < count; k++){
		if(((unsigned char)names[k][0] & REQUIRED) && !v[k]) return -1;
	}
	return 0;
}

/* The four strings of a triple object at o (a sealed plaintext or "data"), t[n] the end. */
static bootdev_status triple(struct bootdev__reading *x, const uint8_t *js, const jsmntok_t *o, const jsmntok_t *end)
{
	static const char *const names[4] = { RS "ProductKey", RS "DeviceName", RS "DeviceSecret", RS "IotId" };
	struct bootdev__span f[4];
	const jsmntok_t *v[4];

	if(members(js, o, (int)(end - o), names, 4, v)) return BOOTDEV_ERR_MALFORMED;
	for(int k = 0; k < 4; k++) f[k] = span(js, v[k]);
	return bootdev__triple(x, f);
}

static int b64(const bootdev_client *c, const uint8_t *js, const jsmntok_t *t, uint8_t *out, size_t size, size_t *len)
{
	return c->port->base64_decode(c->port, (const char *)js + t->start, (size_t)(t->end - t->start), out, size, len);
}

/* t is the reply's tokens, reused for the plaintext's once the seal is read (one token array
 * on the stack, not two) */
static bootdev_status sealed(struct bootdev__reading *x, const uint8_t *js, jsmntok_t *t, const jsmntok_t *o, int n)
{
	static const char *const names[4] = { RS "alg", RS "iv", RS "ct", RS "tag" };
	const bootdev_client *c = x->c;
	uint8_t seal[12 + 16], *plain = x->at; /* the IV, then the tag */
	const jsmntok_t *v[4];
	size_t ct_len = 0;
	bootdev_status rc;
	int pn;

	if(!c->port->base64_decode) return BOOTDEV_ERR_ARG;
	/* a success whose seal cannot even be read is no more genuine than one that does not open */
	if(members(js, o, n - (int)(o - t), names, 4, v) || !tok_is(js, v[0], "A128GCM")) return BOOTDEV_ERR_FORGED;
	for(int k = 0; k < 2; k++){
		size_t want = 12 + 4 * (size_t)k, got = 0; /* the IV's 12 bytes (v[1]), the tag's 16 (v[3]) */
		if(b64(c, js, v[1 + 2 * k], seal + 12 * k, want, &got) || got != want) return BOOTDEV_ERR_FORGED;
	}
	/* the ciphertext at the start of the arena, opened in place; the strings after it */
	if((size_t)(v[2]->end - v[2]->start) / 4 * 3 > x->left + 2) return BOOTDEV_ERR_BUFFER; /* more than work holds */
	if(b64(c, js, v[2], plain, x->left, &ct_len)){
		/* unpadded, it may still be more than work holds: that is not a forgery */
		return (size_t)(v[2]->end - v[2]->start) / 4 * 3 > x->left ? BOOTDEV_ERR_BUFFER : BOOTDEV_ERR_FORGED;
	}
	rc = bootdev__open(x, seal, ct_len, seal + 12);
	if(rc != BOOTDEV_OK) return rc;
	pn = parse(plain, ct_len, t);
	rc = pn < 0 ? BOOTDEV_ERR_MALFORMED : triple(x, plain, t, t + pn);
	bootdev__zero(plain, ct_len); /* the plaintext: its strings are kept after it */
	return rc;
}

/* digits only, as the contract's whole seconds; a larger value is capped */
static bootdev_status seconds(const uint8_t *js, const jsmntok_t *t, uint32_t *out)
{
	uint32_t v = 0;

	/* a primitive: never empty (jsmn) */
	for(int i = t->start; i < t->end; i++){
		uint32_t d = (uint32_t)js[i] - '0';
		if(d > 9) return BOOTDEV_ERR_MALFORMED;
		v = v > (UINT32_MAX - 9) / 10 ? UINT32_MAX : v * 10 + d;
	}
	*out = v;
	return BOOTDEV_OK;
}

enum { M_SUCCESS, M_SEALED, M_DATA, M_CODE, M_MESSAGE, M_RETRY, M_COUNT };

bootdev_status bootdev_reply_json(const bootdev_client *c, const uint8_t *payload, size_t len, unsigned flags,
		uint8_t *work, size_t work_size, bootdev_reply *out)
{
	static const char *const names[M_COUNT] = { RP "success", ANY "sealed", O "data", S "code", S "message", P "retryAfter" };
	jsmntok_t t[TOKENS];
	const jsmntok_t *v[M_COUNT];
	struct bootdev__reading x;
	struct bootdev__span msg = { (const uint8_t *)"", 0 };
	int n;

	if(!c || !c->port || (!payload && len) || !work || !out) return BOOTDEV_ERR_ARG;
	memset(out, 0, sizeof(*out));
	if(len > BOOTDEV_REPLY_MAX) return BOOTDEV_ERR_MALFORMED;
	n = parse(payload, len, t);
	if(n < 0 || members(payload, t, n, names, M_COUNT, v)){
		return BOOTDEV_ERR_MALFORMED;
	}
	x.c = c;
	x.out = out;
	x.at = work;
	x.left = work_size;
	if(tok_is(payload, v[M_SUCCESS], "true")){
		if(!v[M_SEALED] == !v[M_DATA]) return BOOTDEV_ERR_MALFORMED; /* one of them */
		if(v[M_SEALED]) return sealed(&x, payload, t, v[M_SEALED], n);
		if(!(flags & BOOTDEV_ACCEPT_CLEAR)) return BOOTDEV_ERR_NOT_SEALED;
		return triple(&x, payload, v[M_DATA], t + n);
	}
	if(!tok_is(payload, v[M_SUCCESS], "false") || !v[M_CODE]
			|| (v[M_RETRY] && seconds(payload, v[M_RETRY], &out->retry_after) != BOOTDEV_OK)){
		return BOOTDEV_ERR_MALFORMED;
	}
	if(v[M_MESSAGE]) msg = span(payload, v[M_MESSAGE]);
	return bootdev__refusal(&x, span(payload, v[M_CODE]), msg);
}
