/*
 * lg_event.c — allocating and posting engine events (see lg_event.h).
 */
#include "lg_event.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

static size_t event_size(lg_event_type_t type)
{
    size_t head = offsetof(lg_event_t, u);
    switch (type) {
    case LG_EV_TUNNEL:
        return head + sizeof(lg_ev_tunnel_t);
    case LG_EV_SUSPENDED:
        return head + sizeof(lg_ev_suspended_t);
    case LG_EV_BLOCKED:
        return head + sizeof(lg_ev_blocked_t);
    case LG_EV_ACCESS:
        return head + sizeof(lg_ev_access_t);
    default:
        return head + sizeof(lg_ev_note_t);
    }
}

lg_event_t *lg_event_alloc(lg_events_t *ch, lg_event_type_t type, unsigned worker)
{
    lg_event_t *ev = lg_calloc(1, event_size(type));
    if (ev == NULL) {
        if (ch != NULL) atomic_fetch_add_explicit(&ch->dropped, 1, memory_order_relaxed);
        if (ch != NULL && type == LG_EV_ACCESS) {
            atomic_fetch_add_explicit(&ch->access_dropped, 1, memory_order_relaxed);
        }
        return NULL;
    }
    ev->type = type;
    ev->worker = worker;
    return ev;
}

/* The bounded count ev's class belongs to; NULL for the control events, which are not bounded. */
static atomic_long *class_count(lg_events_t *ch, const lg_event_t *ev)
{
    if (ev->type == LG_EV_READY || ev->type == LG_EV_WORKER_EXIT) return NULL;
    return ev->type == LG_EV_SUSPENDED ? &ch->queued_suspended : &ch->queued;
}

static void count_drop(lg_events_t *ch, lg_event_type_t type)
{
    atomic_fetch_add_explicit(&ch->dropped, 1, memory_order_relaxed);
    if (type == LG_EV_ACCESS)
        atomic_fetch_add_explicit(&ch->access_dropped, 1, memory_order_relaxed);
}

int lg_events_post(lg_events_t *ch, lg_event_t *ev)
{
    atomic_long *count = class_count(ch, ev);
    lg_event_type_t type = ev->type;
    if (ch->post == NULL) goto drop;
    if (count != NULL &&
        atomic_fetch_add_explicit(count, 1, memory_order_relaxed) >= LG_EVENT_QUEUE_MAX) {
        atomic_fetch_sub_explicit(count, 1, memory_order_relaxed);
        goto drop;
    }
    if (ch->post(ch->post_ctx, ev) != 0) {
        /* The post function freed ev. */
        if (count != NULL) atomic_fetch_sub_explicit(count, 1, memory_order_relaxed);
        count_drop(ch, type);
        return -EAGAIN;
    }
    return 0;
drop:
    count_drop(ch, type);
    lg_free(ev);
    return -EAGAIN;
}

void lg_events_done(lg_events_t *ch, const lg_event_t *ev)
{
    atomic_long *count = class_count(ch, ev);
    if (count != NULL) atomic_fetch_sub_explicit(count, 1, memory_order_relaxed);
}

void lg_events_note(lg_events_t *ch, lg_event_type_t type, unsigned worker, int code,
                    const char *fmt, ...)
{
    lg_event_t *ev = lg_event_alloc(ch, type, worker);
    if (ev == NULL) return;
    ev->u.note.code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ev->u.note.message, sizeof(ev->u.note.message), fmt, ap);
    va_end(ap);
    lg_events_post(ch, ev);
}
