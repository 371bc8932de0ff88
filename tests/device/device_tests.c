/* The device library's tests: the published vectors (docs/contract.md, through
 * device_vectors.h), requests, topics, and replies in both formats: genuine, clear, refused,
 * forged, truncated, for another device, replayed, oversize, malformed. Pure C: the same file
 * runs on the host and on a Cortex-M under QEMU. */
#include <stdio.h>
#include <string.h>

#include "device_tests.h"
#include "device_vectors.h"

static int failures;
static const char *port_name;

#define CHECK(cond) do{ if(!(cond)){ failures++; printf("FAIL [%s] %s:%d: %s\n", port_name, __FILE__, __LINE__, #cond); } }while(0)
#define CHECK_RC(expr, want) do{ bootdev_status rc_ = (expr); if(rc_ != (want)){ failures++; \
	printf("FAIL [%s] %s:%d: %s = %s, want %s\n", port_name, __FILE__, __LINE__, #expr, bootdev_status_name(rc_), bootdev_status_name(want)); } }while(0)
#define CHECK_STR(a, b) do{ const char *a_ = (a), *b_ = (b); if(!a_ || strcmp(a_, b_)){ failures++; \
	printf("FAIL [%s] %s:%d: %s = \"%s\", want \"%s\"\n", port_name, __FILE__, __LINE__, #a, a_ ? a_ : "(null)", b_); } }while(0)

/* A deterministic RNG: the bytes it is given, then those again. */
struct fixed_rng { const uint8_t *bytes; size_t len; int fail; };

static int fixed_rng(void *ctx, uint8_t *out, size_t len)
{
	struct fixed_rng *r = ctx;
	if(r->fail) return -1;
	for(size_t i = 0; i < len; i++) out[i] = r->bytes[i % r->len];
	return 0;
}

static const uint8_t seal_random_bytes[8] = { 0x0e, 0x60, 0x92, 0x43, 0x68, 0xeb, 0xe2, 0xf2 };
static const uint8_t earlier_random_bytes[8] = { 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11 };

static void hex(const uint8_t *b, size_t n, char *out)
{
	for(size_t i = 0; i < n; i++) sprintf(out + 2 * i, "%02x", b[i]);
}

static void test_sign_vectors(const struct bootdev_port *port)
{
	char sign[2 * BOOTDEV_MAC_MAX + 1];
	const uint8_t *s = (const uint8_t *)V_SIGN_SECRET;
	size_t n = strlen(V_SIGN_SECRET);

	CHECK_RC(bootdev_sign(port, BOOTDEV_HMAC_SHA256, s, n, V_SIGN_PK, V_SIGN_ID, V_SIGN_RANDOM, sign), BOOTDEV_OK);
	CHECK_STR(sign, V_SIGN_SHA256);
	CHECK_RC(bootdev_sign(port, BOOTDEV_HMAC_SHA1, s, n, V_SIGN_PK, V_SIGN_ID, V_SIGN_RANDOM, sign), BOOTDEV_OK);
	CHECK_STR(sign, V_SIGN_SHA1);
	CHECK_RC(bootdev_sign(port, BOOTDEV_HMAC_MD5, s, n, V_SIGN_PK, V_SIGN_ID, V_SIGN_RANDOM, sign), BOOTDEV_OK);
	CHECK_STR(sign, V_SIGN_MD5);
	CHECK_RC(bootdev_sign(port, (bootdev_hmac)7, s, n, V_SIGN_PK, V_SIGN_ID, V_SIGN_RANDOM, sign), BOOTDEV_ERR_ARG);
}

static void test_seal_vector(const struct bootdev_port *port)
{
	uint8_t k[BOOTDEV_KEY_LEN], buf[64];
	char text[2 * sizeof(buf) + 1];
	size_t n = 0;
	const char *at;

	CHECK_RC(bootdev_reply_key(port, (const uint8_t *)V_SEAL_SECRET, strlen(V_SEAL_SECRET), V_SEAL_RANDOM, V_SEAL_PK,
			V_SEAL_ID, k), BOOTDEV_OK);
	hex(k, sizeof(k), text);
	CHECK_STR(text, V_SEAL_K);
	/* the generated reply carries the published tag and ciphertext */
	if(port->base64_decode){
		at = strstr(v_json_sealed, "\"tag\":\"") + 7;
		CHECK(port->base64_decode(port, at, 24, buf, sizeof(buf), &n) == 0 && n == 16);
		hex(buf, 16, text);
		CHECK_STR(text, V_SEAL_TAG);
		at = strstr(v_json_sealed, "\"ct\":\"") + 6;
		CHECK(port->base64_decode(port, at, 16, buf, sizeof(buf), &n) == 0 && n == 12);
		hex(buf, 10, text);
		CHECK_STR(text, V_SEAL_CT_START);
	}
}

static void test_credentials(const struct bootdev_port *port)
{
	bootdev_credentials cr;

	CHECK_RC(bootdev_credentials_make(port, V_CONN_PK, V_CONN_DN, V_CONN_SECRET, V_CONN_CLIENT_ID, V_CONN_TS, 3, BOOTDEV_HMAC_SHA1, &cr), BOOTDEV_OK);
	CHECK_STR(cr.password, V_CONN_PASSWORD);
	CHECK_STR(cr.client_id, V_CONN_CLIENT_ID "|securemode=3,signmethod=hmacsha1,timestamp=" V_CONN_TS "|");
	CHECK_STR(cr.username, V_CONN_DN "&" V_CONN_PK);
	CHECK_RC(bootdev_credentials_make(port, "a1Prod", "dev-0001", "s3cr3t", NULL, "1796683180000", 2, BOOTDEV_HMAC_SHA1, &cr), BOOTDEV_OK);
	CHECK_STR(cr.client_id, "dev-0001|securemode=2,signmethod=hmacsha1,timestamp=1796683180000|");
	CHECK(strlen(cr.password) == 40);
	/* hmacsha256, as Alibaba's Link SDK 4.x connects */
	CHECK_RC(bootdev_credentials_make(port, V_CONN_PK, V_CONN_DN, V_CONN_SECRET, V_CONN_CLIENT_ID, V_CONN_TS, 3, BOOTDEV_HMAC_SHA256,
			&cr), BOOTDEV_OK);
	CHECK_STR(cr.password, V_CONN_PASSWORD_SHA256);
	CHECK_STR(cr.client_id, V_CONN_CLIENT_ID "|securemode=3,signmethod=hmacsha256,timestamp=" V_CONN_TS "|");
	/* hmacmd5 is no connect method of the IoT Platform's */
	CHECK_RC(bootdev_credentials_make(port, "a1Prod", "dev-0001", "s3cr3t", NULL, "1", 3, BOOTDEV_HMAC_MD5, &cr), BOOTDEV_ERR_ARG);
	CHECK_RC(bootdev_credentials_make(port, "a1Prod", "dev-0001", "s3cr3t", NULL, "1", 3, (bootdev_hmac)77, &cr), BOOTDEV_ERR_ARG);
	CHECK_RC(bootdev_credentials_make(port, "a1Prod", "dev-0001", "s3cr3t", NULL, "17x", 3, BOOTDEV_HMAC_SHA1, &cr), BOOTDEV_ERR_ARG);
	CHECK_RC(bootdev_credentials_make(port, "a1Prod", "dev-0001", "s3cr3t", NULL, "1", 1, BOOTDEV_HMAC_SHA1, &cr), BOOTDEV_ERR_ARG);
}

static void test_topics(void)
{
	char t[80];
	size_t n = 0;

	CHECK_RC(bootdev_request_topic(BOOTDEV_JSON, NULL, t, sizeof(t), &n), BOOTDEV_OK);
	CHECK_STR(t, "bootstrap/register");
	CHECK(n == 18);
	CHECK_RC(bootdev_request_topic(BOOTDEV_CBOR, NULL, t, sizeof(t), NULL), BOOTDEV_OK);
	CHECK_STR(t, "bootstrap/register/cbor");
	CHECK_RC(bootdev_request_topic(BOOTDEV_CBOR, "fleet/boot", t, sizeof(t), NULL), BOOTDEV_OK);
	CHECK_STR(t, "fleet/boot/cbor");
	CHECK_RC(bootdev_request_topic(BOOTDEV_JSON, "fleet/#", t, sizeof(t), NULL), BOOTDEV_ERR_ARG);
	CHECK_RC(bootdev_request_topic(BOOTDEV_CBOR, NULL, t, 23, NULL), BOOTDEV_ERR_BUFFER);
	CHECK_RC(bootdev_reply_topic(BOOTDEV_JSON, NULL, "dev-0001", t, sizeof(t), &n), BOOTDEV_OK);
	CHECK_STR(t, "bootstrap/reply/dev-0001");
	CHECK(n == 24);
	CHECK_RC(bootdev_reply_topic(BOOTDEV_CBOR, NULL, "dev-0001", t, sizeof(t), &n), BOOTDEV_OK);
	CHECK_STR(t, "bootstrap/reply/dev-0001/cbor");
	CHECK(n == 29);
	CHECK_RC(bootdev_reply_topic(BOOTDEV_JSON, "r/{deviceId}/x", "dev-0001", t, sizeof(t), NULL), BOOTDEV_OK);
	CHECK_STR(t, "r/dev-0001/x");
	CHECK_RC(bootdev_reply_topic(BOOTDEV_JSON, "r/{deviceId}/{deviceId}", "dev-0001", t, sizeof(t), NULL), BOOTDEV_ERR_ARG);
	CHECK_RC(bootdev_reply_topic(BOOTDEV_JSON, "r/x", "dev-0001", t, sizeof(t), NULL), BOOTDEV_ERR_ARG);
	CHECK_RC(bootdev_reply_topic(BOOTDEV_JSON, NULL, "dev/0001", t, sizeof(t), NULL), BOOTDEV_ERR_ARG);
	CHECK_RC(bootdev_reply_topic(BOOTDEV_CBOR, NULL, "dev-0001", t, 29, NULL), BOOTDEV_ERR_BUFFER);
}

static void client(bootdev_client *c, const struct bootdev_port *port, struct fixed_rng *rng, bootdev_hmac m)
{
	CHECK_RC(bootdev_init(c, port, fixed_rng, rng, V_SEAL_PK, V_SEAL_ID, (const uint8_t *)V_SEAL_SECRET,
			strlen(V_SEAL_SECRET), m), BOOTDEV_OK);
}

static void test_init(const struct bootdev_port *port)
{
	struct fixed_rng rng = { seal_random_bytes, 8, 0 };
	const uint8_t *s = (const uint8_t *)"x";
	bootdev_client c;

	CHECK_RC(bootdev_init(&c, port, fixed_rng, &rng, "a1/x", "dev-0001", s, 1, BOOTDEV_HMAC_SHA256), BOOTDEV_ERR_ARG);
	CHECK_RC(bootdev_init(&c, port, fixed_rng, &rng, "a1", "dev", s, 1, BOOTDEV_HMAC_SHA256), BOOTDEV_ERR_ARG);
	CHECK_RC(bootdev_init(&c, port, fixed_rng, &rng, "a1", "dev-0001-dev-0001-dev-0001-dev-00", s, 1, BOOTDEV_HMAC_SHA256),
			BOOTDEV_ERR_ARG);
	CHECK_RC(bootdev_init(&c, port, fixed_rng, &rng, "a1", "dev 0001", s, 1, BOOTDEV_HMAC_SHA256), BOOTDEV_ERR_ARG);
	CHECK_RC(bootdev_init(&c, port, fixed_rng, &rng, "a1", "dev-0001", s, 0, BOOTDEV_HMAC_SHA256), BOOTDEV_ERR_ARG);
	CHECK_RC(bootdev_init(&c, port, NULL, &rng, "a1", "dev-0001", s, 1, BOOTDEV_HMAC_SHA256), BOOTDEV_ERR_ARG);
	CHECK_RC(bootdev_init(&c, port, fixed_rng, &rng, "a1", "d@v:0_1.x", s, 1, BOOTDEV_HMAC_MD5), BOOTDEV_OK);
}

/* the default topics: the macros, and the reply topic of the client's deviceId */
static void test_default_topics(const struct bootdev_port *port)
{
	struct fixed_rng rng = { seal_random_bytes, 8, 0 };
	bootdev_client c;
	char t[80], exact_json[sizeof(BOOTDEV_REPLY_TOPIC_PREFIX V_SEAL_ID)], exact_cbor[sizeof(BOOTDEV_REPLY_TOPIC_PREFIX V_SEAL_ID "/cbor")];
	size_t n = 0;

	CHECK_STR(BOOTDEV_REQUEST_TOPIC_JSON, "bootstrap/register");
	CHECK_STR(BOOTDEV_REQUEST_TOPIC_CBOR, "bootstrap/register/cbor");
	CHECK_RC(bootdev_default_reply_topic(NULL, BOOTDEV_JSON, t, sizeof(t), &n), BOOTDEV_ERR_ARG);
	client(&c, port, &rng, BOOTDEV_HMAC_SHA256);
	CHECK_RC(bootdev_default_reply_topic(&c, BOOTDEV_JSON, t, sizeof(t), &n), BOOTDEV_OK);
	CHECK_STR(t, BOOTDEV_REPLY_TOPIC_PREFIX V_SEAL_ID);
	CHECK(n == strlen(BOOTDEV_REPLY_TOPIC_PREFIX V_SEAL_ID));
	CHECK_RC(bootdev_default_reply_topic(&c, BOOTDEV_CBOR, t, sizeof(t), NULL), BOOTDEV_OK);
	CHECK_STR(t, "bootstrap/reply/" V_SEAL_ID "/cbor");
	/* the same as the template call's */
	CHECK_RC(bootdev_default_reply_topic(&c, BOOTDEV_CBOR, t, strlen(t), NULL), BOOTDEV_ERR_BUFFER);
	CHECK_RC(bootdev_default_reply_topic(&c, BOOTDEV_CBOR, t, strlen(t) + 1, &n), BOOTDEV_OK);
	CHECK(n == strlen(t));
	CHECK_RC(bootdev_default_reply_topic(&c, BOOTDEV_JSON, t, 16 + strlen(V_SEAL_ID), NULL), BOOTDEV_ERR_BUFFER);
	/* exactly the room it needs, nothing written past it (ASan) */
	CHECK_RC(bootdev_default_reply_topic(&c, BOOTDEV_JSON, exact_json, sizeof(exact_json), NULL), BOOTDEV_OK);
	CHECK_STR(exact_json, BOOTDEV_REPLY_TOPIC_PREFIX V_SEAL_ID);
	CHECK_RC(bootdev_default_reply_topic(&c, BOOTDEV_CBOR, exact_cbor, sizeof(exact_cbor), NULL), BOOTDEV_OK);
	CHECK_STR(exact_cbor, BOOTDEV_REPLY_TOPIC_PREFIX V_SEAL_ID "/cbor");
	CHECK_RC(bootdev_default_reply_topic(&c, BOOTDEV_JSON, NULL, sizeof(t), NULL), BOOTDEV_ERR_BUFFER);
	CHECK_RC(bootdev_default_reply_topic(&c, (bootdev_format)2, t, sizeof(t), NULL), BOOTDEV_ERR_ARG);
	bootdev_wipe(&c);
	CHECK_RC(bootdev_default_reply_topic(&c, BOOTDEV_JSON, t, sizeof(t), NULL), BOOTDEV_ERR_ARG);
}

static void test_request_json(const struct bootdev_port *port)
{
	static const bootdev_hmac methods[3] = { BOOTDEV_HMAC_SHA256, BOOTDEV_HMAC_SHA1, BOOTDEV_HMAC_MD5 };
	struct fixed_rng rng = { seal_random_bytes, 8, 0 };
	char sign[2 * BOOTDEV_MAC_MAX + 1], want[BOOTDEV_REQUEST_SIZE];
	uint8_t out[BOOTDEV_REQUEST_SIZE];
	bootdev_client c;
	size_t n = 0;

	for(int i = 0; i < 3; i++){
		client(&c, port, &rng, methods[i]);
		CHECK_RC(bootdev_request_json(&c, out, sizeof(out), &n), BOOTDEV_OK);
		CHECK_STR(c.random, V_SEAL_RANDOM);
		CHECK_RC(bootdev_sign(port, methods[i], (const uint8_t *)V_SEAL_SECRET, strlen(V_SEAL_SECRET), V_SEAL_PK, V_SEAL_ID,
				V_SEAL_RANDOM, sign), BOOTDEV_OK);
		snprintf(want, sizeof(want), "{\"productKey\":\"%s\",\"deviceId\":\"%s\",\"random\":\"%s\",\"signMethod\":\"%s\",\"sign\":\"%s\"}",
				V_SEAL_PK, V_SEAL_ID, V_SEAL_RANDOM, bootdev_hmac_name(methods[i]), sign);
		CHECK(n == strlen(want) && !memcmp(out, want, n));
	}
	/* the key of the request is the published one */
	{
		char k[2 * BOOTDEV_KEY_LEN + 1];
		hex(c.key, sizeof(c.key), k);
		CHECK_STR(k, V_SEAL_K);
	}
	CHECK_RC(bootdev_request_json(&c, out, 100, &n), BOOTDEV_ERR_BUFFER);
	rng.fail = 1;
	CHECK_RC(bootdev_request_json(&c, out, sizeof(out), &n), BOOTDEV_ERR_RNG);
	CHECK(!c.asked);
}

static size_t put_text(uint8_t *out, size_t at, const char *s)
{
	size_t n = strlen(s);
	if(n < 24){
		out[at++] = (uint8_t)(0x60 | n);
	}else{
		out[at++] = 0x78;
		out[at++] = (uint8_t)n;
	}
	memcpy(out + at, s, n);
	return at + n;
}

static void test_request_cbor(const struct bootdev_port *port)
{
	struct fixed_rng rng = { seal_random_bytes, 8, 0 };
	char sign[2 * BOOTDEV_MAC_MAX + 1];
	uint8_t out[BOOTDEV_REQUEST_SIZE], want[BOOTDEV_REQUEST_SIZE];
	bootdev_client c;
	size_t n = 0, w = 0;

	client(&c, port, &rng, BOOTDEV_HMAC_SHA256);
	CHECK_RC(bootdev_request_cbor(&c, out, sizeof(out), &n), BOOTDEV_OK);
	CHECK_RC(bootdev_sign(port, BOOTDEV_HMAC_SHA256, (const uint8_t *)V_SEAL_SECRET, strlen(V_SEAL_SECRET), V_SEAL_PK,
			V_SEAL_ID, V_SEAL_RANDOM, sign), BOOTDEV_OK);
	want[w++] = 0xa5;
	w = put_text(want, w, "productKey");
	w = put_text(want, w, V_SEAL_PK);
	w = put_text(want, w, "deviceId");
	w = put_text(want, w, V_SEAL_ID);
	w = put_text(want, w, "random");
	w = put_text(want, w, V_SEAL_RANDOM);
	w = put_text(want, w, "signMethod");
	w = put_text(want, w, "hmacsha256");
	w = put_text(want, w, "sign");
	w = put_text(want, w, sign);
	CHECK(n == w && !memcmp(out, want, n));
	CHECK_RC(bootdev_request_cbor(&c, out, 120, &n), BOOTDEV_ERR_BUFFER);
}

typedef bootdev_status (*reader)(const bootdev_client *, const uint8_t *, size_t, unsigned, uint8_t *, size_t, bootdev_reply *);

/* One format's replies: genuine, clear, refused, another device's, replayed, truncated,
 * oversize, forged (cbor: every bit of the reply flipped; json: the tag and the ciphertext). */
static void test_replies(const struct bootdev_port *port, reader read, int cbor, const uint8_t *sealed, size_t sealed_len,
		const uint8_t *clear, size_t clear_len, const uint8_t *busy, size_t busy_len, const uint8_t *wrong, size_t wrong_len,
		const uint8_t *replayed, size_t replayed_len)
{
	struct fixed_rng rng = { seal_random_bytes, 8, 0 };
	uint8_t req[BOOTDEV_REQUEST_SIZE], work[BOOTDEV_WORK_SIZE], copy[BOOTDEV_REPLY_MAX + 2];
	bootdev_client c;
	bootdev_reply r;
	size_t n;

	client(&c, port, &rng, BOOTDEV_HMAC_SHA256);
	/* nothing asked yet: nothing opens */
	CHECK_RC(read(&c, sealed, sealed_len, 0, work, sizeof(work), &r), BOOTDEV_ERR_FORGED);
	CHECK_RC(cbor ? bootdev_request_cbor(&c, req, sizeof(req), &n) : bootdev_request_json(&c, req, sizeof(req), &n), BOOTDEV_OK);

	CHECK_RC(read(&c, sealed, sealed_len, 0, work, sizeof(work), &r), BOOTDEV_OK);
	CHECK_STR(r.product_key, V_SEAL_PK);
	CHECK_STR(r.device_name, V_SEAL_ID);
	CHECK_STR(r.device_secret, V_SEAL_DEVICE_SECRET);
	CHECK_STR(r.iot_id, V_SEAL_IOTID);
	CHECK(r.sealed == 1);
	CHECK_RC(read(&c, sealed, sealed_len, 0, work, 100, &r), BOOTDEV_ERR_BUFFER);

	CHECK_RC(read(&c, clear, clear_len, 0, work, sizeof(work), &r), BOOTDEV_ERR_NOT_SEALED);
	CHECK_RC(read(&c, clear, clear_len, BOOTDEV_ACCEPT_CLEAR, work, sizeof(work), &r), BOOTDEV_OK);
	CHECK_STR(r.device_secret, V_SEAL_DEVICE_SECRET);
	CHECK_STR(r.iot_id, V_SEAL_IOTID);
	CHECK(r.sealed == 0);

	CHECK_RC(read(&c, busy, busy_len, 0, work, sizeof(work), &r), BOOTDEV_REFUSED);
	CHECK_STR(r.code, "busy");
	CHECK_STR(r.message, "the queue is full");
	CHECK(r.retry_after == 7);

	CHECK_RC(read(&c, wrong, wrong_len, 0, work, sizeof(work), &r), BOOTDEV_ERR_WRONG_DEVICE);
	CHECK_RC(read(&c, replayed, replayed_len, 0, work, sizeof(work), &r), BOOTDEV_ERR_FORGED);

	/* every truncation refused */
	for(size_t i = 0; i < sealed_len; i++){
		bootdev_status rc = read(&c, sealed, i, 0, work, sizeof(work), &r);
		CHECK(rc != BOOTDEV_OK && rc != BOOTDEV_REFUSED);
	}
	for(size_t i = 0; i < busy_len; i++){
		bootdev_status rc = read(&c, busy, i, 0, work, sizeof(work), &r);
		CHECK(rc != BOOTDEV_OK && rc != BOOTDEV_REFUSED);
	}
	/* oversize */
	memset(copy, cbor ? 0 : ' ', sizeof(copy));
	memcpy(copy, sealed, sealed_len);
	CHECK_RC(read(&c, copy, BOOTDEV_REPLY_MAX + 1, 0, work, sizeof(work), &r), BOOTDEV_ERR_MALFORMED);
	/* trailing bytes */
	CHECK_RC(read(&c, copy, sealed_len + 1, 0, work, sizeof(work), &r), cbor ? BOOTDEV_ERR_MALFORMED : BOOTDEV_OK);
	if(cbor){
		/* every bit flipped: never a triple */
		for(size_t i = 0; i < sealed_len; i++){
			for(int b = 0; b < 8; b++){
				bootdev_status rc;
				memcpy(copy, sealed, sealed_len);
				copy[i] ^= (uint8_t)(1u << b);
				rc = read(&c, copy, sealed_len, 0, work, sizeof(work), &r);
				CHECK(rc != BOOTDEV_OK && rc != BOOTDEV_REFUSED);
			}
		}
	}else{
		/* a forged tag, a forged ciphertext: a base64 character changed */
		const char *text = (const char *)sealed;
		size_t at[2];
		at[0] = (size_t)(strstr(text, "\"tag\":\"") - text) + 7;
		at[1] = (size_t)(strstr(text, "\"ct\":\"") - text) + 6 + 5;
		for(int k = 0; k < 2; k++){
			memcpy(copy, sealed, sealed_len);
			copy[at[k]] = copy[at[k]] == 'A' ? 'B' : 'A';
			CHECK_RC(read(&c, copy, sealed_len, 0, work, sizeof(work), &r), BOOTDEV_ERR_FORGED);
		}
	}
	/* a new request: the reply to the last one no longer opens */
	rng.bytes = earlier_random_bytes;
	CHECK_RC(cbor ? bootdev_request_cbor(&c, req, sizeof(req), &n) : bootdev_request_json(&c, req, sizeof(req), &n), BOOTDEV_OK);
	CHECK_RC(read(&c, sealed, sealed_len, 0, work, sizeof(work), &r), BOOTDEV_ERR_FORGED);
	CHECK_RC(read(&c, replayed, replayed_len, 0, work, sizeof(work), &r), BOOTDEV_OK);
	/* another product's client: the genuine reply is not for it */
	CHECK_RC(bootdev_init(&c, port, fixed_rng, &rng, V_SEAL_PK, "dev-0002", (const uint8_t *)V_SEAL_SECRET,
			strlen(V_SEAL_SECRET), BOOTDEV_HMAC_SHA256), BOOTDEV_OK);
	rng.bytes = seal_random_bytes;
	CHECK_RC(cbor ? bootdev_request_cbor(&c, req, sizeof(req), &n) : bootdev_request_json(&c, req, sizeof(req), &n), BOOTDEV_OK);
	CHECK_RC(read(&c, sealed, sealed_len, 0, work, sizeof(work), &r), BOOTDEV_ERR_FORGED);
	CHECK_RC(read(&c, clear, clear_len, BOOTDEV_ACCEPT_CLEAR, work, sizeof(work), &r), BOOTDEV_ERR_WRONG_DEVICE);
	bootdev_wipe(&c);
}

#define TEXT(s) (const uint8_t *)(s), sizeof(s) - 1

/* A genuine seal around a triple refused after its DeviceSecret was read (its IotId): refused,
 * and nothing of the DeviceSecret left in work or in the reply, which the caller ignores. */
static void test_refused_triple_leaves_nothing(const struct bootdev_port *port)
{
	struct fixed_rng rng = { seal_random_bytes, 8, 0 };
	uint8_t req[BOOTDEV_REQUEST_SIZE], work[BOOTDEV_WORK_SIZE];
	bootdev_client c;
	bootdev_reply r;
	size_t n, secret_len = strlen(V_SEAL_DEVICE_SECRET);

	for(int cbor = 0; cbor < 2; cbor++){
		int found = 0;
		client(&c, port, &rng, BOOTDEV_HMAC_SHA256);
		CHECK_RC(cbor ? bootdev_request_cbor(&c, req, sizeof(req), &n) : bootdev_request_json(&c, req, sizeof(req), &n), BOOTDEV_OK);
		memset(work, 0, sizeof(work));
		CHECK_RC(cbor ? bootdev_reply_cbor(&c, v_cbor_bad_iotid, sizeof(v_cbor_bad_iotid), 0, work, sizeof(work), &r)
				: bootdev_reply_json(&c, (const uint8_t *)v_json_bad_iotid, strlen(v_json_bad_iotid), 0, work, sizeof(work), &r),
				BOOTDEV_ERR_MALFORMED);
		for(size_t i = 0; i + secret_len <= sizeof(work); i++) found |= !memcmp(work + i, V_SEAL_DEVICE_SECRET, secret_len);
		CHECK(!found);
		CHECK(r.device_secret == NULL && r.product_key == NULL && !r.sealed);
	}
}

static void test_json_malformed(const struct bootdev_port *port)
{
	static const char *const bad[] = {
		"", " ", "{", "[]", "\"x\"", "true", "{}", "{\"success\":true}", "{\"success\":1}", "{\"success\":\"true\"}",
		"{\"success\":false}", "{\"success\":false,\"code\":7}", "{\"success\":false,\"code\":\"Busy\"}",
		"{\"success\":false,\"code\":\"busy\",\"retryAfter\":-1}", "{\"success\":false,\"code\":\"busy\",\"retryAfter\":1.5}",
		"{\"success\":false,\"code\":\"busy\",\"message\":3}", "{\"success\":false,\"success\":false,\"code\":\"busy\"}",
		"{\"success\":false,\"code\":\"busy\"}{}", "{\"success\":false,\"code\":\"busy\"} x",
		"{\"success\":false,\"code\":\"busy\"},", ",{\"success\":false,\"code\":\"busy\"}",
		": {\"success\":false,\"code\":\"busy\"}", "{\"success\":false,\"code\":\"busy\"} :",
		"{\"success\":true,\"sealed\":{},\"data\":{}}",
		"{\"success\":true,\"data\":{\"ProductKey\":\"a1BwAGV0001\",\"DeviceName\":\"dev-0001\",\"DeviceSecret\":\"x\"}}",
		"{\"success\":true,\"data\":{\"ProductKey\":\"a1BwAGV0001\",\"DeviceName\":\"dev-0001\",\"DeviceSecret\":\"x\\\"y\",\"IotId\":\"i\"}}",
		"{\"success\":true,\"data\":{\"ProductKey\":\"a1BwAGV0001\",\"DeviceName\":\"dev-0001\",\"DeviceSecret\":7,\"IotId\":\"i\"}}",
		"{\"success\":true,\"data\":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25]}",
		"{\"success\":tru}", "{\"success\" false}", "{\"a\":\"\x01\"}", "{\"success\":false,\"code\":\"busy\"", "{\"success\":false,\"code\":\"busy\"\0}",
	};
	/* a success whose seal cannot be read: as forged as one that does not open */
	static const char *const bad_seal[] = {
		"{\"success\":true,\"sealed\":{}}", "{\"success\":true,\"sealed\":[]}",
		"{\"success\":true,\"sealed\":{\"alg\":\"A256GCM\",\"iv\":\"AAECAwQFBgcICQoL\",\"ct\":\"AA==\",\"tag\":\"AAAAAAAAAAAAAAAAAAAAAA==\"}}",
		"{\"success\":true,\"sealed\":{\"alg\":\"A128GCM\",\"iv\":\"AAECAwQFBgcICQ==\",\"ct\":\"AA==\",\"tag\":\"AAAAAAAAAAAAAAAAAAAAAA==\"}}",
		"{\"success\":true,\"sealed\":{\"alg\":\"A128GCM\",\"iv\":\"AAECAwQFBgcICQoL\",\"ct\":\"A!==\",\"tag\":\"AAAAAAAAAAAAAAAAAAAAAA==\"}}",
		"{\"success\":true,\"sealed\":{\"alg\":\"A128GCM\",\"iv\":\"AAECAwQFBgcICQoL\",\"ct\":\"AA==\",\"tag\":\"AAAAAAAAAAAAAAAAAAAA\"}}",
		"{\"success\":true,\"sealed\":{\"alg\":\"A128GCM\",\"iv\":\"AAECAwQFBgcICQoL\",\"ct\":\"AA==\"}}",
		"{\"success\":true,\"sealed\":{\"alg\":\"A128GCM\",\"alg\":\"A128GCM\",\"iv\":\"AAECAwQFBgcICQoL\",\"ct\":\"AA==\",\"tag\":\"AAAAAAAAAAAAAAAAAAAAAA==\"}}",
		"{\"success\":true,\"sealed\":{\"alg\":\"A128GCM\",\"iv\":\"AAAA\",\"ct\":\"AAAA\",\"tag\":\"AAAA\"}}",
	};
	struct fixed_rng rng = { seal_random_bytes, 8, 0 };
	uint8_t req[BOOTDEV_REQUEST_SIZE], work[BOOTDEV_WORK_SIZE];
	bootdev_client c;
	bootdev_reply r;
	size_t n;

	client(&c, port, &rng, BOOTDEV_HMAC_SHA256);
	CHECK_RC(bootdev_request_json(&c, req, sizeof(req), &n), BOOTDEV_OK);
	for(size_t i = 0; i < sizeof(bad_seal) / sizeof(bad_seal[0]); i++){
		bootdev_status rc = bootdev_reply_json(&c, (const uint8_t *)bad_seal[i], strlen(bad_seal[i]), 0, work, sizeof(work), &r);
		if(rc != BOOTDEV_ERR_FORGED){
			failures++;
			printf("FAIL [%s] json bad seal #%u: %s\n", port_name, (unsigned)i, bootdev_status_name(rc));
		}
	}
	for(size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++){
		bootdev_status rc = bootdev_reply_json(&c, (const uint8_t *)bad[i], strlen(bad[i]), BOOTDEV_ACCEPT_CLEAR, work, sizeof(work), &r);
		if(rc != BOOTDEV_ERR_MALFORMED){
			failures++;
			printf("FAIL [%s] json malformed #%u: %s\n", port_name, (unsigned)i, bootdev_status_name(rc));
		}
	}
	/* a NUL inside */
	CHECK_RC(bootdev_reply_json(&c, TEXT("{\"success\":false,\"code\":\"busy\"}\0"), 0, work, sizeof(work), &r), BOOTDEV_ERR_MALFORMED);
	/* what is tolerated: white space, unknown members, a message with escapes kept as sent */
	CHECK_RC(bootdev_reply_json(&c, TEXT(" {\"x\":[1,{\"y\":2}],\"success\":false,\"code\":\"not_allowed\",\"message\":\"a\\\"b\\u00e9\"}\n"),
			0, work, sizeof(work), &r), BOOTDEV_REFUSED);
	CHECK_STR(r.code, "not_allowed");
	CHECK_STR(r.message, "a\\\"b\\u00e9");
	CHECK(r.retry_after == 0);
	CHECK_RC(bootdev_reply_json(&c, TEXT("{\"success\":false,\"code\":\"busy\",\"retryAfter\":99999999999}"), 0, work, sizeof(work), &r),
			BOOTDEV_REFUSED);
	CHECK(r.retry_after == UINT32_MAX);
}

static void test_cbor_malformed(const struct bootdev_port *port)
{
	/* each: a length byte, then the bytes */
	static const uint8_t bad[][40] = {
		{ 1, 0xf5 },                                       /* true, not a map */
		{ 1, 0xa0 },                                       /* {} */
		{ 2, 0xbf, 0xff },                                 /* an indefinite map */
		{ 10, 0xa1, 0x67, 's', 'u', 'c', 'c', 'e', 's', 's', 0xf5 }, /* success alone */
		{ 10, 0xa1, 0x67, 's', 'u', 'c', 'c', 'e', 's', 's', 0xf4 }, /* false, no code */
		{ 19, 0xa2, 0x67, 's', 'u', 'c', 'c', 'e', 's', 's', 0xf4, 0x67, 's', 'u', 'c', 'c', 'e', 's', 's', 0xf4 }, /* twice */
		{ 16, 0xa2, 0x67, 's', 'u', 'c', 'c', 'e', 's', 's', 0xf4, 0x64, 'c', 'o', 'd', 'e', 0x07 }, /* code: 7 */
		{ 20, 0xa2, 0x67, 's', 'u', 'c', 'c', 'e', 's', 's', 0xf4, 0x64, 'c', 'o', 'd', 'e', 0x7f, 'b', 'u', 's', 'y' }, /* indefinite text */
		{ 22, 0xa2, 0x67, 's', 'u', 'c', 'c', 'e', 's', 's', 0xf4, 0x64, 'c', 'o', 'd', 'e', 0xc0, 0x64, 'b', 'u', 's', 'y' }, /* a tag */
		{ 21, 0xa2, 0x67, 's', 'u', 'c', 'c', 'e', 's', 's', 0xf4, 0x64, 'c', 'o', 'd', 'e', 0x64, 'b', 'u', 's', 'y', 0x00 }, /* trailing */
		{ 20, 0xa2, 0x67, 's', 'u', 'c', 'c', 'e', 's', 's', 0xf4, 0x64, 'c', 'o', 'd', 'e', 0x65, 'b', 'u', 's', 'y' }, /* short text */
		{ 14, 0xa2, 0x67, 's', 'u', 'c', 'c', 'e', 's', 's', 0xf5, 0x64, 'd', 'a', 't', 'a', 0xa0 }, /* data {} */
		{ 19, 0xa2, 0x67, 's', 'u', 'c', 'c', 'e', 's', 's', 0xf5, 0x66, 's', 'e', 'a', 'l', 'e', 'd', 0x9b, 0xff }, /* a huge array */
		{ 19, 0xa2, 0x67, 's', 'u', 'c', 'c', 'e', 's', 's', 0xf5, 0x66, 's', 'e', 'a', 'l', 'e', 'd', 0xbb, 0xff }, /* a huge map */
		{ 14, 0xb9, 0xff, 0xff, 0x67, 's', 'u', 'c', 'c', 'e', 's', 's', 0xf5 },          /* 65535 members */
		{ 13, 0xa2, 0x01, 0x02, 0x67, 's', 'u', 'c', 'c', 'e', 's', 's', 0xf5 },          /* a key not text */
	};
	struct fixed_rng rng = { seal_random_bytes, 8, 0 };
	uint8_t req[BOOTDEV_REQUEST_SIZE], work[BOOTDEV_WORK_SIZE];
	bootdev_client c;
	bootdev_reply r;
	size_t n;

	client(&c, port, &rng, BOOTDEV_HMAC_SHA256);
	CHECK_RC(bootdev_request_cbor(&c, req, sizeof(req), &n), BOOTDEV_OK);
	for(size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++){
		bootdev_status rc = bootdev_reply_cbor(&c, bad[i] + 1, bad[i][0], BOOTDEV_ACCEPT_CLEAR, work, sizeof(work), &r);
		if(rc != BOOTDEV_ERR_MALFORMED){
			failures++;
			printf("FAIL [%s] cbor malformed #%u: %s\n", port_name, (unsigned)i, bootdev_status_name(rc));
		}
	}
	{
		static const uint8_t seal_text[] = { 0xa2, 0x67, 's', 'u', 'c', 'c', 'e', 's', 's', 0xf5, 0x66, 's', 'e', 'a', 'l', 'e', 'd', 0x61, 'x' };
		static const uint8_t seal_empty[] = { 0xa2, 0x67, 's', 'u', 'c', 'c', 'e', 's', 's', 0xf5, 0x66, 's', 'e', 'a', 'l', 'e', 'd', 0xa0 };
		CHECK_RC(bootdev_reply_cbor(&c, seal_text, sizeof(seal_text), 0, work, sizeof(work), &r), BOOTDEV_ERR_FORGED);
		CHECK_RC(bootdev_reply_cbor(&c, seal_empty, sizeof(seal_empty), 0, work, sizeof(work), &r), BOOTDEV_ERR_FORGED);
	}
	/* tolerated: unknown members, nested; the error's code alone */
	{
		static const uint8_t ok[] = { 0xa3, 0x61, 'x', 0x82, 0xa1, 0x61, 'y', 0x01, 0xf6, 0x67, 's', 'u', 'c', 'c', 'e', 's', 's',
			0xf4, 0x64, 'c', 'o', 'd', 'e', 0x6c, 'u', 'n', 'a', 'u', 't', 'h', 'o', 'r', 'i', 'z', 'e', 'd' };
		CHECK_RC(bootdev_reply_cbor(&c, ok, sizeof(ok), 0, work, sizeof(work), &r), BOOTDEV_REFUSED);
		CHECK_STR(r.code, "unauthorized");
		CHECK_STR(r.message, "");
	}
}

int device_tests_run(const struct bootdev_port *port, const char *name)
{
	failures = 0;
	port_name = name;
	test_sign_vectors(port);
	test_seal_vector(port);
	test_credentials(port);
	test_topics();
	test_default_topics(port);
	test_init(port);
	test_request_json(port);
	test_request_cbor(port);
	test_replies(port, bootdev_reply_json, 0, (const uint8_t *)v_json_sealed, strlen(v_json_sealed),
			(const uint8_t *)v_json_clear, strlen(v_json_clear), (const uint8_t *)v_json_busy, strlen(v_json_busy),
			(const uint8_t *)v_json_wrong_device, strlen(v_json_wrong_device), (const uint8_t *)v_json_replayed,
			strlen(v_json_replayed));
	test_replies(port, bootdev_reply_cbor, 1, v_cbor_sealed, sizeof(v_cbor_sealed), v_cbor_clear, sizeof(v_cbor_clear),
			v_cbor_busy, sizeof(v_cbor_busy), v_cbor_wrong_device, sizeof(v_cbor_wrong_device), v_cbor_replayed,
			sizeof(v_cbor_replayed));
	test_refused_triple_leaves_nothing(port);
	test_json_malformed(port);
	test_cbor_malformed(port);
	printf("device tests [%s]: %s (%d failures)\n", name, failures ? "FAILED" : "passed", failures);
	return failures;
}
