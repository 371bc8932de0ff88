/* The _ALT functions bootstrap_mbedtls_config.h asks for.
 * AES decryption (MBEDTLS_AES_SETKEY_DEC_ALT, MBEDTLS_AES_DECRYPT_ALT): GCM encrypts with AES in
 * both directions, so the decryption key schedule, rounds and inverse tables are dead weight on
 * the device. mbedTLS's cipher layer still refers to them; they refuse.
 * mbedtls_platform_zeroize (MBEDTLS_PLATFORM_ZEROIZE_ALT): mbedTLS's own keeps a volatile
 * pointer to memset in .data, the only static RAM it would have; volatile stores do the same
 * (the compiler may not drop them) with none. */
#include "mbedtls/aes.h"
#include "mbedtls/platform.h"
#include "mbedtls/platform_util.h"

int mbedtls_aes_setkey_dec(mbedtls_aes_context *ctx, const unsigned char *key, unsigned int keybits)
{
	(void)ctx;
	(void)key;
	(void)keybits;
	return MBEDTLS_ERR_PLATFORM_FEATURE_UNSUPPORTED;
}

int mbedtls_internal_aes_decrypt(mbedtls_aes_context *ctx, const unsigned char input[16], unsigned char output[16])
{
	(void)ctx;
	(void)input;
	(void)output;
	return MBEDTLS_ERR_PLATFORM_FEATURE_UNSUPPORTED;
}

void mbedtls_platform_zeroize(void *buf, size_t len)
{
	volatile unsigned char *p = buf;

	while(len--) *p++ = 0;
}
