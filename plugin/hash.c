/* Keyed hashing for the hash tables: SipHash-2-4 under a random key per process. */
#include <pthread.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "bootstrap_hash.h"

#define HASH_KEY_LEN 16 /* SipHash's key */
#define HASH_OUT_LEN 8  /* SipHash-2-4's 64-bit output */

static pthread_once_t hash_once = PTHREAD_ONCE_INIT;
/* Set once under hash_once, then only read (duplicated) by any thread until hash__cleanup. */
static EVP_MAC_CTX *hash_keyed;

static void hash__init(void)
{
	unsigned char key[HASH_KEY_LEN];
	size_t outlen = HASH_OUT_LEN;
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_size_t(OSSL_MAC_PARAM_SIZE, &outlen),
		OSSL_PARAM_construct_end(),
	};
	EVP_MAC *mac = EVP_MAC_fetch(NULL, "SIPHASH", NULL);
	EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;

	EVP_MAC_free(mac); /* the context holds its own reference */
	if(ctx && RAND_bytes(key, sizeof(key)) == 1 && EVP_MAC_init(ctx, key, sizeof(key), params)){
		hash_keyed = ctx;
	}else{
		EVP_MAC_CTX_free(ctx);
	}
	OPENSSL_cleanse(key, sizeof(key));
}

bool hash__ready(void)
{
	pthread_once(&hash_once, hash__init);
	return hash_keyed != NULL;
}

uint32_t hash__bytes(const void *data, size_t len)
{
	unsigned char out[HASH_OUT_LEN];
	size_t outlen = 0;
	uint32_t h = 0;
	EVP_MAC_CTX *ctx;

	/* a copy of the keyed context per call: no shared state changes, so any thread may hash.
	 * Without one (never when the plugin started), every key hashes to 0: the tables stay
	 * correct and bounded, only slower */
	if(!hash__ready() || !(ctx = EVP_MAC_CTX_dup(hash_keyed))) return 0;
	if(EVP_MAC_update(ctx, data, len) && EVP_MAC_final(ctx, out, &outlen, sizeof(out)) && outlen == sizeof(out)){
		memcpy(&h, out, sizeof(h));
	}
	EVP_MAC_CTX_free(ctx);
	return h;
}

void hash__cleanup(void)
{
	pthread_once(&hash_once, hash__init); /* never initialised after this */
	EVP_MAC_CTX_free(hash_keyed);
	hash_keyed = NULL;
}

uint32_t hash__string(const char *s)
{
	return hash__bytes(s, strlen(s));
}
