#ifndef BOOTSTRAP_REQUEST_H
#define BOOTSTRAP_REQUEST_H
/* Parsing and validation of a bootstrap request received from the network. Pure; any thread
 * (the plugin parses on the broker thread). */
#include <stdbool.h>
#include <stddef.h>

#include "bootstrap_auth.h"
#include "bootstrap_reason.h"

#define REQUEST_MAX_PAYLOAD 1024
#define DEVICE_NAME_MIN 4
#define DEVICE_NAME_MAX 32
#define REPLY_TOPIC_PLACEHOLDER "{deviceId}"
/* CBOR requests come on the request topic plus this, and their replies go to the reply topic
 * plus this (docs/contract.md, "CBOR") */
#define REQUEST_CBOR_SUFFIX "/cbor"
/* A ProductKey, in a request or in the configuration: 1 to 64 letters, digits, - and _
 * (the platform's are 11 characters). */
#define PRODUCT_KEY_MAX 64

enum request_status {
	REQUEST_OK = 0,
	REQUEST_INVALID,           /* not a request we can read: answer invalid_request */
	REQUEST_INVALID_DEVICE_ID, /* readable, but the deviceId breaks the DeviceName rules */
};

struct bootstrap_request {
	char device_id[DEVICE_NAME_MAX + 1];
	/* the product it asks for, as Alibaba's own registration request names it; "" when it
	 * names none (the broker's product_key then) */
	char product_key[PRODUCT_KEY_MAX + 1];
	/* the signature members; sign_method is SIGN_NONE when the request carries none */
	enum sign_method sign_method;
	char random[SIGN_RANDOM_MAX + 1];
	char sign[SIGN_HEX_MAX + 1];
};

/* payload is either a JSON object with a string member "deviceId" or the bare deviceId as
 * text (surrounding white space ignored). A JSON request may name its product ("productKey",
 * a ProductKey) and may be signed: "random" (8 to 64 letters, digits, '-', '_' or '.'),
 * "signMethod" ("hmacsha256", "hmacsha1" or "hmacmd5") and "sign" (hex); all three or none.
 * On failure req is left zeroed and *why (if given) points to a
 * static sentence for the error reply. */
enum request_status request__parse(const void *payload, size_t len,
		struct bootstrap_request *req, const char **why);
/* The same; json_only (request_auth sign) refuses a payload that is not JSON instead of
 * reading it as a bare deviceId, and *reason (if given) gets the refusal's precise cause
 * (a payload that is not text: REASON_NOT_TEXT, invalid_request). */
enum request_status request__parse_as(const void *payload, size_t len, bool json_only,
		struct bootstrap_request *req, const char **why, enum bootstrap_reason *reason);

/* A request in CBOR (docs/contract.md, "CBOR"): one definite-length map whose text keys are
 * the JSON member names, read with libcbor. At most REQUEST_MAX_PAYLOAD bytes; trailing bytes,
 * indefinite lengths, tags, keys that are not text and duplicate keys are REASON_NOT_CBOR, a
 * well-formed item that is not a map REASON_NOT_OBJECT; the members then go through the same
 * checks as JSON's (request__take_members), so req is the same structure. */
enum request_status request__parse_cbor(const void *payload, size_t len,
		struct bootstrap_request *req, const char **why, enum bootstrap_reason *reason);

/* The members of a request as its parser found them, whatever the encoding: each checked the
 * same way by request__take_members. text need not be NUL-terminated. */
enum member_kind { MEMBER_ABSENT = 0, MEMBER_TEXT, MEMBER_OTHER /* present, not a string */ };
struct request_member {
	enum member_kind kind;
	const char *text;
	size_t len;
};
struct request_members {
	struct request_member device_id, product_key, random, sign_method, sign;
};
/* A payload's size, before any parser reads it: true, or false with *why and *reason. */
/* len hex digits (either case), exactly want of them. */
bool request__hex_valid(const char *s, size_t len, size_t want);
bool request__size_ok(const void *payload, size_t len, const char **why, enum bootstrap_reason *reason);
/* Fills req (zeroed first, and again on refusal) or refuses with *why and *reason (both
 * required). */
enum request_status request__take_members(const struct request_members *m, struct bootstrap_request *req,
		const char **why, enum bootstrap_reason *reason);

/* Client ids the plugin will address an error reply to: 1 to 64 printable ASCII characters
 * without '/', '+' or '#'. No reply topic is ever built from a longer or stranger one. */
#define REPLY_CLIENT_ID_MAX 64
bool request__client_id_addressable(const char *client_id);

/* The IoT Platform's DeviceName rules: 4 to 32 of letters, digits and - _ @ . : */
bool request__device_name_valid(const char *name, size_t len);

/* A ProductKey: 1 to PRODUCT_KEY_MAX letters, digits, - and _ (ASCII). The one rule for
 * requests, plugin_opt_product_key and the products file. */
bool request__product_key_valid(const char *key, size_t len);

#define RESPONSE_TOPIC_MAX 256
#define CORRELATION_DATA_MAX 256

/* An MQTT 5 Response Topic a device may ask its reply on: 1 to 256 bytes, no wildcards, no NUL,
 * starting with prefix (the broker still checks it is a valid UTF-8 topic). */
bool request__response_topic_valid(const char *topic, size_t len, const char *prefix);

/* A reply topic template is a publishable topic containing REPLY_TOPIC_PLACEHOLDER once. */
bool request__reply_template_valid(const char *tmpl);

/* The template with the placeholder replaced by id; malloc'd, NULL on failure. The caller
 * still checks the result is a publishable topic (id may come from a client id). */
char *request__reply_topic(const char *tmpl, const char *id);

#endif
