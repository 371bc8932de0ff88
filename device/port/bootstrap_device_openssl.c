/* The device library's port on OpenSSL 3 (EVP_MAC HMAC, EVP_PKEY HKDF, EVP AES-128-GCM,
 * EVP_DecodeBlock), for Linux devices and the host's tests. */
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>

#include "bootstrap_device_port.h"

static int port__hmac(const struct bootdev_port *port, bootdev_hmac alg, const uint8_t *key, size_t key_len,
		const struct bootdev_part *parts, size_t n_parts, uint8_t *mac, size_t *mac_len)
{
	const char *digest = alg == BOOTDEV_HMAC_SHA256 ? "SHA256" : alg == BOOTDEV_HMAC_SHA1 ? "SHA1" : alg == BOOTDEV_HMAC_MD5 ? "MD5" : NULL;
	EVP_MAC *hmac;
	EVP_MAC_CTX *ctx = NULL;
	OSSL_PARAM params[2];
	int ok = 0;

	(void)port;
	if(!digest || !(hmac = EVP_MAC_fetch(NULL, "HMAC", NULL))) return -1;
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)digest, 0);
	params[1] = OSSL_PARAM_construct_end();
	if((ctx = EVP_MAC_CTX_new(hmac)) && EVP_MAC_init(ctx, key, key_len, params)){
		ok = 1;
		for(size_t i = 0; ok && i < n_parts; i++) ok = EVP_MAC_update(ctx, parts[i].data, parts[i].len);
		ok = ok && EVP_MAC_final(ctx, mac, mac_len, BOOTDEV_MAC_MAX);
	}
	EVP_MAC_CTX_free(ctx);
	EVP_MAC_free(hmac);
	return ok ? 0 : -1;
}

static int port__hkdf(const struct bootdev_port *port, const uint8_t *salt, size_t salt_len, const uint8_t *ikm,
		size_t ikm_len, const uint8_t *info, size_t info_len, uint8_t *okm, size_t okm_len)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, NULL);
	size_t len = okm_len;
	int ok;

	(void)port;
	ok = ctx && EVP_PKEY_derive_init(ctx) > 0 && EVP_PKEY_CTX_set_hkdf_md(ctx, EVP_sha256()) > 0
			&& EVP_PKEY_CTX_set1_hkdf_salt(ctx, salt, (int)salt_len) > 0
			&& EVP_PKEY_CTX_set1_hkdf_key(ctx, ikm, (int)ikm_len) > 0
			&& EVP_PKEY_CTX_add1_hkdf_info(ctx, info, (int)info_len) > 0
			&& EVP_PKEY_derive(ctx, okm, &len) > 0 && len == okm_len;
	EVP_PKEY_CTX_free(ctx);
	return ok ? 0 : -1;
}

static int port__open(const struct bootdev_port *port, const uint8_t key[16], const uint8_t iv[12],
		const uint8_t *ct, size_t ct_len, const uint8_t tag[16], uint8_t *plain)
{
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int len = 0, ok;

	(void)port;
	ok = ctx && ct_len <= 0x7fffffff && EVP_DecryptInit_ex(ctx, EVP_aes_128_gcm(), NULL, key, iv)
			&& EVP_DecryptUpdate(ctx, plain, &len, ct, (int)ct_len)
			&& EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16, (void *)tag)
			&& EVP_DecryptFinal_ex(ctx, plain + len, &len) > 0;
	EVP_CIPHER_CTX_free(ctx);
	return ok ? 0 : -1;
}

static int b64__char(char ch)
{
	return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '+' || ch == '/';
}

/* EVP_DecodeBlock keeps padding as zero bytes and wants room for them: decoded a group of
 * four at a time, after checking the alphabet and where '=' may be. */
static int port__base64(const struct bootdev_port *port, const char *in, size_t in_len, uint8_t *out, size_t out_size,
		size_t *out_len)
{
	size_t pad = 0, n = 0;

	(void)port;
	if(in_len % 4) return -1;
	if(in_len && in[in_len - 1] == '=') pad++;
	if(in_len > 1 && in[in_len - 2] == '=') pad++;
	for(size_t i = 0; i < in_len - pad; i++){
		if(!b64__char(in[i])) return -1;
	}
	for(size_t i = 0; i < in_len; i += 4){
		unsigned char group[3];
		size_t take = i + 4 == in_len ? 3 - pad : 3;
		if(EVP_DecodeBlock(group, (const unsigned char *)in + i, 4) != 3 || out_size - n < take) return -1;
		memcpy(out + n, group, take);
		n += take;
	}
	*out_len = n;
	return 0;
}

int bootdev_openssl_rng(void *rng_ctx, uint8_t *out, size_t len)
{
	(void)rng_ctx;
	return len <= 0x7fffffff && RAND_bytes(out, (int)len) == 1 ? 0 : -1;
}

const struct bootdev_port bootdev_port_openssl = { port__hmac, port__hkdf, port__open, port__base64, NULL };
