/*
 * test_event.c — unit tests of the event channel's bounds (src/lg_event.c).
 *
 * The post function keeps what it is given, as the threadsafe function's queue does while the JS
 * thread is busy; handing an event back (lg_events_done) is the JS thread having handled it.
 */
#include "../../src/lg_event.c"

#include "lg_test.h"

#define KEEP_MAX (3 * LG_EVENT_QUEUE_MAX + 16)

typedef struct keeper_s {
    lg_event_t *ev[KEEP_MAX];
    size_t n;
    bool refuse; /* the post function fails (frees the event) */
} keeper_t;

static int keep(void *ctx, lg_event_t *ev)
{
    keeper_t *k = ctx;
    if (k->refuse || k->n == KEEP_MAX) {
        lg_free(ev);
        return -1;
    }
    k->ev[k->n++] = ev;
    return 0;
}

static int post(lg_events_t *ch, lg_event_type_t type)
{
    lg_event_t *ev = lg_event_alloc(ch, type, 0);
    if (ev == NULL) return -ENOMEM;
    return lg_events_post(ch, ev);
}

/* The JS thread handles every kept event. */
static void handle_all(lg_events_t *ch, keeper_t *k)
{
    for (size_t i = 0; i < k->n; i++) {
        lg_events_done(ch, k->ev[i]);
        lg_free(k->ev[i]);
    }
    k->n = 0;
}

static keeper_t keeper; /* large: not on the stack */

LG_TEST(informational_events_are_bounded)
{
    lg_events_t ch = {.post = keep, .post_ctx = &keeper};
    for (int i = 0; i < LG_EVENT_QUEUE_MAX; i++)
        CHECK_EQ_INT(post(&ch, i % 2 ? LG_EV_ACCESS : LG_EV_BLOCKED), 0);
    CHECK_EQ_INT(post(&ch, LG_EV_ACCESS), -EAGAIN);
    CHECK_EQ_INT(post(&ch, LG_EV_TUNNEL), -EAGAIN);
    CHECK_EQ_INT(post(&ch, LG_EV_WARNING), -EAGAIN);
    CHECK_EQ_INT(atomic_load(&ch.dropped), 3);
    CHECK_EQ_INT(atomic_load(&ch.access_dropped), 1);
    CHECK_EQ_INT(keeper.n, LG_EVENT_QUEUE_MAX);
    handle_all(&ch, &keeper);
    CHECK_EQ_INT(atomic_load(&ch.queued), 0);
    CHECK_EQ_INT(post(&ch, LG_EV_ACCESS), 0); /* room again */
    handle_all(&ch, &keeper);
}

LG_TEST(a_full_informational_queue_does_not_drop_suspensions)
{
    /* An access-record flood while the JS thread is busy: held connections still get their
     * events, up to their own bound; and a full suspended class leaves room for the rest. */
    lg_events_t ch = {.post = keep, .post_ctx = &keeper};
    for (int i = 0; i < LG_EVENT_QUEUE_MAX + 10; i++)
        post(&ch, LG_EV_ACCESS);
    for (int i = 0; i < LG_EVENT_QUEUE_MAX; i++)
        CHECK_EQ_INT(post(&ch, LG_EV_SUSPENDED), 0);
    CHECK_EQ_INT(post(&ch, LG_EV_SUSPENDED), -EAGAIN);
    CHECK_EQ_INT(atomic_load(&ch.dropped), 11);
    CHECK_EQ_INT(atomic_load(&ch.queued_suspended), LG_EVENT_QUEUE_MAX);
    /* Control events are never dropped for a full queue. */
    CHECK_EQ_INT(post(&ch, LG_EV_READY), 0);
    CHECK_EQ_INT(post(&ch, LG_EV_WORKER_EXIT), 0);
    handle_all(&ch, &keeper);
    CHECK_EQ_INT(atomic_load(&ch.queued), 0);
    CHECK_EQ_INT(atomic_load(&ch.queued_suspended), 0);

    for (int i = 0; i < LG_EVENT_QUEUE_MAX; i++)
        post(&ch, LG_EV_SUSPENDED);
    CHECK_EQ_INT(post(&ch, LG_EV_ACCESS), 0);
    handle_all(&ch, &keeper);
}

LG_TEST(a_refused_post_gives_its_place_back)
{
    lg_events_t ch = {.post = keep, .post_ctx = &keeper};
    keeper.refuse = true;
    CHECK_EQ_INT(post(&ch, LG_EV_SUSPENDED), -EAGAIN);
    CHECK_EQ_INT(post(&ch, LG_EV_ACCESS), -EAGAIN);
    CHECK_EQ_INT(post(&ch, LG_EV_READY), -EAGAIN);
    CHECK_EQ_INT(atomic_load(&ch.queued), 0);
    CHECK_EQ_INT(atomic_load(&ch.queued_suspended), 0);
    CHECK_EQ_INT(atomic_load(&ch.dropped), 3);
    keeper.refuse = false;
    /* No post function yet: every post is a drop. */
    lg_events_t none = {0};
    CHECK_EQ_INT(post(&none, LG_EV_SUSPENDED), -EAGAIN);
    CHECK_EQ_INT(atomic_load(&none.dropped), 1);
}

int main(void)
{
    LG_RUN(informational_events_are_bounded);
    LG_RUN(a_full_informational_queue_does_not_drop_suspensions);
    LG_RUN(a_refused_post_gives_its_place_back);
    LG_TEST_END();
}
