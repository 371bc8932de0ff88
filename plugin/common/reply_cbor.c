/* Reply payloads in CBOR (docs/contract.md, "CBOR"), built with libcbor: definite lengths,
 * keys in the contract's order, integers and lengths in their shortest form (libcbor writes
 * heads that way; an integer's width is picked here). Pure; any thread (the plugin builds
 * them on the broker thread). */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <cbor.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "bootstrap_reply.h"
#include "bootstrap_seal.h"

/* The largest reply: a sealed triple (plaintext at most SEAL_PLAINTEXT_MAX) and its envelope. */
#define REPLY_CBOR_MAX (SEAL_PLAINTEXT_MAX + 128)

/* Adds key: value to map; takes value (NULL: fails). False when out of memory. */
static bool map__put(cbor_item_t *map, const char *key, cbor_item_t *value)
{
	cbor_item_t *k;
	bool ok;

	if(!value) return false;
	if(!(k = cbor_build_string(key))){
		cbor_decref(&value);
		return false;
	}
	ok = cbor_map_add(map, (struct cbor_pair){ .key = k, .value = value });
	/* the map holds its own references on success; on failure these free the items */
	cbor_decref(&k);
	cbor_decref(&value);
	return ok;
}

/* An unsigned integer in the shortest form RFC 8949 §4.2.1 asks for. */
static cbor_item_t *uint__build(unsigned long v)
{
	if(v <= 0xff) return cbor_build_uint8((uint8_t)v);
	if(v <= 0xffff) return cbor_build_uint16((uint16_t)v);
	return cbor_build_uint32((uint32_t)(v <= 0xffffffffUL ? v : 0xffffffffUL));
}

/* The serialized item, malloc'd to its exact length (no realloc leaves a copy behind), or
 * NULL; the stack copy is wiped. */
static char *cbor__dump(const cbor_item_t *root, size_t *len)
{
	unsigned char buf[REPLY_CBOR_MAX];
	size_t n = root ? cbor_serialize(root, buf, sizeof(buf)) : 0;
	char *out = NULL;

	if(n > 0 && (out = malloc(n))){
		memcpy(out, buf, n);
		if(len) *len = n;
	}
	OPENSSL_cleanse(buf, sizeof(buf));
	return out;
}

/* Wipes the DeviceSecret's item (libcbor frees without wiping), and drops our reference to
 * it and to root (either may be NULL). */
static void reply__wipe(cbor_item_t **root, cbor_item_t *secret)
{
	if(secret){
		if(cbor_string_length(secret)) OPENSSL_cleanse(cbor_string_handle(secret), cbor_string_length(secret));
		cbor_decref(&secret);
	}
	if(*root) cbor_decref(root);
}

/* The triple as a map: the reply's "data", or the plaintext of a sealed reply. *secret gets
 * the DeviceSecret's item with a reference of the caller's, for reply__wipe. */
static cbor_item_t *reply__triple(const struct device_triple *t, cbor_item_t **secret)
{
	cbor_item_t *map = cbor_new_definite_map(4), *extra;
	bool given = false;

	*secret = cbor_build_string(t->device_secret);
	if(*secret) cbor_incref(*secret); /* one for the map (map__put takes it), one ours */
	if(!map || !*secret
			|| !map__put(map, "ProductKey", cbor_build_string(t->product_key))
			|| !map__put(map, "DeviceName", cbor_build_string(t->device_name))
			|| !(given = true) || !map__put(map, "DeviceSecret", *secret)
			|| !map__put(map, "IotId", cbor_build_string(t->iot_id))){
		if(*secret && !given){ /* the map's reference was never handed over */
			extra = *secret;
			cbor_decref(&extra);
		}
		reply__wipe(&map, *secret);
		*secret = NULL;
		return NULL;
	}
	return map;
}

char *reply__success_cbor(const struct device_triple *t, size_t *len)
{
	cbor_item_t *secret, *data = reply__triple(t, &secret), *root, *given;
	char *out = NULL;

	if(!data) return NULL;
	root = cbor_new_definite_map(2);
	/* the map takes a reference of its own: data stays ours, for the wipe */
	cbor_incref(data);
	given = data;
	if(root && map__put(root, "success", cbor_build_bool(true))){
		if(map__put(root, "data", given)) out = cbor__dump(root, len);
	}else{
		cbor_decref(&given);
	}
	reply__wipe(&data, secret);
	if(root) cbor_decref(&root);
	return out;
}

/* {"alg", "iv", "ct", "tag"} of a sealed reply, or NULL. */
static cbor_item_t *reply__sealed(const unsigned char *iv, const unsigned char *ct, size_t len, const unsigned char *tag)
{
	cbor_item_t *sealed = cbor_new_definite_map(4);

	if(sealed && map__put(sealed, "alg", cbor_build_string(SEAL_ALG))
			&& map__put(sealed, "iv", cbor_build_bytestring(iv, SEAL_IV_LEN))
			&& map__put(sealed, "ct", cbor_build_bytestring(ct, len))
			&& map__put(sealed, "tag", cbor_build_bytestring(tag, SEAL_TAG_LEN))){
		return sealed;
	}
	if(sealed) cbor_decref(&sealed);
	return NULL;
}

char *reply__success_sealed_cbor(const unsigned char key[SEAL_KEY_LEN], const struct device_triple *t, size_t *len)
{
	unsigned char plain[SEAL_PLAINTEXT_MAX], ct[SEAL_PLAINTEXT_MAX], iv[SEAL_IV_LEN], tag[SEAL_TAG_LEN];
	cbor_item_t *secret, *data = reply__triple(t, &secret), *root = NULL;
	size_t plen = data ? cbor_serialize(data, plain, sizeof(plain)) : 0;
	char *out = NULL;

	reply__wipe(&data, secret);
	/* a fresh IV per reply: GCM with a repeated (key, IV) pair loses everything */
	if(plen > 0 && RAND_bytes(iv, sizeof(iv)) == 1 && !seal__encrypt(key, iv, plain, plen, ct, tag)
			&& (root = cbor_new_definite_map(2))
			&& map__put(root, "success", cbor_build_bool(true))
			&& map__put(root, "sealed", reply__sealed(iv, ct, plen, tag))){
		out = cbor__dump(root, len);
	}
	if(root) cbor_decref(&root);
	OPENSSL_cleanse(plain, sizeof(plain));
	return out;
}

char *reply__error_cbor(enum bootstrap_code code, const char *message, int retry_after, size_t *len)
{
	cbor_item_t *root = cbor_new_definite_map(retry_after > 0 ? 4 : 3);
	char *out = NULL;

	if(!root) return NULL;
	if(map__put(root, "success", cbor_build_bool(false))
			&& map__put(root, "code", cbor_build_string(reply__code_name(code)))
			&& map__put(root, "message", cbor_build_string(message ? message : ""))
			&& (retry_after <= 0 || map__put(root, "retryAfter", uint__build((unsigned long)retry_after)))){
		out = cbor__dump(root, len);
	}
	cbor_decref(&root);
	return out;
}
