/* Bootstrap requests in CBOR (docs/contract.md, "CBOR"): read with libcbor, then checked by the
 * same code as JSON's (request__take_members). Pure; the plugin parses on the broker thread.
 *
 * What libcbor allocates: cbor_load builds a tree, and allocates each map or array for the
 * size its head declares before reading a single entry (a 9-byte head may declare 2^32
 * pairs). So the payload is walked first with libcbor's streaming decoder, which allocates
 * nothing: the walk refuses indefinite lengths, tags and nesting deeper than CBOR_DEPTH_MAX,
 * and checks that the item ends exactly at the payload's end. Every entry a head declares has
 * then been seen, so the tree cbor_load builds has at most one item per payload byte.
 */
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include <cbor.h>

#include "bootstrap_request.h"

/* a request is one flat map; a little nesting in unknown members is tolerated */
#define CBOR_DEPTH_MAX 8

struct cbor_walk {
	size_t pending[CBOR_DEPTH_MAX]; /* entries still to come at each open level */
	int depth;
	size_t left;  /* bytes left from the head being decoded: no container declares more */
	bool started; /* the top item's head was read */
	bool done;    /* the top item is complete */
	bool bad;
};

/* One item (a head) was read; containers of n entries open a level. */
static void walk__item(struct cbor_walk *w, bool container, size_t entries)
{
	if(w->done){ /* a second item after the first: trailing bytes */
		w->bad = true;
		return;
	}
	w->started = true;
	if(w->depth > 0) w->pending[w->depth - 1]--;
	if(container && entries > 0){
		if(w->depth == CBOR_DEPTH_MAX || entries > w->left){
			w->bad = true;
			return;
		}
		w->pending[w->depth++] = entries;
		return;
	}
	while(w->depth > 0 && w->pending[w->depth - 1] == 0) w->depth--;
	if(w->depth == 0) w->done = true;
}

static void walk__refuse(void *ctx)
{
	((struct cbor_walk *)ctx)->bad = true;
}

static void walk__tag(void *ctx, uint64_t v)
{
	(void)v;
	walk__refuse(ctx);
}

static void walk__scalar(void *ctx)
{
	walk__item(ctx, false, 0);
}

static void walk__u8(void *ctx, uint8_t v) { (void)v; walk__scalar(ctx); }
static void walk__u16(void *ctx, uint16_t v) { (void)v; walk__scalar(ctx); }
static void walk__u32(void *ctx, uint32_t v) { (void)v; walk__scalar(ctx); }
static void walk__u64(void *ctx, uint64_t v) { (void)v; walk__scalar(ctx); }
static void walk__string(void *ctx, cbor_data data, size_t len) { (void)data; (void)len; walk__scalar(ctx); }
static void walk__float(void *ctx, float v) { (void)v; walk__scalar(ctx); }
static void walk__double(void *ctx, double v) { (void)v; walk__scalar(ctx); }
static void walk__bool(void *ctx, bool v) { (void)v; walk__scalar(ctx); }

static void walk__array(void *ctx, size_t n)
{
	walk__item(ctx, true, n);
}

static void walk__map(void *ctx, size_t n)
{
	struct cbor_walk *w = ctx;

	/* a pair is two items of a byte at least: bounds n * 2 without overflow */
	if(n > w->left / 2){
		w->bad = true;
		return;
	}
	walk__item(ctx, true, n * 2);
}

/* libcbor 0.8 names these fields crosswise (its comments say "indefinite" for definite ones);
 * the assignments below follow the decoder, which calls byte_string, string, array_start and
 * map_start for definite items. */
static const struct cbor_callbacks walk_callbacks = {
	.uint8 = walk__u8, .uint16 = walk__u16, .uint32 = walk__u32, .uint64 = walk__u64,
	.negint8 = walk__u8, .negint16 = walk__u16, .negint32 = walk__u32, .negint64 = walk__u64,
	.byte_string = walk__string, .byte_string_start = walk__refuse,
	.string = walk__string, .string_start = walk__refuse,
	.array_start = walk__array, .indef_array_start = walk__refuse,
	.map_start = walk__map, .indef_map_start = walk__refuse,
	.tag = walk__tag,
	.float2 = walk__float, .float4 = walk__float, .float8 = walk__double,
	.undefined = walk__scalar, .null = walk__scalar, .boolean = walk__bool,
	.indef_break = walk__refuse,
};

/* Exactly one well-formed item of definite lengths, without tags, filling the payload. */
static bool cbor__well_formed(const unsigned char *p, size_t len)
{
	struct cbor_walk w;
	size_t off = 0;

	memset(&w, 0, sizeof(w));
	while(off < len && !w.done){
		struct cbor_decoder_result r;
		w.left = len - off;
		r = cbor_stream_decode(p + off, len - off, &walk_callbacks, &w);
		if(r.status != CBOR_DECODER_FINISHED || r.read == 0 || w.bad) return false;
		off += r.read;
	}
	return w.done && off == len;
}

static bool key__is(const cbor_item_t *key, const char *name)
{
	size_t n = strlen(name);

	return cbor_string_length(key) == n && !memcmp(cbor_string_handle(key), name, n);
}

/* The value of a member the checks read. */
static struct request_member cbor__member(const cbor_item_t *value)
{
	struct request_member m = { MEMBER_OTHER, NULL, 0 };

	if(cbor_isa_string(value) && cbor_string_is_definite(value)){
		m.kind = MEMBER_TEXT;
		m.len = cbor_string_length(value);
		m.text = m.len ? (const char *)cbor_string_handle(value) : "";
	}
	return m;
}

/* The members of map, or false when a key is not text or comes twice. */
static bool cbor__members(const cbor_item_t *map, struct request_members *m)
{
	struct cbor_pair *pairs = cbor_map_handle(map);
	size_t n = cbor_map_size(map);
	static const struct { const char *name; size_t offset; } names[] = {
		{ "deviceId", offsetof(struct request_members, device_id) },
		{ "productKey", offsetof(struct request_members, product_key) },
		{ "random", offsetof(struct request_members, random) },
		{ "signMethod", offsetof(struct request_members, sign_method) },
		{ "sign", offsetof(struct request_members, sign) },
	};

	memset(m, 0, sizeof(*m));
	for(size_t i = 0; i < n; i++){
		const cbor_item_t *key = pairs[i].key;
		size_t klen;
		if(!cbor_isa_string(key) || !cbor_string_is_definite(key)) return false;
		klen = cbor_string_length(key);
		/* at most 512 pairs fit in 1024 bytes: the quadratic check stays small */
		for(size_t j = 0; j < i; j++){
			if(cbor_string_length(pairs[j].key) == klen
					&& (klen == 0 || !memcmp(cbor_string_handle(pairs[j].key), cbor_string_handle(key), klen))){
				return false;
			}
		}
		for(size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++){
			if(key__is(key, names[k].name)){
				*(struct request_member *)((char *)m + names[k].offset) = cbor__member(pairs[i].value);
			}
		}
	}
	return true;
}

#define REFUSE(sentence, cause) do{ *why = (sentence); *reason = (cause); }while(0)

enum request_status request__parse_cbor(const void *payload, size_t len,
		struct bootstrap_request *req, const char **why, enum bootstrap_reason *reason)
{
	struct cbor_load_result result;
	struct request_members m;
	cbor_item_t *root;
	enum request_status rc;

	memset(req, 0, sizeof(*req));
	if(!request__size_ok(payload, len, why, reason)) return REQUEST_INVALID;
	if(!cbor__well_formed(payload, len)){
		REFUSE("payload is not one well-formed CBOR item of definite lengths without tags", REASON_NOT_CBOR);
		return REQUEST_INVALID;
	}
	root = cbor_load(payload, len, &result);
	if(!root || result.error.code != CBOR_ERR_NONE || result.read != len){
		if(root) cbor_decref(&root);
		/* well-formed, so only memory can be short */
		REFUSE("payload is not one well-formed CBOR item of definite lengths without tags", REASON_NOT_CBOR);
		return REQUEST_INVALID;
	}
	if(!cbor_isa_map(root) || !cbor_map_is_definite(root)){
		cbor_decref(&root);
		REFUSE("payload must be a CBOR map", REASON_NOT_OBJECT);
		return REQUEST_INVALID;
	}
	if(!cbor__members(root, &m)){
		cbor_decref(&root);
		REFUSE("CBOR map keys must be text strings, each once", REASON_NOT_CBOR);
		return REQUEST_INVALID;
	}
	rc = request__take_members(&m, req, why, reason);
	cbor_decref(&root);
	return rc;
}
