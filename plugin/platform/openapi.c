/* IoT Platform OpenAPI calls: the action table (one row per action, with the parser of its
 * successful answer), the signed HTTP request for a call, and what an answer means (success,
 * a known refusal, throttling, ...). Shapes are those of Alibaba's SDK models
 * (@alicloud/iot20180120). Pure; the worker thread calls it. Adding an action: one row in
 * platform_actions and its parser, here. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/crypto.h>

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
#define CODE_TOKEN_EXPIRED "InvalidSecurityToken.Expired"

/* ---- the actions, and how each one's successful answer is read ---- */

/* A string field that fits dst whole (no NUL inside), else false. */
static bool field__copy(json_t *obj, const char *name, char *dst, size_t dstlen)
{
	json_t *v = json_object_get(obj, name);
	size_t len;

	if(!json_is_string(v)) return false;
	len = json_string_length(v);
	if(len == 0 || len >= dstlen || strlen(json_string_value(v)) != len) return false;
	memcpy(dst, json_string_value(v), len + 1);
	return true;
}

/* jansson frees strings without wiping: wipe a DeviceSecret in the parsed tree first. */
static void secret__wipe(json_t *obj)
{
	json_t *v = json_object_get(obj, "DeviceSecret");

	if(json_is_string(v)) OPENSSL_cleanse((void *)json_string_value(v), json_string_length(v));
}

/* A device's details: ProductKey (unless product_key is false: a page does not carry it),
 * DeviceName, DeviceSecret, IotId, and Status when there is one. The secret is wiped from obj. */
static bool device__read(json_t *obj, bool product_key, struct device_triple *t, char *status, size_t statuslen)
{
	bool ok = json_is_object(obj)
			&& (!product_key || field__copy(obj, "ProductKey", t->product_key, sizeof(t->product_key)))
			&& field__copy(obj, "DeviceName", t->device_name, sizeof(t->device_name))
			&& field__copy(obj, "DeviceSecret", t->device_secret, sizeof(t->device_secret))
			&& field__copy(obj, "IotId", t->iot_id, sizeof(t->iot_id));

	if(ok && status) text__escape(status, statuslen, json_string_value(json_object_get(obj, "Status")));
	if(json_is_object(obj)) secret__wipe(obj);
	if(!ok) OPENSSL_cleanse(t, sizeof(*t));
	return ok;
}

/* Room for more devices in the answer's list; false beyond the bound or out of memory. */
static bool answer__grow(struct platform_answer *a, size_t more)
{
	struct platform_device *grown;

	if(more == 0) return true;
	if(more > PLATFORM_MAX_ANSWER_DEVICES || a->ndevices > PLATFORM_MAX_ANSWER_DEVICES - more) return false;
	grown = realloc(a->devices, (a->ndevices + more) * sizeof(*grown));
	if(!grown) return false;
	memset(grown + a->ndevices, 0, more * sizeof(*grown));
	a->devices = grown;
	return true;
}

/* RegisterDevice, QueryDeviceDetail: Data holds one device. */
static bool parse__single(json_t *root, struct platform_answer *a)
{
	return device__read(json_object_get(root, "Data"), true, &a->triple, a->status, sizeof(a->status));
}

/* A list of devices with their details (BatchQueryDeviceDetail's Data.Data[], a page's
 * ApplyDeviceList.ApplyDeviceInfo[]). An unreadable entry is left out and counted: the
 * devices of the readable ones need not wait for it (the caller asks about the rest singly). */
static bool parse__devices(json_t *list, bool product_key, struct platform_answer *a)
{
	size_t i;
	json_t *item;

	if(!json_is_array(list) || !answer__grow(a, json_array_size(list))) return false;
	json_array_foreach(list, i, item){
		struct platform_device *d = &a->devices[a->ndevices];
		if(!device__read(item, product_key, &d->triple, d->status, sizeof(d->status))){
			a->unreadable++;
			continue;
		}
		d->kind = DEVICE_FOUND;
		memcpy(d->name, d->triple.device_name, sizeof(d->name));
		a->ndevices++;
	}
	return true;
}

static bool parse__batch_query(json_t *root, struct platform_answer *a)
{
	json_t *data = json_object_get(root, "Data");

	/* nothing found: the platform may leave the list out */
	if(json_is_object(data) && !json_object_get(data, "Data")) return true;
	return parse__devices(json_object_get(data, "Data"), true, a);
}

/* Data.ApplyId: a number (or its digits as a string). */
static bool parse__apply_id(json_t *root, struct platform_answer *a)
{
	json_t *v = json_object_get(json_object_get(root, "Data"), "ApplyId");

	if(json_is_integer(v) && json_integer_value(v) > 0){
		snprintf(a->apply_id, sizeof(a->apply_id), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		return true;
	}
	if(!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) >= sizeof(a->apply_id)) return false;
	for(const char *c = json_string_value(v); *c; c++){
		if(*c < '0' || *c > '9') return false;
	}
	memcpy(a->apply_id, json_string_value(v), json_string_length(v) + 1);
	return true;
}

/* Names in list.Name[] as kind; a name that is not a string is skipped. */
static bool names__add(json_t *list, enum platform_device_kind kind, struct platform_answer *a)
{
	size_t i;
	json_t *item;

	if(!list) return true;
	if(!json_is_array(list) || !answer__grow(a, json_array_size(list))) return false;
	json_array_foreach(list, i, item){
		struct platform_device *d = &a->devices[a->ndevices];
		if(!json_is_string(item) || json_string_length(item) == 0 || json_string_length(item) >= sizeof(d->name)) continue;
		memcpy(d->name, json_string_value(item), json_string_length(item) + 1);
		d->kind = kind;
		a->ndevices++;
	}
	return true;
}

static int device__name_cmp(const void *x, const void *y)
{
	return strcmp(((const struct platform_device *)x)->name, ((const struct platform_device *)y)->name);
}

/* A name refused by a check because a device of that name exists. InvalidDetailList's entries
 * carry no code, only ErrorMsg (documented as messages joined by "|", e.g. "The device name
 * already exists."): the message is all there is, so a reason part that says "already exist"
 * counts ("does not exist" must not). A miss costs nothing but a call: an invalid name goes to
 * RegisterDevice, whose documented code iot.device.AlreadyExistedDeviceName tells it exists. */
static bool reason__exists(const char *why)
{
	for(const char *part = why; *part; ){
		size_t len = strcspn(part, "|");
		for(size_t i = 0; i + strlen("already exist") <= len; i++){
			if(!strncasecmp(part + i, "already exist", strlen("already exist"))) return true;
		}
		part += len + (part[len] == '|');
	}
	return false;
}

/* Data.Status, and the verdict on each name: ValidList.Name[], InvalidList.Name[], with the
 * reason from InvalidDetailList.invalidDetailList[] {DeviceName, ErrorMsg} where given. The
 * invalid names are sorted and looked up, and details beyond their number are not read: a
 * hostile answer costs n log n, not n squared. */
static bool parse__batch_status(json_t *root, struct platform_answer *a)
{
	json_t *data = json_object_get(root, "Data"), *details, *item;
	size_t i, invalid_from, invalid, read = 0;

	if(!json_is_object(data) || !field__copy(data, "Status", a->stage, sizeof(a->stage))) return false;
	/* it reaches logs only as one of the stages it is compared with, but keep it printable like
	 * every other text from the platform (found by fuzz_answer) */
	{
		char raw[sizeof(a->stage)];
		memcpy(raw, a->stage, sizeof(raw));
		text__escape(a->stage, sizeof(a->stage), raw);
	}
	if(!names__add(json_object_get(json_object_get(data, "ValidList"), "Name"), DEVICE_VALID, a)) return false;
	invalid_from = a->ndevices;
	if(!names__add(json_object_get(json_object_get(data, "InvalidList"), "Name"), DEVICE_INVALID, a)) return false;
	invalid = a->ndevices - invalid_from;
	if(invalid == 0) return true;
	qsort(a->devices + invalid_from, invalid, sizeof(*a->devices), device__name_cmp);
	details = json_object_get(json_object_get(data, "InvalidDetailList"), "invalidDetailList");
	if(!json_is_array(details)) return true;
	json_array_foreach(details, i, item){
		struct platform_device key, *d;
		const char *name = json_string_value(json_object_get(item, "DeviceName"));
		const char *why = json_string_value(json_object_get(item, "ErrorMsg"));
		if(read++ >= invalid) break;
		if(!name || !why || strlen(name) >= sizeof(key.name)) continue;
		memcpy(key.name, name, strlen(name) + 1);
		d = bsearch(&key, a->devices + invalid_from, invalid, sizeof(*a->devices), device__name_cmp);
		if(!d) continue;
		text__escape(d->reason, sizeof(d->reason), why);
		if(reason__exists(why)) d->kind = DEVICE_EXISTS;
	}
	return true;
}

/* Top level (no Data): Page, PageCount, Total, ApplyDeviceList.ApplyDeviceInfo[]. */
static bool parse__page(json_t *root, struct platform_answer *a)
{
	json_t *count = json_object_get(root, "PageCount"), *total = json_object_get(root, "Total");

	if(!json_is_integer(count) || !json_is_integer(total) || json_integer_value(count) < 0 || json_integer_value(total) < 0) return false;
	a->page_count = (long)(json_integer_value(count) < 1000000 ? json_integer_value(count) : 1000000);
	a->total = (long)(json_integer_value(total) < 1000000 ? json_integer_value(total) : 1000000);
	return parse__devices(json_object_get(json_object_get(root, "ApplyDeviceList"), "ApplyDeviceInfo"), false, a);
}

const struct platform_action_info platform_actions[PLATFORM_ACTIONS] = {
	[ACTION_REGISTER] = {"RegisterDevice", "register_qps", 30, 1, true, false, parse__single},
	[ACTION_QUERY] = {"QueryDeviceDetail", "query_qps", 50, 1, true, false, parse__single},
	[ACTION_BATCH_QUERY] = {"BatchQueryDeviceDetail", "batch_query_qps", 5, 100, true, false, parse__batch_query},
	[ACTION_BATCH_CHECK] = {"BatchCheckDeviceNames", "batch_check_qps", 10, 10000, true, true, parse__apply_id},
	[ACTION_BATCH_STATUS] = {"QueryBatchRegisterDeviceStatus", "batch_status_qps", 30, 10000, true, false, parse__batch_status},
	[ACTION_BATCH_REGISTER] = {"BatchRegisterDeviceWithApplyId", "batch_register_qps", 500, 10000, true, false, parse__apply_id},
	[ACTION_BATCH_PAGE] = {"QueryPageByApplyId", "batch_page_qps", 50, 50, false, false, parse__page},
};

/* ---- the signed request for a call ---- */

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

void platform__http_request_free(struct platform_http_request *req)
{
	string__wipe_free(&req->body);
	for(size_t i = 0; i <= PLATFORM_MAX_HEADERS && req->headers[i]; i++) string__wipe_free(&req->headers[i]);
	free(req->url);
	memset(req, 0, sizeof(*req));
}

/* ---- what an answer means ---- */

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
	}else if(!strcmp(code, CODE_TOKEN_EXPIRED)){
		/* STS credentials that ran out on the way: renewed ones will do (call__outcome_noted) */
		answer->token_expired = true;
		answer->outcome = PLATFORM_UNAVAILABLE;
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

/* ---- the start-up check ---- */

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
