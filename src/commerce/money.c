/* Money text helpers: exact decimal <-> minor-unit conversion with integer
 * arithmetic only, so "0.1 + 0.2" problems can never reach a price. */
#include "commerce/money.h"
#include "core/err.h"

#include <string.h>

int money_currency_valid(const char *code)
{
    if (!code || strlen(code) != 3)
        return 0;
    for (int i = 0; i < 3; i++)
        if (code[i] < 'A' || code[i] > 'Z')
            return 0;
    return 1;
}

int money_currency_exponent(const char *code)
{
    /* The ISO 4217 currencies in use whose minor unit is not 2 digits. */
    static const char *const zero[] = { "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW",
                                        "PYG", "RWF", "UGX", "UYI", "VND", "VUV", "XAF", "XOF",
                                        "XPF" };
    static const char *const three[] = { "BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND" };
    if (!code)
        return 2;
    for (size_t i = 0; i < sizeof zero / sizeof zero[0]; i++)
        if (strcmp(code, zero[i]) == 0)
            return 0;
    for (size_t i = 0; i < sizeof three / sizeof three[0]; i++)
        if (strcmp(code, three[i]) == 0)
            return 3;
    return 2;
}

int money_parse(const char *s, int exponent, int64_t *out)
{
    if (!s || !out || exponent < 0 || exponent > 4)
        return AGENTD_EINVAL;
    int64_t v = 0;
    size_t i = 0, ndig = 0;
    for (; s[i] >= '0' && s[i] <= '9'; i++, ndig++) {
        v = v * 10 + (s[i] - '0');
        if (v > MONEY_AMOUNT_MAX) /* checked per digit: v*10 never nears INT64_MAX */
            return AGENTD_EINVAL;
    }
    if (ndig == 0)
        return AGENTD_EINVAL;
    int frac = 0;
    if (s[i] == '.') {
        i++;
        for (; s[i] >= '0' && s[i] <= '9'; i++) {
            if (++frac > exponent)
                return AGENTD_EINVAL;
            v = v * 10 + (s[i] - '0');
            if (v > MONEY_AMOUNT_MAX)
                return AGENTD_EINVAL;
        }
        if (frac == 0)
            return AGENTD_EINVAL;
    }
    if (s[i] != '\0')
        return AGENTD_EINVAL;
    for (; frac < exponent; frac++) {
        v *= 10;
        if (v > MONEY_AMOUNT_MAX)
            return AGENTD_EINVAL;
    }
    *out = v;
    return 0;
}

int money_format(int64_t amount, int exponent, char *buf, size_t len)
{
    if (!buf || exponent < 0 || exponent > 4)
        return AGENTD_EINVAL;
    /* Work on the magnitude as unsigned so INT64_MIN does not overflow. */
    uint64_t mag = amount < 0 ? (uint64_t)0 - (uint64_t)amount : (uint64_t)amount;
    char tmp[MONEY_FORMAT_MAX];
    size_t n = 0;
    int digits = 0;
    do {
        if (exponent > 0 && digits == exponent)
            tmp[n++] = '.';
        tmp[n++] = (char)('0' + mag % 10);
        mag /= 10;
        digits++;
    } while (mag > 0 || digits <= exponent);
    if (amount < 0)
        tmp[n++] = '-';
    if (n + 1 > len)
        return AGENTD_EINVAL;
    for (size_t k = 0; k < n; k++)
        buf[k] = tmp[n - 1 - k];
    buf[n] = '\0';
    return (int)n;
}
