/* request_auth identity: the deviceId a client certificate proves (plugin/common/identity.c), on
 * certificates built here with OpenSSL: the subject's CN, one DNS or URI subjectAltName;
 * several, none, a NUL inside or a name breaking the DeviceName rules prove nothing. */
#include <string.h>

#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "bootstrap_identity.h"
#include "unit.h"

/* A certificate (unsigned: the broker verified it already) whose subject has the given CNs
 * (NULL-terminated) and, when san is given, a subjectAltName in OpenSSL's config syntax. */
static X509 *cert_with(const char *const *cns, const char *san)
{
	X509 *x = X509_new();
	X509_NAME *name = X509_NAME_new();

	X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"bootstrap test", -1, -1, 0);
	for(int i = 0; cns && cns[i]; i++){
		X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cns[i], -1, -1, 0);
	}
	X509_set_subject_name(x, name);
	X509_NAME_free(name);
	if(san){
		X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, san);
		CHECK(ext != NULL);
		if(ext){
			X509_add_ext(x, ext, -1);
			X509_EXTENSION_free(ext);
		}
	}
	return x;
}

static enum identity_result of(X509 *x, enum identity_field f, char out[DEVICE_NAME_MAX + 1])
{
	enum identity_result r = identity__from_certificate(x, f, out);
	X509_free(x);
	return r;
}

static void test_no_certificate(void)
{
	char out[DEVICE_NAME_MAX + 1] = "junk";

	CHECK(identity__from_certificate(NULL, IDENTITY_FIELD_CN, out) == IDENTITY_NO_CERTIFICATE);
	CHECK_STR(out, "");
	CHECK(strstr(identity__refusal(IDENTITY_NO_CERTIFICATE, IDENTITY_FIELD_CN), "require_certificate") != NULL);
}

static void test_cn(void)
{
	char out[DEVICE_NAME_MAX + 1];
	const char *one[] = {"dev-0001", NULL};
	const char *odd[] = {"a1B2_c3@d4.e5:f6-", NULL};

	CHECK(of(cert_with(one, NULL), IDENTITY_FIELD_CN, out) == IDENTITY_OK);
	CHECK_STR(out, "dev-0001");
	/* the default is cn */
	CHECK(of(cert_with(one, NULL), IDENTITY_FIELD_DEFAULT, out) == IDENTITY_OK);
	CHECK_STR(out, "dev-0001");
	CHECK(of(cert_with(odd, NULL), IDENTITY_FIELD_CN, out) == IDENTITY_OK);
	CHECK_STR(out, "a1B2_c3@d4.e5:f6-");
}

static void test_cn_refused(void)
{
	char out[DEVICE_NAME_MAX + 1];
	const char *two[] = {"dev-0001", "dev-0002", NULL};
	const char *slash[] = {"dev/0001", NULL};
	const char *space[] = {"dev 0001", NULL};
	const char *shortname[] = {"dev", NULL};
	const char *longname[] = {"dev-01234567890123456789012345678", NULL}; /* 33 */
	const char *longest[] = {"dev-0123456789012345678901234567", NULL};  /* 32 */

	CHECK(of(cert_with(NULL, NULL), IDENTITY_FIELD_CN, out) == IDENTITY_ABSENT);
	CHECK_STR(out, "");
	/* use_identity_as_username takes the first; a certificate naming two devices names none */
	CHECK(of(cert_with(two, NULL), IDENTITY_FIELD_CN, out) == IDENTITY_AMBIGUOUS);
	CHECK_STR(out, "");
	CHECK(of(cert_with(slash, NULL), IDENTITY_FIELD_CN, out) == IDENTITY_INVALID);
	CHECK(of(cert_with(space, NULL), IDENTITY_FIELD_CN, out) == IDENTITY_INVALID);
	CHECK(of(cert_with(shortname, NULL), IDENTITY_FIELD_CN, out) == IDENTITY_INVALID);
	CHECK(of(cert_with(longname, NULL), IDENTITY_FIELD_CN, out) == IDENTITY_INVALID);
	CHECK_STR(out, "");
	CHECK(of(cert_with(longest, NULL), IDENTITY_FIELD_CN, out) == IDENTITY_OK);
	CHECK_STR(out, "dev-0123456789012345678901234567");
}

static void test_cn_with_nul(void)
{
	char out[DEVICE_NAME_MAX + 1];
	X509 *x = X509_new();
	X509_NAME *name = X509_NAME_new();
	static const unsigned char cn[] = "dev-0001\0.other";

	/* an IA5String may hold a NUL: read as C text it would say dev-0001 */
	CHECK(X509_NAME_add_entry_by_NID(name, NID_commonName, V_ASN1_IA5STRING, cn, (int)sizeof(cn) - 1, -1, 0) == 1);
	X509_set_subject_name(x, name);
	X509_NAME_free(name);
	CHECK(of(x, IDENTITY_FIELD_CN, out) == IDENTITY_INVALID);
	CHECK_STR(out, "");
}

static void test_san_dns(void)
{
	char out[DEVICE_NAME_MAX + 1];
	const char *cn[] = {"not-the-device", NULL};

	CHECK(of(cert_with(cn, "DNS:dev-0007"), IDENTITY_FIELD_SAN_DNS, out) == IDENTITY_OK);
	CHECK_STR(out, "dev-0007");
	/* other kinds of name beside it do not count */
	CHECK(of(cert_with(cn, "URI:urn:x,DNS:dev-0008,IP:127.0.0.1,email:a@b.c"), IDENTITY_FIELD_SAN_DNS, out) == IDENTITY_OK);
	CHECK_STR(out, "dev-0008");
	CHECK(of(cert_with(cn, "DNS:dev-0007,DNS:dev-0008"), IDENTITY_FIELD_SAN_DNS, out) == IDENTITY_AMBIGUOUS);
	CHECK(of(cert_with(cn, "URI:urn:dev-0007"), IDENTITY_FIELD_SAN_DNS, out) == IDENTITY_ABSENT);
	/* no subjectAltName at all: the CN is not a stand-in */
	CHECK(of(cert_with(cn, NULL), IDENTITY_FIELD_SAN_DNS, out) == IDENTITY_ABSENT);
	CHECK(of(cert_with(cn, "DNS:*.example.com"), IDENTITY_FIELD_SAN_DNS, out) == IDENTITY_INVALID);
	CHECK_STR(out, "");
}

static void test_san_uri(void)
{
	char out[DEVICE_NAME_MAX + 1];
	const char *cn[] = {"dev-0001", NULL};

	CHECK(of(cert_with(cn, "URI:urn:dev:dev-0009"), IDENTITY_FIELD_SAN_URI, out) == IDENTITY_OK);
	CHECK_STR(out, "urn:dev:dev-0009");
	CHECK(of(cert_with(cn, "URI:urn:a,URI:urn:b"), IDENTITY_FIELD_SAN_URI, out) == IDENTITY_AMBIGUOUS);
	CHECK(of(cert_with(cn, "URI:https://devices.example/dev-0009"), IDENTITY_FIELD_SAN_URI, out) == IDENTITY_INVALID);
	CHECK(of(cert_with(cn, "DNS:dev-0009"), IDENTITY_FIELD_SAN_URI, out) == IDENTITY_ABSENT);
}

static void test_refusals_name_the_field(void)
{
	const enum identity_result results[] = {IDENTITY_OK, IDENTITY_ABSENT, IDENTITY_AMBIGUOUS, IDENTITY_INVALID};

	for(size_t i = 0; i < sizeof(results) / sizeof(results[0]); i++){
		CHECK(strstr(identity__refusal(results[i], IDENTITY_FIELD_CN), "CN") != NULL);
		CHECK(strstr(identity__refusal(results[i], IDENTITY_FIELD_SAN_DNS), "DNS subjectAltName") != NULL);
		CHECK(strstr(identity__refusal(results[i], IDENTITY_FIELD_SAN_URI), "URI subjectAltName") != NULL);
	}
	CHECK_STR(identity__field_name(IDENTITY_FIELD_DEFAULT), "CN");
	CHECK_STR(identity__field_name(IDENTITY_FIELD_SAN_DNS), "DNS subjectAltName");
}

int main(void)
{
	RUN(test_no_certificate);
	RUN(test_cn);
	RUN(test_cn_refused);
	RUN(test_cn_with_nul);
	RUN(test_san_dns);
	RUN(test_san_uri);
	RUN(test_refusals_name_the_field);
	return unit_main_result();
}
