/* mbedTLS 2.28 configuration for device/ on a microcontroller (MBEDTLS_CONFIG_FILE): only what
 * the library's mbedTLS port calls (HMAC-SHA256/SHA1/MD5 through md, HKDF-SHA256, AES-128-GCM,
 * base64), and the smallest form of each. Anything else mbedTLS offers is left out. */
#ifndef BOOTSTRAP_MBEDTLS_CONFIG_H
#define BOOTSTRAP_MBEDTLS_CONFIG_H

/* the sign methods the plugin accepts: hmacsha256, hmacsha1, hmacmd5 (through md's HMAC) */
#define MBEDTLS_MD_C
#define MBEDTLS_SHA256_C
/* BOOTSTRAP_MBEDTLS_SHA256_ONLY: a firmware that signs its request and its IoT Platform connect
 * with hmacsha256 (as Alibaba's Link SDK 4.x connects) needs neither SHA-1 nor MD5 */
#ifndef BOOTSTRAP_MBEDTLS_SHA256_ONLY
#define MBEDTLS_SHA1_C
#define MBEDTLS_MD5_C
#endif
/* the sealed reply's key (docs/contract.md "Sealed replies") */
#define MBEDTLS_HKDF_C
/* AES-128-GCM: mbedTLS 2.28's GCM runs AES through the cipher layer, in ECB mode, encrypting only */
#define MBEDTLS_CIPHER_C
#define MBEDTLS_AES_C
#define MBEDTLS_GCM_C
/* the JSON reply's iv, ct and tag; BOOTSTRAP_MBEDTLS_NO_BASE64 for a CBOR-only firmware (the
 * port then offers no base64_decode) */
#ifndef BOOTSTRAP_MBEDTLS_NO_BASE64
#define MBEDTLS_BASE64_C
#endif

/* smallest forms: tables in flash (else 8 KB of RAM built at run time), one table per direction,
 * SHA-256's rounds in a loop */
#define MBEDTLS_AES_ROM_TABLES
#define MBEDTLS_AES_FEWER_TABLES
#define MBEDTLS_SHA256_SMALLER
/* GCM only ever encrypts with AES: the decryption key schedule and rounds are replaced by stubs
 * that fail (device/target/mbedtls_alt.c), so their code and tables are not linked */
#define MBEDTLS_AES_SETKEY_DEC_ALT
#define MBEDTLS_AES_DECRYPT_ALT
/* mbedTLS's zeroize keeps a pointer in .data: mbedtls_alt.c's uses none */
#define MBEDTLS_PLATFORM_ZEROIZE_ALT

/* md's and cipher's contexts are the only memory mbedTLS 2.28 allocates (HMAC's ipad/opad and
 * digest state, GCM's AES key schedule), freed before each call returns. The firmware decides
 * where it comes from: these two functions, no pointer in RAM, no libc heap unless it wants
 * one (the QEMU tests use a fixed arena and measure its peak). */
#define MBEDTLS_PLATFORM_C
#define MBEDTLS_PLATFORM_MEMORY
#define MBEDTLS_PLATFORM_CALLOC_MACRO bootstrap_target_calloc
#define MBEDTLS_PLATFORM_FREE_MACRO bootstrap_target_free
#include <stddef.h>
void *bootstrap_target_calloc(size_t n, size_t size);
void bootstrap_target_free(void *p);

/* no file system, no time, no entropy source: none of it is used */
#define MBEDTLS_PLATFORM_NO_STD_FUNCTIONS

#include "mbedtls/check_config.h"
#endif
