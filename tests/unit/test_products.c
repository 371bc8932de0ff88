/* plugin_opt_products_file: the file's format, its bounds, every secret read as a
 * product_secret_file is, and errors that name the line without echoing a secret. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bootstrap_config.h"
#include "bootstrap_products.h"
#include "unit.h"

static char dir[64];

/* dir/name holding text, with mode; returns the path (static, one at a time per slot). */
static const char *put(const char *name, const char *text, mode_t mode)
{
	static char paths[8][256];
	static int next;
	char *path = paths[next++ % 8];
	FILE *f;

	snprintf(path, 256, "%s/%s", dir, name);
	f = fopen(path, "w");
	CHECK(f != NULL);
	if(!f) return path;
	fputs(text, f);
	fclose(f);
	chmod(path, mode);
	return path;
}

/* A products file of text (where "$D" stands for the directory), 0600. */
static const char *products_file(const char *text)
{
	static char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/products", dir);
	f = fopen(path, "w");
	CHECK(f != NULL);
	if(!f) return path;
	for(size_t i = 0; text[i]; i++){
		if(text[i] == '$' && text[i + 1] == 'D'){
			fputs(dir, f);
			i++;
		}else{
			fputc(text[i], f);
		}
	}
	fclose(f);
	chmod(path, 0600);
	return path;
}

/* Loading text must fail with an error containing every needle and none of the secrets. */
static void expect_refused(const char *text, const char *needle, const char *needle2)
{
	char err[CONFIG_ERR_LEN] = "";
	struct products *set = products__load(products_file(text), err, sizeof(err));

	CHECK(set == NULL);
	if(!strstr(err, needle) || (needle2 && !strstr(err, needle2))) fprintf(stderr, "  error was: %s\n", err);
	CHECK(strstr(err, needle) != NULL);
	if(needle2) CHECK(strstr(err, needle2) != NULL);
	CHECK(strncmp(err, "plugin_opt_products_file: ", 26) == 0);
	CHECK(strstr(err, "SecretOfA") == NULL && strstr(err, "SecretOfB") == NULL && strstr(err, "PastedSecret") == NULL);
	products__free(set);
}

static void setup(void)
{
	put("a.secret", "SecretOfA-0123456789\n", 0600);
	put("b.secret", "SecretOfB-0123456789\r\nsecond line ignored\n", 0600);
	put("open.secret", "SecretOfOpen-012345\n", 0644);
	put("short.secret", "short\n", 0600);
	put("spaced.secret", "SecretOfA 0123456789\n", 0600);
	put("empty.secret", "\n", 0600);
}

static void test_good_file(void)
{
	char err[CONFIG_ERR_LEN] = "";
	struct products *set = products__load(products_file(
			"# the products of this broker\r\n"
			"\n"
			"a1ProdB $D/b.secret   # a comment after the path\n"
			"   \t\n"
			"\ta1ProdA\t$D/a.secret\r\n"
			"  # an indented comment\n"
			"a1-Prod_C $D/a.secret"), err, sizeof(err));

	if(!set) fprintf(stderr, "  error was: %s\n", err);
	CHECK(set != NULL);
	if(!set) return;
	CHECK(products__count(set) == 3);
	CHECK_STR(products__first(set), "a1ProdB");
	CHECK_STR(products__find(set, "a1ProdA")->secret, "SecretOfA-0123456789");
	/* the first line exactly, without its CRLF: what a device reads */
	CHECK_STR(products__find(set, "a1ProdB")->secret, "SecretOfB-0123456789");
	CHECK_STR(products__find(set, "a1-Prod_C")->secret, "SecretOfA-0123456789");
	CHECK(products__find(set, "a1ProdD") == NULL);
	CHECK(products__find(set, "a1proda") == NULL); /* ProductKeys are case-sensitive */
	CHECK(products__find(set, NULL) == NULL);
	CHECK(products__find(NULL, "a1ProdA") == NULL);
	/* sorted, for lookups; every one of them reachable */
	CHECK_STR(products__at(set, 0)->key, "a1-Prod_C");
	CHECK_STR(products__at(set, 2)->key, "a1ProdB");
	CHECK(products__at(set, 3) == NULL);
	{
		char longest[PRODUCT_KEY_MAX + 8];
		memset(longest, 'k', sizeof(longest) - 1);
		longest[sizeof(longest) - 1] = '\0';
		CHECK(products__find(set, longest) == NULL);
	}
	products__free(set);
}

static void test_bad_lines(void)
{
	/* the line is named; a word that might be a secret pasted in the wrong place is not echoed */
	expect_refused("a1ProdA $D/a.secret\nPastedSecret\n", "line 2: expected 'ProductKey /absolute/path/to/secret-file'", NULL);
	expect_refused("a1ProdA PastedSecret\n", "line 1: the secret file must be an absolute path", NULL);
	expect_refused("a1ProdA $D/a.secret PastedSecret\n", "line 1: expected", NULL);
	expect_refused("a1.Prod $D/a.secret\n", "line 1: the first word is not a ProductKey", NULL);
	expect_refused("PastedSecret+/= $D/a.secret\n", "line 1: the first word is not a ProductKey", NULL);
	expect_refused("a1ProdA $D/a.secret\n\n# c\na1ProdA $D/b.secret\n", "line 4: ProductKey a1ProdA is listed twice", NULL);
	/* comments start a line or follow white space */
	expect_refused("a1ProdA# $D/a.secret\n", "line 1: the first word is not a ProductKey", NULL);
	/* nothing listed */
	expect_refused("", "lists no product", NULL);
	expect_refused("# only comments\n\n", "lists no product", NULL);
}

/* Every secret file is read as plugin_opt_product_secret_file is; the error names the line and
 * the product, and never the secret. */
static void test_bad_secret_files(void)
{
	expect_refused("a1ProdA $D/a.secret\na1ProdB $D/missing.secret\n", "line 2 (a1ProdB): cannot open", "missing.secret");
	expect_refused("a1ProdA $D/open.secret\n", "line 1 (a1ProdA)", "group or others");
	expect_refused("a1ProdA $D/short.secret\n", "line 1 (a1ProdA)", "shorter than 8 characters");
	expect_refused("a1ProdA $D/spaced.secret\n", "line 1 (a1ProdA)", "white space");
	expect_refused("a1ProdA $D/empty.secret\n", "line 1 (a1ProdA)", "does not hold a ProductSecret");
	expect_refused("a1ProdA $D\n", "line 1 (a1ProdA)", "not a regular file");
}

/* A NUL in the ProductSecret's line would cut it short here and not on a device that reads the
 * whole line (an outsider's finding); a control byte is refused too. */
static void test_secret_with_nul_or_control(void)
{
	char path[300], err[512] = "", *secret = NULL;
	FILE *f;

	snprintf(path, sizeof(path), "%s/nul.secret", dir);
	f = fopen(path, "w");
	CHECK(f != NULL);
	if(!f) return;
	fwrite("SecretOfNul-0123\0zz\n", 1, 20, f);
	fclose(f);
	chmod(path, 0600);
	CHECK(products__read_secret("plugin_opt_product_secret_file", path, &secret, err, sizeof(err)) == -1);
	CHECK(secret == NULL && strstr(err, "NUL or control byte") != NULL && strstr(err, "SecretOf") == NULL);
	put("esc.secret", "SecretOfEsc-0123\x1b\n", 0600);
	snprintf(path, sizeof(path), "%s/esc.secret", dir);
	CHECK(products__read_secret("plugin_opt_product_secret_file", path, &secret, err, sizeof(err)) == -1);
	CHECK(secret == NULL && strstr(err, "NUL or control byte") != NULL);
	/* a CRLF line end is a line end, not part of the secret */
	snprintf(path, sizeof(path), "%s/b.secret", dir);
	CHECK(products__read_secret("plugin_opt_product_secret_file", path, &secret, err, sizeof(err)) == 0);
	CHECK(secret && !strcmp(secret, "SecretOfB-0123456789"));
	free(secret);
}

static void test_file_itself(void)
{
	char err[CONFIG_ERR_LEN] = "";
	const char *path = products_file("a1ProdA $D/a.secret\n");
	struct products *set;

	/* it says where the secrets are: private, like them */
	chmod(path, 0604);
	CHECK(products__load(path, err, sizeof(err)) == NULL);
	CHECK(strstr(err, "group or others") != NULL);
	CHECK(products__load("/nonexistent/products", err, sizeof(err)) == NULL);
	CHECK(strstr(err, "plugin_opt_products_file: cannot open /nonexistent/products") != NULL);
	/* a NUL byte would hide what follows it */
	path = put("products", "a1ProdA /x\n", 0600);
	{
		FILE *f = fopen(path, "w");
		fputs("a1ProdA ", f);
		fputs(dir, f);
		fputs("/a.secret\n", f);
		fputc('\0', f);
		fputs("a1ProdB /x\n", f);
		fclose(f);
	}
	CHECK(products__load(path, err, sizeof(err)) == NULL);
	CHECK(strstr(err, "NUL byte") != NULL);
	/* a path longer than any option value */
	{
		char text[2200];
		snprintf(text, sizeof(text), "a1ProdA /%01500d\n", 0);
		set = products__load(products_file(text), err, sizeof(err));
		CHECK(set == NULL && strstr(err, "at most 1024 bytes") != NULL);
	}
}

static void test_bounds(void)
{
	char err[CONFIG_ERR_LEN] = "";
	size_t cap = (PRODUCTS_MAX + 1) * 128;
	char *text = malloc(cap), *big;
	size_t len = 0;
	struct products *set;

	CHECK(text != NULL);
	if(!text) return;
	text[0] = '\0';
	for(int i = 0; i < PRODUCTS_MAX; i++) len += (size_t)snprintf(text + len, cap - len, "a1Prod%04d $D/a.secret\n", i);
	set = products__load(products_file(text), err, sizeof(err));
	CHECK(set != NULL && products__count(set) == PRODUCTS_MAX);
	CHECK(set && products__find(set, "a1Prod0999") && products__find(set, "a1Prod0000") && products__find(set, "a1Prod0500"));
	products__free(set);
	snprintf(text + len, cap - len, "a1Prod%04d $D/a.secret\n", PRODUCTS_MAX);
	expect_refused(text, "more than 1000 products", NULL);
	free(text);
	/* larger than 1 MiB, however few its products */
	big = malloc(PRODUCTS_FILE_MAX + 64);
	CHECK(big != NULL);
	if(!big) return;
	memset(big, '#', PRODUCTS_FILE_MAX + 10);
	big[PRODUCTS_FILE_MAX + 10] = '\0';
	expect_refused(big, "is larger than 1048576 bytes", NULL);
	free(big);
}

static const char *env_get(const char *name)
{
	if(!strcmp(name, "ALIBABA_CLOUD_ACCESS_KEY_ID")) return "LTAIkeyid";
	if(!strcmp(name, "ALIBABA_CLOUD_ACCESS_KEY_SECRET")) return "envsecret";
	return NULL;
}

/* How plugin_opt_products_file combines with product_key, product_secret_file and request_auth. */
static int finish(const char *const *options, struct bootstrap_config *cfg, char *err)
{
	config__init(cfg);
	for(int i = 0; options[i]; i += 2){
		if(config__set(cfg, options[i], options[i + 1], err, CONFIG_ERR_LEN)) return -1;
	}
	return config__finish(cfg, env_get, err, CONFIG_ERR_LEN);
}

static void test_configuration(void)
{
	struct bootstrap_config cfg, *snap;
	char err[CONFIG_ERR_LEN] = "", file[256], secret_file[256];

	snprintf(file, sizeof(file), "%s", products_file("a1ProdB $D/b.secret\na1ProdA $D/a.secret\n"));
	snprintf(secret_file, sizeof(secret_file), "%s/a.secret", dir);

	/* alone: requests name their product; the start-up check asks about the file's first */
	{
		const char *o[] = {"products_file", file, NULL};
		CHECK(finish(o, &cfg, err) == 0);
		CHECK(cfg.product_key == NULL && cfg.product_secret == NULL);
		CHECK(products__count(cfg.products) == 2);
		CHECK_STR(cfg.check_product_key, "a1ProdB");
		/* the worker's copy holds no secret and no products */
		snap = config__snapshot(&cfg);
		CHECK(snap && snap->products == NULL && snap->product_secret == NULL);
		CHECK(snap && snap->check_product_key != cfg.check_product_key);
		CHECK_STR(snap ? snap->check_product_key : NULL, "a1ProdB");
		config__snapshot_free(snap);
		/* a reload that fails keeps the set; a good one replaces it */
		put("products", "a1ProdC $D/missing.secret\n", 0600);
		CHECK(config__load_products(&cfg, err, sizeof(err)) == -1);
		CHECK(products__count(cfg.products) == 2 && products__find(cfg.products, "a1ProdA"));
		products_file("a1ProdC $D/a.secret\n");
		CHECK(config__load_products(&cfg, err, sizeof(err)) == 0);
		CHECK(products__count(cfg.products) == 1 && products__find(cfg.products, "a1ProdC"));
		CHECK_STR(cfg.check_product_key, "a1ProdC");
		config__cleanup(&cfg);
	}
	products_file("a1ProdB $D/b.secret\na1ProdA $D/a.secret\n");
	/* with product_key: the default product, which must be listed */
	{
		const char *o[] = {"products_file", file, "product_key", "a1ProdA", NULL};
		CHECK(finish(o, &cfg, err) == 0);
		CHECK_STR(cfg.check_product_key, "a1ProdA");
		/* a reload may not drop it */
		products_file("a1ProdB $D/b.secret\n");
		CHECK(config__load_products(&cfg, err, sizeof(err)) == -1);
		CHECK(strstr(err, "does not list plugin_opt_product_key a1ProdA") != NULL);
		CHECK(products__find(cfg.products, "a1ProdA") != NULL);
		config__cleanup(&cfg);
	}
	{
		const char *o[] = {"products_file", file, "product_key", "a1ProdA", NULL};
		CHECK(finish(o, &cfg, err) == -1);
		CHECK(strstr(err, "plugin_opt_products_file:") && strstr(err, "does not list plugin_opt_product_key a1ProdA"));
		config__cleanup(&cfg);
	}
	products_file("a1ProdB $D/b.secret\na1ProdA $D/a.secret\n");
	{
		const char *o[] = {"products_file", file, "product_secret_file", secret_file, NULL};
		CHECK(finish(o, &cfg, err) == -1);
		CHECK(strstr(err, "plugin_opt_product_secret_file: not with plugin_opt_products_file") != NULL);
		config__cleanup(&cfg);
	}
	{
		const char *o[] = {"products_file", file, "request_auth", "identity", NULL};
		CHECK(finish(o, &cfg, err) == -1);
		CHECK(strstr(err, "plugin_opt_products_file: needs plugin_opt_request_auth sign") != NULL);
		config__cleanup(&cfg);
	}
	{
		const char *o[] = {"products_file", "relative/products", NULL};
		CHECK(finish(o, &cfg, err) == -1);
		CHECK(strstr(err, "plugin_opt_products_file: must be an absolute path") != NULL);
		config__cleanup(&cfg);
	}
	/* a bad file stops the start, naming the line */
	products_file("a1ProdA $D/a.secret\nbad line here\n");
	{
		const char *o[] = {"products_file", file, NULL};
		CHECK(finish(o, &cfg, err) == -1);
		CHECK(strstr(err, "plugin_opt_products_file: ") && strstr(err, "products line 2: expected"));
		config__cleanup(&cfg);
	}
	/* the single product keeps working as it did; its check is its own product */
	{
		const char *o[] = {"product_key", "a1Single", "product_secret_file", secret_file, NULL};
		CHECK(finish(o, &cfg, err) == 0);
		CHECK(cfg.products == NULL);
		CHECK_STR(cfg.product_secret, "SecretOfA-0123456789");
		CHECK_STR(cfg.check_product_key, "a1Single");
		config__cleanup(&cfg);
	}
	{
		const char *o[] = {"request_auth", "none", NULL};
		CHECK(finish(o, &cfg, err) == -1);
		CHECK(strstr(err, "plugin_opt_product_key: required") != NULL);
		config__cleanup(&cfg);
	}
	/* product_key is a ProductKey by the same rule as a request's */
	config__init(&cfg);
	CHECK(config__set(&cfg, "product_key", "a1.Prod", err, sizeof(err)) == -1);
	config__cleanup(&cfg);
}

int main(void)
{
	snprintf(dir, sizeof(dir), "/tmp/bootstrap-products-XXXXXX");
	if(!mkdtemp(dir)) return 1;
	setup();
	RUN(test_good_file);
	RUN(test_bad_lines);
	RUN(test_bad_secret_files);
	RUN(test_secret_with_nul_or_control);
	RUN(test_file_itself);
	RUN(test_bounds);
	RUN(test_configuration);
	{
		char cmd[128];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		if(system(cmd)){ /* a leftover temporary directory fails nothing */ }
	}
	return unit_main_result();
}
