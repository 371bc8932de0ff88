/* The device library's CBOR half (the CBOR contract: docs/contract.md): the request written
 * with libcbor's non-allocating encoders, the reply read with libcbor's streaming decoder
 * (cbor_stream_decode: one item per call, callbacks, no allocation), pulled one item at a
 * time. Indefinite lengths and tags are refused, as the contract has none. */
#include <string.h>

#include <cbor.h>

#include "bootstrap_device_internal.h"

enum item_type { IT_BAD = 0, IT_UINT, IT_BSTR, IT_TSTR, IT_ARRAY, IT_MAP, IT_BOOL, IT_OTHER };

struct item {
	enum item_type type;
	uint64_t u;            /* IT_UINT value, IT_ARRAY/IT_MAP size, IT_BOOL 0/1 */
	const uint8_t *p;      /* IT_BSTR/IT_TSTR */
	size_t len;
};

struct reader { const uint8_t *p; size_t left; };

static void cb_u8(void *ctx, uint8_t v) { ((struct item *)ctx)->type = IT_UINT; ((struct item *)ctx)->u = v; }
static void cb_u16(void *ctx, uint16_t v) { ((struct item *)ctx)->type = IT_UINT; ((struct item *)ctx)->u = v; }
static void cb_u32(void *ctx, uint32_t v) { ((struct item *)ctx)->type = IT_UINT; ((struct item *)ctx)->u = v; }
static void cb_u64(void *ctx, uint64_t v) { ((struct item *)ctx)->type = IT_UINT; ((struct item *)ctx)->u = v; }
static void cb_n8(void *ctx, uint8_t v) { (void)v; ((struct item *)ctx)->type = IT_OTHER; }
static void cb_n16(void *ctx, uint16_t v) { (void)v; ((struct item *)ctx)->type = IT_OTHER; }
static void cb_n32(void *ctx, uint32_t v) { (void)v; ((struct item *)ctx)->type = IT_OTHER; }
static void cb_n64(void *ctx, uint64_t v) { (void)v; ((struct item *)ctx)->type = IT_OTHER; }
static void cb_bad(void *ctx) { ((struct item *)ctx)->type = IT_BAD; }
static void cb_bad64(void *ctx, uint64_t v) { (void)v; ((struct item *)ctx)->type = IT_BAD; }
static void cb_other(void *ctx) { ((struct item *)ctx)->type = IT_OTHER; }
static void cb_f(void *ctx, float v) { (void)v; ((struct item *)ctx)->type = IT_OTHER; }
static void cb_d(void *ctx, double v) { (void)v; ((struct item *)ctx)->type = IT_OTHER; }
static void cb_bool(void *ctx, bool v) { ((struct item *)ctx)->type = IT_BOOL; ((struct item *)ctx)->u = v; }

/* libcbor 0.9 and later pass lengths as uint64_t, 0.8 (Debian bookworm's) as size_t: one type
 * on a 64-bit host, two on a Cortex-M (device/target builds with either) */
#if CBOR_MAJOR_VERSION > 0 || CBOR_MINOR_VERSION >= 9
typedef uint64_t cb_len;
#else
typedef size_t cb_len;
#endif

static void cb_bstr(void *ctx, cbor_data p, cb_len len)
{
	struct item *it = ctx;
	it->type = IT_BSTR;
	it->p = p;
	it->len = len;
}

static void cb_tstr(void *ctx, cbor_data p, cb_len len)
{
	struct item *it = ctx;
	it->type = IT_TSTR;
	it->p = p;
	it->len = len;
}

static void cb_array(void *ctx, cb_len n) { ((struct item *)ctx)->type = IT_ARRAY; ((struct item *)ctx)->u = n; }
static void cb_map(void *ctx, cb_len n) { ((struct item *)ctx)->type = IT_MAP; ((struct item *)ctx)->u = n; }

/* every member set: libcbor calls them unchecked; const, in flash */
static const struct cbor_callbacks callbacks = {
	.uint8 = cb_u8, .uint16 = cb_u16, .uint32 = cb_u32, .uint64 = cb_u64,
	.negint64 = cb_n64, .negint32 = cb_n32, .negint16 = cb_n16, .negint8 = cb_n8,
	.byte_string_start = cb_bad, .byte_string = cb_bstr,
	.string = cb_tstr, .string_start = cb_bad,
	.indef_array_start = cb_bad, .array_start = cb_array,
	.indef_map_start = cb_bad, .map_start = cb_map,
	.tag = cb_bad64,
	.float2 = cb_f, .float4 = cb_f, .float8 = cb_d,
	.undefined = cb_other, .null = cb_other, .boolean = cb_bool,
	.indef_break = cb_bad,
};

/* The next item; IT_BAD when there is none, or it is one the contract never has. */
static struct item next(struct reader *r)
{
	struct item it;
	struct cbor_decoder_result res;

	memset(&it, 0, sizeof(it));
	if(!r->left) return it;
	res = cbor_stream_decode(r->p, r->left, &callbacks, &it);
	if(res.status != CBOR_DECODER_FINISHED || res.read == 0 || res.read > r->left){
		it.type = IT_BAD;
		return it;
	}
	r->p += res.read;
	r->left -= res.read;
	return it;
}

/* Skips the value whose first item is it (nested arrays and maps counted, no recursion). */
static int skip(struct reader *r, struct item it)
{
	uint64_t pending = 1;

	for(;;){
		if(it.type == IT_BAD) return -1;
		pending--;
		if(it.type == IT_ARRAY || it.type == IT_MAP){
			/* every item takes a byte at least: a count beyond what is left is a lie */
			if(it.u > r->left || (it.type == IT_MAP && 2 * it.u > r->left)) return -1;
			pending += it.type == IT_MAP ? 2 * it.u : it.u;
		}
		if(!pending) return 0;
		it = next(r);
	}
}

static int is(struct item it, const char *text)
{
	size_t n = strlen(text);
	return it.type == IT_TSTR && it.len == n && !memcmp(it.p, text, n);
}

/* The members named in names[] of a map of size members whose first key is next in r, each
 * at most once, into vals[] (IT_BAD: absent); unknown ones skipped. A map or array value
 * keeps where its members start (p, len) for nested(). -1 when malformed. */
static int read_members(struct reader *r, uint64_t size, const char *const *names, int count, struct item *vals)
{
	for(int k = 0; k < count; k++) vals[k].type = IT_BAD;
	if(size > 16) return -1;
	for(uint64_t i = 0; i < size; i++){
		struct item key = next(r), v;
		int k;

		if(key.type != IT_TSTR) return -1;
		for(k = 0; k < count && !is(key, names[k]); k++){
		}
		v = next(r);
		if(v.type == IT_BAD) return -1;
		if(v.type == IT_MAP || v.type == IT_ARRAY){
			v.p = r->p;
			v.len = r->left;
		}
		if(k < count){
			if(vals[k].type != IT_BAD) return -1; /* a member twice */
			vals[k] = v;
		}
		if(skip(r, v)) return -1;
	}
	return 0;
}

/* A map at r, its members into vals[] */
static int members(struct reader *r, const char *const *names, int count, struct item *vals)
{
	struct item m = next(r);

	if(m.type != IT_MAP) return -1;
	return read_members(r, m.u, names, count, vals);
}

/* The members of a map found as the value of a member */
static int nested(struct item map, const char *const *names, int count, struct item *vals)
{
	struct reader r;

	r.p = map.p;
	r.left = map.len;
	return read_members(&r, map.u, names, count, vals);
}

static bootdev_status triple(const bootdev_client *c, const struct item *vals, struct bootdev__arena *a, bootdev_reply *out)
{
	struct bootdev__span f[4];

	for(int k = 0; k < 4; k++){
		if(vals[k].type != IT_TSTR) return BOOTDEV_ERR_MALFORMED;
		f[k].p = vals[k].p;
		f[k].len = vals[k].len;
	}
	return bootdev__triple(c, f, a, out);
}

enum { M_SUCCESS, M_SEALED, M_DATA, M_CODE, M_MESSAGE, M_RETRY, M_COUNT };
enum { S_ALG, S_IV, S_CT, S_TAG, S_COUNT };

static bootdev_status sealed(const bootdev_client *c, struct item map, uint8_t *work, size_t work_size, bootdev_reply *out)
{
	static const char *const names[S_COUNT] = { "alg", "iv", "ct", "tag" };
	struct item s[S_COUNT], t[4];
	struct bootdev__arena a;
	struct reader r;
	bootdev_status rc;

	if(map.type != IT_MAP || nested(map, names, S_COUNT, s) || !is(s[S_ALG], "A128GCM") || s[S_IV].type != IT_BSTR || s[S_IV].len != 12
			|| s[S_CT].type != IT_BSTR || s[S_TAG].type != IT_BSTR || s[S_TAG].len != 16){
		/* a success whose seal cannot even be read is no more genuine than one that does not open */
		return BOOTDEV_ERR_FORGED;
	}
	if(s[S_CT].len > work_size) return BOOTDEV_ERR_BUFFER;
	/* the ciphertext at the start of work, opened in place; the strings after it */
	memcpy(work, s[S_CT].p, s[S_CT].len);
	rc = bootdev__open(c, s[S_IV].p, work, s[S_CT].len, s[S_TAG].p);
	if(rc != BOOTDEV_OK) return rc;
	out->sealed = 1;
	r.p = work;
	r.left = s[S_CT].len;
	a.at = work + s[S_CT].len;
	a.left = work_size - s[S_CT].len;
	if(members(&r, bootdev__triple_names, 4, t) || r.left) rc = BOOTDEV_ERR_MALFORMED;
	else rc = triple(c, t, &a, out);
	bootdev__zero(work, s[S_CT].len); /* the plaintext: its strings are kept after it */
	return rc;
}

bootdev_status bootdev_reply_cbor(const bootdev_client *c, const uint8_t *payload, size_t len, unsigned flags,
		uint8_t *work, size_t work_size, bootdev_reply *out)
{
	static const char *const names[M_COUNT] = { "success", "sealed", "data", "code", "message", "retryAfter" };
	struct item v[M_COUNT];
	struct bootdev__arena a;
	struct reader r;

	if(!c || !c->port || (!payload && len) || !work || !out) return BOOTDEV_ERR_ARG;
	memset(out, 0, sizeof(*out));
	if(len > BOOTDEV_REPLY_MAX) return BOOTDEV_ERR_MALFORMED;
	r.p = payload;
	r.left = len;
	if(members(&r, names, M_COUNT, v) || r.left || v[M_SUCCESS].type != IT_BOOL) return BOOTDEV_ERR_MALFORMED;
	a.at = work;
	a.left = work_size;
	if(v[M_SUCCESS].u){
		if(v[M_SEALED].type != IT_BAD && v[M_DATA].type != IT_BAD) return BOOTDEV_ERR_MALFORMED;
		if(v[M_SEALED].type != IT_BAD) return sealed(c, v[M_SEALED], work, work_size, out);
		if(v[M_DATA].type != IT_MAP) return BOOTDEV_ERR_MALFORMED;
		if(!(flags & BOOTDEV_ACCEPT_CLEAR)) return BOOTDEV_ERR_NOT_SEALED;
		{
			struct item t[4];
			if(nested(v[M_DATA], bootdev__triple_names, 4, t)) return BOOTDEV_ERR_MALFORMED;
			return triple(c, t, &a, out);
		}
	}
	if(v[M_CODE].type != IT_TSTR || (v[M_MESSAGE].type != IT_BAD && v[M_MESSAGE].type != IT_TSTR)
			|| (v[M_RETRY].type != IT_BAD && v[M_RETRY].type != IT_UINT)){
		return BOOTDEV_ERR_MALFORMED;
	}
	if(v[M_RETRY].type == IT_UINT) out->retry_after = v[M_RETRY].u > UINT32_MAX ? UINT32_MAX : (uint32_t)v[M_RETRY].u;
	{
		struct bootdev__span code = { v[M_CODE].p, v[M_CODE].len }, msg = { (const uint8_t *)"", 0 };
		if(v[M_MESSAGE].type == IT_TSTR){
			msg.p = v[M_MESSAGE].p;
			msg.len = v[M_MESSAGE].len;
		}
		return bootdev__refusal(code, msg, &a, out);
	}
}

/* The request: a map of five text strings, the JSON member names as keys. */
static size_t text(const char *s, uint8_t *out, size_t at, size_t size)
{
	size_t n = strlen(s), h;

	if(at > size) return 0;
	h = cbor_encode_string_start(n, out + at, size - at);
	if(!h || size - at - h < n) return 0;
	memcpy(out + at + h, s, n);
	return at + h + n;
}

bootdev_status bootdev_request_cbor(bootdev_client *c, uint8_t *out, size_t out_size, size_t *out_len)
{
	char sign[2 * BOOTDEV_MAC_MAX + 1];
	const char *fields[10];
	size_t n;
	bootdev_status rc;

	if(!c || !c->port || !out || !out_len) return BOOTDEV_ERR_ARG;
	/* the longest: 1 + keys 45 + headers 10 + pk 64 + id 32 + random 16 + method 10 + sign 64 */
	if(out_size < 1 + 45 + 10 + strlen(c->product_key) + strlen(c->device_id) + BOOTDEV_RANDOM_LEN + 10 + 2 * BOOTDEV_MAC_MAX){
		return BOOTDEV_ERR_BUFFER;
	}
	rc = bootdev__prepare(c, sign);
	if(rc != BOOTDEV_OK) return rc;
	fields[0] = "productKey"; fields[1] = c->product_key;
	fields[2] = "deviceId"; fields[3] = c->device_id;
	fields[4] = "random"; fields[5] = c->random;
	fields[6] = "signMethod"; fields[7] = bootdev_hmac_name(c->sign_method);
	fields[8] = "sign"; fields[9] = sign;
	n = cbor_encode_map_start(5, out, out_size);
	for(int i = 0; i < 10 && n; i++) n = text(fields[i], out, n, out_size);
	if(!n) return BOOTDEV_ERR_BUFFER;
	*out_len = n;
	return BOOTDEV_OK;
}
