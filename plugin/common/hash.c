/* Keyed hashing for the hash tables: SipHash-2-4 under a random key per process. Any thread
 * (the key is acquired on the broker thread at init). */
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

/* The keyed context, shared by every instance of the plugin in this process (one .so loaded for
 * several listeners shares its statics): made under hash_lock when first needed, then only read
 * (duplicated) by any thread; freed under hash_lock when the last instance that held it lets go. */
static pthread_mutex_t hash_lock = PTHREAD_MUTEX_INITIALIZER;
static EVP_MAC_CTX *hash_keyed;
static unsigned hash_users;

/* Makes the keyed context if there is none; hash_lock held. */
static void hash__make(void)
{
	unsigned char key[HASH_KEY_LEN];
	size_t outlen = HASH_OUT_LEN;
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_size_t(OSSL_MAC_PARAM_SIZE, &outlen),
		OSSL_PARAM_construct_end(),
	};
	EVP_MAC *mac;
	EVP_MAC_CTX *ctx;

	if(hash_keyed) return;
	mac = EVP_MAC_fetch(NULL, "SIPHASH", NULL);
	ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
	EVP_MAC_free(mac); /* the context holds its own reference */
	if(ctx && RAND_bytes(key, sizeof(key)) == 1 && EVP_MAC_init(ctx, key, sizeof(key), params)){
		hash_keyed = ctx;
	}else{
		EVP_MAC_CTX_free(ctx);
	}
	OPENSSL_cleanse(key, sizeof(key));
}

bool hash__acquire(void)
{
	bool ready;

	pthread_mutex_lock(&hash_lock);
	hash__make();
	ready = hash_keyed != NULL;
	if(ready) hash_users++;
	pthread_mutex_unlock(&hash_lock);
	return ready;
}

uint32_t hash__bytes(const void *data, size_t len)
{
	unsigned char out[HASH_OUT_LEN];
	size_t outlen = 0;
	uint32_t h = 0;
	EVP_MAC_CTX *ctx;

	/* made on first use for callers that never acquired it (unit tests); a plugin instance
	 * acquires it before its threads start, so they only read the pointer */
	if(!hash_keyed){
		pthread_mutex_lock(&hash_lock);
		hash__make();
		pthread_mutex_unlock(&hash_lock);
	}
	/* a copy of the keyed context per call: no shared state changes, so any thread may hash.
	 * Without one (never once the plugin started), every key hashes to 0: the tables stay
	 * correct and bounded, only slower */
	if(!hash_keyed || !(ctx = EVP_MAC_CTX_dup(hash_keyed))) return 0;
	if(EVP_MAC_update(ctx, data, len) && EVP_MAC_final(ctx, out, &outlen, sizeof(out)) && outlen == sizeof(out)){
		memcpy(&h, out, sizeof(h));
	}
	EVP_MAC_CTX_free(ctx);
	return h;
}

void hash__release(void)
{
	pthread_mutex_lock(&hash_lock);
	if(hash_users > 0 && --hash_users == 0){
		EVP_MAC_CTX_free(hash_keyed);
		hash_keyed = NULL;
	}
	pthread_mutex_unlock(&hash_lock);
}
