/* The device library's example in README.md and docs/device-library.md ("On the device"),
 * compiled as written and run against a scripted MQTT client: a forged sealed reply (ignored),
 * `busy` with retryAfter 7 (the example sleeps 7 s and asks again with a new random), then a
 * genuine sealed CBOR reply, whose triple the example must store. The replies are sealed here
 * with OpenSSL's AES-128-GCM and written with libcbor, under the key of the request's own
 * random. No secret is printed. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cbor.h>
#include <openssl/evp.h>

#include "bootstrap_device.h"
#include "bootstrap_device_port.h"

#define SECRET "product-secret-for-the-doc-example"
#define DEVICE_SECRET "doc0example0device0secret0000001"

struct mqtt_msg {
	const uint8_t *payload;
	size_t len;
};

static int failures;
#define CHECK(x) do { if(!(x)){ printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, #x); failures++; } } while(0)

/* what the example did */
static char connected[64], subscribed[96], published_topic[96], last_random[2 * BOOTDEV_RANDOM_BYTES + 1];
static int publishes, rng_calls, waits, stored;
static unsigned slept;

static int hw_rng(void *ctx, uint8_t *out, size_t len)
{
	(void)ctx;
	rng_calls++;
	for(size_t i = 0; i < len; i++) out[i] = (uint8_t)(0x11 * rng_calls + 7 * i);
	/* the library writes the random as lower-case hex */
	for(size_t i = 0; i < len && 2 * i + 1 < sizeof(last_random); i++) snprintf(last_random + 2 * i, 3, "%02x", out[i]);
	return 0;
}

static void mqtt_connect(const char *client_id)
{
	snprintf(connected, sizeof(connected), "%s", client_id);
}

static void mqtt_subscribe(const char *topic)
{
	snprintf(subscribed, sizeof(subscribed), "%s", topic);
}

static void mqtt_publish(const char *topic, const uint8_t *payload, size_t len)
{
	snprintf(published_topic, sizeof(published_topic), "%s", topic);
	CHECK(len > 0 && len <= BOOTDEV_REQUEST_SIZE && payload[0] == 0xa5); /* a CBOR map of five members */
	publishes++;
}

static void sleep_s(unsigned s)
{
	slept += s;
}

static void store_triple(const char *pk, const char *dn, const char *ds, const char *iot_id)
{
	CHECK(strcmp(pk, "a1BootstrapDemo") == 0);
	CHECK(strcmp(dn, "dev-0001") == 0);
	CHECK(strcmp(ds, DEVICE_SECRET) == 0); /* compared, never printed */
	CHECK(strcmp(iot_id, "docExampleIotId") == 0);
	stored++;
}

/* the CBOR map of n text keys and values (values NULL: a byte string from bytes[k]) */
static size_t cbor_map(uint8_t *out, size_t size, const char *const *keys, const char *const *texts,
		const uint8_t *const *bytes, const size_t *lens, size_t n)
{
	cbor_item_t *map = cbor_new_definite_map(n);
	size_t written;

	for(size_t k = 0; k < n; k++){
		cbor_item_t *key = cbor_build_string(keys[k]);
		cbor_item_t *value = texts[k] ? cbor_build_string(texts[k]) : cbor_build_bytestring(bytes[k], lens[k]);
		CHECK(cbor_map_add(map, (struct cbor_pair){ .key = cbor_move(key), .value = cbor_move(value) }));
	}
	written = cbor_serialize(map, out, size);
	cbor_decref(&map);
	return written;
}

/* {"success":true,"sealed":{"alg":"A128GCM","iv":..,"ct":..,"tag":..}}, the triple sealed
 * under the key of random (wrong_key: another key, a forgery) */
static size_t sealed_reply(uint8_t *out, size_t size, const char *random, int wrong_key)
{
	static const char *const triple_keys[4] = { "ProductKey", "DeviceName", "DeviceSecret", "IotId" };
	static const char *const triple_values[4] = { "a1BootstrapDemo", "dev-0001", DEVICE_SECRET, "docExampleIotId" };
	uint8_t key[BOOTDEV_KEY_LEN], iv[12] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 }, plain[256], ct[256], tag[16],
		inner[320];
	const char *seal_keys[4] = { "alg", "iv", "ct", "tag" }, *seal_texts[4] = { "A128GCM", NULL, NULL, NULL };
	const uint8_t *seal_bytes[4] = { NULL, iv, ct, tag };
	size_t seal_lens[4] = { 0, sizeof(iv), 0, sizeof(tag) }, plain_len, inner_len;
	EVP_CIPHER_CTX *gcm = EVP_CIPHER_CTX_new();
	int n = 0, m = 0;
	cbor_item_t *reply;
	struct cbor_load_result loaded;

	CHECK(bootdev_reply_key(&bootdev_port_openssl, (const uint8_t *)SECRET, strlen(SECRET), random, "a1BootstrapDemo",
			"dev-0001", key) == BOOTDEV_OK);
	key[0] ^= (uint8_t)wrong_key;
	plain_len = cbor_map(plain, sizeof(plain), triple_keys, triple_values, NULL, NULL, 4);
	CHECK(plain_len > 0);
	CHECK(gcm && EVP_EncryptInit_ex(gcm, EVP_aes_128_gcm(), NULL, key, iv) == 1);
	CHECK(EVP_EncryptUpdate(gcm, ct, &n, plain, (int)plain_len) == 1);
	CHECK(EVP_EncryptFinal_ex(gcm, ct + n, &m) == 1);
	CHECK(EVP_CIPHER_CTX_ctrl(gcm, EVP_CTRL_GCM_GET_TAG, sizeof(tag), tag) == 1);
	EVP_CIPHER_CTX_free(gcm);
	seal_lens[2] = (size_t)(n + m);
	inner_len = cbor_map(inner, sizeof(inner), seal_keys, seal_texts, seal_bytes, seal_lens, 4);
	CHECK(inner_len > 0);
	/* the outer map, with the sealed map as its second value */
	reply = cbor_new_definite_map(2);
	CHECK(cbor_map_add(reply, (struct cbor_pair){ .key = cbor_move(cbor_build_string("success")),
			.value = cbor_move(cbor_build_bool(true)) }));
	CHECK(cbor_map_add(reply, (struct cbor_pair){ .key = cbor_move(cbor_build_string("sealed")),
			.value = cbor_move(cbor_load(inner, inner_len, &loaded)) }));
	n = (int)cbor_serialize(reply, out, size);
	cbor_decref(&reply);
	memset(key, 0, sizeof(key));
	return (size_t)n;
}

/* The broker's side, scripted: after the first request a forgery, then busy; after the second,
 * the genuine reply. */
static const struct mqtt_msg *mqtt_wait_message(int timeout_ms)
{
	static uint8_t buf[512];
	static struct mqtt_msg msg;
	static const char *const busy_keys[4] = { "success", "code", "message", "retryAfter" };

	(void)timeout_ms;
	waits++;
	msg.payload = buf;
	if(publishes == 1 && waits == 1){
		msg.len = sealed_reply(buf, sizeof(buf), last_random, 1);
	}else if(publishes == 1 && waits == 2){
		cbor_item_t *busy = cbor_new_definite_map(4);
		cbor_item_t *values[4] = { cbor_build_bool(false), cbor_build_string("busy"), cbor_build_string("try later"),
			cbor_build_uint8(7) };
		for(int k = 0; k < 4; k++){
			CHECK(cbor_map_add(busy, (struct cbor_pair){ .key = cbor_move(cbor_build_string(busy_keys[k])),
					.value = cbor_move(values[k]) }));
		}
		msg.len = cbor_serialize(busy, buf, sizeof(buf));
		cbor_decref(&busy);
	}else if(publishes == 2){
		msg.len = sealed_reply(buf, sizeof(buf), last_random, 0);
	}else{
		return NULL; /* nothing more: the example would time out */
	}
	CHECK(msg.len > 0);
	return &msg;
}

#include "doc_example.inc"

int main(void)
{
	int rc = bootstrap((const uint8_t *)SECRET, strlen(SECRET));

	CHECK(rc == 0);
	CHECK(stored == 1);
	CHECK(strcmp(connected, "dev-0001") == 0);
	CHECK(strcmp(subscribed, "bootstrap/reply/dev-0001/cbor") == 0);
	CHECK(strcmp(published_topic, "bootstrap/register/cbor") == 0);
	CHECK(publishes == 2);   /* asked again after busy */
	CHECK(rng_calls == 2);   /* with a new random */
	CHECK(slept == 7);       /* as long as retryAfter said */
	CHECK(waits == 3);       /* the forgery ignored, then busy; then the triple */
	printf("doc example: %s\n", failures ? "FAILED" : "bootstrapped as README.md shows it (forgery ignored, busy followed, triple stored)");
	return failures ? 1 : 0;
}
