/* The device library's port on mbedTLS 2.28 (md HMAC, HKDF, GCM, base64): the embedded
 * backend. Needs MBEDTLS_MD_C, MBEDTLS_SHA256_C (and SHA1_C, MD5_C for those sign methods
 * and the IoT Platform password), MBEDTLS_HKDF_C, MBEDTLS_AES_C, MBEDTLS_GCM_C and, for the
 * JSON reply only, MBEDTLS_BASE64_C: without it (a CBOR-only firmware) the port has no
 * base64_decode. */
#include <mbedtls/base64.h>
#include <mbedtls/gcm.h>
#include <mbedtls/hkdf.h>
#include <mbedtls/md.h>

#include "bootstrap_device_port.h"

static int port__hmac(const struct bootdev_port *port, bootdev_hmac alg, const uint8_t *key, size_t key_len,
		const struct bootdev_part *parts, size_t n_parts, uint8_t *mac, size_t *mac_len)
{
	const mbedtls_md_info_t *md;
	mbedtls_md_context_t ctx;
	int rc;

	(void)port;
	switch(alg){
		case BOOTDEV_HMAC_SHA256: md = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256); break;
		case BOOTDEV_HMAC_SHA1: md = mbedtls_md_info_from_type(MBEDTLS_MD_SHA1); break;
		case BOOTDEV_HMAC_MD5: md = mbedtls_md_info_from_type(MBEDTLS_MD_MD5); break;
		default: md = NULL;
	}
	if(!md) return -1;
	mbedtls_md_init(&ctx);
	rc = mbedtls_md_setup(&ctx, md, 1);
	if(!rc) rc = mbedtls_md_hmac_starts(&ctx, key, key_len);
	for(size_t i = 0; !rc && i < n_parts; i++) rc = mbedtls_md_hmac_update(&ctx, parts[i].data, parts[i].len);
	if(!rc) rc = mbedtls_md_hmac_finish(&ctx, mac);
	mbedtls_md_free(&ctx);
	*mac_len = mbedtls_md_get_size(md);
	return rc ? -1 : 0;
}

static int port__hkdf(const struct bootdev_port *port, const uint8_t *salt, size_t salt_len, const uint8_t *ikm,
		size_t ikm_len, const uint8_t *info, size_t info_len, uint8_t *okm, size_t okm_len)
{
	(void)port;
	return mbedtls_hkdf(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), salt, salt_len, ikm, ikm_len, info, info_len,
			okm, okm_len) ? -1 : 0;
}

static int port__open(const struct bootdev_port *port, const uint8_t key[16], const uint8_t iv[12],
		const uint8_t *ct, size_t ct_len, const uint8_t tag[16], uint8_t *plain)
{
	mbedtls_gcm_context gcm;
	int rc;

	(void)port;
	mbedtls_gcm_init(&gcm);
	rc = mbedtls_gcm_setkey(&gcm, MBEDTLS_CIPHER_ID_AES, key, 128);
	if(!rc) rc = mbedtls_gcm_auth_decrypt(&gcm, ct_len, iv, 12, NULL, 0, tag, 16, ct, plain);
	mbedtls_gcm_free(&gcm);
	return rc ? -1 : 0;
}

#ifdef MBEDTLS_BASE64_C
static int port__base64(const struct bootdev_port *port, const char *in, size_t in_len, uint8_t *out, size_t out_size,
		size_t *out_len)
{
	(void)port;
	return mbedtls_base64_decode(out, out_size, out_len, (const unsigned char *)in, in_len) ? -1 : 0;
}

#else
#define port__base64 NULL
#endif

const struct bootdev_port bootdev_port_mbedtls = { port__hmac, port__hkdf, port__open, port__base64, NULL };
