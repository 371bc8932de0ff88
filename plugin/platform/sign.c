/* Alibaba Cloud's request signatures: RPC signature 1.0 (HMAC-SHA1 over the sorted query) and
 * V3 (ACS3-HMAC-SHA256 over a canonical request). Pure; any thread: the worker signs platform
 * calls with it, and the credentials provider its STS calls. The wire test keeps the bytes
 * identical to the official SDKs'. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "bootstrap_platform.h"

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
