/* The device library's CBOR half (the CBOR contract: docs/contract.md): the request written
 * with libcbor's non-allocating encoders, the reply read with libcbor's streaming decoder
 * (cbor_stream_decode: one item per call, callbacks, no allocation), pulled one item at a
 * time. Indefinite lengths and tags are refused, as the contract has none. */
#include <string.h>

#include <cbor.h>

#include "bootstrap_device_internal.h"

/* libcbor 0.9 made the string and collection callbacks' lengths uint64_t (size_t before): a
 * 32-bit target's calling convention tells them apart, so the callbacks take the version's. */
#if CBOR_MAJOR_VERSION > 0 || CBOR_MINOR_VERSION >= 9
typedef uint64_t cbor_len;
#else
typedef size_t cbor_len;
#endif

enum item_type { IT_BAD = 0, IT_UINT, IT_BSTR, IT_TSTR, IT_ARRAY, IT_MAP, IT_BOOL, IT_OTHER };
/* The member tables below carry these values in their names' first byte ("\203" is REQUIRED |
 * IT_TSTR): reordering the enum must fail here, not read wrongly. */
typedef char bootdev__item_types_as_in_the_tables[(IT_UINT == 1 && IT_BSTR == 2 && IT_TSTR == 3 && IT_MAP == 5
		&& IT_BOOL == 6 && IT_OTHER == 7) ? 1 : -1];

struct item {
	enum item_type type;
	size_t n;              /* IT_UINT value, IT_ARRAY/IT_MAP size (both capped at SIZE_MAX),
	                        * IT_BSTR/IT_TSTR length, IT_BOOL 0/1 */
	const uint8_t *p;      /* IT_BSTR/IT_TSTR; for a map or array value, where its members start */
};

struct reader { const uint8_t *p; size_t left; };

static void set(void *ctx, enum item_type type, uint64_t n)
{
	struct item *it = ctx;
	it->type = type;
	it->n = n > SIZE_MAX ? SIZE_MAX : (size_t)n;
}

static void cb_u8(void *ctx, uint8_t v) { set(ctx, IT_UINT, v); }
static void cb_u16(void *ctx, uint16_t v) { set(ctx, IT_UINT, v); }
static void cb_u32(void *ctx, uint32_t v) { set(ctx, IT_UINT, v); }
static void cb_u64(void *ctx, uint64_t v) { set(ctx, IT_UINT, v); }
static void cb_bad(void *ctx) { set(ctx, IT_BAD, 0); }
static void cb_bad64(void *ctx, uint64_t v) { set(ctx, IT_BAD, v); }
static void cb_bool(void *ctx, bool v) { set(ctx, IT_BOOL, v); }

/* a string's bytes are in the payload (libcbor checked): its length fits a size_t */
static void cb_bstr(void *ctx, cbor_data p, cbor_len len)
{
	set(ctx, IT_BSTR, len);
	((struct item *)ctx)->p = p;
}

static void cb_tstr(void *ctx, cbor_data p, cbor_len len)
{
	set(ctx, IT_TSTR, len);
	((struct item *)ctx)->p = p;
}

static void cb_array(void *ctx, cbor_len n) { set(ctx, IT_ARRAY, n); }
static void cb_map(void *ctx, cbor_len n) { set(ctx, IT_MAP, n); }

/* every member set: libcbor calls them unchecked; const, in flash. The items the contract
 * never has but a reply may carry in a member it does not know (negative integers, floats,
 * null, undefined) get libcbor's own no-op callbacks: next() has marked the item IT_OTHER. */
static const struct cbor_callbacks callbacks = {
	.uint8 = cb_u8, .uint16 = cb_u16, .uint32 = cb_u32, .uint64 = cb_u64,
	.negint64 = cbor_null_negint64_callback, .negint32 = cbor_null_negint32_callback,
	.negint16 = cbor_null_negint16_callback, .negint8 = cbor_null_negint8_callback,
	.byte_string_start = cb_bad, .byte_string = cb_bstr,
	.string = cb_tstr, .string_start = cb_bad,
	.indef_array_start = cb_bad, .array_start = cb_array,
	.indef_map_start = cb_bad, .map_start = cb_map,
	.tag = cb_bad64,
	.float2 = cbor_null_float2_callback, .float4 = cbor_null_float4_callback, .float8 = cbor_null_float8_callback,
	.undefined = cbor_null_undefined_callback, .null = cbor_null_null_callback, .boolean = cb_bool,
	.indef_break = cb_bad,
};

#ifdef BOOTDEV_CBOR_NO_HALF_FLOAT
/* Built with -DBOOTDEV_CBOR_NO_HALF_FLOAT and linked with -Wl,--wrap=_cbor_load_half: libcbor's
 * streaming decoder then gets a half float's value from here, not from its own decoding (ldexp
 * and double arithmetic: software floating point, 2 to 4.5 KB on a Cortex-M). The contract has
 * no floats and this reader never looks at one's value (cb_f). */
float __wrap__cbor_load_half(cbor_data source);
float __wrap__cbor_load_half(cbor_data source)
{
	(void)source;
	return 0.0f;
}
#endif

/* The next item into it; IT_BAD when there is none, or it is one the contract never has. */
static enum item_type next(struct reader *r, struct item *it)
{
	struct cbor_decoder_result res;

	it->type = IT_BAD;
	if(!r->left) return IT_BAD;
	/* unless a callback says what it is: an item with no value of its own (libcbor's no-op
	 * callbacks) has none here either, never a stale one */
	it->type = IT_OTHER;
	it->n = 0;
	it->p = NULL;
	res = cbor_stream_decode(r->p, r->left, &callbacks, it);
	if(res.status != CBOR_DECODER_FINISHED || res.read == 0 || res.read > r->left) return it->type = IT_BAD;
	r->p += res.read;
	r->left -= res.read;
	return it->type;
}

/* Skips the value whose first item, it, was just read (nested arrays and maps counted, no
 * recursion). */
static int skip(struct reader *r, struct item it)
{
	size_t pending = 1;

	for(;;){
		if(it.type == IT_BAD) return -1;
		pending--;
		if(it.type == IT_ARRAY || it.type == IT_MAP){
			/* every item takes a byte at least: a count beyond what is left is a lie */
			if(it.n > r->left || (it.type == IT_MAP && it.n > r->left / 2)) return -1;
			pending += it.type == IT_MAP ? 2 * it.n : it.n;
		}
		if(!pending) return 0;
		next(r, &it);
	}
}

static int is(const struct item *it, const char *text)
{
	size_t n = strlen(text);
	return it->type == IT_TSTR && it->n == n && !memcmp(it->p, text, n);
}

/* The members of a map that names[] names, each at most once, into vals[] (all 0, IT_BAD:
 * absent); unknown ones skipped. A name's first byte is the type its value must have (IT_ANY:
 * any), | REQUIRED when it must be there. map NULL: the map is the whole of r, its head next;
 * else map was read already (a member's value) and r is at its members. A map or array value
 * keeps where its members start in p. -1 when malformed, or not a map. */
#define REQUIRED 0x80
#define IT_ANY 0x7f
static int members(struct reader *r, const struct item *map, const char *const *names, int count, struct item *vals)
{
	struct item head;

	memset(vals, 0, (size_t)count * sizeof(*vals));
	if(!map){
		next(r, &head);
		map = &head;
	}
	if(map->type != IT_MAP || map->n > 16) return -1;
	for(size_t i = 0; i < map->n; i++){
		struct item key, v;
		int k = 0;

		if(next(r, &key) != IT_TSTR) return -1;
		while(k < count && !is(&key, names[k] + 1)) k++;
		next(r, &v);
		v.p = v.type == IT_MAP || v.type == IT_ARRAY ? r->p : v.p;
		if(k < count){
			int want = (unsigned char)names[k][0] & ~REQUIRED;
			if(vals[k].type != IT_BAD || (want != IT_ANY && want != (int)v.type)) return -1; /* twice, or mistyped */
			vals[k] = v;
		}
		if(skip(r, v)) return -1;
	}
	for(int k = 0; k < count; k++){
		if(((unsigned char)names[k][0] & REQUIRED) && vals[k].type == IT_BAD) return -1;
	}
	return map == &head && r->left ? -1 : 0; /* trailing bytes */
}

/* The triple's four strings, from the map at r (its head next, or map already read) */
static bootdev_status triple(struct bootdev__reading *x, struct reader *r, const struct item *map)
{
	static const char *const names[4] = { "\203ProductKey", "\203DeviceName", "\203DeviceSecret", "\203IotId" };
	struct bootdev__span f[4];
	struct item t[4];

	if(members(r, map, names, 4, t)) return BOOTDEV_ERR_MALFORMED;
	for(int k = 0; k < 4; k++){
		f[k].p = t[k].p;
		f[k].len = t[k].n;
	}
	return bootdev__triple(x, f);
}

enum { M_SUCCESS, M_SEALED, M_DATA, M_CODE, M_MESSAGE, M_RETRY, M_COUNT };
enum { S_ALG, S_IV, S_CT, S_TAG, S_COUNT };

static bootdev_status sealed(struct bootdev__reading *x, struct reader *r, const struct item *map)
{
	static const char *const names[S_COUNT] = { "\203alg", "\202iv", "\202ct", "\202tag" };
	struct item s[S_COUNT];
	uint8_t *plain = x->at;
	bootdev_status rc;
	size_t ct_len;

	if(members(r, map, names, S_COUNT, s) || !is(&s[S_ALG], "A128GCM") || s[S_IV].n != 12 || s[S_TAG].n != 16){
		/* a success whose seal cannot even be read is no more genuine than one that does not open */
		return BOOTDEV_ERR_FORGED;
	}
	ct_len = s[S_CT].n;
	if(ct_len > x->left) return BOOTDEV_ERR_BUFFER;
	/* the ciphertext at the start of the arena, opened in place; the strings after it */
	memcpy(plain, s[S_CT].p, ct_len);
	rc = bootdev__open(x, s[S_IV].p, ct_len, s[S_TAG].p);
	if(rc != BOOTDEV_OK) return rc;
	r->p = plain;
	r->left = ct_len;
	rc = triple(x, r, NULL);
	bootdev__zero(plain, ct_len); /* the plaintext: its strings are kept after it */
	return rc;
}

bootdev_status bootdev_reply_cbor(const bootdev_client *c, const uint8_t *payload, size_t len, unsigned flags,
		uint8_t *work, size_t work_size, bootdev_reply *out)
{
	static const char *const names[M_COUNT] = { "\206success", "\177sealed", "\005data", "\003code", "\003message",
		"\001retryAfter" };
	struct item v[M_COUNT];
	struct bootdev__reading x;
	struct reader r, in;

	if(!c || !c->port || (!payload && len) || !work || !out) return BOOTDEV_ERR_ARG;
	memset(out, 0, sizeof(*out));
	if(len > BOOTDEV_REPLY_MAX) return BOOTDEV_ERR_MALFORMED;
	r.p = payload;
	r.left = len;
	if(members(&r, NULL, names, M_COUNT, v)) return BOOTDEV_ERR_MALFORMED;
	x.c = c;
	x.out = out;
	x.at = work;
	x.left = work_size;
	if(v[M_SUCCESS].n){
		struct item *m = &v[M_SEALED];
		if(m->type != IT_BAD && v[M_DATA].type != IT_BAD) return BOOTDEV_ERR_MALFORMED;
		if(m->type == IT_BAD){
			m = &v[M_DATA];
			if(m->type == IT_BAD) return BOOTDEV_ERR_MALFORMED;
			if(!(flags & BOOTDEV_ACCEPT_CLEAR)) return BOOTDEV_ERR_NOT_SEALED;
		}
		/* a sealed value that is no map is no seal (data is typed a map by members()) */
		if(m->type != IT_MAP) return BOOTDEV_ERR_FORGED;
		/* a reader at the value's members (members() and skip() bound what follows) */
		in.p = m->p;
		in.left = len - (size_t)(m->p - payload);
		if(m == &v[M_DATA]) return triple(&x, &in, m);
		return sealed(&x, &in, m);
	}
	if(v[M_CODE].type == IT_BAD) return BOOTDEV_ERR_MALFORMED;
	out->retry_after = v[M_RETRY].n > UINT32_MAX ? UINT32_MAX : (uint32_t)v[M_RETRY].n; /* 0 when absent */
	{
		struct bootdev__span code = { v[M_CODE].p, v[M_CODE].n }, msg = { v[M_MESSAGE].p, v[M_MESSAGE].n };
		return bootdev__refusal(&x, code, msg);
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
	static const char *const names[5] = { "productKey", "deviceId", "random", "signMethod", "sign" };
	char sign[2 * BOOTDEV_MAC_MAX + 1];
	const char *values[5];
	size_t n;
	bootdev_status rc;

	if(!out || !out_len) return BOOTDEV_ERR_ARG;
	/* the map's head 1, the keys 45 and every string's head 10 (the sign's and a long
	 * ProductKey's take 2) */
	rc = bootdev__prepare(c, out_size < 56 ? 0 : out_size - 56, sign, values);
	if(rc != BOOTDEV_OK) return rc;
	n = cbor_encode_map_start(5, out, out_size);
	for(int i = 0; i < 10 && n; i++) n = text(i & 1 ? values[i / 2] : names[i / 2], out, n, out_size);
	if(!n) return BOOTDEV_ERR_BUFFER;
	*out_len = n;
	return BOOTDEV_OK;
}
