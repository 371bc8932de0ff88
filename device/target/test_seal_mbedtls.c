/* The published seal vector (docs/contract.md "Sealed replies") through the mbedTLS that is
 * cross-built for the device, on an emulated Cortex-M: HKDF-SHA256 gives K, AES-128-GCM with
 * K and the IV gives the published tag and ciphertext start, and the ciphertext opens again;
 * a flipped tag bit is refused. Also the published sign vectors (HMAC-SHA256, SHA-1, MD5) and
 * base64.
 * Prints each result and the stack and arena peaks; exits non-zero on any mismatch. */
#include <stdio.h>
#include <string.h>
#include "mbedtls/base64.h"
#include "mbedtls/gcm.h"
#include "mbedtls/hkdf.h"
#include "mbedtls/md.h"
#include "target_support.h"

static int failures, checks;

static void check(int ok, const char *what)
{
	checks++;
	if(!ok) failures++;
	printf("%s %s\n", ok ? "ok  " : "FAIL", what);
}

static void hex(const unsigned char *b, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for(size_t i = 0; i < n; i++) {
		out[2 * i] = digits[b[i] >> 4];
		out[2 * i + 1] = digits[b[i] & 15];
	}
	out[2 * n] = '\0';
}

static const char PLAINTEXT[] = "{\"ProductKey\":\"a1BwAGV0001\",\"DeviceName\":\"dev-0001\","
	"\"DeviceSecret\":\"0123456789abcdef0123456789abcdef\",\"IotId\":\"Q7uOhVRdZRRlDnTLv0001000100\"}";

static void hmac_vector(mbedtls_md_type_t type, const char *name, const char *want)
{
	/* docs/contract.md "Sign vectors" */
	static const char key[] = "prodSecret";
	static const char msg[] = "deviceNamedev-0001productKeya1ProdrandomAbCd1234";
	unsigned char mac[32];
	char got[65], what[80];
	const mbedtls_md_info_t *info = mbedtls_md_info_from_type(type);
	int rc = info ? mbedtls_md_hmac(info, (const unsigned char *)key, strlen(key), (const unsigned char *)msg, strlen(msg), mac) : -1;
	hex(mac, info ? mbedtls_md_get_size(info) : 0, got);
	snprintf(what, sizeof(what), "HMAC-%s gives the published sign", name);
	check(rc == 0 && strcmp(got, want) == 0, what);
}

int main(void)
{
	static const char secret[] = "ps-secret-123", random[] = "0e60924368ebe2f2";
	static const unsigned char iv[12] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
	unsigned char info[64], k[16], ct[sizeof(PLAINTEXT) - 1], pt[sizeof(PLAINTEXT) - 1], tag[16];
	char h[2 * sizeof(ct) + 1];
	size_t n = 0, stack;
	mbedtls_gcm_context gcm;

	/* info = "mosquitto-bootstrap/v1/reply" 0x00 ProductKey 0x00 deviceId */
	memcpy(info, "mosquitto-bootstrap/v1/reply\0a1BwAGV0001\0dev-0001", 49);
	target_heap_reset();
	target_stack_paint();
	int rc = mbedtls_hkdf(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), (const unsigned char *)random, strlen(random),
		(const unsigned char *)secret, strlen(secret), info, 49, k, sizeof(k));
	stack = target_stack_used();
	hex(k, sizeof(k), h);
	check(rc == 0 && strcmp(h, "5ba22b66cbbb0ae14ee4bb4a9f028978") == 0, "HKDF-SHA256 gives the published K");
	printf("     mbedtls_hkdf: stack %u bytes, arena peak %u bytes\n", (unsigned)stack, (unsigned)target_heap_peak());

	mbedtls_gcm_init(&gcm);
	rc = mbedtls_gcm_setkey(&gcm, MBEDTLS_CIPHER_ID_AES, k, 128);
	rc = rc ? rc : mbedtls_gcm_crypt_and_tag(&gcm, MBEDTLS_GCM_ENCRYPT, sizeof(ct), iv, sizeof(iv), NULL, 0,
		(const unsigned char *)PLAINTEXT, ct, sizeof(tag), tag);
	mbedtls_gcm_free(&gcm);
	hex(tag, sizeof(tag), h);
	check(rc == 0 && strcmp(h, "31d17d7a57fdd63560e7adaa1b9fadca") == 0, "AES-128-GCM gives the published tag");
	hex(ct, 10, h);
	check(rc == 0 && strcmp(h, "a64622c40a385f9b74d8") == 0, "AES-128-GCM gives the published ciphertext start");

	/* opening, as the device does: setkey + auth_decrypt, measured together */
	target_heap_reset();
	target_stack_paint();
	mbedtls_gcm_init(&gcm);
	rc = mbedtls_gcm_setkey(&gcm, MBEDTLS_CIPHER_ID_AES, k, 128);
	rc = rc ? rc : mbedtls_gcm_auth_decrypt(&gcm, sizeof(ct), iv, sizeof(iv), NULL, 0, tag, sizeof(tag), ct, pt);
	mbedtls_gcm_free(&gcm);
	stack = target_stack_used();
	check(rc == 0 && memcmp(pt, PLAINTEXT, sizeof(pt)) == 0, "the sealed triple opens");
	printf("     mbedtls_gcm open: stack %u bytes, arena peak %u bytes\n", (unsigned)stack, (unsigned)target_heap_peak());

	tag[15] ^= 1;
	mbedtls_gcm_init(&gcm);
	rc = mbedtls_gcm_setkey(&gcm, MBEDTLS_CIPHER_ID_AES, k, 128);
	rc = rc ? rc : mbedtls_gcm_auth_decrypt(&gcm, sizeof(ct), iv, sizeof(iv), NULL, 0, tag, sizeof(tag), ct, pt);
	mbedtls_gcm_free(&gcm);
	check(rc == MBEDTLS_ERR_GCM_AUTH_FAILED, "a flipped tag bit is refused");
	check(target_heap_live() == 0, "every block mbedTLS took is given back");

	hmac_vector(MBEDTLS_MD_SHA256, "SHA256", "d0eb807030f4aec03a24a46e41be988f7f031bb75556a98876e36611b083fa12");
	hmac_vector(MBEDTLS_MD_SHA1, "SHA1", "abd661eff0fc05cc22dcc9613347cddd63c19648");
	hmac_vector(MBEDTLS_MD_MD5, "MD5", "21f9dbbbd2fa0de01dbbd58354efe4da");

	rc = mbedtls_base64_decode(pt, sizeof(pt), &n, (const unsigned char *)"AAECAwQFBgcICQoL", 16);
	check(rc == 0 && n == 12 && memcmp(pt, iv, 12) == 0, "base64 decodes the IV");

	printf("device target: %d checks, %d failed\n", checks, failures);
	return failures ? 1 : 0;
}
