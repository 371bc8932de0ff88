/* The device library's optional calls (bootstrap_device.h), in a file of their own so that a
 * firmware links them only if it calls them: the IoT Platform connect credentials, the topics
 * of a broker whose topics are not the defaults, the sign and the reply key on their own (for
 * tests and other clients), status names for logs. Caller's memory only; crypto through the
 * port. */
#include <string.h>

#include "bootstrap_device_internal.h"

#define PART(s, n) { (const uint8_t *)(s), (n) }

const char *bootdev_status_name(bootdev_status s)
{
	/* one array, not string literals: its own section, which a firmware that never calls this
	 * leaves out (-fdata-sections, --gc-sections) */
	static const char names[] = "ok\0refused\0bad argument\0buffer too small\0rng failed\0crypto backend failed\0"
		"malformed reply\0success not sealed\0does not open with this request's key\0"
		"sealed for another device or product\0unknown";
	const char *at = names;

	/* unsigned: a value below 0 (where enums are ints) is as unknown as one above the last */
	for(unsigned i = 0; i < (unsigned)s && i <= (unsigned)BOOTDEV_ERR_WRONG_DEVICE; i++) at += strlen(at) + 1;
	return at;
}

/* tmpl into out, NUL-terminated: its {deviceId} (exactly one) replaced by device_id when there
 * is one, "/cbor" after it for CBOR. No wildcards. */
static bootdev_status topic__make(bootdev_format fmt, const char *p, const char *device_id, char *out, size_t out_size,
		size_t *out_len)
{
	size_t n = 0, dlen = 0;
	int hits = 0;

	if((unsigned)fmt > BOOTDEV_CBOR || !*p
			|| (device_id && !(dlen = bootdev__ident_len(device_id, 4, BOOTDEV_DEVICE_ID_MAX, BOOTDEV__ID_EXTRA)))){
		return BOOTDEV_ERR_ARG;
	}
	if(!out) return BOOTDEV_ERR_BUFFER;
	/* the template, then "/cbor" for CBOR (read by the same loop) */
	while(*p || (fmt == BOOTDEV_CBOR && (fmt = BOOTDEV_JSON, *(p = "/cbor")))){
		const char *piece = p;
		size_t len = 1;

		if(*p == '+' || *p == '#') return BOOTDEV_ERR_ARG;
		if(device_id && !strncmp(p, "{deviceId}", 10)){
			piece = device_id;
			len = dlen;
			p += 9;
			hits++;
		}
		p++;
		if(out_size - n <= len) return BOOTDEV_ERR_BUFFER;
		memcpy(out + n, piece, len);
		n += len;
	}
	if(device_id && hits != 1) return BOOTDEV_ERR_ARG;
	out[n] = '\0';
	if(out_len) *out_len = n;
	return BOOTDEV_OK;
}

bootdev_status bootdev_request_topic(bootdev_format fmt, const char *base, char *out, size_t out_size, size_t *out_len)
{
	return topic__make(fmt, base ? base : BOOTDEV_REQUEST_TOPIC_JSON, NULL, out, out_size, out_len);
}

bootdev_status bootdev_reply_topic(bootdev_format fmt, const char *tmpl, const char *device_id,
		char *out, size_t out_size, size_t *out_len)
{
	if(!device_id) return BOOTDEV_ERR_ARG;
	return topic__make(fmt, tmpl ? tmpl : BOOTDEV_REPLY_TOPIC_PREFIX "{deviceId}", device_id, out, out_size, out_len);
}

/* Length of s when it is at most max characters, else max + 1 (never reads past max + 1). */
static size_t bootdev__len(const char *s, size_t max)
{
	size_t n = 0;
	while(n <= max && s[n]) n++;
	return n;
}

/* A client with only what the sign and the key are made of, from the caller's strings: 0 when
 * one is too long. */
static int input(bootdev_client *c, const struct bootdev_port *port, const uint8_t *secret, size_t secret_len,
		const char *product_key, const char *device_id, const char *random)
{
	static const uint8_t max[3] = { BOOTDEV_PRODUCT_KEY_MAX, BOOTDEV_DEVICE_ID_MAX, 64 };
	const char *s[3];

	s[0] = product_key;
	s[1] = device_id;
	s[2] = random;
	memset(c, 0, sizeof(*c));
	bootdev__labels(c, port, secret, secret_len);
	for(int k = 0; k < 3; k++){
		struct bootdev_part *at = &c->ident[k == 0 ? BOOTDEV__PK : k == 1 ? BOOTDEV__ID : BOOTDEV__RANDOM];
		at->data = (const uint8_t *)s[k];
		at->len = bootdev__len(s[k], max[k]);
		if(at->len > max[k]) return 0;
	}
	return 1;
}

bootdev_status bootdev_sign(const struct bootdev_port *port, bootdev_hmac alg, const uint8_t *secret, size_t secret_len,
		const char *product_key, const char *device_id, const char *random, char hex[2 * BOOTDEV_MAC_MAX + 1])
{
	bootdev_client in;

	if(!port || !port->hmac || !secret || !product_key || !device_id || !random || !hex || !bootdev_hmac_name(alg)
			|| !input(&in, port, secret, secret_len, product_key, device_id, random)){
		return BOOTDEV_ERR_ARG;
	}
	return bootdev__sign(&in, alg, hex);
}

bootdev_status bootdev_reply_key(const struct bootdev_port *port, const uint8_t *secret, size_t secret_len,
		const char *random, const char *product_key, const char *device_id, uint8_t key[BOOTDEV_KEY_LEN])
{
	bootdev_client in;

	if(!port || !port->hkdf_sha256 || !secret || !random || !product_key || !device_id || !key
			|| !input(&in, port, secret, secret_len, product_key, device_id, random)){
		return BOOTDEV_ERR_ARG;
	}
	return bootdev__key(&in, key);
}

bootdev_status bootdev_credentials_make(const struct bootdev_port *port, const char *product_key,
		const char *device_name, const char *device_secret, const char *client_id, const char *timestamp_ms,
		int securemode, bootdev_hmac sign_method, bootdev_credentials *out)
{
	static const char mode_text[] = "|securemode=";
	static const char sign_text[] = ",signmethod=";
	static const char time_text[] = ",timestamp=";
	const char *method = bootdev_hmac_name(sign_method);
	uint8_t mac[BOOTDEV_MAC_MAX];
	size_t mac_len = 0, pk_len, dn_len, ds_len, cid_len, ts_len, n;

	/* the IoT Platform's MQTT sign methods: hmacsha256 and hmacsha1 (hmacmd5 is the request's only) */
	if(!port || !port->hmac || !product_key || !device_name || !device_secret || !timestamp_ms || !out
			|| (securemode != 2 && securemode != 3) || !method || sign_method == BOOTDEV_HMAC_MD5){
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
	/* <client_id>|securemode=<m>,signmethod=hmacsha256,timestamp=<T>| : at most 64+12+1+33+20+1 < 160 */
	n = 0;
	memcpy(out->client_id, client_id, cid_len);
	n += cid_len;
	memcpy(out->client_id + n, mode_text, sizeof(mode_text) - 1);
	n += sizeof(mode_text) - 1;
	out->client_id[n++] = (char)('0' + securemode);
	memcpy(out->client_id + n, sign_text, sizeof(sign_text) - 1);
	n += sizeof(sign_text) - 1;
	memcpy(out->client_id + n, method, strlen(method));
	n += strlen(method);
	memcpy(out->client_id + n, time_text, sizeof(time_text) - 1);
	n += sizeof(time_text) - 1;
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
		if(port->hmac(port, sign_method, (const uint8_t *)device_secret, ds_len, parts, 8, mac, &mac_len)
				|| mac_len != (sign_method == BOOTDEV_HMAC_SHA1 ? 20u : 32u)){
			bootdev__zero(mac, sizeof(mac));
			return BOOTDEV_ERR_CRYPTO;
		}
	}
	bootdev__hex(mac, mac_len, out->password);
	for(char *h = out->password; *h; h++){
		if(*h >= 'a') *h = (char)(*h - 'a' + 'A'); /* upper-case hex */
	}
	bootdev__zero(mac, sizeof(mac));
	return BOOTDEV_OK;
}
