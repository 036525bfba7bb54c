/* The offline model's reading of buyer details in free text (an email
 * anywhere, a name, a postal address in common orders). Pure. */
#ifndef AGENTD_AGENT_OFFLINE_DETAILS_H
#define AGENTD_AGENT_OFFLINE_DETAILS_H

#include <jansson.h>

/* update_customer_details arguments from text like "my email is
 * ann@example.com, ship to Ann Lee, 5 Oak Ave, Austin, TX 78701, US":
 * {"buyer":{full_name?,email?}?, "address":{street_address, address_locality,
 * address_region?, postal_code, address_country, extended_address?}?}, the
 * address only when street, city and postal code were all found (country
 * default US). NULL when there is neither an email nor an address (a new
 * reference otherwise). */
json_t *offline_parse_details(const char *text);

/* 1 if the text holds an email address. */
int offline_has_email(const char *text);

#endif
