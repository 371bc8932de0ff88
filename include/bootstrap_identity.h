#ifndef BOOTSTRAP_IDENTITY_H
#define BOOTSTRAP_IDENTITY_H
/* request_auth identity: the deviceId a client certificate proves.
 *
 * Only what the broker verified counts: the certificate of the TLS handshake
 * (mosquitto_client_certificate(), given only where the listener has require_certificate
 * true). A username proves nothing by itself: with allow_anonymous true any client may send
 * any. The field read is plugin_opt_identity_field. It must hold exactly one value, without
 * NUL, that passes the DeviceName rules; anything else is no identity at all. Pure: no I/O,
 * no broker call; any thread. */
#include <stddef.h>

#include <openssl/x509.h>

#include "bootstrap_request.h"

/* Which part of the certificate names the device (plugin_opt_identity_field). */
enum identity_field {
	IDENTITY_FIELD_DEFAULT = 0, /* not set: cn */
	IDENTITY_FIELD_CN,          /* the subject's commonName, as use_identity_as_username reads it */
	IDENTITY_FIELD_SAN_DNS,     /* the one dNSName of subjectAltName */
	IDENTITY_FIELD_SAN_URI,     /* the one uniformResourceIdentifier of subjectAltName */
};

enum identity_result {
	IDENTITY_OK = 0,
	IDENTITY_NO_CERTIFICATE, /* the connection has no verified client certificate */
	IDENTITY_ABSENT,         /* the certificate has no such field */
	IDENTITY_AMBIGUOUS,      /* more than one: which would be the device? */
	IDENTITY_INVALID,        /* not a deviceId (DeviceName rules), or an embedded NUL */
};

/* The deviceId cert proves through field into out (NUL-terminated); cert NULL gives
 * IDENTITY_NO_CERTIFICATE. out is left empty unless IDENTITY_OK. */
enum identity_result identity__from_certificate(X509 *cert, enum identity_field field, char out[DEVICE_NAME_MAX + 1]);

/* "CN", "DNS subjectAltName", "URI subjectAltName": for log lines and refusals. */
const char *identity__field_name(enum identity_field field);

/* Why a request with this result is refused: one static sentence, for the reply and the log. */
const char *identity__refusal(enum identity_result result, enum identity_field field);

#endif
