/*  trove-load - the award follower: an actor that owns a trove_awardsub
    (in its own thread, so that award arrival times are not delayed by the
    sending loop) and matches each award to an event of this run by its id
    (--id-prefix and the event's counter). */
#include "trove_load.h"
#include "trove_util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void
s_on_award (void *arg, const Trove__Coin *coin)
{
    trove_load_awards_t *self = (trove_load_awards_t *) arg;
    int64_t now_mono = trove_mono_us ();
    int64_t now_wall = trove_now_us ();
    const char *id = coin->n_events > 0 && coin->events [0] ? coin->events [0]->id : NULL;
    if (!id || strncmp (id, self->prefix, self->prefix_len) != 0) {
        atomic_fetch_add (&self->foreign, 1);
        return;
    }
    const char *digits = id + self->prefix_len;
    char *end;
    errno = 0;
    unsigned long long index = strtoull (digits, &end, 10);
    if (*digits < '0' || *digits > '9' || *end || errno || index >= self->capacity) {
        atomic_fetch_add (&self->foreign, 1);
        return;
    }
    atomic_fetch_add (&self->coins, 1);
    //  Revocations and the reconciler's entries say nothing of real time.
    if (self->seen_mono [index] || coin->revoked || coin->accepted_us <= 0) {
        atomic_fetch_add (&self->extra, 1);
        return;
    }
    self->seen_mono [index] = now_mono;
    self->accepted_lat [index] = now_wall - coin->accepted_us;
    atomic_fetch_add (&self->events, 1);
}

void
trove_load_awards_actor (zsock_t *pipe, void *arg)
{
    trove_load_awards_t *self = (trove_load_awards_t *) arg;
    trove_awardsub_t *sub = trove_awardsub_new (self->cfg, true, s_on_award, self);
    zpoller_t *poller = zpoller_new (pipe, NULL);
    if (sub && poller && zpoller_add (poller, trove_awardsub_socket (sub)) == 0)
        atomic_store (&self->ready, true);
    zsock_signal (pipe, 0);
    bool ready = atomic_load (&self->ready);
    while (poller) {
        void *which = zpoller_wait (poller, ready ? 100 : -1);
        if (which == pipe) {
            char *command = zstr_recv (pipe);
            bool term = !command || streq (command, "$TERM");
            zstr_free (&command);
            if (term)
                break;
        }
        else if (!which && zpoller_terminated (poller))
            break;
        //  Also on a timeout: the subscriber has gap and heartbeat timers.
        if (ready && trove_awardsub_poll (sub, 0) != 0)
            trove_log ('W', "award stream: poll failed");
    }
    zpoller_destroy (&poller);
    trove_awardsub_destroy (&sub);
}
