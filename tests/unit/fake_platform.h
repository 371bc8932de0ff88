#ifndef FAKE_PLATFORM_H
#define FAKE_PLATFORM_H
/* A stateful IoT Platform for unit tests of the worker's decisions: it takes the signed HTTP
 * requests the plugin builds (V1 form body or V3 query and headers), checks them as strictly as
 * tests/emulator/emulator.js does (signature, credentials and their expiry, the parameters each
 * action takes, device names, ApplyIds, page sizes, the quota) and answers with the platform's
 * own JSON bodies, so that the plugin's real parser reads them. Time is the caller's (a fake
 * clock): batch stages end when the caller's time passes their end. No I/O, no thread. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "bootstrap_actions.h"

#define FP_MAX_KEYS 8
#define FP_MAX_PRODUCTS 4
#define FP_WINDOW 4096

struct fp_device {
	char product_key[24];
	char name[40];
	char secret[33];
	char iot_id[32];
	char status[12];
};

enum fp_stage { FP_CHECK = 0, FP_CHECK_SUCCESS, FP_CHECK_FAILED, FP_CREATE, FP_CREATE_SUCCESS, FP_CREATE_FAILED };

struct fp_apply {
	long id;
	char product_key[24];
	char **names;
	size_t n;
	enum fp_stage stage;
	int64_t ends_ms;
	char **valid, **invalid, **reasons; /* the last *_FAILED verdict */
	size_t nvalid, ninvalid;
	size_t *created;                    /* indexes into devices, in creation order */
	size_t ncreated;
	bool forgotten;
};

struct fp_key {
	char id[64];
	char secret[64];
	char token[64];  /* "" for a long-term AccessKey */
	time_t expires_s; /* 0: never */
};

/* One call the platform received, as it read it. */
struct fp_call {
	enum platform_action action;
	char product_key[24];
	char *names;      /* DeviceName or DeviceName.1..N joined with ',' (malloc'd) */
	size_t nnames;
	char apply_id[24];
	long page, page_size;
	int64_t at_ms;
	char code[64];    /* what it answered: "" success, else the Code */
	char stage[16];   /* QueryBatchRegisterDeviceStatus: the Status it answered */
	char access_key_id[64];
};

struct fake_platform {
	int64_t now_ms;
	time_t now_s;
	char products[FP_MAX_PRODUCTS][24];
	size_t nproducts;
	struct fp_key keys[FP_MAX_KEYS];
	size_t nkeys;
	struct fp_device *devices;
	size_t ndevices, cap_devices;
	struct fp_apply *applies;
	size_t napplies, cap_applies;
	long next_apply_id;
	int64_t check_ms, create_ms;
	bool stuck_check, stuck_create;
	bool denied[PLATFORM_ACTIONS]; /* refused as RAM does: 403 Forbidden.RAM */
	/* the account's quota per action (0: none) enforced on arrival as the emulator does:
	 * more than floor(qps) calls in the last 1000 ms are answered Throttling.User */
	double quota[PLATFORM_ACTIONS];
	int64_t window[PLATFORM_ACTIONS][FP_WINDOW];
	size_t window_n[PLATFORM_ACTIONS];
	/* every call, in order */
	struct fp_call *calls;
	size_t ncalls, cap_calls;
	unsigned long long created_by_register, created_by_batch, throttled, refused_signature, refused_expired;
	unsigned long long bad_requests; /* refusals that mean the plugin sent something wrong */
	char last_bad[200];
	unsigned long long seq;
};

/* The answer to one request. */
struct fp_answer {
	long status;
	char *body; /* malloc'd */
};

void fp_init(struct fake_platform *fp, int64_t now_ms, time_t now_s);
void fp_free(struct fake_platform *fp);
void fp_add_product(struct fake_platform *fp, const char *product_key);
/* A key the platform accepts; token NULL for a long-term AccessKey; expires_s 0: never. */
void fp_add_key(struct fake_platform *fp, const char *id, const char *secret, const char *token, time_t expires_s);
/* A device registered before the test (no call counted), UNACTIVE. */
struct fp_device *fp_preregister(struct fake_platform *fp, const char *product_key, const char *name);
struct fp_device *fp_device(struct fake_platform *fp, const char *product_key, const char *name);
/* Moves time on; stages whose time has come end. */
void fp_set_time(struct fake_platform *fp, int64_t now_ms, time_t now_s);
/* Forgets every ApplyId (a platform restart). */
void fp_forget_applies(struct fake_platform *fp);
struct fp_apply *fp_apply(struct fake_platform *fp, long id);

/* Handles one signed request: method "POST", url, body (may be NULL), headers ("Name: value",
 * NULL-terminated; may be NULL). Fills out; 0, or -1 out of memory. */
int fp_handle(struct fake_platform *fp, const char *url, const char *body, const char *const *headers, struct fp_answer *out);
void fp_answer_free(struct fp_answer *a);

/* A gateway error (Throttling.User, ServiceUnavailable, SignatureDoesNotMatch ...) as the
 * real gateway words it, for faults a test injects instead of handling a call. */
void fp_gateway_error(struct fp_answer *out, long status, const char *code, const char *message);

/* How many calls of action the platform received. */
size_t fp_count(const struct fake_platform *fp, enum platform_action action);
/* The i-th call of action (from 0), or NULL. */
const struct fp_call *fp_nth(const struct fake_platform *fp, enum platform_action action, size_t i);
const struct fp_call *fp_last(const struct fake_platform *fp);

/* Grows an array of cap items of size bytes to hold need (doubling); aborts when out of memory:
 * the fakes are test code. Shared by fake_platform.c and fake_world.c. */
void *fake_grow(void *p, size_t *cap, size_t need, size_t size);

#endif
