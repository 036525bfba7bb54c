/* The reply an operation can send without rendering its checkout again: the
 * public members of the document it just saved, kept per thread for the front. */
#define _GNU_SOURCE /* memrchr */
#include "shop/shop_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "commerce/checkout.h"
#include "core/jsondump.h"

/* Why: a checkout's stored document is its UCP JSON under the whole
 * negotiation ("id" to "order", as checkout_to_json writes them) followed
 * by the private "_agentd" member; the reply to the operation that saved it
 * is the same members after a "ucp" one. Building and dumping the reply's
 * tree again was a fifth of a checkout flow's instructions. The text is
 * kept for the checkout object that was saved, at the version the save
 * gave it, and handed to the front once (shop_saved_take). */
static _Thread_local struct {
    const struct checkout *c;
    int64_t version;
    char *text;
    size_t len;
    int hooked; /* its exit hook is set: a thread's text is freed when it ends */
} tl_saved;
static pthread_key_t exit_key;
static pthread_once_t exit_once = PTHREAD_ONCE_INIT;
/* The handlers tree (the shop's advertisement, shared by every checkout and
 * never edited) last found to hold no real, with a reference so its address
 * cannot come back as another tree: walking it was a third of a keep. */
static _Thread_local json_t *tl_plain_handlers;

void shop_saved_reset(void)
{
    free(tl_saved.text);
    tl_saved.text = NULL;
    tl_saved.c = NULL;
    tl_saved.len = 0;
}

static void at_exit(void *arg)
{
    (void)arg;
    shop_saved_reset();
    json_decref(tl_plain_handlers);
    tl_plain_handlers = NULL;
}

/* 1 when the handlers tree h holds a real (NULL holds none). */
static int handlers_have_real(const json_t *h)
{
    if (!h || h == tl_plain_handlers)
        return 0;
    if (jsondump_has_real(h))
        return 1;
    if (tl_saved.hooked > 0) { /* the exit hook frees the reference */
        json_decref(tl_plain_handlers);
        tl_plain_handlers = json_incref((json_t *)h);
    }
    return 0;
}

static void exit_key_make(void) { (void)pthread_key_create(&exit_key, at_exit); }

void shop_saved_keep(const struct checkout *c, const char *doc, int64_t version)
{
    shop_saved_reset();
    static const char tail[] = ",\"_agentd\":";
    size_t n = doc ? strlen(doc) : 0;
    /* a real dumps with 10 digits in a reply, 17 in the store: only the
     * client's and the merchant's free-form JSON could hold one */
    if (!tl_saved.hooked) { /* a text left by an operation nobody answered */
        (void)pthread_once(&exit_once, exit_key_make);
        tl_saved.hooked = pthread_setspecific(exit_key, &tl_saved) == 0 ? 1 : -1;
    }
    if (n < sizeof tail || doc[0] != '{' || jsondump_has_real(c->buyer.consent) ||
        handlers_have_real(c->payment.handlers))
        return;
    /* "_agentd" is the document's last top-level member; inside it only our
     * own names and escaped strings, so its opening is the last match
     * (commas found from the end by memrchr) */
    const char *at = NULL;
    size_t left = n - (sizeof tail - 1) + 1; /* bytes [0, left) may start a match */
    for (const char *p; left > 1 && (p = memrchr(doc + 1, ',', left - 1)) != NULL;
         left = (size_t)(p - doc)) {
        if (memcmp(p, tail, sizeof tail - 1) == 0) {
            at = p;
            break;
        }
    }
    if (!at)
        return;
    if (tl_saved.hooked < 0 || !(tl_saved.text = strndup(doc + 1, (size_t)(at - doc - 1))))
        return;
    tl_saved.len = (size_t)(at - doc - 1);
    tl_saved.c = c;
    tl_saved.version = version;
}

char *shop_saved_take(const struct checkout *c, size_t *len)
{
    char *text = NULL;
    if (c && tl_saved.text && tl_saved.c == c && tl_saved.version == c->version) {
        text = tl_saved.text;
        *len = tl_saved.len;
        tl_saved.text = NULL;
        shop_documents_count(DOC_REPLY);
    }
    shop_saved_reset();
    return text;
}
