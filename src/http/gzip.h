/* gzip for replies: Accept-Encoding negotiation, which bodies are worth
 * compressing, and the encoder (zlib). Pure functions: no I/O, no state. */
#ifndef AGENTD_HTTP_GZIP_H
#define AGENTD_HTTP_GZIP_H

#include <stddef.h>

/* Bodies shorter than this go out as they are: below ~1 KB the gzip
 * header and the CPU cost more than the bytes saved. */
#define GZIP_MIN_BYTES 1024

/* 1 if an Accept-Encoding value lets us answer with gzip: "gzip" or
 * "x-gzip" with q > 0, or "*" with q > 0 when gzip is not named at all
 * ("gzip;q=0" refuses even beside "*"). NULL or empty = no. */
int gzip_accepted(const char *accept_encoding);

/* 1 for the textual types we compress: application/json and
 * application/<x>+json, text/plain (Prometheus metrics). Never
 * text/event-stream: a stream must not wait for a compressor's buffer. */
int gzip_compressible(const char *content_type);

/* Compresses in[0..len) into a malloc'd gzip member (RFC 1952) in *out.
 * 0, AGENTD_ENOMEM, or AGENTD_EINTERNAL if zlib refused. */
int gzip_encode(const char *in, size_t len, char **out, size_t *out_len);

/* The gzip variant's entity tag: "v" -> "v-gzip", W/"v" -> W/"v-gzip".
 * A strong tag names one byte sequence (RFC 9110 §8.8.3), and the gzip
 * bytes differ. 0, or AGENTD_EINVAL (not a quoted tag, or out does not hold it). */
int gzip_etag_variant(const char *etag, char *out, size_t len);

/* A conditional header value (If-Match / If-None-Match: "*" or a list of
 * tags) with every -gzip variant suffix removed, so handlers compare with
 * their own tags whichever variant the client saw. 1 = changed (out
 * written), 0 = nothing to change, AGENTD_ETOOLARGE = out too small. */
int gzip_etag_strip(const char *value, char *out, size_t len);

#endif
