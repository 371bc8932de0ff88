/* mosquitto-bootstrap-open: reads a bootstrap reply on standard input and prints the triple
 * it seals.
 *
 *   mosquitto_rr ... | mosquitto-bootstrap-open -s PRODUCT_SECRET_FILE -k PRODUCT_KEY -d DEVICE_ID -r RANDOM
 *
 * RANDOM is the "random" of the signed request the reply answers. Prints
 * {"ProductKey","DeviceName","DeviceSecret","IotId"} on standard output and exits 0; an error
 * reply goes to standard error with exit 1; a reply that is not sealed for this request (in
 * the clear, malformed, forged, or for another device or product) is refused with exit 3. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "bootstrap_seal.h"

#define INPUT_MAX (64 * 1024)

static int usage(FILE *out, const char *argv0, int rc)
{
	fprintf(out, "usage: %s -s PRODUCT_SECRET_FILE -k PRODUCT_KEY -d DEVICE_ID -r RANDOM < reply\n"
			"Opens a sealed bootstrap reply (the last line of standard input, as mosquitto_rr or\n"
			"mosquitto_sub print it) for the request made with RANDOM, and prints the triple.\n"
			"Exit: 0 opened; 1 an error reply; 2 bad arguments; 3 not sealed for this request.\n"
			"See mosquitto-bootstrap-open(1).\n", argv0);
	return rc;
}

/* The last non-empty line of standard input: mosquitto_rr and mosquitto_sub print one per message. */
static json_t *reply__read(void)
{
	static char buf[INPUT_MAX + 1];
	size_t n = fread(buf, 1, INPUT_MAX, stdin);
	char *line, *end;

	buf[n] = '\0';
	end = buf + n;
	while(end > buf && (end[-1] == '\n' || end[-1] == '\r' || end[-1] == ' ')) *--end = '\0';
	line = strrchr(buf, '\n');
	line = line ? line + 1 : buf;
	return json_loads(line, JSON_REJECT_DUPLICATES, NULL);
}

static bool member__is(const json_t *obj, const char *name, const char *want)
{
	const json_t *v = json_object_get(obj, name);
	return json_is_string(v) && !strcmp(json_string_value(v), want);
}

int main(int argc, char **argv)
{
	const char *product_key = NULL, *device_id = NULL, *random = NULL;
	char secret[257] = "";
	unsigned char key[SEAL_KEY_LEN];
	char *plain = NULL;
	size_t plen = 0;
	json_t *reply, *triple;
	FILE *f;
	int c, rc = 3;

	if(argc == 2 && !strcmp(argv[1], "--help")) return usage(stdout, argv[0], 0);
	while((c = getopt(argc, argv, "s:k:d:r:")) != -1){
		switch(c){
			case 's':
				if(!(f = fopen(optarg, "r")) || !fgets(secret, sizeof(secret), f)){
					fprintf(stderr, "cannot read the ProductSecret from %s\n", optarg);
					if(f) fclose(f);
					return 2;
				}
				fclose(f);
				secret[strcspn(secret, "\r\n")] = '\0';
				break;
			case 'k': product_key = optarg; break;
			case 'd': device_id = optarg; break;
			case 'r': random = optarg; break;
			default: return usage(stderr, argv[0], 2);
		}
	}
	if(!secret[0] || !product_key || !device_id || !random) return usage(stderr, argv[0], 2);
	if(seal__derive_key(secret, random, product_key, device_id, key)){
		fprintf(stderr, "cannot derive the key\n");
		return 2;
	}
	OPENSSL_cleanse(secret, sizeof(secret));

	reply = reply__read();
	if(!json_is_object(reply)){
		fprintf(stderr, "no reply on standard input (expected one JSON object)\n");
		goto done;
	}
	if(json_is_false(json_object_get(reply, "success"))){
		char *text = json_dumps(reply, JSON_COMPACT);
		fprintf(stderr, "bootstrap refused: %s\n", text ? text : "?");
		free(text);
		rc = 1;
		goto done;
	}
	switch(seal__open(key, reply, &plain, &plen)){
		case SEAL_OPENED: break;
		case SEAL_NOT_SEALED:
			fprintf(stderr, "refused: a success reply in the clear (not sealed); the plugin seals every reply to a signed request\n");
			goto done;
		case SEAL_MALFORMED:
			fprintf(stderr, "refused: the sealed reply is malformed\n");
			goto done;
		case SEAL_FORGED:
			fprintf(stderr, "refused: the sealed reply does not open with this ProductSecret, random, ProductKey and deviceId (a forgery, or the answer to another request)\n");
			goto done;
	}
	triple = json_loadb(plain, plen, JSON_REJECT_DUPLICATES, NULL);
	/* the seal binds the key to the names; the plaintext must say the same */
	if(!json_is_object(triple) || !member__is(triple, "DeviceName", device_id) || !member__is(triple, "ProductKey", product_key)
			|| !json_is_string(json_object_get(triple, "DeviceSecret")) || !json_is_string(json_object_get(triple, "IotId"))){
		fprintf(stderr, "refused: the sealed triple is not for %s of %s\n", device_id, product_key);
	}else{
		printf("%s\n", plain);
		rc = 0;
	}
	json_decref(triple);
	OPENSSL_cleanse(plain, plen);
	free(plain);
done:
	OPENSSL_cleanse(key, sizeof(key));
	json_decref(reply);
	return rc;
}
