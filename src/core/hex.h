/* One hex digit's value, either case: the URL, chunk-size and JSON \u
 * readers share it (traceparent's reader takes lower case only). */
#ifndef AGENTD_CORE_HEX_H
#define AGENTD_CORE_HEX_H

/* 0-15, or -1 when c is not a hex digit. */
static inline int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (unsigned char)(c | 0x20);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

#endif
