#ifndef BOOTSTRAP_HASH_H
#define BOOTSTRAP_HASH_H
/* The plugin's hash tables (jobs, replay cache, refusal limiters, allowlist) index text that
 * clients choose. A public hash lets them choose keys that collide and fill a probe window or
 * one long chain; so keys are hashed with SipHash-2-4 (OpenSSL's EVP_MAC "SIPHASH") under a
 * key drawn at random once per process. Any thread. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* True when the keyed hash is ready (OpenSSL has SipHash and gave a random key); the plugin
 * refuses to start without it. */
bool hash__ready(void);
/* The keyed hash of len bytes at data (low 32 bits of SipHash-2-4). */
uint32_t hash__bytes(const void *data, size_t len);
/* The keyed hash of a C string. */
uint32_t hash__string(const char *s);
/* Frees the keyed context (the plugin's cleanup, last, on the broker thread: no table is used
 * after it). Hashes after it are 0: correct, only slow. */
void hash__cleanup(void);

#endif
