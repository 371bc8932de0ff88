/* libFuzzer harness: a Link SDK dynregmq CONNECT's client id, username and password, as any
 * client may send them (three NUL-separated strings; a missing one is NULL). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bootstrap_dynreg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size + 3), *fields[3] = { NULL, NULL, NULL }, *p;
	struct dynreg_connect c;
	const char *why = NULL;
	enum dynreg_kind kind;

	if(!buf) return 0;
	memcpy(buf, data, size);
	buf[size] = buf[size + 1] = buf[size + 2] = '\0';
	p = buf;
	for(int i = 0; i < 3 && p <= buf + size; i++){
		fields[i] = p;
		p += strlen(p) + 1;
	}
	kind = dynreg__kind(fields[0]);
	if(dynreg__parse(fields[0], fields[1], fields[2], &c, &why) == 0){
		/* what passes is a register CONNECT with a valid name, product, random and sign */
		size_t sl = strlen(c.sign), rl = strlen(c.random);
		if(kind != DYNREG_REGISTER) abort();
		if(!request__device_name_valid(c.device_name, strlen(c.device_name))) abort();
		if(!request__product_key_valid(c.product_key, strlen(c.product_key))) abort();
		if(rl < 1 || rl > DYNREG_RANDOM_MAX) abort();
		if(sl != (c.sign_method == SIGN_HMACSHA256 ? 64u : c.sign_method == SIGN_HMACSHA1 ? 40u : 32u)) abort();
		(void)dynreg__sign_valid(&c, "fuzz-product-secret");
	}else if(!why || !why[0] || c.device_name[0] || c.sign[0]){
		abort();
	}
	free(buf);
	return 0;
}
