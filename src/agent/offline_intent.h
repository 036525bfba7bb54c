/* The offline model's reading of the user's last message: an intent and
 * its arguments (product id, words, quantity, price cap, shipping level). */
#ifndef AGENTD_AGENT_OFFLINE_INTENT_H
#define AGENTD_AGENT_OFFLINE_INTENT_H

enum intent {
    I_NONE, I_SEARCH, I_ADD, I_REMOVE, I_UPDATE, I_GET, I_PRODUCT, I_DETAILS, I_SHIPPING, I_PAY,
    I_START_PAY, I_HELLO, I_THANKS
};

/* What the user asked for. Owned strings: offline_ask_free. */
struct ask {
    enum intent intent;
    char *product_id;         /* upper-cased id when the user named one */
    char *query;              /* search words / product name */
    int quantity;             /* -1 = not said; 0 = zero or a negative count said */
    long long max_price;      /* minor units, -1 = none */
    char *level;              /* shipping: "express" | "standard" | "overnight" */
};

/* Reads text (a sentence, or a UI action's JSON) into *a (overwritten;
 * intent I_NONE when nothing was understood). */
void offline_understand(const char *text, struct ask *a);
void offline_ask_free(struct ask *a);

/* A lower-case copy (NULL: no memory). */
char *offline_lower_dup(const char *s);

#endif
