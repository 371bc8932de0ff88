#ifndef BOOTSTRAP_PLATFORM_H
#define BOOTSTRAP_PLATFORM_H
/* IoT Platform OpenAPI client: request signatures (V3, ACS3-HMAC-SHA256, and RPC signature 1.0;
 * plugin/platform/sign.c), building calls and classifying answers (openapi.c), and the
 * register-or-query flow as a small state machine (flow.c). Pure: no I/O, no threads; the
 * caller sends what it builds. */
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "bootstrap_actions.h"
#include "bootstrap_config.h"
#include "bootstrap_reply.h"
#include "bootstrap_request.h"

#define PLATFORM_API_VERSION "2018-01-20"
#define PLATFORM_MAX_PARAMS 16
#define PLATFORM_SIGNATURE_LEN 29 /* base64 of a SHA-1 HMAC, with NUL */
#define PLATFORM_SHA256_HEX_LEN 65 /* lower-case hex of a SHA-256, with NUL */
#define PLATFORM_V3_ALGORITHM "ACS3-HMAC-SHA256"
#define PLATFORM_MAX_HEADERS 12

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

/* V3 (ACS3-HMAC-SHA256), as in Alibaba's "V3 request structure and signature":
 * lower-case hex of SHA-256(data). 0 or -1. */
int platform__sha256_hex(const void *data, size_t len, char out[PLATFORM_SHA256_HEX_LEN]);

/* The V3 CanonicalRequest: method, "/" (RPC), canonical_query, one "name:value\n" per header
 * (names lower-case, sorted here, values as sent), the signed header names joined by ";",
 * hashed_payload; lines joined by "\n". malloc'd, NULL on failure. *signed_headers gets the
 * malloc'd "name;name;..." list the Authorization header names. */
char *platform__canonical_request(const char *method, const char *canonical_query,
		const struct platform_param *headers, size_t count, const char *hashed_payload, char **signed_headers);

/* hex(HMAC-SHA256(secret, "ACS3-HMAC-SHA256\n" + hex(SHA-256(canonical_request)))). 0 or -1. */
int platform__sign_v3(const char *canonical_request, const char *access_key_secret,
		char signature[PLATFORM_SHA256_HEX_LEN]);

/* A fresh random UUID v4 for SignatureNonce. 0 or -1 when the RNG fails. */
int platform__nonce(char nonce[37]);

/* Timestamp parameter for now, "YYYY-MM-DDThh:mm:ssZ". */
void platform__timestamp(time_t now, char out[21]);

/* SignatureDoesNotMatch, IncompleteSignature, InvalidAccessKeyId.*: the AccessKey id or secret
 * is wrong, or the bytes sent are not the ones signed (a defect of ours), never a missing RAM
 * permission (that comes as a permission code). Its answer's outcome is PLATFORM_AUTH. */
bool platform__code_is_signature(const char *code);

/* What an answer from the platform means for the flow. */
enum platform_outcome {
	/* batch registration only */
	PLATFORM_APPLY_LOST = -2, /* the platform no longer knows the ApplyId (it restarted, or it expired) */
	PLATFORM_NOT_YET = -1,    /* the stage asked about is still running */
	PLATFORM_SUCCESS,        /* triple filled in */
	PLATFORM_ALREADY_EXISTS, /* RegisterDevice: the name is taken */
	PLATFORM_NOT_EXISTS,     /* QueryDeviceDetail: no such device */
	PLATFORM_AUTH,           /* our AccessKey, token, permission or signature was rejected */
	PLATFORM_REFUSED,        /* a business error: the code says which */
	PLATFORM_THROTTLED,
	PLATFORM_UNAVAILABLE,    /* 5xx, internal error, unreadable or incomplete answer */
};

/* What a batch answer says about one device (or name). */
enum platform_device_kind {
	DEVICE_FOUND = 0, /* its details (BatchQueryDeviceDetail, QueryPageByApplyId) */
	DEVICE_VALID,     /* QueryBatchRegisterDeviceStatus: the name passed the stage */
	DEVICE_EXISTS,    /* ... failed it because a device of that name exists */
	DEVICE_INVALID,   /* ... failed it for another reason */
};

struct platform_device {
	enum platform_device_kind kind;
	char name[40];
	struct device_triple triple; /* DEVICE_FOUND; a page carries no ProductKey */
	char status[16];             /* DEVICE_FOUND by BatchQueryDeviceDetail */
	char reason[64];             /* DEVICE_EXISTS, DEVICE_INVALID: the platform's ErrorMsg, printable */
};

/* An answer lists at most this many devices (a check takes 10 000 names); more is unusable. */
#define PLATFORM_MAX_ANSWER_DEVICES 20000

struct platform_answer {
	enum platform_outcome outcome;
	struct device_triple triple;
	char status[16];      /* QueryDeviceDetail's Status (UNACTIVE, ONLINE, OFFLINE, DISABLE), or "" */
	char code[64];        /* the platform's Code, printable ASCII only, "" if none */
	char request_id[48];  /* the platform's RequestId, for logs */
	/* batch actions */
	char apply_id[24];    /* BatchCheckDeviceNames, BatchRegisterDeviceWithApplyId */
	char stage[24];       /* QueryBatchRegisterDeviceStatus: CHECK, CHECK_SUCCESS, ... */
	long page_count, total; /* QueryPageByApplyId */
	struct platform_device *devices; /* malloc'd, ndevices of them; platform__answer_cleanup() */
	size_t ndevices;
	size_t unreadable;    /* device entries left out because they could not be read */
	bool token_expired;   /* InvalidSecurityToken.Expired: retry with renewed credentials */
};

/* Classifies an HTTP answer to action and reads it as the action's row says. Never trusts the
 * body: bounded, type-checked. Release with platform__answer_cleanup(). */
void platform__parse_answer(enum platform_action action, long http_status, const char *body, size_t len,
		struct platform_answer *answer);
/* Wipes the secrets an answer holds and frees its device list. */
void platform__answer_cleanup(struct platform_answer *answer);

/* One register-or-query flow for a device. */
enum platform_flow_state {
	FLOW_REGISTER,
	FLOW_QUERY,
	FLOW_DONE,
};

struct platform_flow {
	enum platform_flow_state state;
	enum existing_devices existing_policy;
	bool preregistered;   /* RegisterDevice is never called: a device that does not exist is refused */
	bool maybe_created;   /* a batch registration of ours may have created it: UNACTIVE means new */
	bool after_batch_failed; /* its batch registration failed: single calls (the audit says so) */
	char product_key[PRODUCT_KEY_MAX + 1]; /* every call of the flow is for this product */
	char device_name[40];
	/* valid once state is FLOW_DONE */
	enum bootstrap_code result;
	enum bootstrap_reason reason; /* its precise cause, for the audit line (bootstrap_reason.h) */
	char platform_code[64];       /* the platform's Code that settled it, "" if none: for the audit line */
	bool existing; /* the name was taken: the triple came from QueryDeviceDetail */
	int steps;     /* platform answers taken so far; bounds register/query ping-pong */
	struct device_triple triple;
	char message[128];    /* for the device */
	char detail[128];     /* for the log only: what exactly failed (e.g. curl's TLS error) */
	char request_id[48];  /* the platform's RequestId of the last answer, for the log */
	enum platform_action answered_by; /* the action whose answer came last: a batch one when a
	                                   * batch call served the device */
	int retry_after;
};

/* One call: a single device's (names[0]), a batch's (names[0..count-1] as DeviceName.N), an
 * ApplyId's, or a page of it (page from 1, PageSize the action's per_call). Every name is of
 * product_key, which an action that takes a ProductKey requires. */
struct platform_call {
	enum platform_action action;
	const char *product_key;
	const char *const *names;
	size_t count;
	const char *apply_id;
	long page;
};

/* A signed HTTP request ready to send: POST body (none: empty) to url with headers.
 * Free with platform__http_request_free(). */
struct platform_http_request {
	char *url;     /* malloc'd; V3: the endpoint with the parameters as its query */
	char *body;    /* malloc'd form body (V1), or NULL (V3) */
	char *headers[PLATFORM_MAX_HEADERS + 1]; /* malloc'd "Name: value" lines, NULL-terminated (V1: none) */
	const char *action;
};

/* A flow for device_name of product_key. query_first starts with QueryDeviceDetail (cheaper
 * when most devices already exist). */
void platform__flow_init(struct platform_flow *flow, const char *product_key, const char *device_name,
		enum existing_devices policy, bool query_first);

/* registration preregistered: the flow asks QueryDeviceDetail only, and a device that does
 * not exist ends it with BOOTSTRAP_NOT_REGISTERED. Right after platform__flow_init(). */
void platform__flow_preregistered(struct platform_flow *flow);

/* A batch registration that had asked to create the device handed it back (stalled, forgotten
 * by the platform): it may exist now because of us. The flow asks QueryDeviceDetail next, and
 * an UNACTIVE device is answered as new, whatever existing_devices says; a device that does
 * not exist is registered as usual. */
void platform__flow_after_batch_create(struct platform_flow *flow);

/* Builds the signed request for the flow's current step (for the flow's product), with a new
 * nonce and timestamp for now, signed as cfg->signature_version says. 0 or -1 (the flow is then finished with
 * BOOTSTRAP_INTERNAL; req holds nothing to free). */
int platform__flow_request(struct platform_flow *flow, const struct bootstrap_config *cfg,
		time_t now, struct platform_http_request *req);

/* Builds the signed request for any call, with a new nonce and timestamp for now. 0 or -1
 * (also when the action takes a ProductKey and call->product_key is NULL). */
int platform__call_request(const struct bootstrap_config *cfg, const struct platform_call *call,
		time_t now, struct platform_http_request *req);
/* The action the flow's current step calls. */
enum platform_action platform__flow_action(const struct platform_flow *flow);

/* Wipes (Authorization and x-acs-security-token are secrets for as long as they are valid, a
 * V1 body may carry the token) and frees what req holds; req is then empty. */
void platform__http_request_free(struct platform_http_request *req);

/* Feeds the answer to the current step: moves to FLOW_QUERY or FLOW_DONE. */
void platform__flow_answer(struct platform_flow *flow, const struct platform_answer *answer);

/* The current step cannot be done (timeout, connection failure, the platform kept failing):
 * finish as unavailable. why is the sentence the device reads; detail (may be NULL) goes only
 * to the log. */
void platform__flow_fail(struct platform_flow *flow, const char *why, const char *detail);
/* The same, naming the precise cause (platform__flow_fail: REASON_PLATFORM_UNAVAILABLE). */
void platform__flow_fail_as(struct platform_flow *flow, enum bootstrap_reason reason, const char *why, const char *detail);

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
