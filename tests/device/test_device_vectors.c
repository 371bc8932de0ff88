/* The published vectors in device_vectors.h (which the device tests use, on the host and on a
 * Cortex-M) are docs/contract.md's: each value must appear in it, in the sentence or table row
 * that publishes it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "device_vectors.h"

static int failures;

static void published(const char *doc, const char *what, const char *value)
{
	char quoted[256];

	snprintf(quoted, sizeof(quoted), "`%s`", value);
	if(!strstr(doc, quoted) && !strstr(doc, value)){
		printf("FAIL: %s %s is not in docs/contract.md\n", what, value);
		failures++;
	}
}

int main(void)
{
	static char doc[200000];
	FILE *f = fopen(CONTRACT_MD, "rb");
	size_t n;

	if(!f){
		printf("FAIL: cannot read %s\n", CONTRACT_MD);
		return 1;
	}
	n = fread(doc, 1, sizeof(doc) - 1, f);
	fclose(f);
	doc[n] = '\0';
	published(doc, "seal secret", "ProductSecret `" V_SEAL_SECRET "`");
	published(doc, "seal random", "random `" V_SEAL_RANDOM "`");
	published(doc, "seal ProductKey", "ProductKey `" V_SEAL_PK "`");
	published(doc, "seal deviceId", "`" V_SEAL_ID "` → K = `" V_SEAL_K "`");
	published(doc, "seal IV", "IV `" V_SEAL_IV "`");
	published(doc, "seal plaintext", "`" V_SEAL_PLAIN "`");
	published(doc, "seal tag", "the tag is `" V_SEAL_TAG "`");
	published(doc, "seal ct", "ciphertext starts `" V_SEAL_CT_START "`");
	published(doc, "sign", "For ProductSecret `" V_SIGN_SECRET "`, ProductKey `" V_SIGN_PK "`, deviceId `" V_SIGN_ID "` and random");
	published(doc, "sign random", "`" V_SIGN_RANDOM "`, the string signed");
	published(doc, "hmacsha256", "| `hmacsha256` | `" V_SIGN_SHA256 "` |");
	published(doc, "hmacsha1", "| `hmacsha1` | `" V_SIGN_SHA1 "` |");
	published(doc, "hmacmd5", "| `hmacmd5` | `" V_SIGN_MD5 "` |");
	published(doc, "connect", "clientId `" V_CONN_CLIENT_ID "`, DeviceName\n  `" V_CONN_DN "`, ProductKey `" V_CONN_PK
			"`, timestamp `" V_CONN_TS "`, DeviceSecret `" V_CONN_SECRET "`");
	published(doc, "password", "the password\n  `" V_CONN_PASSWORD "`");
	published(doc, "password hmacsha256", "password is `" V_CONN_PASSWORD_SHA256 "`");
	printf("vectors: %s\n", failures ? "FAILED" : "all published in docs/contract.md");
	return failures ? 1 : 0;
}
