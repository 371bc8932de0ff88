/* Bootstrap requests as they arrive from the network: bounded, validated, never trusted. Pure;
 * the plugin parses on the broker thread. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "bootstrap_request.h"

bool request__device_name_valid(const char *name, size_t len)
{
	if(len < DEVICE_NAME_MIN || len > DEVICE_NAME_MAX) return false;
	for(size_t i = 0; i < len; i++){
		unsigned char c = (unsigned char)name[i];
		/* isalnum() depends on the locale; the platform's rule is ASCII only */
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
				|| c == '-' || c == '_' || c == '@' || c == '.' || c == ':';
		if(!ok) return false;
	}
	return true;
}

bool request__product_key_valid(const char *key, size_t len)
{
	if(len == 0 || len > PRODUCT_KEY_MAX) return false;
	for(size_t i = 0; i < len; i++){
		unsigned char c = (unsigned char)key[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
		if(!ok) return false;
	}
	return true;
}

bool request__client_id_addressable(const char *client_id)
{
	size_t len = strnlen(client_id, REPLY_CLIENT_ID_MAX + 1);

	if(len == 0 || len > REPLY_CLIENT_ID_MAX) return false;
	for(size_t i = 0; i < len; i++){
		unsigned char c = (unsigned char)client_id[i];
		if(c < 0x21 || c > 0x7e || c == '/' || c == '+' || c == '#') return false;
	}
	return true;
}

/* Each refusal below sets *why, for the reply, and *reason, for the audit line. */
#define REFUSE(sentence, cause) do{ *why = (sentence); *reason = (cause); }while(0)

bool request__size_ok(const void *payload, size_t len, const char **why, enum bootstrap_reason *reason)
{
	if(!payload || len == 0){
		REFUSE("empty payload", REASON_EMPTY_PAYLOAD);
		return false;
	}
	if(len > REQUEST_MAX_PAYLOAD){
		REFUSE("payload larger than 1024 bytes", REASON_PAYLOAD_TOO_LARGE);
		return false;
	}
	return true;
}

static enum request_status request__take_id(const char *id, size_t len,
		struct bootstrap_request *req, const char **why, enum bootstrap_reason *reason)
{
	if(!request__device_name_valid(id, len)){
		REFUSE("deviceId must be 4 to 32 characters of letters, digits and - _ @ . :", REASON_BAD_DEVICE_ID);
		return REQUEST_INVALID_DEVICE_ID;
	}
	/* the only success path: req was zeroed by request__parse */
	memcpy(req->device_id, id, len);
	req->device_id[len] = '\0';
	return REQUEST_OK;
}

static bool random__valid(const char *s, size_t len)
{
	if(len < SIGN_RANDOM_MIN || len > SIGN_RANDOM_MAX) return false;
	for(size_t i = 0; i < len; i++){
		unsigned char c = (unsigned char)s[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
				|| c == '-' || c == '_' || c == '.';
		if(!ok) return false;
	}
	return true;
}

bool request__hex_valid(const char *s, size_t len, size_t want)
{
	if(len != want) return false;
	for(size_t i = 0; i < len; i++){
		unsigned char c = (unsigned char)s[i];
		if(!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) return false;
	}
	return true;
}

/* "productKey", when there: it picks the product whose secret must have signed the request. */
static enum request_status request__take_product(const struct request_member *pk, struct bootstrap_request *req,
		const char **why, enum bootstrap_reason *reason)
{
	if(pk->kind == MEMBER_ABSENT) return REQUEST_OK;
	if(pk->kind != MEMBER_TEXT || !request__product_key_valid(pk->text, pk->len)){
		REFUSE("productKey must be a ProductKey: 1 to 64 letters, digits, - and _", REASON_BAD_PRODUCT_KEY);
		return REQUEST_INVALID;
	}
	memcpy(req->product_key, pk->text, pk->len);
	req->product_key[pk->len] = '\0';
	return REQUEST_OK;
}

/* Is text (len bytes, maybe not NUL-terminated) name, in any case? */
static bool member__is(const struct request_member *m, const char *name)
{
	return m->len == strlen(name) && !strncasecmp(m->text, name, m->len);
}

/* The three signature members: all absent, or all present and well-formed. */
static enum request_status request__take_sign(const struct request_members *m, struct bootstrap_request *req,
		const char **why, enum bootstrap_reason *reason)
{
	size_t hexlen;

	if(m->random.kind == MEMBER_ABSENT && m->sign_method.kind == MEMBER_ABSENT && m->sign.kind == MEMBER_ABSENT) return REQUEST_OK;
	if(m->random.kind != MEMBER_TEXT || m->sign_method.kind != MEMBER_TEXT || m->sign.kind != MEMBER_TEXT){
		REFUSE("random, signMethod and sign must all be strings", REASON_SIGN_MEMBERS_INCOMPLETE);
		return REQUEST_INVALID;
	}
	if(member__is(&m->sign_method, "hmacsha256")){
		req->sign_method = SIGN_HMACSHA256;
		hexlen = 64;
	}else if(member__is(&m->sign_method, "hmacsha1")){
		req->sign_method = SIGN_HMACSHA1;
		hexlen = 40;
	}else if(member__is(&m->sign_method, "hmacmd5")){
		req->sign_method = SIGN_HMACMD5;
		hexlen = 32;
	}else{
		REFUSE("signMethod must be hmacsha256, hmacsha1 or hmacmd5", REASON_BAD_SIGN_METHOD);
		return REQUEST_INVALID;
	}
	if(!random__valid(m->random.text, m->random.len)){
		REFUSE("random must be 8 to 64 letters, digits, - _ or .", REASON_BAD_RANDOM);
		return REQUEST_INVALID;
	}
	if(!request__hex_valid(m->sign.text, m->sign.len, hexlen)){
		REFUSE("sign must be the hex HMAC for signMethod", REASON_BAD_SIGN_FORMAT);
		return REQUEST_INVALID;
	}
	memcpy(req->random, m->random.text, m->random.len);
	req->random[m->random.len] = '\0';
	memcpy(req->sign, m->sign.text, hexlen);
	req->sign[hexlen] = '\0';
	return REQUEST_OK;
}

enum request_status request__take_members(const struct request_members *m, struct bootstrap_request *req,
		const char **why, enum bootstrap_reason *reason)
{
	enum request_status rc;

	memset(req, 0, sizeof(*req));
	if(m->device_id.kind == MEMBER_ABSENT){
		rc = REQUEST_INVALID;
		REFUSE("payload has no deviceId", REASON_DEVICE_ID_MISSING);
	}else if(m->device_id.kind != MEMBER_TEXT){
		rc = REQUEST_INVALID;
		REFUSE("deviceId must be a string", REASON_DEVICE_ID_NOT_STRING);
	}else{
		rc = request__take_id(m->device_id.text, m->device_id.len, req, why, reason);
		if(rc == REQUEST_OK) rc = request__take_product(&m->product_key, req, why, reason);
		if(rc == REQUEST_OK) rc = request__take_sign(m, req, why, reason);
	}
	if(rc != REQUEST_OK) memset(req, 0, sizeof(*req)); /* a refused request holds nothing */
	return rc;
}

/* A JSON member as the shared checks read it. */
static struct request_member json__member(json_t *root, const char *name)
{
	json_t *v = json_object_get(root, name);
	struct request_member m = { MEMBER_ABSENT, NULL, 0 };

	if(!v) return m;
	m.kind = MEMBER_OTHER;
	if(json_is_string(v)){
		m.kind = MEMBER_TEXT;
		m.text = json_string_value(v);
		m.len = json_string_length(v);
	}
	return m;
}

static enum request_status request__parse_json(const char *text, size_t len,
		struct bootstrap_request *req, const char **why, enum bootstrap_reason *reason)
{
	json_t *root;
	json_error_t jerr;
	enum request_status rc;
	struct request_members m;

	/* JSON_REJECT_DUPLICATES: two deviceId members must not mean whichever comes last */
	root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if(!root){
		REFUSE("payload is not valid JSON, or has a member twice", REASON_NOT_JSON);
		return REQUEST_INVALID;
	}
	if(!json_is_object(root)){
		json_decref(root);
		REFUSE("payload must be a JSON object", REASON_NOT_OBJECT);
		return REQUEST_INVALID;
	}
	m.device_id = json__member(root, "deviceId");
	m.product_key = json__member(root, "productKey");
	m.random = json__member(root, "random");
	m.sign_method = json__member(root, "signMethod");
	m.sign = json__member(root, "sign");
	rc = request__take_members(&m, req, why, reason);
	json_decref(root);
	return rc;
}

/* Text, as a bare deviceId must be: no control byte, and UTF-8 (a DeviceName is ASCII, but
 * text in another script is a deviceId that breaks the rules, not a binary payload). */
static bool request__is_text(const char *s, size_t len)
{
	for(size_t i = 0; i < len; i++){
		unsigned char c = (unsigned char)s[i];
		if(c < 0x20 || c == 0x7f) return false;
	}
	json_t *utf8 = json_stringn(s, len); /* NULL unless valid UTF-8 */
	bool text = utf8 != NULL;

	json_decref(utf8);
	return text;
}

enum request_status request__parse(const void *payload, size_t len,
		struct bootstrap_request *req, const char **why)
{
	return request__parse_as(payload, len, false, req, why, NULL);
}

enum request_status request__parse_as(const void *payload, size_t len, bool json_only,
		struct bootstrap_request *req, const char **why, enum bootstrap_reason *reason)
{
	const char *p = payload, *end;
	const char *unused;
	enum bootstrap_reason unused_reason;

	if(!why) why = &unused;
	if(!reason) reason = &unused_reason;
	*why = NULL;
	*reason = REASON_NONE;
	memset(req, 0, sizeof(*req));
	if(!request__size_ok(payload, len, why, reason)) return REQUEST_INVALID;
	end = p + len;
	while(p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')) p++;
	while(end > p && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r' || end[-1] == '\n')) end--;
	if(p == end){
		REFUSE("empty payload", REASON_EMPTY_PAYLOAD);
		return REQUEST_INVALID;
	}
	/* anything that starts like JSON is read as JSON (and must be an object); no deviceId
	 * can start with these characters anyway */
	if(*p == '{' || *p == '[' || *p == '"') return request__parse_json(p, (size_t)(end - p), req, why, reason);
	/* request_auth sign: the request is a JSON object (it carries the sign), never bare text */
	if(json_only){
		REFUSE("payload is not JSON: with request_auth sign the request is a JSON object with deviceId, random, signMethod and sign",
				REASON_NOT_JSON);
		return REQUEST_INVALID;
	}
	/* a bare deviceId; binary is no deviceId at all. The DeviceName rules also exclude '/',
	 * '+', '#' and non-ASCII */
	if(!request__is_text(p, (size_t)(end - p))){
		REFUSE("payload is not text: send a JSON object with deviceId, or the bare deviceId", REASON_NOT_TEXT);
		return REQUEST_INVALID;
	}
	return request__take_id(p, (size_t)(end - p), req, why, reason);
}

bool request__response_topic_valid(const char *topic, size_t len, const char *prefix)
{
	size_t plen = strlen(prefix);

	if(!topic || len == 0 || len > RESPONSE_TOPIC_MAX || strlen(topic) != len) return false;
	if(strpbrk(topic, "+#")) return false;
	return len >= plen && !strncmp(topic, prefix, plen);
}

bool request__reply_template_valid(const char *tmpl)
{
	const char *first = strstr(tmpl, REPLY_TOPIC_PLACEHOLDER);

	if(!first) return false;
	return strstr(first + 1, REPLY_TOPIC_PLACEHOLDER) == NULL;
}

char *request__reply_topic(const char *tmpl, const char *id)
{
	const char *at = strstr(tmpl, REPLY_TOPIC_PLACEHOLDER);
	size_t head, tail, idlen, phlen = strlen(REPLY_TOPIC_PLACEHOLDER);
	char *topic;

	if(!at || !id) return NULL;
	head = (size_t)(at - tmpl);
	tail = strlen(at + phlen);
	idlen = strlen(id);
	if(head + idlen + tail > 65535) return NULL;
	topic = malloc(head + idlen + tail + 1);
	if(!topic) return NULL;
	memcpy(topic, tmpl, head);
	memcpy(topic + head, id, idlen);
	memcpy(topic + head + idlen, at + phlen, tail + 1);
	return topic;
}
