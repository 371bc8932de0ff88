#ifndef BOOTSTRAP_DEVICE_PORT_H
#define BOOTSTRAP_DEVICE_PORT_H
/* The crypto backends shipped with the device library: link one of
 * bootstrap_device_mbedtls.c (mbedTLS 2.28: md HMAC, HKDF, GCM, base64) or
 * bootstrap_device_openssl.c (OpenSSL 3: EVP_MAC, EVP_PKEY HKDF, EVP AES-GCM, EVP_DecodeBlock).
 * Both are const: no state of their own. */
#include "bootstrap_device.h"

#ifdef __cplusplus
extern "C" {
#endif

extern const struct bootdev_port bootdev_port_mbedtls;
extern const struct bootdev_port bootdev_port_openssl;

/* A bootdev_rng on OpenSSL's RAND_bytes (rng_ctx unused), for hosts. */
int bootdev_openssl_rng(void *rng_ctx, uint8_t *out, size_t len);

#ifdef __cplusplus
}
#endif
#endif
