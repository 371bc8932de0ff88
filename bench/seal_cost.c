/* What sealing a reply costs the broker thread: the key derivation (done when a request is
 * accepted) plus building the sealed reply, against building the same reply in the clear.
 *
 *   build/seal_cost [iterations]      (a release build; prints one JSON line)
 *
 * Wall-clock per operation, best of five rounds, on one core. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "bootstrap_reply.h"
#include "bootstrap_seal.h"

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

int main(int argc, char **argv)
{
	const struct device_triple t = {"a1BwAGV0001", "dev-0001", "0123456789abcdef0123456789abcdef", "Q7uOhVRdZRRlDnTLv0001000100"};
	long n = argc > 1 ? atol(argv[1]) : 100000;
	double best_clear = 1e18, best_sealed = 1e18, best_key = 1e18;
	unsigned char key[SEAL_KEY_LEN];
	size_t len;

	if(n <= 0) return 2;
	for(int round = 0; round < 5; round++){
		double t0 = now_us();
		for(long i = 0; i < n; i++){
			char *p = reply__success(&t, &len);
			if(!p) return 1;
			reply__free(p, len);
		}
		double t1 = now_us();
		for(long i = 0; i < n; i++){
			if(seal__derive_key("ps-secret-123", "0e60924368ebe2f2", t.product_key, t.device_name, key)) return 1;
		}
		double t2 = now_us();
		for(long i = 0; i < n; i++){
			char *p = reply__success_sealed(key, &t, &len);
			if(!p) return 1;
			reply__free(p, len);
		}
		double t3 = now_us();
		if((t1 - t0) / n < best_clear) best_clear = (t1 - t0) / n;
		if((t2 - t1) / n < best_key) best_key = (t2 - t1) / n;
		if((t3 - t2) / n < best_sealed) best_sealed = (t3 - t2) / n;
	}
	printf("{\"iterations\":%ld,\"clear_reply_us\":%.2f,\"derive_key_us\":%.2f,\"sealed_reply_us\":%.2f,\"sealing_adds_us\":%.2f}\n",
			n, best_clear, best_key, best_sealed, best_key + best_sealed - best_clear);
	return 0;
}
