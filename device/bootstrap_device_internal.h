#ifndef BOOTSTRAP_DEVICE_INTERNAL_H
#define BOOTSTRAP_DEVICE_INTERNAL_H
/* Shared by bootstrap_device.c, the two format files and bootstrap_device_extra.c; not for
 * callers. */
#include "bootstrap_device.h"

/* The length of s when it is min to max of letters, digits and the characters of extra;
 * else 0. Reads at most max + 1 characters. A deviceId: 4 to 32, extra BOOTDEV__ID_EXTRA. */
size_t bootdev__ident_len(const char *s, size_t min, size_t max, const char *extra);
#define BOOTDEV__ID_EXTRA "-_@.:"

/* The request's common part: checks that room bytes hold its five values at their longest
 * (else BOOTDEV_ERR_BUFFER), then a new random into c->random, its key into c->key, the sign
 * (hex, NUL-terminated) into sign, and the values of the members productKey, deviceId,
 * random, signMethod and sign, in this order, into values. */
bootdev_status bootdev__prepare(bootdev_client *c, size_t room, char sign[2 * BOOTDEV_MAC_MAX + 1], const char *values[5]);

/* Lower-case hex of n bytes, NUL-terminated, into out. */
void bootdev__hex(const uint8_t *b, size_t n, char *out);

/* The sign and the reply key of c's identity: c->port, the ProductSecret and c->ident (the
 * deviceId, ProductKey and random at ID, PK and RANDOM, their lengths checked by the caller,
 * after their names). */
enum { BOOTDEV__ID = 1, BOOTDEV__PK = 3, BOOTDEV__RANDOM = 5 };
bootdev_status bootdev__sign(const bootdev_client *c, bootdev_hmac alg, char hex[2 * BOOTDEV_MAC_MAX + 1]);
bootdev_status bootdev__key(const bootdev_client *c, uint8_t key[BOOTDEV_KEY_LEN]);

/* A reply being read: the client, the caller's reply, and the arena where its strings go, NUL-
 * terminated (the work buffer; a sealed reply's plaintext takes its start first). */
struct bootdev__reading {
	const bootdev_client *c;
	bootdev_reply *out;
	uint8_t *at;
	size_t left;
};

/* The sealed triple's ct_len bytes at x->at opened in place with c->key and taken from the
 * arena: BOOTDEV_ERR_FORGED when the tag does not verify (or nothing was asked). */
bootdev_status bootdev__open(struct bootdev__reading *x, const uint8_t iv[12], size_t ct_len, const uint8_t tag[16]);

/* The four strings of a triple, as read (ProductKey, DeviceName, DeviceSecret, IotId): checks
 * their characters and that it is for c's device and product; keeps them in the arena into
 * x->out. */
struct bootdev__span { const uint8_t *p; size_t len; };
bootdev_status bootdev__triple(struct bootdev__reading *x, const struct bootdev__span f[4]);
/* An error reply's code and message, kept in the arena: BOOTDEV_REFUSED. */
bootdev_status bootdev__refusal(struct bootdev__reading *x, struct bootdev__span code, struct bootdev__span message);

/* The sign's labels ("deviceName", "productKey", "random" between the identity's values in
 * ident[]), the port and the secret: what bootdev_init() and the lower-level calls share. */
static inline void bootdev__labels(bootdev_client *c, const struct bootdev_port *port, const uint8_t *secret, size_t secret_len)
{
	c->ident[0].data = (const uint8_t *)"deviceName";
	c->ident[0].len = 10;
	c->ident[2].data = (const uint8_t *)"productKey";
	c->ident[2].len = 10;
	c->ident[4].data = (const uint8_t *)"random";
	c->ident[4].len = 6;
	c->port = port;
	c->product_secret = secret;
	c->product_secret_len = secret_len;
}

/* Overwrites n bytes in a way the compiler keeps. */
void bootdev__zero(void *p, size_t n);

#endif
