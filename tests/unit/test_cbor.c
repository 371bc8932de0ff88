/* CBOR requests and replies (docs/contract.md, "CBOR"): the parser against every malformed
 * class and hostile sizes, the builder decoded back with libcbor, and the CBOR seal vector. */
#include <stdlib.h>
#include <string.h>

#include <cbor.h>

#include "bootstrap_reply.h"
#include "bootstrap_request.h"
#include "bootstrap_seal.h"
#include "unit.h"

static int unhex(const char *h, unsigned char *out, size_t max)
{
	size_t n = strlen(h) / 2;

	if(n > max) return -1;
	for(size_t i = 0; i < n; i++){
		unsigned v;
		if(sscanf(h + 2 * i, "%2x", &v) != 1) return -1;
		out[i] = (unsigned char)v;
	}
	return (int)n;
}

static void tohex(const unsigned char *b, size_t n, char *out)
{
	for(size_t i = 0; i < n; i++) snprintf(out + 2 * i, 3, "%02x", b[i]);
}

/* Parses len bytes; the reason (REASON_NONE when accepted). */
static enum bootstrap_reason parse_bytes(const unsigned char *b, size_t len, enum request_status want, struct bootstrap_request *r)
{
	const char *why = NULL;
	enum bootstrap_reason reason = REASON_NONE;
	enum request_status st = request__parse_cbor(b, len, r, &why, &reason);

	CHECK(st == want);
	if(st == REQUEST_OK){
		CHECK(reason == REASON_NONE);
	}else{
		CHECK(why && why[0]);
		CHECK(r->device_id[0] == '\0' && r->sign_method == SIGN_NONE && r->product_key[0] == '\0');
	}
	return reason;
}

static enum bootstrap_reason parse_hex(const char *h, enum request_status want)
{
	unsigned char b[2048];
	struct bootstrap_request r;
	int n = unhex(h, b, sizeof(b));

	CHECK(n >= 0);
	return parse_bytes(b, (size_t)n, want, &r);
}

/* A request map built with libcbor from name/value text pairs (NULL value: an integer). */
static size_t build(unsigned char *out, size_t max, const char *const *kv, size_t pairs)
{
	cbor_item_t *map = cbor_new_definite_map(pairs);
	size_t n;

	for(size_t i = 0; i < pairs; i++){
		cbor_item_t *k = cbor_build_string(kv[2 * i]);
		cbor_item_t *v = kv[2 * i + 1] ? cbor_build_string(kv[2 * i + 1]) : cbor_build_uint8(7);
		CHECK(cbor_map_add(map, (struct cbor_pair){ .key = cbor_move(k), .value = cbor_move(v) }));
	}
	n = cbor_serialize(map, out, max);
	cbor_decref(&map);
	return n;
}

#define SIGN64 "d0eb807030f4aec03a24a46e41be988f7f031bb75556a98876e36611b083fa12"

static void test_valid(void)
{
	unsigned char b[1100];
	struct bootstrap_request r;
	const char *const plain[] = { "deviceId", "dev-0001" };
	const char *const full[] = { "productKey", "a1Prod", "deviceId", "dev-0001", "random", "AbCd1234",
		"signMethod", "HmacSHA256", "sign", SIGN64, "other", NULL };
	size_t n;

	/* the contract's example, as cbor2 writes it */
	CHECK(parse_hex("a1686465766963654964686465762d30303031", REQUEST_OK) == REASON_NONE);
	n = build(b, sizeof(b), plain, 1);
	CHECK(parse_bytes(b, n, REQUEST_OK, &r) == REASON_NONE);
	CHECK_STR(r.device_id, "dev-0001");
	n = build(b, sizeof(b), full, 6);
	CHECK(parse_bytes(b, n, REQUEST_OK, &r) == REASON_NONE);
	CHECK_STR(r.device_id, "dev-0001");
	CHECK_STR(r.product_key, "a1Prod");
	CHECK_STR(r.random, "AbCd1234");
	CHECK_STR(r.sign, SIGN64);
	CHECK(r.sign_method == SIGN_HMACSHA256);
	/* unknown members of any definite type are ignored: an array holding a map, bytes, a
	 * negative integer, a float, null, undefined, a bool */
	CHECK(parse_hex("a7686465766963654964686465762d3030303161618201a1616200616342000161642061"
			"65f93c006166f66167f7", REQUEST_OK) == REASON_NONE);
	/* 7 pairs declared, 6 given: truncated */
	CHECK(parse_hex("a7686465766963654964686465762d30303031616182" "01a16162006163420001616420"
			"6165f93c006166f6", REQUEST_INVALID) == REASON_NOT_CBOR);
	CHECK(parse_hex("a2686465766963654964686465762d303030316178f5", REQUEST_OK) == REASON_NONE);
	CHECK(parse_hex("a2686465766963654964686465762d303030316178f7", REQUEST_OK) == REASON_NONE);
	/* lengths in a longer form than needed are still well-formed */
	CHECK(parse_hex("a17808646576696365496478086465762d30303031", REQUEST_OK) == REASON_NONE);
}

/* Every class of malformed payload: not_cbor, or the JSON reason where one applies. */
static void test_malformed(void)
{
	unsigned char b[1100];
	struct bootstrap_request r;
	const char *const no_id[] = { "device", "dev-0001" };
	const char *const int_id[] = { "deviceId", NULL };
	const char *const bad_id[] = { "deviceId", "ab" };
	const char *const bad_pk[] = { "deviceId", "dev-0001", "productKey", "a/b" };
	const char *const int_pk[] = { "deviceId", "dev-0001", "productKey", NULL };
	const char *const partial[] = { "deviceId", "dev-0001", "random", "AbCd1234" };
	const char *const int_sign[] = { "deviceId", "dev-0001", "random", "AbCd1234", "signMethod", "hmacsha256", "sign", NULL };
	const char *const method[] = { "deviceId", "dev-0001", "random", "AbCd1234", "signMethod", "sha256", "sign", SIGN64 };
	const char *const random[] = { "deviceId", "dev-0001", "random", "short", "signMethod", "hmacsha256", "sign", SIGN64 };
	const char *const sign[] = { "deviceId", "dev-0001", "random", "AbCd1234", "signMethod", "hmacsha1", "sign", SIGN64 };
	size_t n;

	CHECK(parse_bytes((const unsigned char *)"", 0, REQUEST_INVALID, &r) == REASON_EMPTY_PAYLOAD);
	CHECK(parse_bytes(NULL, 0, REQUEST_INVALID, &r) == REASON_EMPTY_PAYLOAD);
	/* truncated, in the head, in a string, in the map */
	CHECK(parse_hex("a1686465766963654964686465762d303030", REQUEST_INVALID) == REASON_NOT_CBOR);
	CHECK(parse_hex("a16864657669", REQUEST_INVALID) == REASON_NOT_CBOR);
	CHECK(parse_hex("a2686465766963654964686465762d30303031", REQUEST_INVALID) == REASON_NOT_CBOR);
	CHECK(parse_hex("19", REQUEST_INVALID) == REASON_NOT_CBOR);
	/* trailing bytes: one more byte, a second map */
	CHECK(parse_hex("a1686465766963654964686465762d3030303100", REQUEST_INVALID) == REASON_NOT_CBOR);
	CHECK(parse_hex("a1686465766963654964686465762d30303031a0", REQUEST_INVALID) == REASON_NOT_CBOR);
	/* indefinite lengths: the map, a key, a value, an array inside, a lone break */
	CHECK(parse_hex("bf686465766963654964686465762d30303031ff", REQUEST_INVALID) == REASON_NOT_CBOR);
	CHECK(parse_hex("a17f686465766963654964ff686465762d30303031", REQUEST_INVALID) == REASON_NOT_CBOR);
	CHECK(parse_hex("a16864657669636549647f686465762d30303031ff", REQUEST_INVALID) == REASON_NOT_CBOR);
	CHECK(parse_hex("a2686465766963654964686465762d30303031617a9f01ff", REQUEST_INVALID) == REASON_NOT_CBOR);
	CHECK(parse_hex("ff", REQUEST_INVALID) == REASON_NOT_CBOR);
	/* tags: around the map, on a value */
	CHECK(parse_hex("d9d9f7a1686465766963654964686465762d30303031", REQUEST_INVALID) == REASON_NOT_CBOR);
	CHECK(parse_hex("a1686465766963654964c0686465762d30303031", REQUEST_INVALID) == REASON_NOT_CBOR);
	/* reserved additional information */
	CHECK(parse_hex("a1686465766963654964" "1c", REQUEST_INVALID) == REASON_NOT_CBOR);
	/* keys: twice the same, an integer, a byte string */
	CHECK(parse_hex("a2686465766963654964686465762d30303031686465766963654964686465762d30303032",
			REQUEST_INVALID) == REASON_NOT_CBOR);
	CHECK(parse_hex("a2617a00617a01a0", REQUEST_INVALID) == REASON_NOT_CBOR); /* trailing after a dup too */
	CHECK(parse_hex("a2617a00617a01", REQUEST_INVALID) == REASON_NOT_CBOR);
	CHECK(parse_hex("a101686465762d30303031", REQUEST_INVALID) == REASON_NOT_CBOR);
	CHECK(parse_hex("a1486465766963654964686465762d30303031", REQUEST_INVALID) == REASON_NOT_CBOR);
	/* well-formed, not a map: the JSON reason */
	CHECK(parse_hex("686465762d30303031", REQUEST_INVALID) == REASON_NOT_OBJECT);
	CHECK(parse_hex("81686465762d30303031", REQUEST_INVALID) == REASON_NOT_OBJECT);
	CHECK(parse_hex("f6", REQUEST_INVALID) == REASON_NOT_OBJECT);
	/* the members: the same reasons as JSON's */
	n = build(b, sizeof(b), no_id, 1);
	CHECK(parse_bytes(b, n, REQUEST_INVALID, &r) == REASON_DEVICE_ID_MISSING);
	n = build(b, sizeof(b), int_id, 1);
	CHECK(parse_bytes(b, n, REQUEST_INVALID, &r) == REASON_DEVICE_ID_NOT_STRING);
	CHECK(parse_hex("a1686465766963654964486465762d30303031", REQUEST_INVALID) == REASON_DEVICE_ID_NOT_STRING);
	n = build(b, sizeof(b), bad_id, 1);
	CHECK(parse_bytes(b, n, REQUEST_INVALID_DEVICE_ID, &r) == REASON_BAD_DEVICE_ID);
	/* a NUL inside a text string is no DeviceName */
	CHECK(parse_hex("a1686465766963654964686465760030303031", REQUEST_INVALID_DEVICE_ID) == REASON_BAD_DEVICE_ID);
	n = build(b, sizeof(b), bad_pk, 2);
	CHECK(parse_bytes(b, n, REQUEST_INVALID, &r) == REASON_BAD_PRODUCT_KEY);
	n = build(b, sizeof(b), int_pk, 2);
	CHECK(parse_bytes(b, n, REQUEST_INVALID, &r) == REASON_BAD_PRODUCT_KEY);
	n = build(b, sizeof(b), partial, 2);
	CHECK(parse_bytes(b, n, REQUEST_INVALID, &r) == REASON_SIGN_MEMBERS_INCOMPLETE);
	n = build(b, sizeof(b), int_sign, 4);
	CHECK(parse_bytes(b, n, REQUEST_INVALID, &r) == REASON_SIGN_MEMBERS_INCOMPLETE);
	n = build(b, sizeof(b), method, 4);
	CHECK(parse_bytes(b, n, REQUEST_INVALID, &r) == REASON_BAD_SIGN_METHOD);
	n = build(b, sizeof(b), random, 4);
	CHECK(parse_bytes(b, n, REQUEST_INVALID, &r) == REASON_BAD_RANDOM);
	n = build(b, sizeof(b), sign, 4);
	CHECK(parse_bytes(b, n, REQUEST_INVALID, &r) == REASON_BAD_SIGN_FORMAT);
}

/* Sizes a hostile client declares: refused before libcbor builds anything for them. */
static void test_hostile_sizes(void)
{
	unsigned char b[2048];
	struct bootstrap_request r;
	size_t n = 0;

	/* 2^32 pairs, 2^63 pairs, 2^32 array entries, a 2^63-byte string: each in a few bytes */
	CHECK(parse_hex("bb0000000100000000", REQUEST_INVALID) == REASON_NOT_CBOR);
	CHECK(parse_hex("bb7fffffffffffffff", REQUEST_INVALID) == REASON_NOT_CBOR);
	CHECK(parse_hex("a1617a9b0000000100000000", REQUEST_INVALID) == REASON_NOT_CBOR);
	CHECK(parse_hex("a1686465766963654964" "7b7fffffffffffffff", REQUEST_INVALID) == REASON_NOT_CBOR);
	/* 1000 entries declared, few given */
	CHECK(parse_hex("a1617a9903e80102", REQUEST_INVALID) == REASON_NOT_CBOR);
	/* nesting 500 deep inside an unknown member */
	b[n++] = 0xa2;
	n += (size_t)unhex("686465766963654964686465762d30303031617a", b + n, 32);
	for(int i = 0; i < 500; i++) b[n++] = 0x81;
	b[n++] = 0x00;
	CHECK(parse_bytes(b, n, REQUEST_INVALID, &r) == REASON_NOT_CBOR);
	/* 1025 bytes: refused unread */
	memset(b, 0, 1025);
	CHECK(parse_bytes(b, 1025, REQUEST_INVALID, &r) == REASON_PAYLOAD_TOO_LARGE);
	/* a full 1024 bytes of distinct members is fine: deviceId, 240 small pairs, one long one */
	n = 0;
	b[n++] = 0xb9; /* a map, its count in 2 bytes (set below) */
	b[n++] = 0;
	b[n++] = 0;
	n += (size_t)unhex("686465766963654964686465762d30303031", b + n, 32);
	int pairs = 1;
	for(int i = 0; i < 240; i++, pairs++){
		b[n++] = 0x62;
		b[n++] = (unsigned char)('a' + i / 26);
		b[n++] = (unsigned char)('a' + i % 26);
		b[n++] = 0x00;
	}
	size_t last = n, rest = 1024 - n - 3 - 2;
	b[n++] = 0x62; /* "zz": a byte string of the rest */
	b[n++] = 'z';
	b[n++] = 'z';
	b[n++] = 0x58;
	b[n++] = (unsigned char)rest;
	memset(b + n, 0xee, rest);
	n += rest;
	pairs++;
	b[1] = (unsigned char)(pairs >> 8);
	b[2] = (unsigned char)pairs;
	CHECK(n == 1024);
	CHECK(parse_bytes(b, n, REQUEST_OK, &r) == REASON_NONE);
	CHECK_STR(r.device_id, "dev-0001");
	/* the same with its last key the first small one's: a duplicate, refused */
	b[last + 1] = 'a';
	b[last + 2] = 'a';
	CHECK(parse_bytes(b, n, REQUEST_INVALID, &r) == REASON_NOT_CBOR);
}

/* The map at root decoded: pair i's key is name. */
static const cbor_item_t *pair_value(const cbor_item_t *map, size_t i, const char *name)
{
	struct cbor_pair *pairs = cbor_map_handle(map);
	size_t n = strlen(name);

	CHECK(i < cbor_map_size(map));
	if(i >= cbor_map_size(map)) return NULL;
	CHECK(cbor_isa_string(pairs[i].key) && cbor_string_length(pairs[i].key) == n
			&& !memcmp(cbor_string_handle(pairs[i].key), name, n));
	return pairs[i].value;
}

static bool text_is(const cbor_item_t *v, const char *want)
{
	return v && cbor_isa_string(v) && cbor_string_is_definite(v) && cbor_string_length(v) == strlen(want)
			&& !memcmp(cbor_string_handle(v), want, strlen(want));
}

static cbor_item_t *load(const char *payload, size_t len)
{
	struct cbor_load_result res;
	cbor_item_t *root = cbor_load((const unsigned char *)payload, len, &res);

	CHECK(root && res.error.code == CBOR_ERR_NONE && res.read == len);
	CHECK(root && cbor_isa_map(root) && cbor_map_is_definite(root));
	return root;
}

static void test_reply_error(void)
{
	size_t len = 0;
	char *p = reply__error_cbor(BOOTSTRAP_BUSY, "try later", 300, &len);
	char h[256];
	cbor_item_t *root;

	CHECK(p && len > 0);
	if(!p) return;
	/* byte for byte what cbor2 writes for the same map: deterministic */
	tohex((const unsigned char *)p, len, h);
	CHECK_STR(h, "a46773756363657373f464636f64656462757379676d65737361676569747279206c617465726a7265747279416674657219012c");
	root = load(p, len);
	CHECK(cbor_map_size(root) == 4);
	CHECK(cbor_is_bool(pair_value(root, 0, "success")) && !cbor_get_bool(pair_value(root, 0, "success")));
	CHECK(text_is(pair_value(root, 1, "code"), "busy"));
	CHECK(text_is(pair_value(root, 2, "message"), "try later"));
	CHECK(cbor_isa_uint(pair_value(root, 3, "retryAfter")) && cbor_get_int(pair_value(root, 3, "retryAfter")) == 300);
	cbor_decref(&root);
	reply__free(p, len);

	/* retryAfter in its shortest form; none when not positive */
	p = reply__error_cbor(BOOTSTRAP_RATE_LIMITED, "m", 5, &len);
	CHECK(p && (unsigned char)p[len - 1] == 0x05 && (unsigned char)p[len - 2] == 'r');
	reply__free(p, len);
	p = reply__error_cbor(BOOTSTRAP_RATE_LIMITED, "m", 24, &len);
	CHECK(p && (unsigned char)p[len - 2] == 0x18 && (unsigned char)p[len - 1] == 24);
	reply__free(p, len);
	p = reply__error_cbor(BOOTSTRAP_RATE_LIMITED, "m", 70000, &len);
	CHECK(p && (unsigned char)p[len - 5] == 0x1a);
	reply__free(p, len);
	p = reply__error_cbor(BOOTSTRAP_INVALID_REQUEST, "bad", 0, &len);
	root = p ? load(p, len) : NULL;
	CHECK(root && cbor_map_size(root) == 3 && text_is(pair_value(root, 1, "code"), "invalid_request"));
	if(root) cbor_decref(&root);
	reply__free(p, len);
}

static const struct device_triple vector_triple = { "a1BwAGV0001", "dev-0001", "0123456789abcdef0123456789abcdef",
	"Q7uOhVRdZRRlDnTLv0001000100" };
/* the CBOR seal vector's plaintext (docs/contract.md, "CBOR"), as cbor2 writes the map */
#define VECTOR_CBOR_PLAINTEXT "a46a50726f647563744b65796b61314277414756303030316a4465766963654e616d65686465762d30303031" \
	"6c44657669636553656372657478203031323334353637383961626364656630313233343536373839616263646566" \
	"65496f744964781b5137754f685652645a52526c446e544c7630303031303030313030"

static void check_triple(const cbor_item_t *data)
{
	CHECK(data && cbor_isa_map(data) && cbor_map_is_definite(data) && cbor_map_size(data) == 4);
	if(!data || !cbor_isa_map(data) || cbor_map_size(data) != 4) return;
	CHECK(text_is(pair_value(data, 0, "ProductKey"), "a1BwAGV0001"));
	CHECK(text_is(pair_value(data, 1, "DeviceName"), "dev-0001"));
	CHECK(text_is(pair_value(data, 2, "DeviceSecret"), "0123456789abcdef0123456789abcdef"));
	CHECK(text_is(pair_value(data, 3, "IotId"), "Q7uOhVRdZRRlDnTLv0001000100"));
}

static void test_reply_success(void)
{
	size_t len = 0;
	char *p = reply__success_cbor(&vector_triple, &len);
	cbor_item_t *root;

	CHECK(p != NULL);
	if(!p) return;
	root = load(p, len);
	CHECK(cbor_map_size(root) == 2);
	CHECK(cbor_is_bool(pair_value(root, 0, "success")) && cbor_get_bool(pair_value(root, 0, "success")));
	check_triple(pair_value(root, 1, "data"));
	cbor_decref(&root);
	reply__free(p, len);
}

static void test_vector_and_sealed(void)
{
	unsigned char key[SEAL_KEY_LEN], plain[256], ct[256], tag[SEAL_TAG_LEN], back[256];
	const unsigned char iv[SEAL_IV_LEN] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
	int plen = unhex(VECTOR_CBOR_PLAINTEXT, plain, sizeof(plain));
	char h[600];
	size_t len = 0;
	char *p;
	cbor_item_t *root, *opened;
	const cbor_item_t *sealed, *civ, *cct, *ctag;
	struct cbor_load_result res;

	/* the published vector: the JSON vector's inputs, the CBOR plaintext */
	CHECK(plen == 126);
	CHECK(seal__derive_key("ps-secret-123", "0e60924368ebe2f2", "a1BwAGV0001", "dev-0001", key) == 0);
	tohex(key, sizeof(key), h);
	CHECK_STR(h, "5ba22b66cbbb0ae14ee4bb4a9f028978");
	CHECK(seal__encrypt(key, iv, plain, (size_t)plen, ct, tag) == 0);
	tohex(tag, sizeof(tag), h);
	CHECK_STR(h, "10e623c31e1101cb99070837d18283f8");
	tohex(ct, 10, h);
	CHECK_STR(h, "790e22c40a385f9b74d8");

	/* the plugin's sealed reply: opens with K to exactly the vector's plaintext bytes */
	p = reply__success_sealed_cbor(key, &vector_triple, &len);
	CHECK(p != NULL);
	if(!p) return;
	root = load(p, len);
	CHECK(cbor_map_size(root) == 2);
	CHECK(cbor_get_bool(pair_value(root, 0, "success")));
	sealed = pair_value(root, 1, "sealed");
	CHECK(sealed && cbor_isa_map(sealed) && cbor_map_size(sealed) == 4);
	CHECK(text_is(pair_value(sealed, 0, "alg"), "A128GCM"));
	civ = pair_value(sealed, 1, "iv");
	cct = pair_value(sealed, 2, "ct");
	ctag = pair_value(sealed, 3, "tag");
	CHECK(cbor_isa_bytestring(civ) && cbor_bytestring_length(civ) == SEAL_IV_LEN);
	CHECK(cbor_isa_bytestring(ctag) && cbor_bytestring_length(ctag) == SEAL_TAG_LEN);
	CHECK(cbor_isa_bytestring(cct) && cbor_bytestring_length(cct) == (size_t)plen);
	CHECK(seal__decrypt(key, cbor_bytestring_handle(civ), cbor_bytestring_handle(cct), (size_t)plen,
			cbor_bytestring_handle(ctag), back) == 0);
	CHECK(memcmp(back, plain, (size_t)plen) == 0);
	opened = cbor_load(back, (size_t)plen, &res);
	check_triple(opened);
	if(opened) cbor_decref(&opened);
	/* a fresh IV every time */
	{
		size_t len2 = 0;
		char *p2 = reply__success_sealed_cbor(key, &vector_triple, &len2);
		CHECK(p2 && len2 == len && memcmp(p, p2, len) != 0);
		reply__free(p2, len2);
	}
	/* the size a device receives, head by head: the map, "success", true, "sealed", the map,
	 * "alg", "A128GCM", "iv", the IV, "ct", the ciphertext, "tag", the tag (as cbor2 counts) */
	CHECK(len == 1 + 8 + 1 + 7 + 1 + 4 + 8 + 3 + (1 + 12) + 3 + (2 + 126) + 4 + (1 + 16));
	cbor_decref(&root);
	reply__free(p, len);
}

int main(void)
{
	RUN(test_valid);
	RUN(test_malformed);
	RUN(test_hostile_sizes);
	RUN(test_reply_error);
	RUN(test_reply_success);
	RUN(test_vector_and_sealed);
	return unit_main_result();
}
