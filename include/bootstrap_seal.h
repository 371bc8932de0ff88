#ifndef BOOTSTRAP_SEAL_H
#define BOOTSTRAP_SEAL_H
/* Sealed replies: the triple encrypted and authenticated with a key only holders of the
 * ProductSecret can derive for one request (contract v1, README "Sealed replies"):
 *
 *   K  = HKDF-SHA256(IKM = ProductSecret, salt = random,
 *                    info = "mosquitto-bootstrap/v1/reply" 0x00 ProductKey 0x00 deviceId), 16 bytes
 *   ct = AES-128-GCM(K, fresh 12-byte IV, no AAD), 16-byte tag
 *   {"success":true,"sealed":{"alg":"A128GCM","iv":b64,"ct":b64,"tag":b64}}
 *
 * Pure functions on OpenSSL's EVP and jansson; used by the plugin (sealing, on the broker
 * thread), the example device and mosquitto-bootstrap-open (opening). No state, any thread. */
#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#define SEAL_KEY_LEN 16
#define SEAL_IV_LEN 12
#define SEAL_TAG_LEN 16
#define SEAL_INFO_LABEL "mosquitto-bootstrap/v1/reply"
#define SEAL_ALG "A128GCM"
/* A sealed plaintext is a triple's JSON: a few hundred bytes. Bigger ones are not ours. */
#define SEAL_PLAINTEXT_MAX 1024

/* K for one request. 0, or -1 when OpenSSL fails (key then zeroed). */
int seal__derive_key(const char *product_secret, const char *random, const char *product_key,
		const char *device_id, unsigned char key[SEAL_KEY_LEN]);

/* AES-128-GCM of len bytes of plaintext into ct (len bytes) and tag. 0 or -1. */
int seal__encrypt(const unsigned char key[SEAL_KEY_LEN], const unsigned char iv[SEAL_IV_LEN],
		const unsigned char *plaintext, size_t len, unsigned char *ct, unsigned char tag[SEAL_TAG_LEN]);

/* The inverse; -1 when the tag does not verify (plaintext then wiped). */
int seal__decrypt(const unsigned char key[SEAL_KEY_LEN], const unsigned char iv[SEAL_IV_LEN],
		const unsigned char *ct, size_t len, const unsigned char tag[SEAL_TAG_LEN], unsigned char *plaintext);

/* {"success":true,"sealed":{...}} for plaintext, with a fresh random IV. malloc'd, NULL on
 * failure. The caller wipes the plaintext. */
char *seal__reply(const unsigned char key[SEAL_KEY_LEN], const char *plaintext, size_t len, size_t *out_len);

enum seal_open_status {
	SEAL_OPENED = 0,    /* *plaintext is the sealed JSON text, malloc'd, NUL-terminated */
	SEAL_NOT_SEALED,    /* a reply without a "sealed" member (an error, or a success in the clear) */
	SEAL_MALFORMED,     /* "sealed" is there but not of the contract's shape */
	SEAL_FORGED,        /* well-formed, but the tag does not verify with this key */
};

/* Opens the "sealed" member of a parsed reply. Wipe and free *plaintext after use. */
enum seal_open_status seal__open(const unsigned char key[SEAL_KEY_LEN], const json_t *reply,
		char **plaintext, size_t *len);

#endif
