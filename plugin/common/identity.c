/* request_auth identity: the deviceId of a verified client certificate; see bootstrap_identity.h.
 * Pure; any thread (the plugin asks on the broker thread). */
#include <string.h>

#include <openssl/x509v3.h>

#include "bootstrap_identity.h"

/* One ASN.1 string as a deviceId: no NUL inside, the DeviceName rules. */
static enum identity_result identity__take(const ASN1_STRING *s, char out[DEVICE_NAME_MAX + 1])
{
	const unsigned char *data = ASN1_STRING_get0_data(s);
	int len = ASN1_STRING_length(s);

	if(!data || len <= 0) return IDENTITY_INVALID;
	/* a NUL would make "dev-0001\0.evil" read as dev-0001 */
	if(memchr(data, '\0', (size_t)len)) return IDENTITY_INVALID;
	if(len > DEVICE_NAME_MAX || !request__device_name_valid((const char *)data, (size_t)len)) return IDENTITY_INVALID;
	memcpy(out, data, (size_t)len);
	out[len] = '\0';
	return IDENTITY_OK;
}

static enum identity_result identity__cn(X509 *cert, char out[DEVICE_NAME_MAX + 1])
{
	X509_NAME *name = X509_get_subject_name(cert);
	X509_NAME_ENTRY *entry;
	int i;

	if(!name || (i = X509_NAME_get_index_by_NID(name, NID_commonName, -1)) < 0) return IDENTITY_ABSENT;
	/* use_identity_as_username takes the first of several CNs: we take none */
	if(X509_NAME_get_index_by_NID(name, NID_commonName, i) >= 0) return IDENTITY_AMBIGUOUS;
	if(!(entry = X509_NAME_get_entry(name, i))) return IDENTITY_ABSENT;
	/* a CN of another string type (BMPString, UTF8String with non-ASCII) fails the DeviceName
	 * rules byte by byte, which are ASCII */
	return identity__take(X509_NAME_ENTRY_get_data(entry), out);
}

static enum identity_result identity__san(X509 *cert, int type, char out[DEVICE_NAME_MAX + 1])
{
	GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	const ASN1_STRING *found = NULL;
	enum identity_result rc = IDENTITY_ABSENT;
	int n;

	if(!names) return IDENTITY_ABSENT;
	n = sk_GENERAL_NAME_num(names);
	for(int i = 0; i < n; i++){
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
		if(g->type != type) continue;
		if(found){
			rc = IDENTITY_AMBIGUOUS;
			goto done;
		}
		found = type == GEN_DNS ? g->d.dNSName : g->d.uniformResourceIdentifier;
	}
	if(found) rc = identity__take(found, out);
done:
	GENERAL_NAMES_free(names);
	return rc;
}

enum identity_result identity__from_certificate(X509 *cert, enum identity_field field, char out[DEVICE_NAME_MAX + 1])
{
	enum identity_result rc;

	out[0] = '\0';
	if(!cert) return IDENTITY_NO_CERTIFICATE;
	switch(field){
		case IDENTITY_FIELD_DEFAULT:
		case IDENTITY_FIELD_CN: rc = identity__cn(cert, out); break;
		case IDENTITY_FIELD_SAN_DNS: rc = identity__san(cert, GEN_DNS, out); break;
		case IDENTITY_FIELD_SAN_URI: rc = identity__san(cert, GEN_URI, out); break;
		default: rc = IDENTITY_ABSENT; break;
	}
	if(rc != IDENTITY_OK) out[0] = '\0';
	return rc;
}

const char *identity__field_name(enum identity_field field)
{
	switch(field){
		case IDENTITY_FIELD_SAN_DNS: return "DNS subjectAltName";
		case IDENTITY_FIELD_SAN_URI: return "URI subjectAltName";
		default: return "CN";
	}
}

const char *identity__refusal(enum identity_result result, enum identity_field field)
{
	switch(result){
		case IDENTITY_NO_CERTIFICATE:
			return "no client certificate: ask over a TLS listener with require_certificate true (a username proves nothing)";
		case IDENTITY_ABSENT:
			switch(field){
				case IDENTITY_FIELD_SAN_DNS: return "the client certificate has no DNS subjectAltName";
				case IDENTITY_FIELD_SAN_URI: return "the client certificate has no URI subjectAltName";
				default: return "the client certificate has no CN";
			}
		case IDENTITY_AMBIGUOUS:
			switch(field){
				case IDENTITY_FIELD_SAN_DNS: return "the client certificate has more than one DNS subjectAltName";
				case IDENTITY_FIELD_SAN_URI: return "the client certificate has more than one URI subjectAltName";
				default: return "the client certificate has more than one CN";
			}
		case IDENTITY_INVALID:
			switch(field){
				case IDENTITY_FIELD_SAN_DNS: return "the client certificate's DNS subjectAltName is not a deviceId";
				case IDENTITY_FIELD_SAN_URI: return "the client certificate's URI subjectAltName is not a deviceId";
				default: return "the client certificate's CN is not a deviceId";
			}
		case IDENTITY_OK:
			break;
	}
	switch(field){
		case IDENTITY_FIELD_SAN_DNS: return "the deviceId must be the client certificate's DNS subjectAltName";
		case IDENTITY_FIELD_SAN_URI: return "the deviceId must be the client certificate's URI subjectAltName";
		default: return "the deviceId must be the client certificate's CN";
	}
}
