/* A stateful IoT Platform for unit tests (fake_platform.h): the emulator's rules, in C, on a
 * fake clock. Answers are built with jansson, in the shapes tests/emulator/emulator.js sends. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "bootstrap_platform.h"
#include "fake_platform.h"

#define FP_MAX_PARAMS 12000
#define BATCH_QUERY_MAX 100
#define BATCH_CHECK_MAX 10000
#define PAGE_SIZE_MAX 50
#define PAGE_SIZE_DEFAULT 10
#define ERR_EXISTS "The device name already exists."
#define ERR_NAME "The device name is illegal."
#define ERR_REPEATED "The device name is repeated."

struct param {
	char *name, *value;
};

struct params {
	struct param *p;
	size_t n;
};

static char *dup_or_die(const char *s)
{
	char *d = strdup(s ? s : "");
	if(!d) abort();
	return d;
}

void *fake_grow(void *p, size_t *cap, size_t need, size_t size)
{
	if(need <= *cap) return p;
	size_t c = *cap ? *cap * 2 : 16;
	while(c < need) c *= 2;
	p = realloc(p, c * size);
	if(!p) abort();
	*cap = c;
	return p;
}

/* ---- parameters ---- */

static int hexval(int c)
{
	if(c >= '0' && c <= '9') return c - '0';
	if(c >= 'A' && c <= 'F') return c - 'A' + 10;
	if(c >= 'a' && c <= 'f') return c - 'a' + 10;
	return -1;
}

static char *url_decode(const char *s, size_t len)
{
	char *out = malloc(len + 1), *o = out;
	if(!out) abort();
	for(size_t i = 0; i < len; i++){
		if(s[i] == '%' && i + 2 < len && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0){
			*o++ = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
			i += 2;
		}else if(s[i] == '+'){
			*o++ = ' ';
		}else{
			*o++ = s[i];
		}
	}
	*o = '\0';
	return out;
}

static void params_parse(struct params *ps, const char *s)
{
	size_t cap = ps->n;
	while(s && *s){
		const char *amp = strchr(s, '&'), *end = amp ? amp : s + strlen(s);
		const char *eq = memchr(s, '=', (size_t)(end - s));
		if(end > s){
			cap = ps->n;
			ps->p = fake_grow(ps->p, &cap, ps->n + 1, sizeof(*ps->p));
			ps->p[ps->n].name = url_decode(s, (size_t)((eq ? eq : end) - s));
			ps->p[ps->n].value = eq ? url_decode(eq + 1, (size_t)(end - eq - 1)) : dup_or_die("");
			ps->n++;
		}
		s = amp ? amp + 1 : end;
	}
}

static void params_free(struct params *ps)
{
	for(size_t i = 0; i < ps->n; i++){
		free(ps->p[i].name);
		free(ps->p[i].value);
	}
	free(ps->p);
	memset(ps, 0, sizeof(*ps));
}

static const char *param(const struct params *ps, const char *name)
{
	for(size_t i = 0; i < ps->n; i++){
		if(!strcmp(ps->p[i].name, name)) return ps->p[i].value;
	}
	return NULL;
}

static const char *header(const char *const *headers, const char *name)
{
	size_t len = strlen(name);
	for(size_t i = 0; headers && headers[i]; i++){
		if(!strncasecmp(headers[i], name, len) && headers[i][len] == ':') return headers[i] + len + 2;
	}
	return NULL;
}

/* DeviceName.1..N in the order of N; NULL-terminated, malloc'd array of borrowed strings. */
static const char **name_list(const struct params *ps, size_t *n)
{
	const char **out = calloc(ps->n + 1, sizeof(*out));
	long max = 0;
	if(!out) abort();
	*n = 0;
	for(size_t i = 0; i < ps->n; i++){
		char *endp;
		if(strncmp(ps->p[i].name, "DeviceName.", 11)) continue;
		long k = strtol(ps->p[i].name + 11, &endp, 10);
		if(*endp || k < 1 || k > (long)ps->n) continue;
		out[k - 1] = ps->p[i].value;
		if(k > max) max = k;
	}
	for(long k = 0; k < max; k++){
		if(!out[k]){ /* a gap in the numbering: what the SDKs never send */
			free(out);
			*n = (size_t)-1;
			return NULL;
		}
	}
	*n = (size_t)max;
	return out;
}

/* ---- answers ---- */

static void request_id(struct fake_platform *fp, char out[40])
{
	snprintf(out, 40, "FAKE-%08llX-0000-0000-0000", ++fp->seq);
}

static void answer_json(struct fp_answer *out, long status, json_t *root)
{
	out->status = status;
	out->body = json_dumps(root, JSON_COMPACT);
	json_decref(root);
	if(!out->body) abort();
}

void fp_gateway_error(struct fp_answer *out, long status, const char *code, const char *message)
{
	answer_json(out, status, json_pack("{s:s, s:s, s:s, s:s, s:s}", "RequestId", "FAKE-GATEWAY", "HostId", "iot.fake.local",
			"Code", code, "Message", message, "Recommend", "https://api.aliyun.com/troubleshoot"));
}

static void business_error(struct fake_platform *fp, struct fp_answer *out, const char *code, const char *message)
{
	char rid[40];
	request_id(fp, rid);
	answer_json(out, 200, json_pack("{s:s, s:b, s:s, s:s}", "RequestId", rid, "Success", 0, "Code", code, "ErrorMessage", message));
}

static void success(struct fake_platform *fp, struct fp_answer *out, json_t *data)
{
	char rid[40];
	request_id(fp, rid);
	answer_json(out, 200, json_pack("{s:s, s:b, s:o}", "RequestId", rid, "Success", 1, "Data", data));
}

static json_t *device_view(const struct fp_device *d, bool detail)
{
	json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s}", "IotId", d->iot_id, "ProductKey", d->product_key,
			"DeviceName", d->name, "DeviceSecret", d->secret, "Nickname", "");
	if(detail){
		json_object_set_new(o, "Status", json_string(d->status));
		json_object_set_new(o, "ProductName", json_string("emulated product"));
		json_object_set_new(o, "NodeType", json_integer(0));
		json_object_set_new(o, "Region", json_string("cn-shanghai"));
	}
	return o;
}

/* ---- state ---- */

void fp_init(struct fake_platform *fp, int64_t now_ms, time_t now_s)
{
	memset(fp, 0, sizeof(*fp));
	fp->now_ms = now_ms;
	fp->now_s = now_s;
	fp->next_apply_id = 1000000;
	fp->check_ms = 500;
	fp->create_ms = 1000;
}

static void apply_clear_verdict(struct fp_apply *a)
{
	for(size_t i = 0; i < a->nvalid; i++) free(a->valid[i]);
	for(size_t i = 0; i < a->ninvalid; i++){
		free(a->invalid[i]);
		free(a->reasons[i]);
	}
	free(a->valid);
	free(a->invalid);
	free(a->reasons);
	a->valid = a->invalid = a->reasons = NULL;
	a->nvalid = a->ninvalid = 0;
}

void fp_free(struct fake_platform *fp)
{
	for(size_t i = 0; i < fp->napplies; i++){
		struct fp_apply *a = &fp->applies[i];
		for(size_t k = 0; k < a->n; k++) free(a->names[k]);
		free(a->names);
		apply_clear_verdict(a);
		free(a->created);
	}
	for(size_t i = 0; i < fp->ncalls; i++) free(fp->calls[i].names);
	free(fp->calls);
	free(fp->applies);
	free(fp->devices);
	memset(fp, 0, sizeof(*fp));
}

void fp_add_product(struct fake_platform *fp, const char *product_key)
{
	if(fp->nproducts < FP_MAX_PRODUCTS) snprintf(fp->products[fp->nproducts++], 24, "%s", product_key);
}

void fp_add_key(struct fake_platform *fp, const char *id, const char *secret, const char *token, time_t expires_s)
{
	if(fp->nkeys >= FP_MAX_KEYS) return;
	struct fp_key *k = &fp->keys[fp->nkeys++];
	snprintf(k->id, sizeof(k->id), "%s", id);
	snprintf(k->secret, sizeof(k->secret), "%s", secret);
	snprintf(k->token, sizeof(k->token), "%s", token ? token : "");
	k->expires_s = expires_s;
}

static bool product_known(const struct fake_platform *fp, const char *pk)
{
	for(size_t i = 0; pk && i < fp->nproducts; i++){
		if(!strcmp(fp->products[i], pk)) return true;
	}
	return false;
}

static bool name_valid(const char *s)
{
	size_t n = strlen(s);
	if(n < 4 || n > 32) return false;
	for(size_t i = 0; i < n; i++){
		if(!isalnum((unsigned char)s[i]) && !strchr("_-@.:", s[i])) return false;
	}
	return true;
}

struct fp_device *fp_device(struct fake_platform *fp, const char *product_key, const char *name)
{
	for(size_t i = 0; i < fp->ndevices; i++){
		if(!strcmp(fp->devices[i].name, name) && !strcmp(fp->devices[i].product_key, product_key)) return &fp->devices[i];
	}
	return NULL;
}

static size_t device_new(struct fake_platform *fp, const char *pk, const char *name)
{
	fp->devices = fake_grow(fp->devices, &fp->cap_devices, fp->ndevices + 1, sizeof(*fp->devices));
	struct fp_device *d = &fp->devices[fp->ndevices];
	memset(d, 0, sizeof(*d));
	snprintf(d->product_key, sizeof(d->product_key), "%s", pk);
	snprintf(d->name, sizeof(d->name), "%s", name);
	/* distinct per device and per creation: a device made twice would show */
	snprintf(d->secret, sizeof(d->secret), "%08llx%08zx%016llx", fp->seq * 2654435761ULL % 0xffffffffULL, fp->ndevices,
			(unsigned long long)fp->now_ms ^ 0x5eed5eed5eedULL);
	snprintf(d->iot_id, sizeof(d->iot_id), "iot%017zu000100", fp->ndevices + 1);
	snprintf(d->status, sizeof(d->status), "UNACTIVE");
	fp->seq++;
	return fp->ndevices++;
}

struct fp_device *fp_preregister(struct fake_platform *fp, const char *product_key, const char *name)
{
	struct fp_device *d = fp_device(fp, product_key, name);
	size_t i;

	if(d) return d;
	i = device_new(fp, product_key, name); /* may move the array */
	return &fp->devices[i];
}

struct fp_apply *fp_apply(struct fake_platform *fp, long id)
{
	for(size_t i = 0; i < fp->napplies; i++){
		if(fp->applies[i].id == id && !fp->applies[i].forgotten) return &fp->applies[i];
	}
	return NULL;
}

void fp_forget_applies(struct fake_platform *fp)
{
	for(size_t i = 0; i < fp->napplies; i++) fp->applies[i].forgotten = true;
}

static void verdict_add(struct fp_apply *a, const char *name, const char *why)
{
	if(why){
		a->invalid = realloc(a->invalid, (a->ninvalid + 1) * sizeof(char *));
		a->reasons = realloc(a->reasons, (a->ninvalid + 1) * sizeof(char *));
		if(!a->invalid || !a->reasons) abort();
		a->invalid[a->ninvalid] = dup_or_die(name);
		a->reasons[a->ninvalid++] = dup_or_die(why);
	}else{
		a->valid = realloc(a->valid, (a->nvalid + 1) * sizeof(char *));
		if(!a->valid) abort();
		a->valid[a->nvalid++] = dup_or_die(name);
	}
}

static void end_check(struct fake_platform *fp, struct fp_apply *a)
{
	apply_clear_verdict(a);
	for(size_t i = 0; i < a->n; i++){
		const char *why = NULL;
		if(!name_valid(a->names[i])) why = ERR_NAME;
		else if(fp_device(fp, a->product_key, a->names[i])) why = ERR_EXISTS;
		for(size_t k = 0; k < i && !why; k++){
			if(!strcmp(a->names[k], a->names[i])) why = ERR_REPEATED;
		}
		verdict_add(a, a->names[i], why);
	}
	a->stage = a->ninvalid ? FP_CHECK_FAILED : FP_CHECK_SUCCESS;
}

static void end_create(struct fake_platform *fp, struct fp_apply *a)
{
	apply_clear_verdict(a);
	for(size_t i = 0; i < a->n; i++){
		if(fp_device(fp, a->product_key, a->names[i])){
			verdict_add(a, a->names[i], ERR_EXISTS);
			continue;
		}
		size_t d = device_new(fp, a->product_key, a->names[i]);
		a->created = realloc(a->created, (a->ncreated + 1) * sizeof(*a->created));
		if(!a->created) abort();
		a->created[a->ncreated++] = d;
		fp->created_by_batch++;
		verdict_add(a, a->names[i], NULL);
	}
	a->stage = a->ninvalid ? FP_CREATE_FAILED : FP_CREATE_SUCCESS;
}

void fp_set_time(struct fake_platform *fp, int64_t now_ms, time_t now_s)
{
	fp->now_ms = now_ms;
	fp->now_s = now_s;
	for(size_t i = 0; i < fp->napplies; i++){
		struct fp_apply *a = &fp->applies[i];
		if(a->forgotten || now_ms < a->ends_ms) continue;
		if(a->stage == FP_CHECK && !fp->stuck_check) end_check(fp, a);
		else if(a->stage == FP_CREATE && !fp->stuck_create) end_create(fp, a);
	}
}

/* ---- the gateway ---- */

static const char *const v1_common[] = { "Action", "Format", "Version", "AccessKeyId", "SignatureMethod", "SignatureVersion",
	"SignatureNonce", "Timestamp", "RegionId", "SecurityToken", "Signature", NULL };

static bool param_allowed(enum platform_action a, const char *name, bool v1)
{
	static const char *const own[PLATFORM_ACTIONS][4] = {
		[ACTION_REGISTER] = { "ProductKey", "DeviceName", "Nickname", "IotInstanceId" },
		[ACTION_QUERY] = { "ProductKey", "DeviceName", "IotId", "IotInstanceId" },
		[ACTION_BATCH_QUERY] = { "ProductKey", "IotInstanceId" },
		[ACTION_BATCH_CHECK] = { "ProductKey", "IotInstanceId" },
		[ACTION_BATCH_STATUS] = { "ProductKey", "ApplyId", "IotInstanceId" },
		[ACTION_BATCH_REGISTER] = { "ProductKey", "ApplyId", "IotInstanceId" },
		[ACTION_BATCH_PAGE] = { "ApplyId", "PageSize", "CurrentPage", "IotInstanceId" },
	};
	for(int i = 0; i < 4 && own[a][i]; i++){
		if(!strcmp(own[a][i], name)) return true;
	}
	if((a == ACTION_BATCH_QUERY || a == ACTION_BATCH_CHECK) && !strncmp(name, "DeviceName.", 11)){
		const char *d = name + 11;
		if(*d < '1' || *d > '9') return false;
		while(isdigit((unsigned char)*d)) d++;
		return *d == '\0';
	}
	for(int i = 0; v1 && v1_common[i]; i++){
		if(!strcmp(v1_common[i], name)) return true;
	}
	return false;
}

/* The signature and the key: true when accepted, else the refusal is written into out. */
static bool authenticate(struct fake_platform *fp, const struct params *ps, const char *url, const char *body,
		const char *const *headers, bool v1, struct fp_answer *out, char key_id[64])
{
	const char *id, *token, *given;
	const struct fp_key *key = NULL;
	bool ok = false;

	if(v1){
		id = param(ps, "AccessKeyId");
		token = param(ps, "SecurityToken");
		given = param(ps, "Signature");
		if(!id || !given || !param(ps, "SignatureNonce") || !param(ps, "Timestamp")
				|| strcmp(param(ps, "SignatureMethod") ? param(ps, "SignatureMethod") : "", "HMAC-SHA1")
				|| strcmp(param(ps, "SignatureVersion") ? param(ps, "SignatureVersion") : "", "1.0")){
			fp_gateway_error(out, 400, "IncompleteSignature", "The request signature does not conform to Aliyun standards.");
			return false;
		}
	}else{
		const char *auth = header(headers, "Authorization");
		static char idbuf[64];
		if(!auth || strncmp(auth, "ACS3-HMAC-SHA256 Credential=", 28)){
			fp_gateway_error(out, 400, "IncompleteSignature", "The request signature does not conform to Aliyun standards.");
			return false;
		}
		snprintf(idbuf, sizeof(idbuf), "%.*s", (int)strcspn(auth + 28, ","), auth + 28);
		id = idbuf;
		token = header(headers, "x-acs-security-token");
		given = strstr(auth, ",Signature=");
		given = given ? given + 11 : "";
	}
	snprintf(key_id, 64, "%s", id);
	for(size_t i = 0; i < fp->nkeys; i++){
		if(!strcmp(fp->keys[i].id, id)) key = &fp->keys[i];
	}
	if(!key){
		fp_gateway_error(out, 404, "InvalidAccessKeyId.NotFound", "Specified access key is not found.");
		fp->refused_signature++;
		return false;
	}
	if(v1){
		/* the canonical query of every parameter but Signature, signed with the key's secret */
		struct platform_param *pp = calloc(ps->n, sizeof(*pp));
		size_t n = 0;
		char sig[PLATFORM_SIGNATURE_LEN];
		char *canonical;
		if(!pp) abort();
		for(size_t i = 0; i < ps->n; i++){
			if(strcmp(ps->p[i].name, "Signature")) pp[n++] = (struct platform_param){ps->p[i].name, ps->p[i].value};
		}
		canonical = platform__canonical_query(pp, n);
		ok = canonical && platform__sign("POST", canonical, key->secret, sig) == 0 && !strcmp(sig, given);
		free(canonical);
		free(pp);
	}else{
		/* the signed headers as sent, the query as sent, the body's hash */
		struct platform_param hs[PLATFORM_MAX_HEADERS];
		char *names[PLATFORM_MAX_HEADERS] = {0}, hash[PLATFORM_SHA256_HEX_LEN], sig[PLATFORM_SHA256_HEX_LEN];
		char *signed_headers = NULL, *canonical;
		const char *q = strchr(url, '?');
		size_t nh = 0;
		platform__sha256_hex(body ? body : "", body ? strlen(body) : 0, hash);
		for(size_t i = 0; headers && headers[i] && nh < PLATFORM_MAX_HEADERS; i++){
			const char *colon = strchr(headers[i], ':');
			if(!colon || !strncasecmp(headers[i], "Authorization:", 14) || !strncasecmp(headers[i], "Accept:", 7)) continue;
			names[nh] = strndup(headers[i], (size_t)(colon - headers[i]));
			hs[nh] = (struct platform_param){names[nh], colon + 2};
			nh++;
		}
		canonical = platform__canonical_request("POST", q ? q + 1 : "", hs, nh, hash, &signed_headers);
		ok = canonical && !strcmp(header(headers, "x-acs-content-sha256") ? header(headers, "x-acs-content-sha256") : "", hash)
				&& platform__sign_v3(canonical, key->secret, sig) == 0 && !strcmp(sig, given);
		free(canonical);
		free(signed_headers);
		for(size_t i = 0; i < nh; i++) free(names[i]);
	}
	if(!ok){
		fp->refused_signature++;
		fp_gateway_error(out, 400, "SignatureDoesNotMatch", "Specified signature is not matched with our calculation.");
		return false;
	}
	if(key->token[0]){
		if(!token){
			fp_gateway_error(out, 400, "MissingSecurityToken", "SecurityToken is mandatory for this action.");
			return false;
		}
		if(strcmp(token, key->token)){
			fp_gateway_error(out, 400, "InvalidSecurityToken.MismatchWithAccessKey", "Specified SecurityToken mismatch with the AccessKey.");
			return false;
		}
		if(key->expires_s && fp->now_s >= key->expires_s){
			fp->refused_expired++;
			fp_gateway_error(out, 400, "InvalidSecurityToken.Expired", "Specified SecurityToken is expired.");
			return false;
		}
	}
	return true;
}

static bool over_quota(struct fake_platform *fp, enum platform_action a)
{
	size_t n = 0;
	long max = (long)floor(fp->quota[a]);
	if(fp->quota[a] <= 0) return false;
	for(size_t i = 0; i < fp->window_n[a]; i++){
		if(fp->window[a][i] > fp->now_ms - 1000) fp->window[a][n++] = fp->window[a][i];
	}
	fp->window_n[a] = n;
	if((long)n >= (max < 1 ? 1 : max)) return true;
	if(n < FP_WINDOW) fp->window[a][fp->window_n[a]++] = fp->now_ms;
	return false;
}

static void log_bad(struct fake_platform *fp, const char *what, const char *action)
{
	fp->bad_requests++;
	snprintf(fp->last_bad, sizeof(fp->last_bad), "%s: %s", action, what);
}

/* ---- the actions ---- */

static void register_device(struct fake_platform *fp, const struct params *ps, struct fp_answer *out)
{
	const char *pk = param(ps, "ProductKey"), *name = param(ps, "DeviceName");
	if(!pk) return business_error(fp, out, "iot.common.InvalidParameter", "ProductKey is mandatory for this action.");
	if(!product_known(fp, pk)) return business_error(fp, out, "iot.prod.NotExistedProduct", "product does not exist");
	if(!name || !name_valid(name)) return business_error(fp, out, "iot.device.InvalidFormattedDeviceName", "invalid device name");
	if(fp_device(fp, pk, name)) return business_error(fp, out, "iot.device.AlreadyExistedDeviceName", ERR_EXISTS);
	size_t d = device_new(fp, pk, name);
	fp->created_by_register++;
	success(fp, out, device_view(&fp->devices[d], false));
}

static void query_device(struct fake_platform *fp, const struct params *ps, struct fp_answer *out)
{
	const char *pk = param(ps, "ProductKey"), *name = param(ps, "DeviceName");
	if(!pk || !name) return business_error(fp, out, "iot.common.InvalidParameter", "ProductKey and DeviceName, or IotId, are required.");
	if(!product_known(fp, pk)) return business_error(fp, out, "iot.prod.NotExistedProduct", "product does not exist");
	struct fp_device *d = fp_device(fp, pk, name);
	if(!d) return business_error(fp, out, "iot.device.NotExistedDevice", "The device does not exist.");
	success(fp, out, device_view(d, true));
}

static void batch_query(struct fake_platform *fp, const struct params *ps, const char **names, size_t n, struct fp_answer *out)
{
	const char *pk = param(ps, "ProductKey");
	json_t *list;
	if(!pk) return business_error(fp, out, "iot.prod.NullProductKey", "ProductKey cannot be empty.");
	if(!product_known(fp, pk)) return business_error(fp, out, "iot.prod.NotExistedProduct", "product does not exist");
	if(n == 0) return business_error(fp, out, "iot.device.NoneDeviceNameElement", "The device name list cannot be empty.");
	if(n > BATCH_QUERY_MAX) return business_error(fp, out, "iot.device.DeviceCountExceeded", "Number of devices requested exceeds the maximum limit (100).");
	list = json_array();
	for(size_t i = 0; i < n; i++){
		struct fp_device *d = fp_device(fp, pk, names[i]);
		bool dup = false;
		for(size_t k = 0; k < i; k++) dup = dup || !strcmp(names[k], names[i]);
		if(d && !dup) json_array_append_new(list, device_view(d, true));
	}
	success(fp, out, json_pack("{s:o}", "Data", list));
}

static void batch_check(struct fake_platform *fp, const struct params *ps, const char **names, size_t n, struct fp_answer *out)
{
	const char *pk = param(ps, "ProductKey");
	if(!pk) return business_error(fp, out, "iot.prod.NullProductKey", "ProductKey cannot be empty.");
	if(!product_known(fp, pk)) return business_error(fp, out, "iot.prod.NotExistedProduct", "product does not exist");
	if(n == 0) return business_error(fp, out, "iot.device.NoneDeviceNameElement", "The device name list cannot be empty.");
	if(n > BATCH_CHECK_MAX) n = BATCH_CHECK_MAX;
	fp->applies = fake_grow(fp->applies, &fp->cap_applies, fp->napplies + 1, sizeof(*fp->applies));
	struct fp_apply *a = &fp->applies[fp->napplies++];
	memset(a, 0, sizeof(*a));
	a->id = fp->next_apply_id++;
	snprintf(a->product_key, sizeof(a->product_key), "%s", pk);
	a->names = calloc(n, sizeof(char *));
	if(!a->names) abort();
	json_t *bad = json_array(), *rep = json_array();
	for(size_t i = 0; i < n; i++){
		a->names[i] = dup_or_die(names[i]);
		if(!name_valid(names[i])) json_array_append_new(bad, json_string(names[i]));
		for(size_t k = 0; k < i; k++){
			if(!strcmp(names[k], names[i])){
				json_array_append_new(rep, json_string(names[i]));
				break;
			}
		}
	}
	a->n = n;
	a->stage = FP_CHECK;
	a->ends_ms = fp->now_ms + fp->check_ms;
	success(fp, out, json_pack("{s:I, s:{s:o}, s:{s:[]}, s:{s:o}}", "ApplyId", (json_int_t)a->id,
			"InvalidDeviceNameList", "InvalidDeviceName", bad, "InvalidDeviceNicknameList", "InvalidDeviceNickname",
			"RepeatedDeviceNameList", "RepeatDevieNameList", rep));
	if(fp->check_ms <= 0) fp_set_time(fp, fp->now_ms, fp->now_s);
}

/* The apply ApplyId names (of ProductKey when given); NULL when the refusal is written. */
static struct fp_apply *apply_of(struct fake_platform *fp, const struct params *ps, bool with_product, struct fp_answer *out)
{
	const char *id = param(ps, "ApplyId"), *pk = with_product ? param(ps, "ProductKey") : NULL;
	struct fp_apply *a;
	if(!id || !*id){
		business_error(fp, out, "iot.device.NullApplyId", "ApplyId cannot be empty.");
		return NULL;
	}
	for(const char *c = id; *c; c++){
		if(!isdigit((unsigned char)*c) || c - id >= 15){
			business_error(fp, out, "iot.device.InvalidFormattedApplyId", "The ApplyId is incorrect.");
			return NULL;
		}
	}
	a = fp_apply(fp, strtol(id, NULL, 10));
	if(!a || (pk && strcmp(pk, a->product_key))){
		business_error(fp, out, "iot.device.DeviceApplyIsNotFound", "The ApplyId is not found.");
		return NULL;
	}
	return a;
}

static json_t *string_list(char **v, size_t n)
{
	json_t *l = json_array();
	for(size_t i = 0; i < n; i++) json_array_append_new(l, json_string(v[i]));
	return l;
}

static void batch_status(struct fake_platform *fp, const struct params *ps, struct fp_answer *out, struct fp_call *call)
{
	static const char *const names[] = { "CHECK", "CHECK_SUCCESS", "CHECK_FAILED", "CREATE", "CREATE_SUCCESS", "CREATE_FAILED" };
	const char *pk = param(ps, "ProductKey");
	struct fp_apply *a;
	bool lists;
	if(!pk) return business_error(fp, out, "iot.prod.NullProductKey", "ProductKey cannot be empty.");
	if(!product_known(fp, pk)) return business_error(fp, out, "iot.prod.NotExistedProduct", "product does not exist");
	if(!(a = apply_of(fp, ps, true, out))) return;
	/* lists only for the *_FAILED verdicts, as documented */
	lists = a->stage == FP_CHECK_FAILED || a->stage == FP_CREATE_FAILED;
	snprintf(call->stage, sizeof(call->stage), "%s", names[a->stage]);
	json_t *detail = json_array();
	for(size_t i = 0; lists && i < a->ninvalid; i++){
		json_array_append_new(detail, json_pack("{s:s, s:s, s:s}", "DeviceName", a->invalid[i], "ErrorMsg", a->reasons[i], "NickName", ""));
	}
	success(fp, out, json_pack("{s:s, s:{s:o}, s:{s:o}, s:{s:o}}", "Status", names[a->stage],
			"ValidList", "Name", string_list(a->valid, lists ? a->nvalid : 0),
			"InvalidList", "Name", string_list(a->invalid, lists ? a->ninvalid : 0),
			"InvalidDetailList", "invalidDetailList", detail));
}

static void batch_register(struct fake_platform *fp, const struct params *ps, struct fp_answer *out)
{
	const char *pk = param(ps, "ProductKey");
	struct fp_apply *a;
	if(!pk) return business_error(fp, out, "iot.prod.NullProductKey", "ProductKey cannot be empty.");
	if(!product_known(fp, pk)) return business_error(fp, out, "iot.prod.NotExistedProduct", "product does not exist");
	if(!(a = apply_of(fp, ps, true, out))) return;
	if(a->stage != FP_CHECK_SUCCESS){
		if(a->stage == FP_CREATE) return business_error(fp, out, "iot.device.CreateDeviceTaskIsRunning", "The device creation task is still in progress.");
		return business_error(fp, out, "iot.device.IncorrentDeviceApplyInfo", "The device application information is not correct.");
	}
	a->stage = FP_CREATE;
	a->ends_ms = fp->now_ms + fp->create_ms;
	success(fp, out, json_pack("{s:I}", "ApplyId", (json_int_t)a->id));
	if(fp->create_ms <= 0) fp_set_time(fp, fp->now_ms, fp->now_s);
}

static bool page_int(const char *v, long def, long *out)
{
	if(!v || !*v){
		*out = def;
		return true;
	}
	for(const char *c = v; *c; c++){
		if(!isdigit((unsigned char)*c) || c - v >= 9) return false;
	}
	*out = strtol(v, NULL, 10);
	return true;
}

static void batch_page(struct fake_platform *fp, const struct params *ps, struct fp_answer *out, struct fp_call *call)
{
	struct fp_apply *a;
	long size, page;
	char rid[40];
	if(!(a = apply_of(fp, ps, false, out))) return;
	if(!page_int(param(ps, "PageSize"), PAGE_SIZE_DEFAULT, &size) || !page_int(param(ps, "CurrentPage"), 1, &page)
			|| size < 1 || size > PAGE_SIZE_MAX || page < 1){
		return business_error(fp, out, "iot.common.InvalidPageParams", "The specified page size or page number is invalid.");
	}
	call->page = page;
	call->page_size = size;
	if(a->stage == FP_CREATE) return business_error(fp, out, "iot.device.CreateDeviceTaskIsRunning", "The device creation task is still in progress.");
	if(a->stage != FP_CREATE_SUCCESS && a->stage != FP_CREATE_FAILED){
		return business_error(fp, out, "iot.device.IncorrentDeviceApplyInfo", "The device application information is not correct.");
	}
	json_t *list = json_array();
	for(size_t i = (size_t)((page - 1) * size); i < a->ncreated && i < (size_t)(page * size); i++){
		const struct fp_device *d = &fp->devices[a->created[i]];
		json_array_append_new(list, json_pack("{s:s, s:s, s:s, s:s}", "DeviceId", d->iot_id, "DeviceName", d->name,
				"DeviceSecret", d->secret, "IotId", d->iot_id));
	}
	request_id(fp, rid);
	answer_json(out, 200, json_pack("{s:s, s:b, s:I, s:I, s:I, s:I, s:{s:o}}", "RequestId", rid, "Success", 1,
			"Page", (json_int_t)page, "PageSize", (json_int_t)size, "PageCount", (json_int_t)((a->ncreated + (size_t)size - 1) / (size_t)size),
			"Total", (json_int_t)a->ncreated, "ApplyDeviceList", "ApplyDeviceInfo", list));
}

static int action_of(const char *name)
{
	for(int a = 0; name && a < PLATFORM_ACTIONS; a++){
		if(!strcmp(platform_actions[a].name, name)) return a;
	}
	return -1;
}

int fp_handle(struct fake_platform *fp, const char *url, const char *body, const char *const *headers, struct fp_answer *out)
{
	struct params ps = {0};
	const char *q = url ? strchr(url, '?') : NULL;
	bool v1 = body && strstr(body, "Signature=") && !header(headers, "Authorization");
	const char **names = NULL;
	size_t nnames = 0;
	int a;
	struct fp_call call;
	char key_id[64] = "";

	memset(out, 0, sizeof(*out));
	memset(&call, 0, sizeof(call));
	fp_set_time(fp, fp->now_ms, fp->now_s);
	if(q) params_parse(&ps, q + 1);
	if(body) params_parse(&ps, body);
	a = action_of(v1 ? param(&ps, "Action") : header(headers, "x-acs-action"));
	if(a < 0){
		log_bad(fp, "no known action", "?");
		fp_gateway_error(out, 404, "InvalidAction.NotFound", "Specified api is not found, please check your url and method.");
		params_free(&ps);
		return 0;
	}
	call.action = (enum platform_action)a;
	call.at_ms = fp->now_ms;
	snprintf(call.product_key, sizeof(call.product_key), "%s", param(&ps, "ProductKey") ? param(&ps, "ProductKey") : "");
	snprintf(call.apply_id, sizeof(call.apply_id), "%s", param(&ps, "ApplyId") ? param(&ps, "ApplyId") : "");
	if(a == ACTION_BATCH_QUERY || a == ACTION_BATCH_CHECK){
		names = name_list(&ps, &nnames);
	}else if(param(&ps, "DeviceName")){
		names = malloc(2 * sizeof(*names));
		if(!names) abort();
		names[0] = param(&ps, "DeviceName");
		nnames = 1;
	}
	if(names){
		size_t len = 1;
		for(size_t i = 0; i < nnames; i++) len += strlen(names[i]) + 1;
		call.names = calloc(1, len);
		if(!call.names) abort();
		for(size_t i = 0; i < nnames; i++){
			if(i) strcat(call.names, ",");
			strcat(call.names, names[i]);
		}
		call.nnames = nnames;
	}
	for(size_t i = 0; i < ps.n && !out->body; i++){
		if(!param_allowed(call.action, ps.p[i].name, v1)){
			log_bad(fp, ps.p[i].name, platform_actions[a].name);
			fp_gateway_error(out, 400, "InvalidParameter.Unknown", "A parameter is not one of the action's.");
		}
	}
	if(!out->body && nnames == (size_t)-1){
		log_bad(fp, "DeviceName.N not numbered 1..N", platform_actions[a].name);
		fp_gateway_error(out, 400, "InvalidParameter", "DeviceName.N must be numbered from 1 without gaps.");
	}
	if(!out->body && v1 && (strcmp(param(&ps, "Format") ? param(&ps, "Format") : "", "JSON") || strcmp(param(&ps, "Version") ? param(&ps, "Version") : "", PLATFORM_API_VERSION))){
		log_bad(fp, "Format or Version", platform_actions[a].name);
		fp_gateway_error(out, 400, "InvalidVersion", "Specified parameter Version is not valid.");
	}
	if(!out->body && !v1 && strcmp(header(headers, "x-acs-version") ? header(headers, "x-acs-version") : "", PLATFORM_API_VERSION)){
		log_bad(fp, "x-acs-version", platform_actions[a].name);
		fp_gateway_error(out, 400, "InvalidVersion", "Specified parameter Version is not valid.");
	}
	if(!out->body && !authenticate(fp, &ps, url, body, headers, v1, out, key_id)){
		/* written */
	}
	snprintf(call.access_key_id, sizeof(call.access_key_id), "%s", key_id);
	if(!out->body && fp->denied[a]){
		fp_gateway_error(out, 403, "Forbidden.RAM", "User not authorized to operate on the specified resource, or this API doesn't support RAM.");
	}
	if(!out->body && over_quota(fp, call.action)){
		fp->throttled++;
		fp_gateway_error(out, 503, "Throttling.User", "Request was denied due to user flow control.");
	}
	if(!out->body){
		switch(call.action){
			case ACTION_REGISTER: register_device(fp, &ps, out); break;
			case ACTION_QUERY: query_device(fp, &ps, out); break;
			case ACTION_BATCH_QUERY: batch_query(fp, &ps, names, nnames, out); break;
			case ACTION_BATCH_CHECK: batch_check(fp, &ps, names, nnames, out); break;
			case ACTION_BATCH_STATUS: batch_status(fp, &ps, out, &call); break;
			case ACTION_BATCH_REGISTER: batch_register(fp, &ps, out); break;
			case ACTION_BATCH_PAGE: batch_page(fp, &ps, out, &call); break;
			default: break;
		}
	}
	{
		/* the Code it answered, for assertions */
		json_t *root = json_loads(out->body, 0, NULL);
		const char *code = json_string_value(json_object_get(root, "Code"));
		snprintf(call.code, sizeof(call.code), "%s", code ? code : "");
		json_decref(root);
	}
	fp->calls = fake_grow(fp->calls, &fp->cap_calls, fp->ncalls + 1, sizeof(*fp->calls));
	fp->calls[fp->ncalls++] = call;
	free(names);
	params_free(&ps);
	return 0;
}

void fp_answer_free(struct fp_answer *a)
{
	free(a->body);
	a->body = NULL;
}

size_t fp_count(const struct fake_platform *fp, enum platform_action action)
{
	size_t n = 0;
	for(size_t i = 0; i < fp->ncalls; i++) n += fp->calls[i].action == action;
	return n;
}

const struct fp_call *fp_nth(const struct fake_platform *fp, enum platform_action action, size_t k)
{
	for(size_t i = 0; i < fp->ncalls; i++){
		if(fp->calls[i].action == action && k-- == 0) return &fp->calls[i];
	}
	return NULL;
}

const struct fp_call *fp_last(const struct fake_platform *fp)
{
	return fp->ncalls ? &fp->calls[fp->ncalls - 1] : NULL;
}
