/* Sealed replies: HKDF-SHA256 and AES-128-GCM through OpenSSL's EVP, base64 through EVP's
 * encoder, JSON through jansson. Nothing hand-written but the glue. No state; any thread (the
 * plugin seals on the broker thread). */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>

#include "bootstrap_seal.h"

int seal__derive_key(const char *product_secret, const char *random, const char *product_key,
		const char *device_id, unsigned char key[SEAL_KEY_LEN])
{
	EVP_PKEY_CTX *ctx;
	unsigned char info[sizeof(SEAL_INFO_LABEL) + 128];
	size_t label = strlen(SEAL_INFO_LABEL), pk = strlen(product_key), id = strlen(device_id);
	size_t info_len = label + 1 + pk + 1 + id, key_len = SEAL_KEY_LEN;
	int ok;

	memset(key, 0, SEAL_KEY_LEN);
	if(info_len > sizeof(info)) return -1;
	/* info = label 0x00 ProductKey 0x00 deviceId: the NULs keep ("ab","c") apart from ("a","bc") */
	memcpy(info, SEAL_INFO_LABEL, label);
	info[label] = 0;
	memcpy(info + label + 1, product_key, pk);
	info[label + 1 + pk] = 0;
	memcpy(info + label + 2 + pk, device_id, id);

	ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, NULL);
	ok = ctx
		&& EVP_PKEY_derive_init(ctx) > 0
		&& EVP_PKEY_CTX_set_hkdf_md(ctx, EVP_sha256()) > 0
		&& EVP_PKEY_CTX_set1_hkdf_salt(ctx, (const unsigned char *)random, (int)strlen(random)) > 0
		&& EVP_PKEY_CTX_set1_hkdf_key(ctx, (const unsigned char *)product_secret, (int)strlen(product_secret)) > 0
		&& EVP_PKEY_CTX_add1_hkdf_info(ctx, info, (int)info_len) > 0
		&& EVP_PKEY_derive(ctx, key, &key_len) > 0
		&& key_len == SEAL_KEY_LEN;
	EVP_PKEY_CTX_free(ctx);
	if(!ok){
		OPENSSL_cleanse(key, SEAL_KEY_LEN);
		return -1;
	}
	return 0;
}

int seal__encrypt(const unsigned char key[SEAL_KEY_LEN], const unsigned char iv[SEAL_IV_LEN],
		const unsigned char *plaintext, size_t len, unsigned char *ct, unsigned char tag[SEAL_TAG_LEN])
{
	EVP_CIPHER_CTX *ctx;
	int n = 0, fin = 0, ok;

	if(len > SEAL_PLAINTEXT_MAX) return -1; /* before the context: nothing to free */
	ctx = EVP_CIPHER_CTX_new();
	ok = ctx
		&& EVP_EncryptInit_ex(ctx, EVP_aes_128_gcm(), NULL, NULL, NULL) == 1
		&& EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, SEAL_IV_LEN, NULL) == 1
		&& EVP_EncryptInit_ex(ctx, NULL, NULL, key, iv) == 1
		&& EVP_EncryptUpdate(ctx, ct, &n, plaintext, (int)len) == 1
		&& EVP_EncryptFinal_ex(ctx, ct + n, &fin) == 1
		&& (size_t)(n + fin) == len
		&& EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, SEAL_TAG_LEN, tag) == 1;
	EVP_CIPHER_CTX_free(ctx);
	return ok ? 0 : -1;
}

int seal__decrypt(const unsigned char key[SEAL_KEY_LEN], const unsigned char iv[SEAL_IV_LEN],
		const unsigned char *ct, size_t len, const unsigned char tag[SEAL_TAG_LEN], unsigned char *plaintext)
{
	EVP_CIPHER_CTX *ctx;
	unsigned char tag_copy[SEAL_TAG_LEN];
	int n = 0, fin = 0, ok;

	if(len > SEAL_PLAINTEXT_MAX) return -1; /* before the context: nothing to free */
	ctx = EVP_CIPHER_CTX_new();
	memcpy(tag_copy, tag, SEAL_TAG_LEN); /* the ctrl takes a non-const pointer */
	ok = ctx
		&& EVP_DecryptInit_ex(ctx, EVP_aes_128_gcm(), NULL, NULL, NULL) == 1
		&& EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, SEAL_IV_LEN, NULL) == 1
		&& EVP_DecryptInit_ex(ctx, NULL, NULL, key, iv) == 1
		&& EVP_DecryptUpdate(ctx, plaintext, &n, ct, (int)len) == 1
		&& EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, SEAL_TAG_LEN, tag_copy) == 1
		/* the tag is checked here: nothing decrypted counts before it passes */
		&& EVP_DecryptFinal_ex(ctx, plaintext + n, &fin) == 1
		&& (size_t)(n + fin) == len;
	EVP_CIPHER_CTX_free(ctx);
	if(!ok){
		OPENSSL_cleanse(plaintext, len);
		return -1;
	}
	return 0;
}

/* Standard base64 with padding, NUL-terminated; out holds 4 * ceil(len / 3) + 1. */
static void base64__encode(const unsigned char *in, size_t len, char *out)
{
	EVP_EncodeBlock((unsigned char *)out, in, (int)len);
}

/* Decodes exactly want bytes from standard padded base64, or fails. */
static int base64__decode(const char *in, size_t in_len, unsigned char *out, size_t want)
{
	EVP_ENCODE_CTX *ctx;
	unsigned char buf[(SEAL_PLAINTEXT_MAX / 3 + 2) * 3];
	int n = 0, fin = 0, ok;

	/* padded base64 of want bytes has exactly this length: anything else is not ours */
	if(in_len != 4 * ((want + 2) / 3) || want > sizeof(buf) - 3) return -1;
	ctx = EVP_ENCODE_CTX_new();
	if(!ctx) return -1;
	EVP_DecodeInit(ctx);
	ok = EVP_DecodeUpdate(ctx, buf, &n, (const unsigned char *)in, (int)in_len) >= 0
		&& EVP_DecodeFinal(ctx, buf + n, &fin) == 1
		&& (size_t)(n + fin) == want;
	EVP_ENCODE_CTX_free(ctx);
	if(ok) memcpy(out, buf, want);
	OPENSSL_cleanse(buf, sizeof(buf));
	return ok ? 0 : -1;
}

char *seal__reply(const unsigned char key[SEAL_KEY_LEN], const char *plaintext, size_t len, size_t *out_len)
{
	unsigned char iv[SEAL_IV_LEN], tag[SEAL_TAG_LEN], ct[SEAL_PLAINTEXT_MAX];
	char iv64[4 * ((SEAL_IV_LEN + 2) / 3) + 1], tag64[4 * ((SEAL_TAG_LEN + 2) / 3) + 1];
	char ct64[4 * ((SEAL_PLAINTEXT_MAX + 2) / 3) + 1];
	json_t *root;
	char *out = NULL;

	if(len > SEAL_PLAINTEXT_MAX) return NULL;
	/* a fresh IV per reply: GCM with a repeated (key, IV) pair loses everything */
	if(RAND_bytes(iv, sizeof(iv)) != 1) return NULL;
	if(seal__encrypt(key, iv, (const unsigned char *)plaintext, len, ct, tag)) return NULL;
	base64__encode(iv, sizeof(iv), iv64);
	base64__encode(tag, sizeof(tag), tag64);
	base64__encode(ct, len, ct64);
	root = json_pack("{s:b, s:{s:s, s:s, s:s, s:s}}", "success", 1,
			"sealed", "alg", SEAL_ALG, "iv", iv64, "ct", ct64, "tag", tag64);
	if(root){
		out = json_dumps(root, JSON_COMPACT);
		json_decref(root);
	}
	if(out && out_len) *out_len = strlen(out);
	return out;
}

enum seal_open_status seal__open(const unsigned char key[SEAL_KEY_LEN], const json_t *reply,
		char **plaintext, size_t *len)
{
	const json_t *sealed = json_object_get(reply, "sealed");
	const json_t *alg, *iv64, *ct64, *tag64;
	unsigned char iv[SEAL_IV_LEN], tag[SEAL_TAG_LEN], ct[SEAL_PLAINTEXT_MAX];
	size_t ct_len;
	char *out;

	*plaintext = NULL;
	*len = 0;
	if(!sealed) return SEAL_NOT_SEALED;
	alg = json_object_get(sealed, "alg");
	iv64 = json_object_get(sealed, "iv");
	ct64 = json_object_get(sealed, "ct");
	tag64 = json_object_get(sealed, "tag");
	if(!json_is_string(alg) || strcmp(json_string_value(alg), SEAL_ALG)
			|| !json_is_string(iv64) || !json_is_string(ct64) || !json_is_string(tag64)){
		return SEAL_MALFORMED;
	}
	/* the ciphertext is as long as the plaintext: read its length off the padding */
	ct_len = json_string_length(ct64) / 4 * 3;
	if(ct_len >= 1 && json_string_value(ct64)[json_string_length(ct64) - 1] == '=') ct_len--;
	if(ct_len >= 1 && json_string_length(ct64) >= 2 && json_string_value(ct64)[json_string_length(ct64) - 2] == '=') ct_len--;
	if(ct_len == 0 || ct_len > SEAL_PLAINTEXT_MAX
			|| base64__decode(json_string_value(iv64), json_string_length(iv64), iv, sizeof(iv))
			|| base64__decode(json_string_value(tag64), json_string_length(tag64), tag, sizeof(tag))
			|| base64__decode(json_string_value(ct64), json_string_length(ct64), ct, ct_len)){
		return SEAL_MALFORMED;
	}
	out = malloc(ct_len + 1);
	if(!out) return SEAL_MALFORMED;
	if(seal__decrypt(key, iv, ct, ct_len, tag, (unsigned char *)out)){
		free(out);
		return SEAL_FORGED;
	}
	out[ct_len] = '\0';
	*plaintext = out;
	*len = ct_len;
	return SEAL_OPENED;
}
