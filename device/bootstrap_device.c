/* The device library's core (bootstrap_device.h): identity checks, topics, the random, the
 * sign and the reply key, opening a sealed triple, the IoT Platform connect credentials.
 * Caller's memory only; crypto through the port. */
#include <string.h>

#include "bootstrap_device_internal.h"

#define INFO_LABEL "mosquitto-bootstrap/v1/reply"

const char *const bootdev__triple_names[4] = { "ProductKey", "DeviceName", "DeviceSecret", "IotId" };

void bootdev__zero(void *p, size_t n)
{
	volatile uint8_t *v = (volatile uint8_t *)p;
	while(n--) *v++ = 0;
}

size_t bootdev__len(const char *s, size_t max)
{
	size_t n = 0;
	while(n <= max && s[n]) n++;
	return n;
}

static int is_alnum(int ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
}

/* DeviceName rules: 4 to 32 of letters, digits and - _ @ . : */
static int device_id__ok(const char *s, size_t len)
{
	if(len < 4 || len > BOOTDEV_DEVICE_ID_MAX) return 0;
	for(size_t i = 0; i < len; i++){
		if(!is_alnum((unsigned char)s[i]) && !strchr("-_@.:", s[i])) return 0;
	}
	return 1;
}

static int product_key__ok(const char *s, size_t len)
{
	if(len < 1 || len > BOOTDEV_PRODUCT_KEY_MAX) return 0;
	for(size_t i = 0; i < len; i++){
		if(!is_alnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '_') return 0;
	}
	return 1;
}

const char *bootdev_hmac_name(bootdev_hmac alg)
{
	switch(alg){
		case BOOTDEV_HMAC_SHA256: return "hmacsha256";
		case BOOTDEV_HMAC_SHA1: return "hmacsha1";
		case BOOTDEV_HMAC_MD5: return "hmacmd5";
	}
	return NULL;
}

const char *bootdev_status_name(bootdev_status s)
{
	switch(s){
		case BOOTDEV_OK: return "ok";
		case BOOTDEV_REFUSED: return "refused";
		case BOOTDEV_ERR_ARG: return "bad argument";
		case BOOTDEV_ERR_BUFFER: return "buffer too small";
		case BOOTDEV_ERR_RNG: return "rng failed";
		case BOOTDEV_ERR_CRYPTO: return "crypto backend failed";
		case BOOTDEV_ERR_MALFORMED: return "malformed reply";
		case BOOTDEV_ERR_NOT_SEALED: return "success not sealed";
		case BOOTDEV_ERR_FORGED: return "does not open with this request's key";
		case BOOTDEV_ERR_WRONG_DEVICE: return "sealed for another device or product";
	}
	return "unknown";
}

bootdev_status bootdev_init(bootdev_client *c, const struct bootdev_port *port, bootdev_rng rng, void *rng_ctx,
		const char *product_key, const char *device_id, const uint8_t *product_secret, size_t secret_len,
		bootdev_hmac sign_method)
{
	if(!c) return BOOTDEV_ERR_ARG;
	memset(c, 0, sizeof(*c));
	if(!port || !port->hmac || !port->hkdf_sha256 || !port->aes128gcm_open || !rng || !product_key || !device_id
			|| !product_secret || secret_len < 1 || secret_len > BOOTDEV_SECRET_MAX || !bootdev_hmac_name(sign_method)){
		return BOOTDEV_ERR_ARG;
	}
	if(!product_key__ok(product_key, bootdev__len(product_key, BOOTDEV_PRODUCT_KEY_MAX))
			|| !device_id__ok(device_id, bootdev__len(device_id, BOOTDEV_DEVICE_ID_MAX))){
		return BOOTDEV_ERR_ARG;
	}
	c->port = port;
	c->rng = rng;
	c->rng_ctx = rng_ctx;
	c->product_key = product_key;
	c->device_id = device_id;
	c->product_secret = product_secret;
	c->product_secret_len = secret_len;
	c->sign_method = sign_method;
	return BOOTDEV_OK;
}

void bootdev_wipe(bootdev_client *c)
{
	if(c) bootdev__zero(c, sizeof(*c));
}

/* out = a + b + c, NUL-terminated */
static bootdev_status cat3(const char *a, size_t alen, const char *b, size_t blen, const char *x, size_t xlen,
		char *out, size_t out_size, size_t *out_len)
{
	size_t n = alen + blen + xlen;

	if(!out || out_size <= n) return BOOTDEV_ERR_BUFFER;
	memcpy(out, a, alen);
	memcpy(out + alen, b, blen);
	memcpy(out + alen + blen, x, xlen);
	out[n] = '\0';
	if(out_len) *out_len = n;
	return BOOTDEV_OK;
}

static int topic__ok(const char *s, size_t len)
{
	if(len < 1) return 0;
	for(size_t i = 0; i < len; i++){
		if(s[i] == '+' || s[i] == '#') return 0;
	}
	return 1;
}

#define TOPIC_MAX 256

bootdev_status bootdev_request_topic(bootdev_format fmt, const char *base, char *out, size_t out_size, size_t *out_len)
{
	size_t blen;

	if(!base) base = "bootstrap/register";
	blen = bootdev__len(base, TOPIC_MAX);
	if(blen > TOPIC_MAX || !topic__ok(base, blen) || (fmt != BOOTDEV_JSON && fmt != BOOTDEV_CBOR)) return BOOTDEV_ERR_ARG;
	return cat3(base, blen, fmt == BOOTDEV_CBOR ? "/cbor" : "", fmt == BOOTDEV_CBOR ? 5 : 0, "", 0, out, out_size, out_len);
}

bootdev_status bootdev_reply_topic(bootdev_format fmt, const char *tmpl, const char *device_id,
		char *out, size_t out_size, size_t *out_len)
{
	static const char mark[] = "{deviceId}";
	const size_t mlen = sizeof(mark) - 1;
	size_t tlen, dlen, at = 0, n;
	const char *hit = NULL;
	bootdev_status rc;

	if(!tmpl) tmpl = "bootstrap/reply/{deviceId}";
	if(!device_id || (fmt != BOOTDEV_JSON && fmt != BOOTDEV_CBOR)) return BOOTDEV_ERR_ARG;
	tlen = bootdev__len(tmpl, TOPIC_MAX);
	dlen = bootdev__len(device_id, BOOTDEV_DEVICE_ID_MAX);
	if(tlen > TOPIC_MAX || !topic__ok(tmpl, tlen) || !device_id__ok(device_id, dlen)) return BOOTDEV_ERR_ARG;
	/* {deviceId} exactly once */
	for(size_t i = 0; i + mlen <= tlen; i++){
		if(!memcmp(tmpl + i, mark, mlen)){
			if(hit) return BOOTDEV_ERR_ARG;
			hit = tmpl + i;
			at = i;
		}
	}
	if(!hit) return BOOTDEV_ERR_ARG;
	rc = cat3(tmpl, at, device_id, dlen, hit + mlen, tlen - at - mlen, out, out_size, &n);
	if(rc != BOOTDEV_OK) return rc;
	if(fmt == BOOTDEV_CBOR){
		if(out_size <= n + 5) return BOOTDEV_ERR_BUFFER;
		memcpy(out + n, "/cbor", 6);
		n += 5;
	}
	if(out_len) *out_len = n;
	return BOOTDEV_OK;
}

static void hex__write(const uint8_t *b, size_t n, char *out, int upper)
{
	const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
	for(size_t i = 0; i < n; i++){
		out[2 * i] = digits[b[i] >> 4];
		out[2 * i + 1] = digits[b[i] & 15];
	}
	out[2 * n] = '\0';
}

#define PART(s, n) { (const uint8_t *)(s), (n) }

bootdev_status bootdev_sign(const struct bootdev_port *port, bootdev_hmac alg, const uint8_t *secret, size_t secret_len,
		const char *product_key, const char *device_id, const char *random, char hex[2 * BOOTDEV_MAC_MAX + 1])
{
	uint8_t mac[BOOTDEV_MAC_MAX];
	size_t mac_len = 0;
	size_t pk_len, id_len, r_len;

	if(!port || !port->hmac || !secret || !product_key || !device_id || !random || !hex || !bootdev_hmac_name(alg)){
		return BOOTDEV_ERR_ARG;
	}
	pk_len = bootdev__len(product_key, BOOTDEV_PRODUCT_KEY_MAX);
	id_len = bootdev__len(device_id, BOOTDEV_DEVICE_ID_MAX);
	r_len = bootdev__len(random, 64);
	if(pk_len > BOOTDEV_PRODUCT_KEY_MAX || id_len > BOOTDEV_DEVICE_ID_MAX || r_len > 64) return BOOTDEV_ERR_ARG;
	{
		const struct bootdev_part parts[6] = {
			PART("deviceName", 10), PART(device_id, id_len), PART("productKey", 10), PART(product_key, pk_len),
			PART("random", 6), PART(random, r_len),
		};
		if(port->hmac(port, alg, secret, secret_len, parts, 6, mac, &mac_len) || mac_len < 16 || mac_len > BOOTDEV_MAC_MAX){
			bootdev__zero(mac, sizeof(mac));
			return BOOTDEV_ERR_CRYPTO;
		}
	}
	hex__write(mac, mac_len, hex, 0);
	bootdev__zero(mac, sizeof(mac));
	return BOOTDEV_OK;
}

bootdev_status bootdev_reply_key(const struct bootdev_port *port, const uint8_t *secret, size_t secret_len,
		const char *random, const char *product_key, const char *device_id, uint8_t key[BOOTDEV_KEY_LEN])
{
	uint8_t info[sizeof(INFO_LABEL) + BOOTDEV_PRODUCT_KEY_MAX + 1 + BOOTDEV_DEVICE_ID_MAX];
	size_t pk_len, id_len, r_len, n = sizeof(INFO_LABEL); /* the label and its 0 */
	int rc;

	if(!port || !port->hkdf_sha256 || !secret || !random || !product_key || !device_id || !key) return BOOTDEV_ERR_ARG;
	pk_len = bootdev__len(product_key, BOOTDEV_PRODUCT_KEY_MAX);
	id_len = bootdev__len(device_id, BOOTDEV_DEVICE_ID_MAX);
	r_len = bootdev__len(random, 64);
	if(pk_len > BOOTDEV_PRODUCT_KEY_MAX || id_len > BOOTDEV_DEVICE_ID_MAX || r_len > 64) return BOOTDEV_ERR_ARG;
	memcpy(info, INFO_LABEL, sizeof(INFO_LABEL));
	memcpy(info + n, product_key, pk_len);
	n += pk_len;
	info[n++] = 0;
	memcpy(info + n, device_id, id_len);
	n += id_len;
	rc = port->hkdf_sha256(port, (const uint8_t *)random, r_len, secret, secret_len, info, n, key, BOOTDEV_KEY_LEN);
	return rc ? BOOTDEV_ERR_CRYPTO : BOOTDEV_OK;
}

bootdev_status bootdev__prepare(bootdev_client *c, char sign[2 * BOOTDEV_MAC_MAX + 1])
{
	uint8_t r[BOOTDEV_RANDOM_BYTES];
	bootdev_status rc;

	if(!c || !c->port) return BOOTDEV_ERR_ARG;
	/* whatever happens now, the earlier request's reply no longer opens */
	c->asked = 0;
	bootdev__zero(c->key, sizeof(c->key));
	if(c->rng(c->rng_ctx, r, sizeof(r))) return BOOTDEV_ERR_RNG;
	hex__write(r, sizeof(r), c->random, 0);
	rc = bootdev_reply_key(c->port, c->product_secret, c->product_secret_len, c->random, c->product_key, c->device_id, c->key);
	if(rc == BOOTDEV_OK){
		rc = bootdev_sign(c->port, c->sign_method, c->product_secret, c->product_secret_len, c->product_key,
				c->device_id, c->random, sign);
	}
	if(rc != BOOTDEV_OK){
		bootdev__zero(c->key, sizeof(c->key));
		return rc;
	}
	c->asked = 1;
	return BOOTDEV_OK;
}

bootdev_status bootdev__open(const bootdev_client *c, const uint8_t iv[12], uint8_t *ct, size_t ct_len, const uint8_t tag[16])
{
	if(!c->asked) return BOOTDEV_ERR_FORGED; /* nothing asked: nothing can open */
	if(c->port->aes128gcm_open(c->port, c->key, iv, ct, ct_len, tag, ct)){
		bootdev__zero(ct, ct_len); /* whatever a failed open left */
		return BOOTDEV_ERR_FORGED;
	}
	return BOOTDEV_OK;
}

const char *bootdev__keep(struct bootdev__arena *a, const uint8_t *s, size_t len)
{
	char *at;

	if(a->left < len + 1) return NULL;
	at = (char *)a->at;
	memmove(at, s, len);
	at[len] = '\0';
	a->at += len + 1;
	a->left -= len + 1;
	return at;
}

/* printable ASCII, without the quote and backslash a JSON string would have escaped */
static int text__ok(const uint8_t *s, size_t len, size_t min, size_t max)
{
	if(len < min || len > max) return 0;
	for(size_t i = 0; i < len; i++){
		if(s[i] < 0x20 || s[i] > 0x7e || s[i] == '"' || s[i] == '\\') return 0;
	}
	return 1;
}

static int span__is(struct bootdev__span s, const char *want)
{
	size_t n = strlen(want);
	return s.len == n && !memcmp(s.p, want, n);
}

bootdev_status bootdev__triple(const bootdev_client *c, const struct bootdev__span f[4], struct bootdev__arena *a,
		bootdev_reply *out)
{
	if(!text__ok(f[0].p, f[0].len, 1, BOOTDEV_PRODUCT_KEY_MAX) || !text__ok(f[1].p, f[1].len, 1, BOOTDEV_DEVICE_ID_MAX)
			|| !text__ok(f[2].p, f[2].len, 1, 128) || !text__ok(f[3].p, f[3].len, 0, 128)){
		return BOOTDEV_ERR_MALFORMED;
	}
	if(!span__is(f[0], c->product_key) || !span__is(f[1], c->device_id)) return BOOTDEV_ERR_WRONG_DEVICE;
	out->product_key = bootdev__keep(a, f[0].p, f[0].len);
	out->device_name = bootdev__keep(a, f[1].p, f[1].len);
	out->device_secret = bootdev__keep(a, f[2].p, f[2].len);
	out->iot_id = bootdev__keep(a, f[3].p, f[3].len);
	if(!out->product_key || !out->device_name || !out->device_secret || !out->iot_id) return BOOTDEV_ERR_BUFFER;
	return BOOTDEV_OK;
}

bootdev_status bootdev__refusal(struct bootdev__span code, struct bootdev__span message, struct bootdev__arena *a,
		bootdev_reply *out)
{
	/* codes are lower-case names (docs/contract.md "Error codes") */
	if(code.len < 1 || code.len > 64) return BOOTDEV_ERR_MALFORMED;
	for(size_t i = 0; i < code.len; i++){
		if(!((code.p[i] >= 'a' && code.p[i] <= 'z') || code.p[i] == '_')) return BOOTDEV_ERR_MALFORMED;
	}
	out->code = bootdev__keep(a, code.p, code.len);
	out->message = bootdev__keep(a, message.p, message.len);
	if(!out->code || !out->message) return BOOTDEV_ERR_BUFFER;
	/* for humans, and not authenticated: nothing a terminal would act on */
	for(char *m = (char *)out->message; *m; m++){
		if((unsigned char)*m < 0x20 || (unsigned char)*m > 0x7e) *m = '?';
	}
	return BOOTDEV_REFUSED;
}

bootdev_status bootdev_credentials_make(const struct bootdev_port *port, const char *product_key,
		const char *device_name, const char *device_secret, const char *client_id, const char *timestamp_ms,
		int securemode, bootdev_credentials *out)
{
	static const char mode_text[] = "|securemode=";
	static const char sign_text[] = ",signmethod=hmacsha1,timestamp=";
	uint8_t mac[BOOTDEV_MAC_MAX];
	size_t mac_len = 0, pk_len, dn_len, ds_len, cid_len, ts_len, n;

	if(!port || !port->hmac || !product_key || !device_name || !device_secret || !timestamp_ms || !out
			|| (securemode != 2 && securemode != 3)){
		return BOOTDEV_ERR_ARG;
	}
	if(!client_id) client_id = device_name;
	pk_len = bootdev__len(product_key, BOOTDEV_PRODUCT_KEY_MAX);
	dn_len = bootdev__len(device_name, BOOTDEV_DEVICE_ID_MAX);
	ds_len = bootdev__len(device_secret, 128);
	cid_len = bootdev__len(client_id, BOOTDEV_CLIENT_ID_MAX);
	ts_len = bootdev__len(timestamp_ms, 20);
	if(pk_len > BOOTDEV_PRODUCT_KEY_MAX || dn_len > BOOTDEV_DEVICE_ID_MAX || ds_len > 128 || cid_len > BOOTDEV_CLIENT_ID_MAX
			|| cid_len < 1 || ts_len > 20 || ts_len < 1 || strchr(client_id, '|') || strchr(client_id, ',')){
		return BOOTDEV_ERR_ARG;
	}
	for(size_t i = 0; i < ts_len; i++){
		if(timestamp_ms[i] < '0' || timestamp_ms[i] > '9') return BOOTDEV_ERR_ARG;
	}
	/* <client_id>|securemode=<m>,signmethod=hmacsha1,timestamp=<T>| : at most 64+12+1+31+20+1 < 160 */
	n = 0;
	memcpy(out->client_id, client_id, cid_len);
	n += cid_len;
	memcpy(out->client_id + n, mode_text, sizeof(mode_text) - 1);
	n += sizeof(mode_text) - 1;
	out->client_id[n++] = (char)('0' + securemode);
	memcpy(out->client_id + n, sign_text, sizeof(sign_text) - 1);
	n += sizeof(sign_text) - 1;
	memcpy(out->client_id + n, timestamp_ms, ts_len);
	n += ts_len;
	out->client_id[n++] = '|';
	out->client_id[n] = '\0';
	/* <DeviceName>&<ProductKey>: at most 32+1+64 < 100 */
	memcpy(out->username, device_name, dn_len);
	out->username[dn_len] = '&';
	memcpy(out->username + dn_len + 1, product_key, pk_len);
	out->username[dn_len + 1 + pk_len] = '\0';
	{
		const struct bootdev_part parts[8] = {
			PART("clientId", 8), PART(client_id, cid_len), PART("deviceName", 10), PART(device_name, dn_len),
			PART("productKey", 10), PART(product_key, pk_len), PART("timestamp", 9), PART(timestamp_ms, ts_len),
		};
		if(port->hmac(port, BOOTDEV_HMAC_SHA1, (const uint8_t *)device_secret, ds_len, parts, 8, mac, &mac_len) || mac_len != 20){
			bootdev__zero(mac, sizeof(mac));
			return BOOTDEV_ERR_CRYPTO;
		}
	}
	hex__write(mac, mac_len, out->password, 1);
	bootdev__zero(mac, sizeof(mac));
	return BOOTDEV_OK;
}
