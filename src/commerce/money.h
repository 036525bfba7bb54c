/* Money as text: decimal strings ("3.99") to integer minor units and back,
 * without floating point, plus ISO 4217 currency code checks. */
#ifndef AGENTD_COMMERCE_MONEY_H
#define AGENTD_COMMERCE_MONEY_H

#include <stddef.h>
#include <stdint.h>

/* Largest amount any parser accepts, in minor units (10^14 = one trillion
 * dollars). Far below INT64_MAX so that sums of many lines, times
 * quantities and tax, cannot overflow in the checkout. */
#define MONEY_AMOUNT_MAX 100000000000000LL

/* Big enough for any int64 formatted with a sign and a decimal point. */
#define MONEY_FORMAT_MAX 32

/* 1 if code is three ASCII capital letters ("USD"), else 0. */
int money_currency_valid(const char *code);

/* Number of minor-unit digits for a currency: 2 for most, 0 for e.g. JPY
 * and KRW, 3 for e.g. KWD and BHD (ISO 4217). */
int money_currency_exponent(const char *code);

/* Parses a non-negative decimal with at most `exponent` fraction digits
 * ("3.99", "0.5", "12") into minor units (399, 50, 1200). Rejects signs,
 * spaces, exponents, empty parts (".5", "5."), too many decimals and
 * amounts over MONEY_AMOUNT_MAX. Returns 0 or AGENTD_EINVAL (*out untouched). */
int money_parse(const char *s, int exponent, int64_t *out);

/* Formats minor units as a decimal with exactly `exponent` fraction digits
 * (399 -> "3.99", -5 -> "-0.05", 1200 with exponent 0 -> "1200").
 * Returns the length written, or AGENTD_EINVAL if buf is too small. */
int money_format(int64_t amount, int exponent, char *buf, size_t len);

#endif
