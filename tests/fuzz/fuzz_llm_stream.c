/* Fuzz target: the LLM client's reply parsers (llm/stream.c): the SSE stream
 * fed whole and fed in pieces must give the same reply (the network splits
 * it anywhere), and the whole-JSON reply parser. */
#include "fuzz.h"
#include "core/buf.h"
#include "core/err.h"
#include "llm/stream.h"

#include <string.h>

struct run {
    int rc;
    struct llm_reply r;
    struct buf text;
};

static void on_delta(const char *t, size_t n, void *ud)
{
    struct buf *b = ud;
    if (!t) {
        b->len = 0; /* the documented reset */
        return;
    }
    buf_append(b, t, n);
}

/* Feeds data in pieces of 1..16 bytes chosen from seed; seed 0 = whole. */
static void run(const uint8_t *data, size_t size, unsigned seed, struct run *out)
{
    memset(out, 0, sizeof *out);
    struct llm_stream *s = llm_stream_new(on_delta, &out->text);
    FUZZ_CHECK(s != NULL);
    struct agentd_error e = { 0 };
    int rc = 0;
    for (size_t off = 0; off < size && rc == 0;) {
        size_t n = size - off;
        if (seed) {
            seed = seed * 1103515245u + 12345u;
            size_t k = 1 + (seed >> 16) % 16;
            n = k < n ? k : n;
        }
        rc = llm_stream_feed(s, (const char *)data + off, n, &e);
        off += n;
    }
    if (rc == 0)
        rc = llm_stream_finish(s, &out->r, &e);
    FUZZ_CHECK(rc == 0 || e.msg[0]);
    out->rc = rc;
    llm_stream_free(s);
}

static int str_eq(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct run whole, split;
    run(data, size, 0, &whole);
    run(data, size, size ? 1u + data[0] : 1u, &split);
    FUZZ_CHECK(whole.rc == split.rc);
    if (whole.rc == 0) {
        FUZZ_CHECK(str_eq(whole.r.content, split.r.content));
        FUZZ_CHECK(str_eq(whole.r.finish_reason, split.r.finish_reason));
        FUZZ_CHECK(str_eq(whole.r.model, split.r.model));
        FUZZ_CHECK(whole.r.usage.prompt_tokens == split.r.usage.prompt_tokens);
        FUZZ_CHECK(whole.r.usage.completion_tokens == split.r.usage.completion_tokens);
        FUZZ_CHECK((!whole.r.tool_calls && !split.r.tool_calls) ||
                   json_equal(whole.r.tool_calls, split.r.tool_calls));
        FUZZ_CHECK(whole.r.content || whole.r.tool_calls);
    }
    FUZZ_CHECK(whole.text.len == split.text.len &&
               (whole.text.len == 0 || memcmp(whole.text.data, split.text.data, whole.text.len) == 0));
    llm_reply_clear(&whole.r);
    llm_reply_clear(&split.r);
    buf_free(&whole.text);
    buf_free(&split.text);

    struct llm_reply r;
    struct agentd_error e = { 0 };
    int rc = llm_reply_parse((const char *)data, size, &r, &e);
    if (rc == 0) {
        FUZZ_CHECK(r.content || r.tool_calls);
        llm_reply_clear(&r);
    } else {
        FUZZ_CHECK(rc < 0 && e.msg[0]);
    }
    return 0;
}
