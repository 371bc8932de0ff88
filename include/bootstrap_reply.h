#ifndef BOOTSTRAP_REPLY_H
#define BOOTSTRAP_REPLY_H
/* The answers a device receives, and the stable error codes they carry. Pure; any thread. */
#include <stddef.h>

#include "bootstrap_request.h"

enum bootstrap_code {
	BOOTSTRAP_OK = 0,
	BOOTSTRAP_INVALID_REQUEST,
	BOOTSTRAP_INVALID_DEVICE_ID,
	BOOTSTRAP_PLATFORM_AUTH,
	BOOTSTRAP_PLATFORM_ERROR,
	BOOTSTRAP_PLATFORM_UNAVAILABLE,
	BOOTSTRAP_THROTTLED,
	BOOTSTRAP_BUSY,
	BOOTSTRAP_INTERNAL,
	BOOTSTRAP_UNAUTHORIZED,
	BOOTSTRAP_RATE_LIMITED,
	BOOTSTRAP_ALREADY_ACTIVATED,
	BOOTSTRAP_DEVICE_DISABLED,
	BOOTSTRAP_DEVICE_EXISTS,
	BOOTSTRAP_NOT_ALLOWED,    /* the deviceId is not on plugin_opt_device_allowlist */
	BOOTSTRAP_NOT_REGISTERED, /* registration preregistered: no such device on the platform */
};

/* A device's identity on the IoT Platform. */
/* Sized for what the platform issues (ProductKey 11, DeviceName at most 32, DeviceSecret 32,
 * IotId about 26 characters) with room to spare, and any ProductKey the plugin accepts;
 * longer values are refused as unreadable. */
struct device_triple {
	char product_key[PRODUCT_KEY_MAX + 1];
	char device_name[40];
	char device_secret[72];
	char iot_id[72];
};

/* "invalid_request", "busy", ... ; "ok" for BOOTSTRAP_OK. */
const char *reply__code_name(enum bootstrap_code code);

/* {"success":true,"data":{ProductKey,DeviceName,DeviceSecret,IotId}}. malloc'd, NULL on failure. */
char *reply__success(const struct device_triple *triple, size_t *len);

/* {"success":true,"sealed":{...}}: the same data sealed with key (bootstrap_seal.h). */
char *reply__success_sealed(const unsigned char key[16], const struct device_triple *triple, size_t *len);

/* {"success":false,"code":..,"message":..[,"retryAfter":n]}; retry_after <= 0 leaves it out. */
char *reply__error(enum bootstrap_code code, const char *message, int retry_after, size_t *len);

/* The same three in CBOR (docs/contract.md, "CBOR"; reply_cbor.c): deterministic encoding,
 * the sealed plaintext a CBOR map sealed as JSON's is. malloc'd, NULL on failure; *len set. */
char *reply__success_cbor(const struct device_triple *triple, size_t *len);
char *reply__success_sealed_cbor(const unsigned char key[16], const struct device_triple *triple, size_t *len);
char *reply__error_cbor(enum bootstrap_code code, const char *message, int retry_after, size_t *len);

/* Wipes and frees a reply buffer (a success reply holds a DeviceSecret). */
void reply__free(char *payload, size_t len);

#endif
