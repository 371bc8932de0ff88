#ifndef BOOTSTRAP_REASON_H
#define BOOTSTRAP_REASON_H
/* Why a request ended as it did: the audit line's "reason", one stable snake_case token per
 * precise cause, beside the code the device got (several causes share a code: four read
 * unauthorized). For the operator alone; the device's reply is its code and message. The
 * list here is the one source: the table in reason.c gives each its name and code, and
 * docs/operating.md's table lists every one (unit_audit_reasons checks both ways). Pure;
 * any thread. */

/* X(enum name, token, code): code is the reply code (enum bootstrap_code, bootstrap_reply.h,
 * named only where the table is expanded with it), or AUDIT_ONLY for a request that ended
 * without a reply (its audit code is then the token itself). */
#define BOOTSTRAP_REASONS(X) \
	X(REASON_REGISTERED, "registered", BOOTSTRAP_OK) \
	X(REASON_EXISTING_DEVICE, "existing_device", BOOTSTRAP_OK) \
	X(REASON_BATCH_FAILED, "batch_failed", BOOTSTRAP_OK) \
	X(REASON_RESPONSE_TOPIC_REFUSED, "response_topic_refused", BOOTSTRAP_INVALID_REQUEST) \
	X(REASON_CORRELATION_DATA_TOO_LONG, "correlation_data_too_long", BOOTSTRAP_INVALID_REQUEST) \
	X(REASON_EMPTY_PAYLOAD, "empty_payload", BOOTSTRAP_INVALID_REQUEST) \
	X(REASON_PAYLOAD_TOO_LARGE, "payload_too_large", BOOTSTRAP_INVALID_REQUEST) \
	X(REASON_NOT_TEXT, "not_text", BOOTSTRAP_INVALID_REQUEST) \
	X(REASON_NOT_JSON, "not_json", BOOTSTRAP_INVALID_REQUEST) \
	X(REASON_NOT_OBJECT, "not_object", BOOTSTRAP_INVALID_REQUEST) \
	X(REASON_NOT_CBOR, "not_cbor", BOOTSTRAP_INVALID_REQUEST) \
	X(REASON_DEVICE_ID_MISSING, "device_id_missing", BOOTSTRAP_INVALID_REQUEST) \
	X(REASON_DEVICE_ID_NOT_STRING, "device_id_not_string", BOOTSTRAP_INVALID_REQUEST) \
	X(REASON_BAD_PRODUCT_KEY, "bad_product_key", BOOTSTRAP_INVALID_REQUEST) \
	X(REASON_SIGN_MEMBERS_INCOMPLETE, "sign_members_incomplete", BOOTSTRAP_INVALID_REQUEST) \
	X(REASON_BAD_SIGN_METHOD, "bad_sign_method", BOOTSTRAP_INVALID_REQUEST) \
	X(REASON_BAD_RANDOM, "bad_random", BOOTSTRAP_INVALID_REQUEST) \
	X(REASON_BAD_SIGN_FORMAT, "bad_sign_format", BOOTSTRAP_INVALID_REQUEST) \
	X(REASON_PRODUCT_KEY_REQUIRED, "product_key_required", BOOTSTRAP_INVALID_REQUEST) \
	X(REASON_BAD_DEVICE_ID, "bad_device_id", BOOTSTRAP_INVALID_DEVICE_ID) \
	X(REASON_UNSIGNED, "unsigned", BOOTSTRAP_UNAUTHORIZED) \
	X(REASON_SIGN_MISMATCH, "sign_mismatch", BOOTSTRAP_UNAUTHORIZED) \
	X(REASON_PRODUCT_NOT_SERVED, "product_not_served", BOOTSTRAP_UNAUTHORIZED) \
	X(REASON_NO_CLIENT_CERTIFICATE, "no_client_certificate", BOOTSTRAP_UNAUTHORIZED) \
	X(REASON_CERTIFICATE_NAME_UNUSABLE, "certificate_name_unusable", BOOTSTRAP_UNAUTHORIZED) \
	X(REASON_CERTIFICATE_NAME_MISMATCH, "certificate_name_mismatch", BOOTSTRAP_UNAUTHORIZED) \
	X(REASON_CLIENT_ID_MISMATCH, "client_id_mismatch", BOOTSTRAP_UNAUTHORIZED) \
	X(REASON_RANDOM_REPLAYED, "random_replayed", BOOTSTRAP_UNAUTHORIZED) \
	X(REASON_NOT_ON_ALLOWLIST, "not_on_allowlist", BOOTSTRAP_NOT_ALLOWED) \
	X(REASON_DYNREG_REGNWL, "dynreg_regnwl", BOOTSTRAP_INVALID_REQUEST) \
	X(REASON_DYNREG_NOT_TLS, "dynreg_not_tls", BOOTSTRAP_UNAUTHORIZED) \
	X(REASON_DYNREG_MALFORMED, "dynreg_malformed", BOOTSTRAP_INVALID_REQUEST) \
	X(REASON_DYNREG_SESSION_KEPT, "dynreg_session_kept", BOOTSTRAP_INVALID_REQUEST) \
	X(REASON_DYNREG_CLIENT_ID_WAITING, "dynreg_client_id_waiting", BOOTSTRAP_UNAUTHORIZED) \
	X(REASON_REFUSAL_LIMIT, "refusal_limit", BOOTSTRAP_RATE_LIMITED) \
	X(REASON_REFUSALS_UNANSWERED, "refusals_unanswered", BOOTSTRAP_RATE_LIMITED) \
	X(REASON_QUEUE_FULL, "queue_full", BOOTSTRAP_BUSY) \
	X(REASON_OTHER_BROKER_BUSY, "other_broker_busy", BOOTSTRAP_BUSY) \
	X(REASON_BATCH_PENDING, "batch_pending", BOOTSTRAP_BUSY) \
	X(REASON_SEAL_KEY_FAILED, "seal_key_failed", BOOTSTRAP_INTERNAL) \
	X(REASON_OUT_OF_MEMORY, "out_of_memory", BOOTSTRAP_INTERNAL) \
	X(REASON_REQUEST_BUILD_FAILED, "request_build_failed", BOOTSTRAP_INTERNAL) \
	X(REASON_DEVICE_EXISTS, "device_exists", BOOTSTRAP_DEVICE_EXISTS) \
	X(REASON_DEVICE_ACTIVATED, "device_activated", BOOTSTRAP_ALREADY_ACTIVATED) \
	X(REASON_DEVICE_DISABLED, "device_disabled", BOOTSTRAP_DEVICE_DISABLED) \
	X(REASON_NOT_PREREGISTERED, "not_preregistered", BOOTSTRAP_NOT_REGISTERED) \
	X(REASON_PLATFORM_CREDENTIALS_REJECTED, "platform_credentials_rejected", BOOTSTRAP_PLATFORM_AUTH) \
	X(REASON_PLATFORM_REFUSED, "platform_refused", BOOTSTRAP_PLATFORM_ERROR) \
	X(REASON_PLATFORM_ANSWER_MISMATCH, "platform_answer_mismatch", BOOTSTRAP_PLATFORM_ERROR) \
	X(REASON_PLATFORM_THROTTLED, "platform_throttled", BOOTSTRAP_THROTTLED) \
	X(REASON_PLATFORM_UNREACHABLE, "platform_unreachable", BOOTSTRAP_PLATFORM_UNAVAILABLE) \
	X(REASON_PLATFORM_RETRIES_EXHAUSTED, "platform_retries_exhausted", BOOTSTRAP_PLATFORM_UNAVAILABLE) \
	X(REASON_PLATFORM_UNUSABLE_ANSWER, "platform_unusable_answer", BOOTSTRAP_PLATFORM_UNAVAILABLE) \
	X(REASON_QUOTA_DEADLINE, "quota_deadline", BOOTSTRAP_PLATFORM_UNAVAILABLE) \
	X(REASON_NO_CREDENTIALS, "no_credentials", BOOTSTRAP_PLATFORM_UNAVAILABLE) \
	X(REASON_PLATFORM_UNAVAILABLE, "platform_unavailable", BOOTSTRAP_PLATFORM_UNAVAILABLE) \
	X(REASON_CONNECTION_CLOSED, "connection_closed", AUDIT_ONLY) \
	X(REASON_SHUTDOWN, "shutdown", AUDIT_ONLY) \
	X(REASON_SUPERSEDED, "superseded", AUDIT_ONLY)

/* the code column of a reason whose request got no reply */
#define AUDIT_ONLY (-1)

#define BOOTSTRAP_REASON_ENUM(e, token, code) e,
enum bootstrap_reason {
	REASON_NONE = 0, /* not set: never written (an audit line without a reason is a bug) */
	BOOTSTRAP_REASONS(BOOTSTRAP_REASON_ENUM)
	REASON_COUNT
};
#undef BOOTSTRAP_REASON_ENUM

/* The token ("sign_mismatch"); NULL for REASON_NONE or out of range. */
const char *reason__name(enum bootstrap_reason reason);
/* The reply code a request refused for this reason gets; -1 (AUDIT_ONLY) when none. */
int reason__code(enum bootstrap_reason reason);

#endif
