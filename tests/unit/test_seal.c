/* Sealed replies: the published contract vector, round trips, and what opening refuses. */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "bootstrap_reply.h"
#include "bootstrap_seal.h"
#include "unit.h"

#define VECTOR_PLAINTEXT "{\"ProductKey\":\"a1BwAGV0001\",\"DeviceName\":\"dev-0001\"," \
	"\"DeviceSecret\":\"0123456789abcdef0123456789abcdef\",\"IotId\":\"Q7uOhVRdZRRlDnTLv0001000100\"}"

static void hex(const unsigned char *b, size_t n, char *out)
{
	for(size_t i = 0; i < n; i++) snprintf(out + 2 * i, 3, "%02x", b[i]);
}

static void vector_key(unsigned char key[SEAL_KEY_LEN])
{
	CHECK(seal__derive_key("ps-secret-123", "0e60924368ebe2f2", "a1BwAGV0001", "dev-0001", key) == 0);
}

static void test_vector_key(void)
{
	unsigned char key[SEAL_KEY_LEN];
	char h[2 * SEAL_KEY_LEN + 1];

	vector_key(key);
	hex(key, sizeof(key), h);
	CHECK_STR(h, "5ba22b66cbbb0ae14ee4bb4a9f028978");
}

static void test_vector_cipher(void)
{
	unsigned char key[SEAL_KEY_LEN], tag[SEAL_TAG_LEN], ct[sizeof(VECTOR_PLAINTEXT)], back[sizeof(VECTOR_PLAINTEXT)];
	const unsigned char iv[SEAL_IV_LEN] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
	size_t len = strlen(VECTOR_PLAINTEXT);
	char h[2 * sizeof(ct) + 1];

	vector_key(key);
	CHECK(seal__encrypt(key, iv, (const unsigned char *)VECTOR_PLAINTEXT, len, ct, tag) == 0);
	hex(tag, sizeof(tag), h);
	CHECK_STR(h, "31d17d7a57fdd63560e7adaa1b9fadca");
	hex(ct, 10, h);
	CHECK_STR(h, "a64622c40a385f9b74d8");
	CHECK(seal__decrypt(key, iv, ct, len, tag, back) == 0);
	CHECK(memcmp(back, VECTOR_PLAINTEXT, len) == 0);
	/* one flipped bit anywhere: refused, and nothing decrypted is left behind */
	ct[len - 1] ^= 1;
	CHECK(seal__decrypt(key, iv, ct, len, tag, back) == -1);
	CHECK(memcmp(back, "{\"Product", 9) != 0);
	ct[len - 1] ^= 1;
	tag[0] ^= 0x80;
	CHECK(seal__decrypt(key, iv, ct, len, tag, back) == -1);
}

/* Each input of the key changes it; the separators keep shifted boundaries apart. */
static void test_key_binds_every_input(void)
{
	unsigned char base[SEAL_KEY_LEN], k[SEAL_KEY_LEN];

	CHECK(seal__derive_key("s3cret", "random-01", "a1Prod", "dev-0001", base) == 0);
	CHECK(seal__derive_key("s3creT", "random-01", "a1Prod", "dev-0001", k) == 0);
	CHECK(memcmp(base, k, sizeof(k)) != 0);
	CHECK(seal__derive_key("s3cret", "random-02", "a1Prod", "dev-0001", k) == 0);
	CHECK(memcmp(base, k, sizeof(k)) != 0);
	CHECK(seal__derive_key("s3cret", "random-01", "a1Prox", "dev-0001", k) == 0);
	CHECK(memcmp(base, k, sizeof(k)) != 0);
	CHECK(seal__derive_key("s3cret", "random-01", "a1Prod", "dev-0002", k) == 0);
	CHECK(memcmp(base, k, sizeof(k)) != 0);
	CHECK(seal__derive_key("s3cret", "random-01", "a1Prodd", "ev-0001", k) == 0);
	CHECK(memcmp(base, k, sizeof(k)) != 0);
}

/* The plugin's sealed reply opens with the same key to the triple, and only with it. */
static void test_sealed_reply_round_trip(void)
{
	struct device_triple t = {"a1BwAGV0001", "dev-0001", "0123456789abcdef0123456789abcdef", "Q7uOhVRdZRRlDnTLv0001000100"};
	unsigned char key[SEAL_KEY_LEN], other[SEAL_KEY_LEN];
	size_t len = 0, plen = 0;
	char *payload, *plain = NULL, *again;
	json_t *root, *sealed;

	vector_key(key);
	payload = reply__success_sealed(key, &t, &len);
	CHECK(payload && len == strlen(payload));
	CHECK(!strstr(payload, t.device_secret));
	root = json_loads(payload, 0, NULL);
	sealed = json_object_get(root, "sealed");
	CHECK(json_is_true(json_object_get(root, "success")));
	CHECK(json_object_size(root) == 2 && json_object_get(root, "data") == NULL);
	CHECK_STR(json_string_value(json_object_get(sealed, "alg")), "A128GCM");
	CHECK(json_string_length(json_object_get(sealed, "iv")) == 16);
	CHECK(json_string_length(json_object_get(sealed, "tag")) == 24);
	CHECK(seal__open(key, root, &plain, &plen) == SEAL_OPENED);
	CHECK_STR(plain, VECTOR_PLAINTEXT);
	CHECK(plen == strlen(VECTOR_PLAINTEXT));
	free(plain);
	CHECK(seal__derive_key("ps-secret-124", "0e60924368ebe2f2", "a1BwAGV0001", "dev-0001", other) == 0);
	CHECK(seal__open(other, root, &plain, &plen) == SEAL_FORGED && plain == NULL);
	/* a fresh IV every time: two sealings of the same triple differ */
	again = reply__success_sealed(key, &t, &len);
	CHECK(again && strcmp(again, payload));
	reply__free(again, strlen(again));
	json_decref(root);
	reply__free(payload, strlen(payload));
}

static void test_open_refuses_what_is_not_sealed(void)
{
	unsigned char key[SEAL_KEY_LEN];
	const char *cases[] = {
		"{\"success\":true,\"sealed\":{\"alg\":\"A256GCM\",\"iv\":\"AAECAwQFBgcICQoL\",\"ct\":\"AAAA\",\"tag\":\"AAAAAAAAAAAAAAAAAAAAAA==\"}}",
		"{\"success\":true,\"sealed\":{\"alg\":\"A128GCM\",\"iv\":\"AAECAwQFBgcICQo=\",\"ct\":\"AAAA\",\"tag\":\"AAAAAAAAAAAAAAAAAAAAAA==\"}}",
		"{\"success\":true,\"sealed\":{\"alg\":\"A128GCM\",\"iv\":\"AAECAwQFBgcICQoL\",\"ct\":\"\",\"tag\":\"AAAAAAAAAAAAAAAAAAAAAA==\"}}",
		"{\"success\":true,\"sealed\":{\"alg\":\"A128GCM\",\"iv\":\"AAECAwQFBgcICQoL\",\"ct\":\"A!AA\",\"tag\":\"AAAAAAAAAAAAAAAAAAAAAA==\"}}",
		"{\"success\":true,\"sealed\":{\"alg\":\"A128GCM\",\"iv\":\"AAECAwQFBgcICQoL\",\"ct\":\"AAAA\",\"tag\":\"AAAA\"}}",
		"{\"success\":true,\"sealed\":{\"alg\":\"A128GCM\",\"iv\":7,\"ct\":\"AAAA\",\"tag\":\"AAAAAAAAAAAAAAAAAAAAAA==\"}}",
		"{\"success\":true,\"sealed\":\"x\"}",
	};
	char *plain = NULL;
	size_t plen;

	vector_key(key);
	for(size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++){
		json_t *root = json_loads(cases[i], 0, NULL);
		CHECK(root != NULL);
		CHECK(seal__open(key, root, &plain, &plen) == SEAL_MALFORMED && plain == NULL);
		json_decref(root);
	}
	{
		/* well-formed but made without the key: a forgery */
		json_t *root = json_loads("{\"success\":true,\"sealed\":{\"alg\":\"A128GCM\",\"iv\":\"AAECAwQFBgcICQoL\",\"ct\":\"AAAA\",\"tag\":\"AAAAAAAAAAAAAAAAAAAAAA==\"}}", 0, NULL);
		CHECK(seal__open(key, root, &plain, &plen) == SEAL_FORGED && plain == NULL);
		json_decref(root);
		root = json_loads("{\"success\":true,\"data\":{\"DeviceSecret\":\"x\"}}", 0, NULL);
		CHECK(seal__open(key, root, &plain, &plen) == SEAL_NOT_SEALED);
		json_decref(root);
	}
}

int main(void)
{
	RUN(test_vector_key);
	RUN(test_vector_cipher);
	RUN(test_key_binds_every_input);
	RUN(test_sealed_reply_round_trip);
	RUN(test_open_refuses_what_is_not_sealed);
	return unit_main_result();
}
