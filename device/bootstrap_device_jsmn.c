/* jsmn's tokenizer (Debian's libjsmn-dev, a header), compiled once here for
 * bootstrap_device_json.c: a file of its own, so that it is measured apart from the library's
 * code (as libcbor is for CBOR). A JSON firmware links it; a CBOR-only one does not. */
#define JSMN_STRICT
#include <jsmn.h>
