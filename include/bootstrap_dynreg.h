#ifndef BOOTSTRAP_DYNREG_H
#define BOOTSTRAP_DYNREG_H
/* Alibaba's Link SDK MQTT dynamic registration (dynregmq), as the device sends it in its CONNECT
 * (docs/link-sdk.md): recognising it, parsing it strictly, verifying its sign, and the answer
 * it expects on /ext/register. Pure; any thread (the plugin uses it on the broker thread,
 * plugin/broker/dynreg.c). */
#include <stdbool.h>
#include <stddef.h>

#include "bootstrap_auth.h"
#include "bootstrap_config.h"
#include "bootstrap_reply.h"
#include "bootstrap_request.h"

/* The topic the SDK reads its answer on; it subscribes to nothing. */
#define DYNREG_TOPIC "/ext/register"
/* client id "<DeviceName>.<ProductKey>|random=..,authType=..,securemode=2,signmethod=..[,instanceId=..]|":
 * longer is refused (the longest valid one is well under it) */
#define DYNREG_CLIENT_ID_MAX 256
#define DYNREG_RANDOM_MAX 64
#define DYNREG_INSTANCE_ID_MAX 64

enum dynreg_kind {
	DYNREG_NOT,      /* not a dynreg CONNECT: someone else decides */
	DYNREG_REGISTER, /* authType=register: the device wants its DeviceSecret */
	DYNREG_REGNWL,   /* authType=regnwl: "no pre-registration", answered with a deviceToken
	                  * that no OpenAPI produces: refused */
};

/* What kind of CONNECT the client id makes: a dynreg one ends with '|' and has an
 * authType=register or authType=regnwl parameter between its first '|' and the last. Cheap:
 * looks at the client id alone. One longer than DYNREG_CLIENT_ID_MAX that says
 * authType=register or regnwl anywhere is DYNREG_REGISTER, which dynreg__parse refuses. */
enum dynreg_kind dynreg__kind(const char *client_id);

struct dynreg_connect {
	char device_name[DEVICE_NAME_MAX + 1];
	char product_key[PRODUCT_KEY_MAX + 1];
	char random[DYNREG_RANDOM_MAX + 1];
	enum sign_method sign_method;
	char sign[SIGN_HEX_MAX + 1];
	char instance_id[DYNREG_INSTANCE_ID_MAX + 1]; /* "" when the client id carries none */
};

/* A DYNREG_REGISTER CONNECT, parsed strictly: the client id's prefix is "<dn>.<pk>" (the Link
 * SDK's) or "<dn>"; its parameters are exactly random (1 to 64 letters and digits),
 * authType=register, securemode=2, signmethod (hmacsha256, hmacsha1 or hmacmd5, any case)
 * and optionally instanceId (1 to 64 letters, digits, - _), each once, in any order; the
 * username is "<dn>&<pk>" with a valid DeviceName and ProductKey; the password is the sign,
 * as many hex digits (either case) as the method's HMAC has. 0, or -1 with *why (a static
 * sentence naming what is wrong, never echoing the input) and c zeroed. */
int dynreg__parse(const char *client_id, const char *username, const char *password,
		struct dynreg_connect *c, const char **why);

/* True when c's sign is HMAC(product_secret, "deviceName"<dn>"productKey"<pk>"random"<R>)
 * in hex of either case; constant time (auth__sign_valid). */
bool dynreg__sign_valid(const struct dynreg_connect *c, const char *product_secret);

/* {"productKey":..,"deviceName":..,"deviceSecret":..}: what the Link SDK reads (deviceSecret
 * alone, in fact), in the clear. malloc'd; free with reply__free (it holds a secret). */
char *dynreg__reply_success(const struct device_triple *triple, size_t *len);

/* "8883" or "8883,8884": 1 to max ports from 1 to 65535, separated by commas. The count, or
 * -1. ports (max of them) may be NULL to check only. */
int dynreg__ports_parse(const char *s, int *ports, int max);

/* config__finish's part: dynreg_mqtt on needs request_auth sign and dynreg_tls_ports (parsed
 * into dynreg_ports); dynreg_tls_ports is refused without it. 0, or -1 with err. */
int dynreg__finish_config(struct bootstrap_config *cfg, char *err, size_t errlen);

#endif
