#ifndef BOOTSTRAP_HASH_H
#define BOOTSTRAP_HASH_H
/* The plugin's hash tables (jobs, replay cache, refusal limiters, allowlist) index text that
 * clients choose. A public hash lets them choose keys that collide and fill a probe window or
 * one long chain; so keys are hashed with SipHash-2-4 (OpenSSL's EVP_MAC "SIPHASH") under a
 * key drawn at random once per process. Any thread. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Takes a hold on the keyed hash, made if need be (OpenSSL's SipHash under a random key);
 * false, holding nothing, if OpenSSL cannot give one: the plugin refuses to start then. Each
 * plugin instance holds it from init to cleanup; broker thread. */
bool hash__acquire(void);
/* Lets go of a hold; the last one frees the keyed context (no table of any instance is used
 * after it). */
void hash__release(void);
/* The keyed hash of len bytes at data (low 32 bits of SipHash-2-4). Any thread. */
uint32_t hash__bytes(const void *data, size_t len);

#endif
