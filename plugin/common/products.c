/* plugin_opt_products_file: the products a broker serves, each with its ProductSecret. Broker
 * thread (read at start-up and on SIGHUP). */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "bootstrap_products.h"
#include "bootstrap_secret.h"
#include "bootstrap_text.h"

/* every error names the option first, as the configuration's do */
#define OPTION "plugin_opt_products_file"

struct products {
	struct product *items; /* sorted by key, for products__find */
	size_t count;
	char first[PRODUCT_KEY_MAX + 1];
};

static bool control__any(const char *s)
{
	for(; *s; s++){
		if(((unsigned char)*s < 0x20 && *s != '\t') || (unsigned char)*s == 0x7f) return true; /* a tab: white space, below */
	}
	return false;
}

int products__read_secret(const char *label, const char *path, char **secret, char *err, size_t errlen)
{
	char *text = NULL, *line;
	size_t textlen, end = 0;
	bool nul;
	int rc = -1;

	*secret = NULL;
	if(secret__read_file_max(label, path, true, SECRET_FILE_MAX, &text, &textlen, err, errlen)) return -1;
	/* the first line without its line end, exactly: devices derive keys from the same bytes */
	while(end < textlen && text[end] != '\r' && text[end] != '\n') end++;
	nul = memchr(text, '\0', end) != NULL;
	text[end] = '\0';
	line = text;
	if(nul || control__any(line)){
		/* a NUL would cut the secret short here and not on the device; a control byte is a
		 * copying accident more often than a secret */
		text__error(err, errlen, "%s: the first line of %s has a NUL or control byte in it; it must hold the "
				"ProductSecret alone", label, path);
	}else if(line[0] == '\0' || strlen(line) > PRODUCT_SECRET_MAX){
		text__error(err, errlen, "%s: %s does not hold a ProductSecret on its first line", label, path);
	}else if(strlen(line) < PRODUCT_SECRET_MIN){
		text__error(err, errlen, "%s: the ProductSecret in %s is shorter than %d characters", label, path, PRODUCT_SECRET_MIN);
	}else if(strcspn(line, " \t") != strlen(line)){
		/* a device reading the same file would sign with other bytes: refuse rather than guess */
		text__error(err, errlen, "%s: the first line of %s has white space in it; it must hold the ProductSecret alone",
				label, path);
	}else if(!(*secret = strdup(line))){
		text__error(err, errlen, "out of memory");
	}else{
		rc = 0;
	}
	OPENSSL_cleanse(text, textlen);
	free(text);
	return rc;
}

static int product__cmp(const void *a, const void *b)
{
	return strcmp(((const struct product *)a)->key, ((const struct product *)b)->key);
}

static bool blank(char c)
{
	return c == ' ' || c == '\t';
}

/* One line, without its line end: nothing, a comment, or "ProductKey /path [# comment]".
 * A product is added to set (its secret read). Errors name the line, and echo nothing that
 * might be a secret pasted in the wrong place: a ProductKey only once its line has the
 * shape of a product line. 0 or -1. */
static int line__take(struct products *set, char *line, const char *origin, size_t lineno, char *err, size_t errlen)
{
	char *p = line, *key, *path, label[PRODUCTS_PATH_MAX + 128];
	size_t keylen, pathlen;
	struct product *prod;

	while(blank(*p)) p++;
	if(*p == '\0' || *p == '#') return 0;
	key = p;
	while(*p && !blank(*p)) p++;
	keylen = (size_t)(p - key);
	while(blank(*p)) p++;
	path = p;
	while(*p && !blank(*p)) p++;
	pathlen = (size_t)(p - path);
	while(blank(*p)) p++;
	if(!request__product_key_valid(key, keylen)){
		text__error(err, errlen, OPTION ": %s line %zu: the first word is not a ProductKey (1 to %d letters, digits, - and _)",
				origin, lineno, PRODUCT_KEY_MAX);
		return -1;
	}
	if(pathlen == 0 || (*p && *p != '#')){
		text__error(err, errlen, OPTION ": %s line %zu: expected 'ProductKey /absolute/path/to/secret-file'", origin, lineno);
		return -1;
	}
	if(path[0] != '/' || pathlen > PRODUCTS_PATH_MAX){
		text__error(err, errlen, OPTION ": %s line %zu: the secret file must be an absolute path of at most %d bytes",
				origin, lineno, PRODUCTS_PATH_MAX);
		return -1;
	}
	key[keylen] = '\0';
	path[pathlen] = '\0';
	for(size_t i = 0; i < set->count; i++){
		if(!strcmp(set->items[i].key, key)){
			text__error(err, errlen, OPTION ": %s line %zu: ProductKey %s is listed twice", origin, lineno, key);
			return -1;
		}
	}
	if(set->count == PRODUCTS_MAX){
		text__error(err, errlen, OPTION ": %s: more than %d products", origin, PRODUCTS_MAX);
		return -1;
	}
	prod = &set->items[set->count];
	memcpy(prod->key, key, keylen + 1);
	snprintf(label, sizeof(label), OPTION ": %s line %zu (%s)", origin, lineno, key);
	if(products__read_secret(label, path, &prod->secret, err, errlen)) return -1;
	if(set->count == 0) memcpy(set->first, key, keylen + 1);
	set->count++;
	return 0;
}

struct products *products__load(const char *path, char *err, size_t errlen)
{
	struct products *set = calloc(1, sizeof(*set));
	char *text = NULL, *line, *next;
	size_t textlen = 0, lineno = 0;

	if(!set || !(set->items = calloc(PRODUCTS_MAX, sizeof(*set->items)))){
		free(set);
		text__error(err, errlen, "out of memory");
		return NULL;
	}
	/* private like a secret file: whoever could edit it could point a product at a secret of
	 * their own */
	if(secret__read_file_max(OPTION, path, true, PRODUCTS_FILE_MAX, &text, &textlen, err, errlen)) goto fail;
	if(strlen(text) != textlen){
		/* lines after it would be silently ignored */
		text__error(err, errlen, OPTION ": %s has a NUL byte: not a text file", path);
		goto fail;
	}
	for(line = text; line; line = next){
		size_t len;
		next = strchr(line, '\n');
		if(next) *next++ = '\0';
		len = strlen(line);
		if(len > 0 && line[len - 1] == '\r') line[len - 1] = '\0';
		lineno++;
		if(line__take(set, line, path, lineno, err, errlen)) goto fail;
	}
	if(set->count == 0){
		text__error(err, errlen, OPTION ": %s lists no product", path);
		goto fail;
	}
	qsort(set->items, set->count, sizeof(*set->items), product__cmp);
	free(text);
	return set;
fail:
	free(text);
	products__free(set);
	return NULL;
}

const struct product *products__find(const struct products *set, const char *key)
{
	struct product probe = {0};

	if(!set || !key || strlen(key) > PRODUCT_KEY_MAX) return NULL;
	memcpy(probe.key, key, strlen(key) + 1);
	return bsearch(&probe, set->items, set->count, sizeof(*set->items), product__cmp);
}

size_t products__count(const struct products *set)
{
	return set ? set->count : 0;
}

const struct product *products__at(const struct products *set, size_t i)
{
	return set && i < set->count ? &set->items[i] : NULL;
}

const char *products__first(const struct products *set)
{
	return set && set->count ? set->first : NULL;
}

void products__free(struct products *set)
{
	if(!set) return;
	if(set->items){
		for(size_t i = 0; i < set->count; i++) secret__free(&set->items[i].secret);
		free(set->items);
	}
	free(set);
}
