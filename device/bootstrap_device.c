/* The device library's core (bootstrap_device.h): identity checks, topics, the random, the
 * sign and the reply key, opening a sealed triple. Caller's memory only; crypto through the
 * port. The optional calls are in bootstrap_device_extra.c. */
#include <stddef.h>
#include <string.h>

#include "bootstrap_device_internal.h"

#define INFO_LABEL "mosquitto-bootstrap/v1/reply"

void bootdev__zero(void *p, size_t n)
{
	volatile uint8_t *v = (volatile uint8_t *)p;
	while(n--) *v++ = 0;
}

size_t bootdev__ident_len(const char *s, size_t min, size_t max, const char *extra)
{
	size_t n = 0;

	for(; s[n]; n++){
		unsigned ch = (unsigned char)s[n];
		/* | 0x20 turns only A-Z into a-z */
		if(n >= max || ((ch | 0x20) - 'a' > 25 && ch - '0' > 9 && !strchr(extra, (int)ch))) return 0;
	}
	return n < min ? 0 : n;
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

bootdev_status bootdev_init(bootdev_client *c, const struct bootdev_port *port, bootdev_rng rng, void *rng_ctx,
		const char *product_key, const char *device_id, const uint8_t *product_secret, size_t secret_len,
		bootdev_hmac sign_method)
{
	if(!c) return BOOTDEV_ERR_ARG;
	memset(c, 0, sizeof(*c));
	if(!port || !port->hmac || !port->hkdf_sha256 || !port->aes128gcm_open || !rng || !product_key || !device_id
			|| !product_secret || secret_len - 1 >= BOOTDEV_SECRET_MAX || (unsigned)sign_method > BOOTDEV_HMAC_MD5
			|| !(c->ident[BOOTDEV__PK].len = bootdev__ident_len(product_key, 1, BOOTDEV_PRODUCT_KEY_MAX, "-_"))
			|| !(c->ident[BOOTDEV__ID].len = bootdev__ident_len(device_id, 4, BOOTDEV_DEVICE_ID_MAX, BOOTDEV__ID_EXTRA))){
		return BOOTDEV_ERR_ARG;
	}
	bootdev__labels(c, port, product_secret, secret_len);
	c->rng = rng;
	c->rng_ctx = rng_ctx;
	c->ident[BOOTDEV__PK].data = (const uint8_t *)product_key;
	c->ident[BOOTDEV__ID].data = (const uint8_t *)device_id;
	c->sign_method = sign_method;
	return BOOTDEV_OK;
}

void bootdev_wipe(bootdev_client *c)
{
	if(c) bootdev__zero(c, sizeof(*c));
}

bootdev_status bootdev_default_reply_topic(const bootdev_client *c, bootdev_format fmt, char *out, size_t out_size,
		size_t *out_len)
{
	static const char prefix[] = BOOTDEV_REPLY_TOPIC_PREFIX;
	size_t n;

	if(!c || !c->port || (unsigned)fmt > BOOTDEV_CBOR) return BOOTDEV_ERR_ARG;
	/* init checked the deviceId: no wildcards */
	n = sizeof(prefix) - 1 + c->ident[BOOTDEV__ID].len;
	if(!out || out_size <= n + 5 * fmt) return BOOTDEV_ERR_BUFFER;
	memcpy(out, prefix, sizeof(prefix) - 1);
	memcpy(out + sizeof(prefix) - 1, c->ident[BOOTDEV__ID].data, c->ident[BOOTDEV__ID].len);
	if(fmt == BOOTDEV_CBOR) memcpy(out + n, "/cbor", 5);
	n += 5 * fmt;
	out[n] = '\0';
	if(out_len) *out_len = n;
	return BOOTDEV_OK;
}

void bootdev__hex(const uint8_t *b, size_t n, char *out)
{
	for(size_t i = 0; i < 2 * n; i++){
		unsigned d = (unsigned)(i & 1 ? b[i / 2] : b[i / 2] >> 4) & 15;
		out[i] = (char)(d < 10 ? '0' + d : 'a' - 10 + d);
	}
	out[2 * n] = '\0';
}

bootdev_status bootdev__sign(const bootdev_client *c, bootdev_hmac alg, char hex[2 * BOOTDEV_MAC_MAX + 1])
{
	uint8_t mac[BOOTDEV_MAC_MAX];
	size_t mac_len = 0;
	int rc = c->port->hmac(c->port, alg, c->product_secret, c->product_secret_len, c->ident, 6, mac, &mac_len)
			|| mac_len < 16 || mac_len > BOOTDEV_MAC_MAX;

	if(!rc) bootdev__hex(mac, mac_len, hex);
	bootdev__zero(mac, sizeof(mac));
	return rc ? BOOTDEV_ERR_CRYPTO : BOOTDEV_OK;
}

bootdev_status bootdev__key(const bootdev_client *c, uint8_t key[BOOTDEV_KEY_LEN])
{
	uint8_t info[sizeof(INFO_LABEL) + BOOTDEV_PRODUCT_KEY_MAX + 1 + BOOTDEV_DEVICE_ID_MAX];
	size_t n = sizeof(INFO_LABEL); /* the label and its 0 */

	memcpy(info, INFO_LABEL, sizeof(INFO_LABEL));
	memcpy(info + n, c->ident[BOOTDEV__PK].data, c->ident[BOOTDEV__PK].len);
	n += c->ident[BOOTDEV__PK].len;
	info[n++] = 0;
	memcpy(info + n, c->ident[BOOTDEV__ID].data, c->ident[BOOTDEV__ID].len);
	n += c->ident[BOOTDEV__ID].len;
	return c->port->hkdf_sha256(c->port, c->ident[BOOTDEV__RANDOM].data, c->ident[BOOTDEV__RANDOM].len, c->product_secret, c->product_secret_len,
			info, n, key, BOOTDEV_KEY_LEN) ? BOOTDEV_ERR_CRYPTO : BOOTDEV_OK;
}

bootdev_status bootdev__prepare(bootdev_client *c, size_t room, char sign[2 * BOOTDEV_MAC_MAX + 1], const char *values[5])
{
	uint8_t r[BOOTDEV_RANDOM_BYTES];
	bootdev_status rc;

	if(!c || !c->port) return BOOTDEV_ERR_ARG;
	/* the values at their longest (init checked the identity): a method 10 */
	if(room < c->ident[BOOTDEV__PK].len + c->ident[BOOTDEV__ID].len + BOOTDEV_RANDOM_LEN + 10 + 2 * BOOTDEV_MAC_MAX) return BOOTDEV_ERR_BUFFER;
	/* whatever happens now, the earlier request's reply no longer opens */
	c->asked = 0;
	bootdev__zero(c->key, sizeof(c->key));
	if(c->rng(c->rng_ctx, r, sizeof(r))) return BOOTDEV_ERR_RNG;
	bootdev__hex(r, sizeof(r), c->random);
	c->ident[BOOTDEV__RANDOM].data = (const uint8_t *)c->random;
	c->ident[BOOTDEV__RANDOM].len = BOOTDEV_RANDOM_LEN;
	rc = bootdev__key(c, c->key);
	if(rc == BOOTDEV_OK) rc = bootdev__sign(c, c->sign_method, sign);
	if(rc != BOOTDEV_OK){
		bootdev__zero(c->key, sizeof(c->key));
		return rc;
	}
	c->asked = 1;
	values[0] = (const char *)c->ident[BOOTDEV__PK].data;
	values[1] = (const char *)c->ident[BOOTDEV__ID].data;
	values[2] = c->random;
	values[3] = bootdev_hmac_name(c->sign_method);
	values[4] = sign;
	return BOOTDEV_OK;
}

bootdev_status bootdev__open(struct bootdev__reading *x, const uint8_t iv[12], size_t ct_len, const uint8_t tag[16])
{
	const bootdev_client *c = x->c;

	if(!c->asked) return BOOTDEV_ERR_FORGED; /* nothing asked: nothing can open */
	if(c->port->aes128gcm_open(c->port, c->key, iv, x->at, ct_len, tag, x->at)){
		bootdev__zero(x->at, ct_len); /* whatever a failed open left */
		return BOOTDEV_ERR_FORGED;
	}
	x->out->sealed = 1;
	x->at += ct_len;
	x->left -= ct_len;
	return BOOTDEV_OK;
}

/* What a kept string may hold: printable ASCII without the quote and backslash a JSON string
 * would have escaped (the triple's strings); lower-case letters and _ (an error code, as
 * docs/contract.md "Error codes" has them); anything, but every byte outside printable ASCII
 * shown as '?' (an error message: for humans, and not authenticated, so nothing a terminal
 * would act on). */
enum { KEEP_TEXT, KEEP_CODE, KEEP_MESSAGE };

/* s, when it is min to max bytes of its kind, NUL-terminated at the arena's start into *to */
static bootdev_status keep(struct bootdev__reading *x, struct bootdev__span s, size_t min, size_t max, int kind,
		const char **to)
{
	char *at = (char *)x->at;

	if(s.len < min || s.len > max) return BOOTDEV_ERR_MALFORMED;
	if(x->left <= s.len) return BOOTDEV_ERR_BUFFER;
	/* the arena never overlaps what the reply readers give (the payload, or the plaintext
	 * before the arena) */
	for(size_t i = 0; i < s.len; i++){
		unsigned ch = s.p[i];
		if(ch < 0x20 || ch > 0x7e || (kind == KEEP_TEXT && (ch == '"' || ch == '\\'))
				|| (kind == KEEP_CODE && ch - 'a' > 25 && ch != '_')){
			if(kind != KEEP_MESSAGE) return BOOTDEV_ERR_MALFORMED;
			ch = '?';
		}
		at[i] = (char)ch;
	}
	at[s.len] = '\0';
	x->at += s.len + 1;
	x->left -= s.len + 1;
	*to = at;
	return BOOTDEV_OK;
}

static int span__is(struct bootdev__span s, struct bootdev_part want)
{
	return s.len == want.len && !memcmp(s.p, want.data, want.len);
}

bootdev_status bootdev__triple(struct bootdev__reading *x, const struct bootdev__span f[4])
{
	const bootdev_client *c = x->c;
	uint8_t *start = x->at;
	/* where ProductKey, DeviceName, DeviceSecret and IotId go */
	static const uint8_t at[4] = { offsetof(bootdev_reply, product_key), offsetof(bootdev_reply, device_name),
		offsetof(bootdev_reply, device_secret), offsetof(bootdev_reply, iot_id) };

	/* the ProductKey and DeviceName asked for (init checked their characters), a DeviceSecret,
	 * an IotId that may be empty */
	if(!span__is(f[0], c->ident[BOOTDEV__PK]) || !span__is(f[1], c->ident[BOOTDEV__ID])) return BOOTDEV_ERR_WRONG_DEVICE;
	for(int k = 0; k < 4; k++){
		bootdev_status rc = keep(x, f[k], k == 2, 128, KEEP_TEXT, (const char **)((uint8_t *)x->out + at[k]));
		if(rc != BOOTDEV_OK){
			/* a triple refused after its DeviceSecret was kept: the caller ignores this reply and
			 * wipes work only after BOOTDEV_OK, so nothing of it may stay */
			bootdev__zero(start, (size_t)(x->at - start));
			memset(x->out, 0, sizeof(*x->out));
			return rc;
		}
	}
	return BOOTDEV_OK;
}

bootdev_status bootdev__refusal(struct bootdev__reading *x, struct bootdev__span code, struct bootdev__span message)
{
	bootdev_status rc = keep(x, code, 1, 64, KEEP_CODE, &x->out->code);

	if(rc == BOOTDEV_OK) rc = keep(x, message, 0, BOOTDEV_REPLY_MAX, KEEP_MESSAGE, &x->out->message);
	return rc == BOOTDEV_OK ? BOOTDEV_REFUSED : rc;
}
