/* IoT Platform OpenAPI client: request signatures (V3 and RPC 1.0) and the register-or-query flow. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "bootstrap_actions.h"
#include "bootstrap_platform.h"
#include "bootstrap_text.h"

/* V3 sends the parameters in the query with no body and no Content-Type, as Alibaba's SDK
 * does; only a form body (the action's form_body) has a Content-Type, sent once and signed. */
#define V3_CONTENT_TYPE "application/x-www-form-urlencoded"
#define CODE_ALREADY_EXISTS "iot.device.AlreadyExistedDeviceName"
#define CODE_NOT_EXISTS "iot.device.NotExistedDevice"
/* batch registration: the platform no longer knows the ApplyId; a stage still running */
#define CODE_APPLY_NOT_FOUND "iot.device.DeviceApplyIsNotFound"
#define CODE_TASK_RUNNING "iot.device.CreateDeviceTaskIsRunning"
/* Register, Query, and one more each way if a device appears or vanishes in between. */
#define FLOW_MAX_STEPS 4

static int param__cmp(const void *a, const void *b)
{
	const struct platform_param *pa = a, *pb = b;
	return strcmp(pa->name, pb->name);
}

/* RFC 3986 unreserved characters stay, all else is %XY: exactly what the signature wants. */
static char *percent__encode(const char *s)
{
	char *e = curl_easy_escape(NULL, s, 0);
	char *copy;

	if(!e) return NULL;
	copy = strdup(e);
	curl_free(e);
	return copy;
}

char *platform__canonical_query(const struct platform_param *params, size_t count)
{
	struct platform_param *sorted = malloc((count ? count : 1) * sizeof(*sorted));
	char *out = NULL, *name = NULL, *value = NULL;
	size_t used = 0, cap = 0;

	if(!sorted) return NULL;
	memcpy(sorted, params, count * sizeof(*params));
	qsort(sorted, count, sizeof(*sorted), param__cmp);

	for(size_t i = 0; i < count; i++){
		size_t need;

		name = percent__encode(sorted[i].name);
		value = percent__encode(sorted[i].value);
		if(!name || !value) goto fail;
		need = used + strlen(name) + strlen(value) + 3;
		if(need > cap){
			char *grown;
			cap = need * 2;
			grown = realloc(out, cap);
			if(!grown) goto fail;
			out = grown;
		}
		used += (size_t)sprintf(out + used, "%s%s=%s", i ? "&" : "", name, value);
		free(name);
		free(value);
		name = value = NULL;
	}
	free(sorted);
	if(!out) out = strdup("");
	return out;
fail:
	free(sorted);
	free(name);
	free(value);
	free(out);
	return NULL;
}

int platform__sign(const char *method, const char *canonical_query, const char *access_key_secret,
		char signature[PLATFORM_SIGNATURE_LEN])
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;
	char *encoded, *to_sign = NULL, *key = NULL;
	size_t to_sign_len, keylen;
	int rc = -1;

	encoded = percent__encode(canonical_query);
	if(!encoded) return -1;
	to_sign_len = strlen(method) + strlen("&%2F&") + strlen(encoded);
	to_sign = malloc(to_sign_len + 1);
	keylen = strlen(access_key_secret) + 1;
	key = malloc(keylen + 1);
	if(!to_sign || !key) goto done;
	snprintf(to_sign, to_sign_len + 1, "%s&%%2F&%s", method, encoded);
	snprintf(key, keylen + 1, "%s&", access_key_secret);

	if(!HMAC(EVP_sha1(), key, (int)keylen, (const unsigned char *)to_sign, to_sign_len, mac, &maclen)) goto done;
	if(EVP_EncodeBlock((unsigned char *)signature, mac, (int)maclen) != PLATFORM_SIGNATURE_LEN - 1) goto done;
	rc = 0;
done:
	if(key){
		OPENSSL_cleanse(key, keylen);
		free(key);
	}
	free(to_sign);
	free(encoded);
	return rc;
}

char *platform__rpc_body(const struct platform_param *params, size_t count, const char *access_key_secret)
{
	char signature[PLATFORM_SIGNATURE_LEN];
	char *canonical = platform__canonical_query(params, count), *encoded = NULL, *body = NULL;
	size_t len;

	if(!canonical || !access_key_secret) return canonical; /* anonymous: the canonical query alone */
	if(platform__sign("POST", canonical, access_key_secret, signature) == 0 && (encoded = percent__encode(signature))){
		len = strlen(canonical) + strlen("&Signature=") + strlen(encoded) + 1;
		if((body = malloc(len))) snprintf(body, len, "%s&Signature=%s", canonical, encoded);
	}
	OPENSSL_cleanse(canonical, strlen(canonical));
	free(canonical);
	free(encoded);
	return body;
}

/* Lower-case hex of len bytes; out has room for 2 * len + 1. */
static void hex__encode(const unsigned char *b, size_t len, char *out)
{
	out[0] = '\0';
	for(size_t i = 0; i < len; i++) snprintf(out + 2*i, 3, "%02x", b[i]);
}

int platform__sha256_hex(const void *data, size_t len, char out[PLATFORM_SHA256_HEX_LEN])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	out[0] = '\0';
	if(!EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) || mdlen != (PLATFORM_SHA256_HEX_LEN - 1) / 2) return -1;
	hex__encode(md, mdlen, out);
	return 0;
}

/* Copies s to p, which has room (counted beforehand); returns the end. */
static char *string__put(char *p, const char *s)
{
	size_t n = strlen(s);

	memcpy(p, s, n);
	return p + n;
}

static bool header__name_valid(const char *name)
{
	if(!name[0]) return false;
	for(const char *c = name; *c; c++){
		if(!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-')) return false;
	}
	return true;
}

char *platform__canonical_request(const char *method, const char *canonical_query,
		const struct platform_param *headers, size_t count, const char *hashed_payload, char **signed_headers)
{
	struct platform_param sorted[PLATFORM_MAX_HEADERS];
	size_t len, names = 0;
	char *out, *list, *p, *q;

	*signed_headers = NULL;
	if(count == 0 || count > PLATFORM_MAX_HEADERS) return NULL;
	memcpy(sorted, headers, count * sizeof(*headers));
	qsort(sorted, count, sizeof(*sorted), param__cmp);

	len = strlen(method) + strlen("\n/\n") + strlen(canonical_query) + 1 + 1 + 1 + strlen(hashed_payload);
	for(size_t i = 0; i < count; i++){
		if(!header__name_valid(sorted[i].name) || (i > 0 && !strcmp(sorted[i].name, sorted[i-1].name))) return NULL;
		len += strlen(sorted[i].name) + 1 + strlen(sorted[i].value) + 1;
		names += strlen(sorted[i].name) + 1;
	}
	len += names;
	out = malloc(len + 1);
	list = malloc(names);
	if(!out || !list){
		free(out);
		free(list);
		return NULL;
	}
	p = string__put(out, method);
	p = string__put(p, "\n/\n");
	p = string__put(p, canonical_query);
	p = string__put(p, "\n");
	q = list;
	for(size_t i = 0; i < count; i++){
		p = string__put(p, sorted[i].name);
		p = string__put(p, ":");
		p = string__put(p, sorted[i].value);
		p = string__put(p, "\n");
		if(i) q = string__put(q, ";");
		q = string__put(q, sorted[i].name);
	}
	*q = '\0';
	p = string__put(p, "\n");
	p = string__put(p, list);
	p = string__put(p, "\n");
	p = string__put(p, hashed_payload);
	*p = '\0';
	*signed_headers = list;
	return out;
}

int platform__sign_v3(const char *canonical_request, const char *access_key_secret,
		char signature[PLATFORM_SHA256_HEX_LEN])
{
	char to_sign[sizeof(PLATFORM_V3_ALGORITHM "\n") - 1 + PLATFORM_SHA256_HEX_LEN];
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;
	size_t n = strlen(PLATFORM_V3_ALGORITHM "\n");

	signature[0] = '\0';
	memcpy(to_sign, PLATFORM_V3_ALGORITHM "\n", n);
	if(platform__sha256_hex(canonical_request, strlen(canonical_request), to_sign + n)) return -1;
	if(!HMAC(EVP_sha256(), access_key_secret, (int)strlen(access_key_secret),
			(const unsigned char *)to_sign, strlen(to_sign), mac, &maclen) || maclen != (PLATFORM_SHA256_HEX_LEN - 1) / 2){
		return -1;
	}
	hex__encode(mac, maclen, signature);
	OPENSSL_cleanse(mac, sizeof(mac));
	return 0;
}

int platform__nonce(char nonce[37])
{
	unsigned char b[16];

	if(RAND_bytes(b, sizeof(b)) != 1) return -1;
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	snprintf(nonce, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
			b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
			b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
	return 0;
}

void platform__timestamp(time_t now, char out[21])
{
	struct tm tm;

	gmtime_r(&now, &tm);
	strftime(out, 21, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static bool code__is_auth(const char *code)
{
	static const char *const prefixes[] = {
		"SignatureDoesNotMatch", "IncompleteSignature", "InvalidAccessKeyId",
		"InvalidSecurityToken", "InvalidTimeStamp", "Forbidden",
		"iot.common.RamActionPermissionDeny", "NoPermission",
	};
	for(size_t i = 0; i < sizeof(prefixes)/sizeof(prefixes[0]); i++){
		if(!strncmp(code, prefixes[i], strlen(prefixes[i]))) return true;
	}
	return false;
}

bool platform__code_is_signature(const char *code)
{
	return !strcmp(code, "SignatureDoesNotMatch") || !strcmp(code, "IncompleteSignature")
			|| !strncmp(code, "InvalidAccessKeyId", strlen("InvalidAccessKeyId"));
}

static bool code__is_transient(const char *code)
{
	/* SignatureNonceUsed: a fresh request gets a fresh nonce, so it is worth another try */
	return !strcmp(code, "InternalError") || !strcmp(code, "ServiceUnavailable")
			|| !strcmp(code, "iot.system.SystemException") || !strcmp(code, "SignatureNonceUsed")
			|| !strncmp(code, "ServiceUnavailable", strlen("ServiceUnavailable"));
}

void platform__parse_answer(enum platform_action action, long http_status, const char *body, size_t len,
		struct platform_answer *answer)
{
	json_t *root = NULL, *success;
	json_error_t jerr;
	const char *code;

	memset(answer, 0, sizeof(*answer));
	answer->outcome = PLATFORM_UNAVAILABLE;
	if(action >= PLATFORM_ACTIONS) return;

	if(body && len > 0) root = json_loadb(body, len, 0, &jerr);
	if(!json_is_object(root)){
		/* no JSON: a proxy page, a cut connection, garbage */
		json_decref(root);
		return;
	}
	text__escape(answer->code, sizeof(answer->code), json_string_value(json_object_get(root, "Code")));
	text__escape(answer->request_id, sizeof(answer->request_id), json_string_value(json_object_get(root, "RequestId")));
	code = answer->code;
	success = json_object_get(root, "Success");

	/* Branch on Code and Success, not on the HTTP status: the platform is not consistent. */
	if(json_is_true(success) && http_status >= 200 && http_status < 300){
		if(platform_actions[action].parse(root, answer)){
			answer->outcome = PLATFORM_SUCCESS;
		}else{
			platform__answer_cleanup(answer);
			answer->outcome = PLATFORM_UNAVAILABLE;
			snprintf(answer->code, sizeof(answer->code), "IncompleteAnswer");
		}
	}else if(code[0] == '\0'){
		answer->outcome = PLATFORM_UNAVAILABLE;
	}else if(!strcmp(code, CODE_ALREADY_EXISTS) && action == ACTION_REGISTER){
		answer->outcome = PLATFORM_ALREADY_EXISTS;
	}else if(!strcmp(code, CODE_NOT_EXISTS) && action == ACTION_QUERY){
		answer->outcome = PLATFORM_NOT_EXISTS;
	}else if(!strcmp(code, CODE_APPLY_NOT_FOUND) && action >= ACTION_BATCH_STATUS){
		answer->outcome = PLATFORM_APPLY_LOST;
	}else if(!strcmp(code, CODE_TASK_RUNNING) && action >= ACTION_BATCH_STATUS){
		answer->outcome = PLATFORM_NOT_YET;
	}else if(!strncmp(code, "Throttling", strlen("Throttling"))){
		answer->outcome = PLATFORM_THROTTLED;
	}else if(code__is_auth(code)){
		answer->outcome = PLATFORM_AUTH;
	}else if(code__is_transient(code) || http_status >= 500){
		answer->outcome = PLATFORM_UNAVAILABLE;
	}else{
		answer->outcome = PLATFORM_REFUSED;
	}
	json_decref(root);
}

void platform__answer_cleanup(struct platform_answer *answer)
{
	OPENSSL_cleanse(&answer->triple, sizeof(answer->triple));
	if(answer->devices){
		OPENSSL_cleanse(answer->devices, answer->ndevices * sizeof(*answer->devices));
		free(answer->devices);
	}
	answer->devices = NULL;
	answer->ndevices = 0;
}

void platform__flow_init(struct platform_flow *flow, const char *product_key, const char *device_name,
		enum existing_devices policy, bool query_first)
{
	memset(flow, 0, sizeof(*flow));
	snprintf(flow->product_key, sizeof(flow->product_key), "%s", product_key);
	/* with existing_devices never an existing device gets nothing: no point asking about it */
	flow->state = query_first && policy != EXISTING_NEVER ? FLOW_QUERY : FLOW_REGISTER;
	flow->existing_policy = policy;
	snprintf(flow->device_name, sizeof(flow->device_name), "%s", device_name);
}

void platform__flow_preregistered(struct platform_flow *flow)
{
	flow->preregistered = true;
	/* existing_devices never with preregistered is refused by the configuration */
	if(flow->state == FLOW_REGISTER) flow->state = FLOW_QUERY;
}

void platform__flow_after_batch_create(struct platform_flow *flow)
{
	if(flow->state == FLOW_DONE) return;
	flow->maybe_created = true;
	flow->state = FLOW_QUERY;
}

/* Ends the flow; the message is what the device reads, so it never holds a secret. */
static void flow__finish(struct platform_flow *flow, enum bootstrap_code code, int retry_after,
		const char *message)
{
	flow->state = FLOW_DONE;
	flow->result = code;
	flow->retry_after = retry_after;
	if(message != flow->message) snprintf(flow->message, sizeof(flow->message), "%s", message);
}

/* A malloc'd printf: header lines. */
__attribute__((format(printf, 1, 2)))
static char *string__format(const char *fmt, ...)
{
	va_list va;
	char *out;
	int n;

	va_start(va, fmt);
	n = vsnprintf(NULL, 0, fmt, va);
	va_end(va);
	if(n < 0 || !(out = malloc((size_t)n + 1))) return NULL;
	va_start(va, fmt);
	vsnprintf(out, (size_t)n + 1, fmt, va);
	va_end(va);
	return out;
}

static void string__wipe_free(char **s)
{
	if(*s){
		OPENSSL_cleanse(*s, strlen(*s));
		free(*s);
		*s = NULL;
	}
}

/* A header value sent as is and signed as is: visible ASCII and inner spaces, nothing to trim,
 * no line breaks (an STS token or key id from a file could carry anything). */
static bool header__value_valid(const char *v)
{
	size_t len = strlen(v);

	if(len == 0 || v[0] == ' ' || v[len - 1] == ' ') return false;
	for(size_t i = 0; i < len; i++){
		if(v[i] < 0x20 || v[i] > 0x7e) return false;
	}
	return true;
}

/* The endpoint with path "/" and query: the URL to send to, and the host[:port] to sign and send
 * as Host (the port only when it is not the scheme's default, as curl would write it). The URL
 * is put together here, not by curl's URL API: that one rewrites escapes in lower case (%3a),
 * and the gateway verifies the signature over the query as it arrives, byte for byte. */
static int endpoint__target(const char *endpoint, const char *query, char **url, char **host)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *name = NULL, *port = NULL;
	CURLUcode prc;
	int rc = -1;

	*url = *host = NULL;
	if(!u) return -1;
	if(curl_url_set(u, CURLUPART_URL, endpoint, 0) != CURLUE_OK
			|| curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK
			|| curl_url_get(u, CURLUPART_HOST, &name, 0) != CURLUE_OK){
		goto done;
	}
	prc = curl_url_get(u, CURLUPART_PORT, &port, CURLU_NO_DEFAULT_PORT);
	if(prc != CURLUE_OK && prc != CURLUE_NO_PORT) goto done;
	*host = port ? string__format("%s:%s", name, port) : strdup(name);
	if(*host) *url = string__format("%s://%s/%s%s", scheme, *host, query[0] ? "?" : "", query);
	if(!*url || !*host){
		free(*url);
		free(*host);
		*url = *host = NULL;
		goto done;
	}
	rc = 0;
done:
	curl_free(scheme);
	curl_free(name);
	curl_free(port);
	curl_url_cleanup(u);
	return rc;
}

/* The parameters particular to a call: DeviceName (a single device) or DeviceName.1..N, ApplyId,
 * PageSize and CurrentPage. Names and values are malloc'd into params[*n...]; 0 or -1. */
static int call__params(const struct platform_call *call, struct platform_param *params, size_t *n)
{
	const struct platform_action_info *info = &platform_actions[call->action];

	if(call->count > (size_t)info->per_call) return -1;
	if(info->per_call == 1 && call->count == 1){
		params[(*n)++] = (struct platform_param){strdup("DeviceName"), strdup(call->names[0])};
	}else{
		for(size_t i = 0; i < call->count; i++){
			params[(*n)++] = (struct platform_param){string__format("DeviceName.%zu", i + 1), strdup(call->names[i])};
		}
	}
	if(call->apply_id) params[(*n)++] = (struct platform_param){strdup("ApplyId"), strdup(call->apply_id)};
	if(call->page > 0){
		params[(*n)++] = (struct platform_param){strdup("PageSize"), string__format("%d", info->per_call)};
		params[(*n)++] = (struct platform_param){strdup("CurrentPage"), string__format("%ld", call->page)};
	}
	for(size_t i = 0; i < *n; i++){
		if(!params[i].name || !params[i].value) return -1;
	}
	return 0;
}

static void params__free(struct platform_param *params, size_t n)
{
	for(size_t i = 0; i < n; i++){
		free((char *)params[i].name);
		free((char *)params[i].value);
	}
	free(params);
}

/* RPC signature 1.0: every parameter and the Signature in the form body. */
static int request__v1(const struct bootstrap_config *cfg, const char *action, const struct platform_param *own, size_t nown,
		const char *nonce, const char *timestamp, const char *product_key, struct platform_http_request *req)
{
	struct platform_param *params = malloc((PLATFORM_MAX_PARAMS + nown) * sizeof(*params));
	size_t n = 0;

	if(!params) return -1;
	params[n++] = (struct platform_param){"Action", action};
	params[n++] = (struct platform_param){"Format", "JSON"};
	params[n++] = (struct platform_param){"Version", PLATFORM_API_VERSION};
	params[n++] = (struct platform_param){"AccessKeyId", cfg->creds.access_key_id};
	params[n++] = (struct platform_param){"SignatureMethod", "HMAC-SHA1"};
	params[n++] = (struct platform_param){"SignatureVersion", "1.0"};
	params[n++] = (struct platform_param){"SignatureNonce", nonce};
	params[n++] = (struct platform_param){"Timestamp", timestamp};
	params[n++] = (struct platform_param){"RegionId", cfg->region};
	if(product_key) params[n++] = (struct platform_param){"ProductKey", product_key};
	if(cfg->iot_instance_id) params[n++] = (struct platform_param){"IotInstanceId", cfg->iot_instance_id};
	if(cfg->creds.security_token) params[n++] = (struct platform_param){"SecurityToken", cfg->creds.security_token};
	memcpy(params + n, own, nown * sizeof(*own));
	n += nown;

	req->body = platform__rpc_body(params, n, cfg->creds.access_key_secret);
	req->url = strdup(cfg->endpoint);
	free(params);
	return req->body && req->url ? 0 : -1;
}

/* V3: the parameters in the query, as the SDKs send them, or (form_body: lists of names a
 * URL cannot hold) in a form body whose hash is signed. */
static int request__v3(const struct bootstrap_config *cfg, const char *action, const struct platform_param *own, size_t nown,
		const char *nonce, const char *date, const char *product_key, bool form_body, struct platform_http_request *req)
{
	struct platform_param *params = malloc((2 + nown) * sizeof(*params)), headers[PLATFORM_MAX_HEADERS];
	char payload_hash[PLATFORM_SHA256_HEX_LEN], signature[PLATFORM_SHA256_HEX_LEN];
	char *query = NULL, *host = NULL, *canonical = NULL, *signed_headers = NULL, *encoded;
	size_t np = 0, nh = 0;
	int rc = -1;

	if(!params) return -1;
	if(product_key) params[np++] = (struct platform_param){"ProductKey", product_key};
	if(cfg->iot_instance_id) params[np++] = (struct platform_param){"IotInstanceId", cfg->iot_instance_id};
	memcpy(params + np, own, nown * sizeof(*own));
	np += nown;
	encoded = platform__canonical_query(params, np);
	if(!encoded) goto done;
	if(form_body){
		req->body = encoded;
		query = strdup("");
	}else{
		query = encoded;
	}
	if(!query || endpoint__target(cfg->endpoint, query, &req->url, &host)) goto done;
	if(platform__sha256_hex(req->body ? req->body : "", req->body ? strlen(req->body) : 0, payload_hash)) goto done;

	if(req->body) headers[nh++] = (struct platform_param){"content-type", V3_CONTENT_TYPE};
	headers[nh++] = (struct platform_param){"host", host};
	headers[nh++] = (struct platform_param){"x-acs-action", action};
	headers[nh++] = (struct platform_param){"x-acs-version", PLATFORM_API_VERSION};
	headers[nh++] = (struct platform_param){"x-acs-date", date};
	headers[nh++] = (struct platform_param){"x-acs-signature-nonce", nonce};
	headers[nh++] = (struct platform_param){"x-acs-content-sha256", payload_hash};
	if(cfg->creds.security_token){
		/* as the SDKs send STS credentials: the key id beside the token */
		headers[nh++] = (struct platform_param){"x-acs-accesskey-id", cfg->creds.access_key_id};
		headers[nh++] = (struct platform_param){"x-acs-security-token", cfg->creds.security_token};
	}
	if(!header__value_valid(cfg->creds.access_key_id)) goto done;
	for(size_t i = 0; i < nh; i++){
		if(!header__value_valid(headers[i].value)) goto done;
	}
	canonical = platform__canonical_request("POST", query, headers, nh, payload_hash, &signed_headers);
	if(!canonical || platform__sign_v3(canonical, cfg->creds.access_key_secret, signature)) goto done;

	/* Authorization, Accept and the signed headers: within PLATFORM_MAX_HEADERS */
	for(size_t i = 0; i < nh; i++){
		if(!(req->headers[i] = string__format("%s: %s", headers[i].name, headers[i].value))) goto done;
	}
	req->headers[nh] = string__format("Authorization: " PLATFORM_V3_ALGORITHM " Credential=%s,SignedHeaders=%s,Signature=%s",
			cfg->creds.access_key_id, signed_headers, signature);
	if(!req->headers[nh]) goto done;
	if(!(req->headers[nh + 1] = strdup("Accept: application/json"))) goto done;
	rc = 0;
done:
	OPENSSL_cleanse(signature, sizeof(signature));
	string__wipe_free(&canonical); /* it holds the STS token, if any */
	free(signed_headers);
	free(query);
	free(host);
	free(params);
	return rc;
}

int platform__call_request(const struct bootstrap_config *cfg, const struct platform_call *call,
		time_t now, struct platform_http_request *req)
{
	const struct platform_action_info *info;
	const char *product_key;
	struct platform_param *own = NULL;
	char nonce[37], timestamp[21];
	size_t nown = 0;
	int rc = -1;

	memset(req, 0, sizeof(*req));
	if(call->action >= PLATFORM_ACTIONS) return -1;
	info = &platform_actions[call->action];
	/* the call's product, never the configuration's: a broker may serve several */
	product_key = info->product_key ? call->product_key : NULL;
	if((info->product_key && !product_key) || platform__nonce(nonce)) return -1;
	/* every name, and ApplyId, PageSize, CurrentPage */
	if(!(own = calloc(call->count + 3, sizeof(*own)))) return -1;
	if(call__params(call, own, &nown)) goto done;
	platform__timestamp(now, timestamp);
	if(cfg->signature_version == SIGNATURE_V1){
		rc = request__v1(cfg, info->name, own, nown, nonce, timestamp, product_key, req);
	}else{
		rc = request__v3(cfg, info->name, own, nown, nonce, timestamp, product_key, info->form_body, req);
	}
done:
	params__free(own, nown);
	if(rc){
		platform__http_request_free(req);
		return -1;
	}
	req->action = info->name;
	return 0;
}

int platform__flow_request(struct platform_flow *flow, const struct bootstrap_config *cfg,
		time_t now, struct platform_http_request *req)
{
	const char *name = flow->device_name;
	const struct platform_call call = { .action = platform__flow_action(flow), .product_key = flow->product_key,
		.names = &name, .count = 1 };

	memset(req, 0, sizeof(*req));
	if(flow->state == FLOW_DONE) return -1;
	if(platform__call_request(cfg, &call, now, req)){
		snprintf(flow->detail, sizeof(flow->detail), "the request could not be signed (out of memory, or a credential that cannot be sent)");
		flow__finish(flow, BOOTSTRAP_INTERNAL, 0, "could not build the platform request");
		return -1;
	}
	return 0;
}

enum platform_action platform__flow_action(const struct platform_flow *flow)
{
	return flow->state == FLOW_REGISTER ? ACTION_REGISTER : ACTION_QUERY;
}

void platform__http_request_free(struct platform_http_request *req)
{
	string__wipe_free(&req->body);
	for(size_t i = 0; i <= PLATFORM_MAX_HEADERS && req->headers[i]; i++) string__wipe_free(&req->headers[i]);
	free(req->url);
	memset(req, 0, sizeof(*req));
}

/* Alibaba's rule: an existing device gets its secret again only until it first connects;
 * a disabled one never. Finishes the flow with a refusal and returns false otherwise. */
static void flow__refuse_existing(struct platform_flow *flow)
{
	flow__finish(flow, BOOTSTRAP_DEVICE_EXISTS, 0, "the device already exists; this service only hands out new devices' secrets");
}

static bool existing__allowed(struct platform_flow *flow, const char *status)
{
	if(!strcmp(status, "DISABLE")){
		flow__finish(flow, BOOTSTRAP_DEVICE_DISABLED, 0, "the device is disabled on the platform");
		return false;
	}
	if(flow->existing_policy == EXISTING_NEVER){
		flow__refuse_existing(flow);
		return false;
	}
	if(flow->existing_policy == EXISTING_UNACTIVE && strcmp(status, "UNACTIVE")){
		flow__finish(flow, BOOTSTRAP_ALREADY_ACTIVATED, 0,
				"the device has already been activated; an operator must reset it before it can bootstrap again");
		return false;
	}
	return true;
}

void platform__flow_answer(struct platform_flow *flow, const struct platform_answer *a)
{
	char *msg = flow->message;
	size_t msglen = sizeof(flow->message);

	if(flow->state == FLOW_DONE) return;
	snprintf(flow->request_id, sizeof(flow->request_id), "%s", a->request_id);
	if(++flow->steps > FLOW_MAX_STEPS && (a->outcome == PLATFORM_ALREADY_EXISTS || a->outcome == PLATFORM_NOT_EXISTS)){
		flow__finish(flow, BOOTSTRAP_PLATFORM_UNAVAILABLE, PLATFORM_RETRY_UNAVAILABLE_S,
				"the platform keeps changing its mind about whether the device exists");
		return;
	}
	switch(a->outcome){
		case PLATFORM_SUCCESS:
			/* a triple for another device is never handed out, whatever the platform says: not
			 * for another name, nor for another product's device of the same name */
			if(strcmp(a->triple.device_name, flow->device_name)){
				flow__finish(flow, BOOTSTRAP_PLATFORM_ERROR, 0, "the platform answered for another device");
				return;
			}
			if(strcmp(a->triple.product_key, flow->product_key)){
				flow__finish(flow, BOOTSTRAP_PLATFORM_ERROR, 0, "the platform answered for another product");
				return;
			}
			if(flow->state == FLOW_QUERY && flow->maybe_created && !strcmp(a->status, "UNACTIVE")){
				flow->existing = false; /* our own batch registration made it */
			}else if(flow->state == FLOW_QUERY){
				flow->existing = true;
				if(!existing__allowed(flow, a->status)) return;
			}
			flow->triple = a->triple;
			flow__finish(flow, BOOTSTRAP_OK, 0, "");
			return;
		case PLATFORM_NOT_EXISTS:
			flow->existing = false;
			if(flow->preregistered){
				flow__finish(flow, BOOTSTRAP_NOT_REGISTERED, 0,
						"the device is not registered on the platform; this service only serves devices created in advance");
				return;
			}
			flow->state = FLOW_REGISTER;
			return;
		case PLATFORM_ALREADY_EXISTS:
			flow->existing = true;
			if(flow->existing_policy == EXISTING_NEVER){
				flow__refuse_existing(flow); /* no QueryDeviceDetail: its answer could not change that */
				return;
			}
			flow->state = FLOW_QUERY;
			return;
		case PLATFORM_AUTH:
			snprintf(msg, msglen, "the platform rejected the bootstrap service's credentials (%s)", a->code);
			flow__finish(flow, BOOTSTRAP_PLATFORM_AUTH, 0, msg);
			return;
		case PLATFORM_REFUSED:
			snprintf(msg, msglen, "the platform refused: %s", a->code);
			flow__finish(flow, BOOTSTRAP_PLATFORM_ERROR, 0, msg);
			return;
		case PLATFORM_THROTTLED:
			snprintf(msg, msglen, "the platform is throttling requests (%s)", a->code);
			flow__finish(flow, BOOTSTRAP_THROTTLED, PLATFORM_RETRY_THROTTLED_S, msg);
			return;
		case PLATFORM_APPLY_LOST: /* batch answers: never a single device's */
		case PLATFORM_NOT_YET:
		case PLATFORM_UNAVAILABLE:
			if(a->code[0]){
				snprintf(msg, msglen, "the platform did not give a usable answer (%s)", a->code);
			}else{
				snprintf(msg, msglen, "the platform did not give a usable answer");
			}
			flow__finish(flow, BOOTSTRAP_PLATFORM_UNAVAILABLE, PLATFORM_RETRY_UNAVAILABLE_S, msg);
			return;
	}
}

void platform__flow_fail(struct platform_flow *flow, const char *why, const char *detail)
{
	if(flow->state == FLOW_DONE) return;
	snprintf(flow->detail, sizeof(flow->detail), "%s", detail ? detail : "");
	snprintf(flow->message, sizeof(flow->message), "%s", why);
	flow__finish(flow, BOOTSTRAP_PLATFORM_UNAVAILABLE, PLATFORM_RETRY_UNAVAILABLE_S, flow->message);
}

bool platform__flow_existence_known(const struct platform_flow *flow)
{
	return flow->state == FLOW_DONE && (flow->result == BOOTSTRAP_OK || flow->result == BOOTSTRAP_ALREADY_ACTIVATED
			|| flow->result == BOOTSTRAP_DEVICE_DISABLED || flow->result == BOOTSTRAP_DEVICE_EXISTS);
}

void platform__flow_wipe(struct platform_flow *flow)
{
	OPENSSL_cleanse(&flow->triple, sizeof(flow->triple));
}

const char *platform__check_name(enum platform_check check)
{
	switch(check){
		case PLATFORM_CHECK_PENDING: return "pending";
		case PLATFORM_CHECK_OK: return "ok";
		case PLATFORM_CHECK_REFUSED: return "refused";
		case PLATFORM_CHECK_UNREACHABLE: return "unreachable";
	}
	return "?";
}

/* What to fix for a refused check, by a word in the platform's code: the first row that matches
 * the outcome and the code wins; a row without a word matches any code. */
static const struct {
	bool auth;          /* PLATFORM_AUTH, else a business refusal */
	const char *word;
	const char *fix;
} check_fixes[] = {
	/* never a RAM permission: the secret, or the bytes sent are not those signed */
	{true, "SignatureDoesNotMatch", "the AccessKey secret does not belong to the AccessKey id, or the request sent was not "
			"the one signed (a defect: please report it); not a RAM permission"},
	{true, "IncompleteSignature", "the request's signature is incomplete (a defect: please report it); not a RAM permission"},
	{true, "InvalidAccessKeyId", "the AccessKey id is unknown or disabled: check the credentials source; not a RAM permission"},
	{true, "Permission", "grant the RAM identity iot:QueryDeviceDetail and iot:RegisterDevice"},
	{true, "Forbidden", "grant the RAM identity iot:QueryDeviceDetail and iot:RegisterDevice"},
	{true, "SecurityToken", "the STS token is wrong or expired: check the credentials source"},
	{true, "TimeStamp", "this machine's clock is off: synchronise it (NTP)"},
	{true, "Timestamp", "this machine's clock is off: synchronise it (NTP)"},
	{true, NULL, "check the AccessKey id and secret"},
	{false, "NotExistedProduct", "check plugin_opt_product_key (and the region: a product lives in one)"},
	{false, "Productkey", "check plugin_opt_product_key (and the region: a product lives in one)"},
	{false, "Instance", "check plugin_opt_iot_instance_id (Enterprise and new public instances need it)"},
	{false, NULL, "see the platform's error code"},
};

enum platform_check platform__check_answer(const struct platform_answer *a, char *detail, size_t len)
{
	bool auth = a->outcome == PLATFORM_AUTH;

	detail[0] = '\0';
	switch(a->outcome){
		case PLATFORM_SUCCESS:
		case PLATFORM_NOT_EXISTS:
			return PLATFORM_CHECK_OK;
		case PLATFORM_THROTTLED:
		case PLATFORM_UNAVAILABLE:
			snprintf(detail, len, "the platform answered %s", a->code[0] ? a->code : "without a usable answer");
			return PLATFORM_CHECK_UNREACHABLE;
		default:
			break;
	}
	for(size_t i = 0; i < sizeof(check_fixes) / sizeof(check_fixes[0]); i++){
		if(check_fixes[i].auth == auth && (!check_fixes[i].word || strstr(a->code, check_fixes[i].word))){
			snprintf(detail, len, "%s: %s", a->code[0] ? a->code : "refused", check_fixes[i].fix);
			break;
		}
	}
	return PLATFORM_CHECK_REFUSED;
}
