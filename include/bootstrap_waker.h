#ifndef BOOTSTRAP_WAKER_H
#define BOOTSTRAP_WAKER_H
/* Waking the broker's main loop from the worker thread without calling any broker function:
 * an ordinary MQTT client connection to the broker's own loopback listener, on which a
 * PINGREQ makes the broker's poll return, so the next MOSQ_EVT_TICK (which publishes the
 * results) comes at once instead of after the idle wait (up to 100 ms on 2.0).
 * Used by the worker thread only. */
#include <stdbool.h>

struct waker;

/* port 0 disables it. Nothing is connected until the first waker__poke(). Every connection
 * has a client id of its own: client_id_prefix, '-', and 32 hex digits of RAND_bytes, so no
 * other client can guess it and take the connection over (a takeover would close it and leave
 * replies to the broker's tick). A connection found closed is made again under a new id. */
struct waker *waker__new(int port, const char *client_id_prefix);
/* Sends a PINGREQ, connecting first if needed. False if the broker cannot be reached or
 * refused the connection: the plugin then falls back to the broker's own tick cadence. */
bool waker__poke(struct waker *w);
/* True once the broker refused the connection (e.g. it requires a username). */
bool waker__refused(const struct waker *w);
void waker__free(struct waker *w);

#endif
