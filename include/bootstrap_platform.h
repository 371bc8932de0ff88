#ifndef BOOTSTRAP_PLATFORM_H
#define BOOTSTRAP_PLATFORM_H
/* IoT Platform OpenAPI client: RPC signature 1.0, answer parsing, and the register-or-query
 * flow as a small state machine. Pure: no I/O, no threads; the caller sends what it builds. */
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "bootstrap_config.h"
#include "bootstrap_reply.h"

#define PLATFORM_API_VERSION "2018-01-20"
#define PLATFORM_MAX_PARAMS 16
#define PLATFORM_SIGNATURE_LEN 29 /* base64 of a SHA-1 HMAC, with NUL */

struct platform_param {
	const char *name;
	const char *value;
};

/* percent-encoded "name=value&..." of params sorted by name (Signature excluded by the
 * caller). malloc'd, NULL on failure. */
char *platform__canonical_query(const struct platform_param *params, size_t count);

/* Base64(HMAC-SHA1(secret + "&", method + "&%2F&" + percentEncode(canonical))). 0 or -1. */
int platform__sign(const char *method, const char *canonical_query, const char *access_key_secret,
		char signature[PLATFORM_SIGNATURE_LEN]);

/* A POST body for an RPC call: the canonical query of params with its Signature (signature
 * 1.0) appended; with access_key_secret NULL, unsigned (AssumeRoleWithOIDC). malloc'd, NULL on
 * failure. */
char *platform__rpc_body(const struct platform_param *params, size_t count, const char *access_key_secret);

/* A fresh random UUID v4 for SignatureNonce. 0 or -1 when the RNG fails. */
int platform__nonce(char nonce[37]);

/* Timestamp parameter for now, "YYYY-MM-DDThh:mm:ssZ". */
void platform__timestamp(time_t now, char out[21]);

/* What an answer from the platform means for the flow. */
enum platform_outcome {
	PLATFORM_SUCCESS,        /* triple filled in */
	PLATFORM_ALREADY_EXISTS, /* RegisterDevice: the name is taken */
	PLATFORM_NOT_EXISTS,     /* QueryDeviceDetail: no such device */
	PLATFORM_AUTH,           /* our AccessKey, token, permission or signature was rejected */
	PLATFORM_REFUSED,        /* a business error: the code says which */
	PLATFORM_THROTTLED,
	PLATFORM_UNAVAILABLE,    /* 5xx, internal error, unreadable or incomplete answer */
};

struct platform_answer {
	enum platform_outcome outcome;
	struct device_triple triple;
	char status[16];      /* QueryDeviceDetail's Status (UNACTIVE, ONLINE, OFFLINE, DISABLE), or "" */
	char code[64];        /* the platform's Code, printable ASCII only, "" if none */
	char request_id[48];  /* the platform's RequestId, for logs */
};

/* Classifies an HTTP answer to action. Never trusts the body: bounded, type-checked. */
void platform__parse_answer(const char *action, long http_status, const char *body, size_t len,
		struct platform_answer *answer);

/* One register-or-query flow for a device. */
enum platform_flow_state {
	FLOW_REGISTER,
	FLOW_QUERY,
	FLOW_DONE,
};

struct platform_flow {
	enum platform_flow_state state;
	enum existing_devices existing_policy;
	char device_name[40];
	/* valid once state is FLOW_DONE */
	enum bootstrap_code result;
	bool existing; /* the name was taken: the triple came from QueryDeviceDetail */
	int steps;     /* platform answers taken so far; bounds register/query ping-pong */
	struct device_triple triple;
	char message[128];    /* for the device */
	char detail[128];     /* for the log only: what exactly failed (e.g. curl's TLS error) */
	char request_id[48];  /* the platform's RequestId of the last answer, for the log */
	int retry_after;
};

/* A signed HTTP request ready to send: POST body to url. */
struct platform_http_request {
	const char *url;
	char *body; /* malloc'd, free with free() */
	const char *action;
};

/* query_first starts with QueryDeviceDetail (cheaper when most devices already exist). */
void platform__flow_init(struct platform_flow *flow, const char *device_name, enum existing_devices policy, bool query_first);

/* Builds the signed request for the flow's current step, with a new nonce and timestamp
 * for now. 0 or -1 (the flow is then finished with BOOTSTRAP_INTERNAL). */
int platform__flow_request(struct platform_flow *flow, const struct bootstrap_config *cfg,
		time_t now, struct platform_http_request *req);

/* Feeds the answer to the current step: moves to FLOW_QUERY or FLOW_DONE. */
void platform__flow_answer(struct platform_flow *flow, const struct platform_answer *answer);

/* The current step cannot be done (timeout, connection failure, the platform kept failing):
 * finish as unavailable. why is the sentence the device reads; detail (may be NULL) goes only
 * to the log. */
void platform__flow_fail(struct platform_flow *flow, const char *why, const char *detail);

/* True when the finished flow's answers told whether the device already existed
 * (flow->existing is then meaningful). */
bool platform__flow_existence_known(const struct platform_flow *flow);

/* Wipes the DeviceSecret held by a finished flow. */
void platform__flow_wipe(struct platform_flow *flow);

/* The start-up check: QueryDeviceDetail for a name no device should have tells whether the
 * credentials, endpoint, product and instance are accepted, without any permission beyond what
 * bootstrapping needs. */
#define PLATFORM_CHECK_DEVICE_NAME "mosquitto_bootstrap.check"
enum platform_check {
	PLATFORM_CHECK_PENDING = 0,
	PLATFORM_CHECK_OK,
	PLATFORM_CHECK_REFUSED,     /* an operator must act: detail says what to fix */
	PLATFORM_CHECK_UNREACHABLE, /* transport, 5xx, throttling: retried */
};
/* Classifies an answer to the check's QueryDeviceDetail; writes what to fix into detail. */
enum platform_check platform__check_answer(const struct platform_answer *answer, char *detail, size_t len);
const char *platform__check_name(enum platform_check check);

/* Seconds a device is told to wait before trying again, per outcome. */
#define PLATFORM_RETRY_UNAVAILABLE_S 10
#define PLATFORM_RETRY_THROTTLED_S 2

#endif
