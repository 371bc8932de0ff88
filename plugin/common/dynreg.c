/* Alibaba's Link SDK MQTT dynamic registration, as the device's CONNECT carries it: recognised,
 * parsed strictly, its sign verified, and the answer the SDK reads. The client id, username and
 * password are a network client's: bounded, validated, never echoed. Pure; any thread. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "bootstrap_dynreg.h"
#include "bootstrap_request.h"
#include "bootstrap_text.h"

/* The parameter section of a client id "<prefix>|<params>|": *params and its length, or false
 * when it has none (no '|', or it does not end with one). */
static bool dynreg__params(const char *client_id, size_t len, const char **params, size_t *plen, size_t *prefix_len)
{
	const char *bar = memchr(client_id, '|', len);

	if(!bar || len < 2 || client_id[len - 1] != '|' || bar == client_id + len - 1) return false;
	*prefix_len = (size_t)(bar - client_id);
	*params = bar + 1;
	*plen = len - *prefix_len - 2;
	return true;
}

/* The value of key in "k=v,k=v" (the first such), or NULL; *vlen its length. */
static const char *dynreg__param(const char *params, size_t plen, const char *key, size_t *vlen)
{
	size_t klen = strlen(key);
	const char *p = params, *end = params + plen;

	while(p < end){
		const char *comma = memchr(p, ',', (size_t)(end - p));
		const char *item_end = comma ? comma : end;
		if((size_t)(item_end - p) > klen && !memcmp(p, key, klen) && p[klen] == '='){
			*vlen = (size_t)(item_end - p) - klen - 1;
			return p + klen + 1;
		}
		p = item_end + 1;
	}
	return NULL;
}

static bool dynreg__value_is(const char *v, size_t vlen, const char *word)
{
	return v && vlen == strlen(word) && !memcmp(v, word, vlen);
}

enum dynreg_kind dynreg__kind(const char *client_id)
{
	size_t len, plen, prefix_len, vlen = 0;
	const char *params, *v;

	if(!client_id) return DYNREG_NOT;
	/* a longer id is looked at no further than this: never a dynreg one we would serve, but
	 * one that says authType=register is refused rather than passed on */
	len = strnlen(client_id, DYNREG_CLIENT_ID_MAX + 1);
	if(len > DYNREG_CLIENT_ID_MAX){
		return strstr(client_id, "authType=register") || strstr(client_id, "authType=regnwl") ? DYNREG_REGISTER : DYNREG_NOT;
	}
	if(!dynreg__params(client_id, len, &params, &plen, &prefix_len)) return DYNREG_NOT;
	v = dynreg__param(params, plen, "authType", &vlen);
	if(dynreg__value_is(v, vlen, "register")) return DYNREG_REGISTER;
	if(dynreg__value_is(v, vlen, "regnwl")) return DYNREG_REGNWL;
	return DYNREG_NOT;
}

static bool dynreg__alnum(const char *v, size_t vlen, size_t max, bool dash)
{
	if(vlen == 0 || vlen > max) return false;
	for(size_t i = 0; i < vlen; i++){
		unsigned char ch = (unsigned char)v[i];
		/* ASCII alone: isalnum() depends on the locale */
		bool alnum = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
		if(!alnum && !(dash && (ch == '-' || ch == '_'))) return false;
	}
	return true;
}

static enum sign_method dynreg__method(const char *v, size_t vlen)
{
	static const struct { const char *name; enum sign_method method; } methods[] = {
		{"hmacsha256", SIGN_HMACSHA256}, {"hmacsha1", SIGN_HMACSHA1}, {"hmacmd5", SIGN_HMACMD5},
	};

	for(size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++){
		if(vlen == strlen(methods[i].name) && !strncasecmp(v, methods[i].name, vlen)) return methods[i].method;
	}
	return SIGN_NONE;
}

/* Every parameter is one of the known keys, once, with a value. */
static int dynreg__params_check(const char *params, size_t plen, struct dynreg_connect *c, const char **why)
{
	static const char *const keys[] = { "random", "authType", "securemode", "signmethod", "instanceId" };
	bool seen[5] = { false };
	const char *p = params, *end = params + plen;

	while(p <= end){
		const char *comma = memchr(p, ',', (size_t)(end - p));
		const char *item_end = comma ? comma : end;
		const char *eq = memchr(p, '=', (size_t)(item_end - p));
		size_t k, klen = eq ? (size_t)(eq - p) : 0;
		const char *v = eq ? eq + 1 : NULL;
		size_t vlen = eq ? (size_t)(item_end - v) : 0;

		for(k = 0; k < 5; k++){
			if(eq && klen == strlen(keys[k]) && !memcmp(p, keys[k], klen)) break;
		}
		if(k == 5){
			*why = "the client id has a parameter that is not random, authType, securemode, signmethod or instanceId";
			return -1;
		}
		if(seen[k]){
			*why = "the client id has a parameter twice";
			return -1;
		}
		seen[k] = true;
		switch(k){
			case 0:
				if(!dynreg__alnum(v, vlen, DYNREG_RANDOM_MAX, false)){
					*why = "random must be 1 to 64 letters and digits";
					return -1;
				}
				memcpy(c->random, v, vlen);
				c->random[vlen] = '\0';
				break;
			case 1:
				if(!dynreg__value_is(v, vlen, "register")){
					*why = "authType must be register";
					return -1;
				}
				break;
			case 2:
				if(!dynreg__value_is(v, vlen, "2")){
					*why = "securemode must be 2";
					return -1;
				}
				break;
			case 3:
				if((c->sign_method = dynreg__method(v, vlen)) == SIGN_NONE){
					*why = "signmethod must be hmacsha256, hmacsha1 or hmacmd5";
					return -1;
				}
				break;
			case 4:
				if(!dynreg__alnum(v, vlen, DYNREG_INSTANCE_ID_MAX, true)){
					*why = "instanceId must be 1 to 64 letters, digits, - and _";
					return -1;
				}
				memcpy(c->instance_id, v, vlen);
				c->instance_id[vlen] = '\0';
				break;
		}
		if(!comma) break;
		p = comma + 1;
	}
	if(!seen[0] || !seen[1] || !seen[2] || !seen[3]){
		*why = "the client id must carry random, authType, securemode and signmethod";
		return -1;
	}
	return 0;
}

/* username "<dn>&<pk>" */
static int dynreg__username(const char *username, struct dynreg_connect *c, const char **why)
{
	const char *amp;
	size_t len, dlen, plen;

	if(!username || (len = strnlen(username, DEVICE_NAME_MAX + PRODUCT_KEY_MAX + 2)) > DEVICE_NAME_MAX + PRODUCT_KEY_MAX + 1
			|| !(amp = memchr(username, '&', len))){
		*why = "the username must be <DeviceName>&<ProductKey>";
		return -1;
	}
	dlen = (size_t)(amp - username);
	plen = len - dlen - 1;
	if(!request__device_name_valid(username, dlen)){
		*why = "the username's DeviceName breaks the DeviceName rules (4 to 32 of letters, digits and - _ @ . :)";
		return -1;
	}
	if(!request__product_key_valid(amp + 1, plen)){
		*why = "the username's ProductKey is not a ProductKey";
		return -1;
	}
	memcpy(c->device_name, username, dlen);
	c->device_name[dlen] = '\0';
	memcpy(c->product_key, amp + 1, plen);
	c->product_key[plen] = '\0';
	return 0;
}

/* The sign: exactly the method's HMAC length in hex digits. */
static int dynreg__password(const char *password, struct dynreg_connect *c, const char **why)
{
	size_t want = c->sign_method == SIGN_HMACSHA256 ? 64 : c->sign_method == SIGN_HMACSHA1 ? 40 : 32;
	size_t len = password ? strnlen(password, SIGN_HEX_MAX + 1) : 0;

	if(!request__hex_valid(password, len, want)){
		*why = "the password must be the sign: the hex HMAC of the method signmethod names";
		return -1;
	}
	memcpy(c->sign, password, len);
	c->sign[len] = '\0';
	return 0;
}

int dynreg__parse(const char *client_id, const char *username, const char *password,
		struct dynreg_connect *c, const char **why)
{
	size_t len, plen, prefix_len, dlen;
	const char *params;
	const char *unused;

	if(!why) why = &unused;
	memset(c, 0, sizeof(*c));
	len = client_id ? strnlen(client_id, DYNREG_CLIENT_ID_MAX + 1) : 0;
	if(len == 0 || len > DYNREG_CLIENT_ID_MAX || !dynreg__params(client_id, len, &params, &plen, &prefix_len)){
		*why = "the client id must be <DeviceName>.<ProductKey>|<parameters>|, at most 256 characters";
		goto fail;
	}
	if(dynreg__params_check(params, plen, c, why) || dynreg__username(username, c, why)) goto fail;
	/* the prefix names the same device as the username: "<dn>.<pk>" (the Link SDK) or "<dn>" */
	dlen = strlen(c->device_name);
	if(!(prefix_len == dlen && !memcmp(client_id, c->device_name, dlen))
			&& !(prefix_len == dlen + 1 + strlen(c->product_key) && !memcmp(client_id, c->device_name, dlen)
				&& client_id[dlen] == '.' && !memcmp(client_id + dlen + 1, c->product_key, strlen(c->product_key)))){
		*why = "the client id must start with <DeviceName>.<ProductKey> of the username";
		goto fail;
	}
	if(dynreg__password(password, c, why)) goto fail;
	return 0;
fail:
	OPENSSL_cleanse(c, sizeof(*c));
	return -1;
}

bool dynreg__sign_valid(const struct dynreg_connect *c, const char *product_secret)
{
	return auth__sign_valid(c->sign_method, product_secret, c->product_key, c->device_name, c->random, c->sign);
}

char *dynreg__reply_success(const struct device_triple *t, size_t *len)
{
	json_t *root = json_pack("{s:s, s:s, s:s}", "productKey", t->product_key, "deviceName", t->device_name,
			"deviceSecret", t->device_secret);
	json_t *secret;
	char *out;

	if(!root) return NULL;
	out = json_dumps(root, JSON_COMPACT);
	if(out && len) *len = strlen(out);
	/* jansson frees without wiping: the tree's copy of the secret is wiped first */
	secret = json_object_get(root, "deviceSecret");
	if(secret) OPENSSL_cleanse((void *)json_string_value(secret), json_string_length(secret));
	json_decref(root);
	return out;
}

int dynreg__ports_parse(const char *s, int *ports, int max)
{
	int count = 0;

	if(!s || !*s) return -1;
	for(;;){
		char *end;
		long v;

		if(*s < '0' || *s > '9' || count == max) return -1;
		errno = 0;
		v = strtol(s, &end, 10);
		if(errno || v < 1 || v > 65535) return -1;
		if(ports) ports[count] = (int)v;
		count++;
		if(*end == '\0') return count;
		if(*end != ',') return -1;
		s = end + 1;
	}
}

/* Link SDK dynamic registration: the device proves itself with its product's secret, and the
 * DeviceSecret goes back in the clear, so only over the listeners named as TLS ones. */
int dynreg__finish_config(struct bootstrap_config *cfg, char *err, size_t errlen)
{
	if(cfg->dynreg_mqtt == DYNREG_OFF){
		if(cfg->dynreg_tls_ports){
			text__error(err, errlen, "plugin_opt_dynreg_tls_ports: only used with plugin_opt_dynreg_mqtt on");
			return -1;
		}
		return 0;
	}
	if(cfg->request_auth != REQUEST_AUTH_SIGN){
		text__error(err, errlen, "plugin_opt_dynreg_mqtt: on needs plugin_opt_request_auth sign "
				"(the device signs with its product's ProductSecret)");
		return -1;
	}
	if(!cfg->dynreg_tls_ports){
		text__error(err, errlen, "plugin_opt_dynreg_mqtt: on needs plugin_opt_dynreg_tls_ports, the ports of the listeners "
				"with TLS (the DeviceSecret is sent in the clear inside the connection; the plugin refuses dynreg on any other)");
		return -1;
	}
	cfg->dynreg_port_count = dynreg__ports_parse(cfg->dynreg_tls_ports, cfg->dynreg_ports, DYNREG_PORTS_MAX);
	return cfg->dynreg_port_count > 0 ? 0 : -1;
}
