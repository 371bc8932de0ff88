#ifndef BOOTSTRAP_PRODUCTS_H
#define BOOTSTRAP_PRODUCTS_H
/* The products one broker serves and their ProductSecrets.
 *
 * plugin_opt_products_file names a file of lines "ProductKey /absolute/path/to/secret-file";
 * every secret file is read as plugin_opt_product_secret_file is (products__read_secret).
 * A set is read whole or not at all, and never changes once read: a reload reads a new one.
 *
 * Ownership: a set belongs to the broker thread (the configuration's, replaced on SIGHUP),
 * which alone checks requests with its secrets. The worker never sees one: jobs carry only
 * their ProductKey. Nothing here logs; no secret is ever copied into err. */
#include <stdbool.h>
#include <stddef.h>

#include "bootstrap_request.h"

/* Alibaba's ProductSecrets are 32 characters; anything this short is a mistake */
#define PRODUCT_SECRET_MIN 8
#define PRODUCT_SECRET_MAX 256
#define PRODUCTS_MAX 1000
#define PRODUCTS_FILE_MAX (1024 * 1024)
#define PRODUCTS_PATH_MAX 1024

struct product {
	char key[PRODUCT_KEY_MAX + 1];
	char *secret; /* wiped when the set is freed */
};

struct products;

/* Reads a ProductSecret file: its first line without the line end, exactly (devices derive keys
 * from the same bytes): 8 to 256 characters, no white space; the file (or a symlink's target) a
 * regular, private one (secret__read_file). On failure err reads "<label>: <why>", naming the
 * path, never the content. 0, or -1 with *secret NULL. Wipe *secret with secret__free(). */
int products__read_secret(const char *label, const char *path, char **secret, char *err, size_t errlen);

/* Reads a products file and every secret file it names. Lines are "ProductKey /path" (white
 * space between, "#" starts a comment, blank lines ignored, CRLF read as LF); a ProductKey at
 * most once; 1 to PRODUCTS_MAX of them. The file itself must be private like a secret file
 * (it says where the secrets are) and at most PRODUCTS_FILE_MAX bytes. NULL with err
 * "plugin_opt_products_file: <path> line N: why" when anything is wrong: nothing is half read. */
struct products *products__load(const char *path, char *err, size_t errlen);

/* The product of key, or NULL when the set has none of that name (or key is NULL). */
const struct product *products__find(const struct products *set, const char *key);
size_t products__count(const struct products *set);
/* The i-th product by ProductKey (sorted), i < products__count(). */
const struct product *products__at(const struct products *set, size_t i);
/* The ProductKey on the file's first line. */
const char *products__first(const struct products *set);
/* Wipes every secret and frees the set; NULL is fine. */
void products__free(struct products *set);

#endif
