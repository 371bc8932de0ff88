#ifndef BOOTSTRAP_DEVICE_H
#define BOOTSTRAP_DEVICE_H
/* The device side of mosquitto-bootstrap (docs/contract.md, docs/device-library.md), in C99
 * for microcontrollers: the topic names, the signed request, the reply read and the sealed
 * triple opened, in JSON or CBOR, and the IoT Platform MQTT connect credentials.
 *
 * No malloc, no mutable static state, no I/O: every output goes into a buffer the caller
 * passes with its size, every input comes with its length. It works with any MQTT client: the
 * caller publishes what bootdev_request_*() wrote and hands every message that arrives on the
 * reply topic to bootdev_reply_*(). Crypto goes through a small port (struct bootdev_port):
 * device/port/ ships mbedTLS and OpenSSL backends.
 *
 * A firmware links bootstrap_device.c, and bootstrap_device_json.c (with
 * bootstrap_device_jsmn.c, jsmn's tokenizer) or bootstrap_device_cbor.c (libcbor's streaming
 * decoder and encoders), or both; bootstrap_device_extra.c only if it calls
 * bootdev_credentials_make(), bootdev_request_topic() and bootdev_reply_topic() (a broker
 * whose topics are not the defaults), bootdev_sign(), bootdev_reply_key() or
 * bootdev_status_name().
 *
 * MQTT 5: a device that sets a Response Topic and Correlation Data on its request gets them
 * back on the reply; matching them is the MQTT client's job, not this library's. With one
 * request outstanding at a time (docs/contract.md "One request at a time") a 3.1.1 device
 * needs no correlation: a sealed success opens only with the latest request's key. */
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
	BOOTDEV_OK = 0,           /* done; for a reply: the triple, opened and checked */
	BOOTDEV_REFUSED,          /* a reply: the service's error reply (code, retry_after) */
	BOOTDEV_ERR_ARG,          /* an argument is NULL, or breaks its rule (deviceId, ProductKey...) */
	BOOTDEV_ERR_BUFFER,       /* an output or work buffer is too small */
	BOOTDEV_ERR_RNG,          /* the RNG callback failed */
	BOOTDEV_ERR_CRYPTO,       /* the port failed (not a forgery: the backend itself) */
	/* a reply to ignore (keep waiting for the genuine answer): */
	BOOTDEV_ERR_MALFORMED,    /* not a well-formed reply of the service (over BOOTDEV_REPLY_MAX included) */
	BOOTDEV_ERR_NOT_SEALED,   /* a success in the clear, refused without BOOTDEV_ACCEPT_CLEAR */
	BOOTDEV_ERR_FORGED,       /* a success whose seal does not open with this request's key (or
	                           * cannot be read): a forgery, or the answer to an earlier request */
	BOOTDEV_ERR_WRONG_DEVICE  /* opened, but for another DeviceName or ProductKey */
} bootdev_status;

typedef enum {
	BOOTDEV_HMAC_SHA256 = 0,  /* "hmacsha256", prefer it */
	BOOTDEV_HMAC_SHA1 = 1,    /* "hmacsha1" (also the IoT Platform password's) */
	BOOTDEV_HMAC_MD5 = 2      /* "hmacmd5" */
} bootdev_hmac;

typedef enum { BOOTDEV_JSON = 0, BOOTDEV_CBOR = 1 } bootdev_format;

/* Limits of the contract */
#define BOOTDEV_DEVICE_ID_MAX 32      /* 4 to 32 of A-Z a-z 0-9 - _ @ . : */
#define BOOTDEV_PRODUCT_KEY_MAX 64    /* 1 to 64 of A-Z a-z 0-9 - _ */
#define BOOTDEV_SECRET_MAX 256        /* ProductSecret bytes */
#define BOOTDEV_RANDOM_BYTES 8        /* from the RNG, sent as 16 lower-case hex digits */
#define BOOTDEV_RANDOM_LEN (2 * BOOTDEV_RANDOM_BYTES)
#define BOOTDEV_KEY_LEN 16            /* AES-128 */
#define BOOTDEV_MAC_MAX 32            /* HMAC-SHA256 */
#define BOOTDEV_REQUEST_MAX 1024      /* what the broker accepts */
#define BOOTDEV_REPLY_MAX 1024        /* a longer reply is refused unread (BOOTDEV_ERR_MALFORMED) */
/* A work buffer this large reads any reply the service sends (the plaintext and the four
 * strings of the triple, or an error's code and message). */
#define BOOTDEV_WORK_SIZE 768
/* A request buffer this large holds any request (the longest: CBOR with every member). */
#define BOOTDEV_REQUEST_SIZE 256

/* bootdev_reply_*() flags */
#define BOOTDEV_ACCEPT_CLEAR 0x1u     /* accept a success in the clear ("data"): only for a
                                       * broker with reply_encryption off, over TLS */

/* ---- The port: the only crypto the library uses. Every function returns 0 on success. ---- */
struct bootdev_part { const uint8_t *data; size_t len; };

struct bootdev_port {
	/* mac = HMAC-<alg>(key, the parts concatenated); mac holds BOOTDEV_MAC_MAX bytes; *mac_len
	 * is set to 32, 20 or 16. */
	int (*hmac)(const struct bootdev_port *port, bootdev_hmac alg, const uint8_t *key, size_t key_len,
			const struct bootdev_part *parts, size_t n_parts, uint8_t *mac, size_t *mac_len);
	/* okm = HKDF-SHA256(salt, ikm, info), RFC 5869, okm_len bytes (16 here) */
	int (*hkdf_sha256)(const struct bootdev_port *port, const uint8_t *salt, size_t salt_len,
			const uint8_t *ikm, size_t ikm_len, const uint8_t *info, size_t info_len, uint8_t *okm, size_t okm_len);
	/* AES-128-GCM decryption with a 12-byte IV, no AAD, a 16-byte tag: 0 only when the tag
	 * verifies (then plain holds ct_len bytes). plain may be ct itself (in place). */
	int (*aes128gcm_open)(const struct bootdev_port *port, const uint8_t key[16], const uint8_t iv[12],
			const uint8_t *ct, size_t ct_len, const uint8_t tag[16], uint8_t *plain);
	/* Standard base64 with padding; 0 and *out_len when in is valid and fits out_size. Only the
	 * JSON reply reader calls it: NULL in a CBOR-only firmware. */
	int (*base64_decode)(const struct bootdev_port *port, const char *in, size_t in_len,
			uint8_t *out, size_t out_size, size_t *out_len);
	void *ctx; /* the backend's, or the caller's */
};

/* The caller's random number generator: fills out with len unpredictable bytes, returns 0. */
typedef int (*bootdev_rng)(void *rng_ctx, uint8_t *out, size_t len);

/* ---- One device's bootstrap: the caller's memory, set by bootdev_init(). ---- */
typedef struct {
	const struct bootdev_port *port;
	const uint8_t *product_secret;
	size_t product_secret_len;
	/* the sign's message: "deviceName", the deviceId, "productKey", the ProductKey (the caller's
	 * strings, kept while the struct is used), "random", the request's random; what the reply
	 * key is made of too */
	struct bootdev_part ident[6];
	bootdev_rng rng;
	void *rng_ctx;
	bootdev_hmac sign_method;
	/* set by bootdev_request_*(): the request outstanding */
	int asked;
	char random[BOOTDEV_RANDOM_LEN + 1];
	uint8_t key[BOOTDEV_KEY_LEN]; /* its reply key (docs/contract.md "Sealed replies") */
} bootdev_client;

/* Checks and keeps the identity: ProductKey, deviceId (NUL-terminated) and the ProductSecret
 * (secret_len bytes, without a trailing newline). The strings are not copied. */
bootdev_status bootdev_init(bootdev_client *c, const struct bootdev_port *port, bootdev_rng rng, void *rng_ctx,
		const char *product_key, const char *device_id, const uint8_t *product_secret, size_t secret_len,
		bootdev_hmac sign_method);

/* Zeroes the client (its reply key). */
void bootdev_wipe(bootdev_client *c);

/* ---- Topics ---- */
/* The broker's defaults (plugin_opt_request_topic and plugin_opt_reply_topic unset), as AWS's
 * Fleet Provisioning library gives its topics: strings, and a call for the one that holds the
 * deviceId. */
#define BOOTDEV_REQUEST_TOPIC_JSON "bootstrap/register"
#define BOOTDEV_REQUEST_TOPIC_CBOR "bootstrap/register/cbor"
#define BOOTDEV_REPLY_TOPIC_PREFIX "bootstrap/reply/" /* then the deviceId, then "/cbor" for CBOR */
/* The default reply topic of c's deviceId, NUL-terminated into out ("bootstrap/reply/<deviceId>",
 * "/cbor" appended for BOOTDEV_CBOR); *out_len (may be NULL) gets the length. */
bootdev_status bootdev_default_reply_topic(const bootdev_client *c, bootdev_format fmt, char *out, size_t out_size,
		size_t *out_len);

/* Any broker's topics (in bootstrap_device_extra.c): NUL-terminated into out; *out_len (may be
 * NULL) gets the length. */
/* base: the broker's request topic (plugin_opt_request_topic), NULL for "bootstrap/register";
 * BOOTDEV_CBOR appends "/cbor". */
bootdev_status bootdev_request_topic(bootdev_format fmt, const char *base, char *out, size_t out_size, size_t *out_len);
/* tmpl: the broker's reply topic template (plugin_opt_reply_topic), NULL for
 * "bootstrap/reply/{deviceId}"; {deviceId} replaced; BOOTDEV_CBOR appends "/cbor". */
bootdev_status bootdev_reply_topic(bootdev_format fmt, const char *tmpl, const char *device_id,
		char *out, size_t out_size, size_t *out_len);

/* ---- The request: a new random from the RNG, its reply key, the sign; the payload to
 * publish (not NUL-terminated) in out, *out_len bytes. Every call starts a new request (use a
 * new one for every retry): the reply to an earlier one no longer opens. ---- */
bootdev_status bootdev_request_json(bootdev_client *c, uint8_t *out, size_t out_size, size_t *out_len);
bootdev_status bootdev_request_cbor(bootdev_client *c, uint8_t *out, size_t out_size, size_t *out_len);

/* ---- A reply: every message arriving on the reply topic. ---- */
typedef struct {
	/* BOOTDEV_OK: the triple, NUL-terminated strings in the work buffer. Wipe the work buffer
	 * once stored: it holds the DeviceSecret. */
	const char *product_key, *device_name, *device_secret, *iot_id;
	int sealed;                   /* 1: it came sealed; 0: in the clear (BOOTDEV_ACCEPT_CLEAR) */
	/* BOOTDEV_REFUSED: the error code ("busy", ...), its message (JSON escapes as sent, any
	 * byte outside printable ASCII shown as '?'), in the work buffer; retry_after in seconds, 0 when absent (then do not retry). An error
	 * reply is not authenticated: on plain TCP cap what you wait. */
	const char *code, *message;
	uint32_t retry_after;
} bootdev_reply;

/* payload: the message as received (len bytes). work: BOOTDEV_WORK_SIZE bytes is enough.
 * Returns BOOTDEV_OK (triple), BOOTDEV_REFUSED (error reply), or why the message is ignored
 * (BOOTDEV_ERR_FORGED, _WRONG_DEVICE, _NOT_SEALED, _MALFORMED; _BUFFER when work is too small
 * for it): the device keeps waiting for the genuine answer. c is only read: a reply opens
 * with the key of the request c asked last. */
bootdev_status bootdev_reply_json(const bootdev_client *c, const uint8_t *payload, size_t len, unsigned flags,
		uint8_t *work, size_t work_size, bootdev_reply *out);
bootdev_status bootdev_reply_cbor(const bootdev_client *c, const uint8_t *payload, size_t len, unsigned flags,
		uint8_t *work, size_t work_size, bootdev_reply *out);

/* ---- The IoT Platform MQTT connect credentials (docs/contract.md "What the device does with
 * the triple"). ---- */
#define BOOTDEV_CLIENT_ID_MAX 64
typedef struct {
	char client_id[160];  /* <client_id>|securemode=<m>,signmethod=<method>,timestamp=<T>| */
	char username[100];   /* <DeviceName>&<ProductKey> */
	char password[2 * BOOTDEV_MAC_MAX + 1]; /* upper-case hex HMAC-<method>(DeviceSecret, ...) */
} bootdev_credentials;

/* client_id: up to 64 characters, NULL for the DeviceName; timestamp_ms: the current time in
 * milliseconds since 1970, in decimal (up to 20 digits); securemode: 3 plain TCP, 2 TLS;
 * sign_method: BOOTDEV_HMAC_SHA256 (as Alibaba's Link SDK 4.x signs: a firmware that also
 * signs its request with it needs no SHA-1 or MD5 at all) or BOOTDEV_HMAC_SHA1 (older SDKs). */
bootdev_status bootdev_credentials_make(const struct bootdev_port *port, const char *product_key,
		const char *device_name, const char *device_secret, const char *client_id, const char *timestamp_ms,
		int securemode, bootdev_hmac sign_method, bootdev_credentials *out);

/* ---- Lower level, for tests and other clients ---- */
/* The request's sign: lower-case hex of HMAC-<alg>(secret, "deviceName" id "productKey" pk
 * "random" random), NUL-terminated in hex (2 * BOOTDEV_MAC_MAX + 1 bytes). */
bootdev_status bootdev_sign(const struct bootdev_port *port, bootdev_hmac alg, const uint8_t *secret, size_t secret_len,
		const char *product_key, const char *device_id, const char *random, char hex[2 * BOOTDEV_MAC_MAX + 1]);
/* The reply key K = HKDF-SHA256(secret, salt random, info "mosquitto-bootstrap/v1/reply" 0 pk 0 id). */
bootdev_status bootdev_reply_key(const struct bootdev_port *port, const uint8_t *secret, size_t secret_len,
		const char *random, const char *product_key, const char *device_id, uint8_t key[BOOTDEV_KEY_LEN]);
/* "hmacsha256", "hmacsha1", "hmacmd5" */
const char *bootdev_hmac_name(bootdev_hmac alg);
/* A name for a status, for logs. */
const char *bootdev_status_name(bootdev_status s);

#ifdef __cplusplus
}
#endif
#endif
