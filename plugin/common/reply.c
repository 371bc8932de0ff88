/* Reply payloads. The code names are a public contract: devices branch on them. Pure; any
 * thread. */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "bootstrap_reply.h"
#include "bootstrap_seal.h"

const char *reply__code_name(enum bootstrap_code code)
{
	switch(code){
		case BOOTSTRAP_OK: return "ok";
		case BOOTSTRAP_INVALID_REQUEST: return "invalid_request";
		case BOOTSTRAP_INVALID_DEVICE_ID: return "invalid_device_id";
		case BOOTSTRAP_PLATFORM_AUTH: return "platform_auth";
		case BOOTSTRAP_PLATFORM_ERROR: return "platform_error";
		case BOOTSTRAP_PLATFORM_UNAVAILABLE: return "platform_unavailable";
		case BOOTSTRAP_THROTTLED: return "throttled";
		case BOOTSTRAP_BUSY: return "busy";
		case BOOTSTRAP_INTERNAL: return "internal";
		case BOOTSTRAP_UNAUTHORIZED: return "unauthorized";
		case BOOTSTRAP_RATE_LIMITED: return "rate_limited";
		case BOOTSTRAP_ALREADY_ACTIVATED: return "already_activated";
		case BOOTSTRAP_DEVICE_DISABLED: return "device_disabled";
		case BOOTSTRAP_DEVICE_EXISTS: return "device_exists";
		case BOOTSTRAP_NOT_ALLOWED: return "not_allowed";
		case BOOTSTRAP_NOT_REGISTERED: return "not_registered";
	}
	return "internal";
}

static char *reply__dump(json_t *root, size_t *len)
{
	char *out;

	if(!root) return NULL;
	out = json_dumps(root, JSON_COMPACT);
	/* the tree held a copy of any DeviceSecret: jansson frees without wiping, so the
	 * secret strings are wiped by the caller before json_decref */
	if(out && len) *len = strlen(out);
	return out;
}

/* The triple as a JSON object: the reply's "data", or the plaintext of a sealed reply. */
static json_t *reply__triple(const struct device_triple *t)
{
	return json_pack("{s:s, s:s, s:s, s:s}",
			"ProductKey", t->product_key,
			"DeviceName", t->device_name,
			"DeviceSecret", t->device_secret,
			"IotId", t->iot_id);
}

/* jansson frees without wiping: the DeviceSecret copy inside the tree is wiped first. */
static void reply__triple_free(json_t *data)
{
	json_t *secret = json_object_get(data, "DeviceSecret");

	if(secret) OPENSSL_cleanse((void *)json_string_value(secret), json_string_length(secret));
	json_decref(data);
}

char *reply__success(const struct device_triple *t, size_t *len)
{
	json_t *data = reply__triple(t);
	json_t *root;
	char *out;

	if(!data) return NULL;
	root = json_pack("{s:b, s:O}", "success", 1, "data", data);
	out = reply__dump(root, len);
	json_decref(root);
	reply__triple_free(data);
	return out;
}

char *reply__success_sealed(const unsigned char key[SEAL_KEY_LEN], const struct device_triple *t, size_t *len)
{
	json_t *data = reply__triple(t);
	char *plaintext, *out = NULL;

	if(!data) return NULL;
	plaintext = json_dumps(data, JSON_COMPACT);
	reply__triple_free(data);
	if(plaintext){
		size_t plen = strlen(plaintext);
		out = seal__reply(key, plaintext, plen, len);
		OPENSSL_cleanse(plaintext, plen);
		free(plaintext);
	}
	return out;
}

char *reply__error(enum bootstrap_code code, const char *message, int retry_after, size_t *len)
{
	json_t *root;
	char *out;

	root = json_pack("{s:b, s:s, s:s}", "success", 0, "code", reply__code_name(code),
			"message", message ? message : "");
	if(root && retry_after > 0) json_object_set_new(root, "retryAfter", json_integer(retry_after));
	out = reply__dump(root, len);
	json_decref(root);
	return out;
}

void reply__free(char *payload, size_t len)
{
	if(!payload) return;
	OPENSSL_cleanse(payload, len);
	free(payload);
}
