#ifndef BOOTSTRAP_AUDIT_H
#define BOOTSTRAP_AUDIT_H
/* The audit trail: one JSON line per decision, appended to a file that logrotate may move
 * away (audit__reopen() on SIGHUP). Never holds a secret. Broker thread only. */
#include <stddef.h>
#include <time.h>

#include "bootstrap_reason.h"

struct audit;

/* The client id is escaped in the line (\xNN, bootstrap_text.h), and cut, marked with its
 * length and a digest, beyond this many bytes; every other text field is validated or escaped
 * text already (escaped here too should a byte outside printable ASCII show it is not). */
#define AUDIT_CLIENT_SHOWN 128

/* A request that ends without a reply has an audit code of its own, the name of its reason
 * (bootstrap_reason.h, AUDIT_ONLY): connection_closed (bound reply dropped: its connection
 * ended), shutdown (abandoned when the broker stopped), superseded (a later request for the
 * device took its flow over). */

struct audit_entry {
	time_t time;
	const char *client;     /* requester's client id as the client sent it (escaped in the line), or NULL */
	const char *address;    /* requester's address, or NULL */
	const char *product_key; /* the product asked for (named, or the default), or NULL when the
	                          * request had none usable */
	const char *device_id;  /* or NULL when the request had none usable */
	const char *format;     /* the request's encoding, "json" or "cbor"; NULL for a summary line
	                         * or a Link SDK registration */
	enum bootstrap_reason reason; /* the precise cause; the line's code is the reason's: the
	                               * code the device got, or the reason's name with no reply */
	const char *platform_code; /* the platform's Code that settled it (printable ASCII), or NULL */
	const char *device;     /* "new", "existing" or NULL when unknown */
	const char *request_id; /* the platform's RequestId, or NULL */
	const char *action;     /* the platform action whose answer settled it (a batch action's
	                         * RequestId is the same for every device that call served), or NULL */
	long duration_ms;
	unsigned long long unanswered; /* a summary line: refusals left unanswered under the limit; 0: none */
};

/* NULL with err set when the file cannot be opened for appending. */
struct audit *audit__open(const char *path, char *err, size_t errlen);
/* Closes and opens the path again (after logrotate moved it). 0 or -1 with err set. */
int audit__reopen(struct audit *audit, char *err, size_t errlen);
void audit__record(struct audit *audit, const struct audit_entry *entry);
void audit__close(struct audit *audit);

#endif
