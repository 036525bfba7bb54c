/* A streamed model reply's text, stored as text-delta events while the step
 * runs: deltas buffer on the loop and go to the store in batches (at once
 * past FLUSH_BYTES, else FLUSH_MS after the first buffered byte), one flush
 * job at a time, so the events keep the text's order. The step's own record
 * (runner.c) waits for a flush in flight and carries what is left; so does
 * the turn's end. */
#include "agent/events.h"
#include "agent/runner.h"
#include "agent/turn.h"
#include "core/loop.h"
#include "store/async.h"
#include "store/store.h"

#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#define FLUSH_MS 50
#define FLUSH_BYTES 512

static int op_flush(struct store *st, void *arg)
{
    struct turn *t = arg;
    json_t *d = json_pack("{s:s,s:i,s:b}", "text", t->flush_text, "step", t->step, "reset",
                          t->flush_reset);
    char *text = d ? json_dumps(d, JSON_COMPACT) : NULL;
    json_decref(d);
    struct store_event e = { .session_id = t->session_id, .turn_id = t->turn_id,
                             .type = "text-delta", .data = text };
    if (text && store_event_append(st, &e, 1) == 0 && t->ag->events)
        events_publish(t->ag->events, t->session_id);
    free(text);
    return 0;
}

static void start_flush(struct turn *t);

static void on_flush_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct turn *t = arg;
    t->flush_armed = 0;
    if (!t->flushing && (t->delta_len || t->delta_reset))
        start_flush(t);
}

/* Deltas are stored in batches: at once past FLUSH_BYTES, else FLUSH_MS
 * after the first buffered byte — a few writes a second per streaming turn
 * instead of one per token. */
static void schedule_flush(struct turn *t)
{
    if (t->flushing || (!t->delta_len && !t->delta_reset))
        return;
    if (t->delta_len >= FLUSH_BYTES) {
        if (t->flush_armed)
            evtimer_del(t->flush_ev);
        t->flush_armed = 0;
        start_flush(t);
        return;
    }
    if (t->flush_armed)
        return;
    if (!t->flush_ev && !(t->flush_ev = evtimer_new(loop_base(t->loop), on_flush_timer, t))) {
        start_flush(t);
        return;
    }
    struct timeval tv = { 0, FLUSH_MS * 1000 };
    t->flush_armed = 1;
    evtimer_add(t->flush_ev, &tv);
}

void turn_text_stop(struct turn *t)
{
    if (t->flush_armed)
        evtimer_del(t->flush_ev);
    t->flush_armed = 0;
}

static void flush_done(int status, void *arg)
{
    (void)status;
    struct turn *t = arg;
    t->flushing = 0;
    free(t->flush_text);
    t->flush_text = NULL;
    if (t->finish_waiting || t->step_waiting)
        t->flushed(t); /* the step's record or the turn's end carries the rest */
    else
        schedule_flush(t);
}

/* Hands the buffered text to a store job; more text buffers meanwhile. */
static void start_flush(struct turn *t)
{
    t->flush_text = t->delta ? t->delta : strdup("");
    t->flush_reset = t->delta_reset;
    t->delta = NULL;
    t->delta_len = 0;
    t->delta_reset = 0;
    if (!t->flush_text)
        return;
    t->flushing = 1;
    if (turn_store_async(t, op_flush, flush_done) != 0) {
        /* busy: keep the text for the next flush or the step's record */
        t->flushing = 0;
        t->delta = t->flush_text;
        t->delta_len = strlen(t->delta);
        t->delta_reset = t->flush_reset;
        t->flush_text = NULL;
    }
}

/* The model's text as it streams (loop). text NULL: an attempt failed
 * mid-stream and the next one starts the text over. */
void turn_text_delta(const char *text, size_t len, void *ud)
{
    struct turn *t = ud;
    t->streamed = 1;
    if (!text) {
        t->delta_len = 0;
        if (t->delta)
            t->delta[0] = '\0'; /* a flush takes the buffer as a string */
        t->delta_reset = 1;
    } else {
        char *d = realloc(t->delta, t->delta_len + len + 1);
        if (!d)
            return; /* the step's reply still carries the whole text */
        memcpy(d + t->delta_len, text, len);
        t->delta_len += len;
        d[t->delta_len] = '\0';
        t->delta = d;
    }
    schedule_flush(t);
}
