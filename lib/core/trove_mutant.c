/*  trove_mutant - TEST ONLY: which known bug this process carries. */
#include "trove_mutant.h"

#ifdef TROVE_MUTANT_BUILD
#    include <pthread.h>
#    include <stdio.h>
#    include <stdlib.h>
#    include <string.h>

static const char *const s_names [] = {"ack_before_commit", "wal_sync_skipped", "dedup_skipped",
                                       "state_not_saved",   "cap_off_by_one",   "utc_day"};
static const char *s_active;  //  NULL: none
static pthread_once_t s_once = PTHREAD_ONCE_INIT;

static void
s_read (void)
{
    const char *name = getenv ("TROVE_MUTANT");
    if (!name || !*name)
        return;
    for (size_t i = 0; i < sizeof s_names / sizeof s_names [0]; i++)
        if (!strcmp (name, s_names [i])) {
            s_active = s_names [i];
            fprintf (stderr, "TEST-ONLY MUTANT BUILD: the bug %s is on (TROVE_MUTANT)\n", s_active);
            return;
        }
    fprintf (stderr, "TROVE_MUTANT=%s: no such mutant\n", name);
    abort ();
}

bool
trove_mutant_on (const char *name)
{
    pthread_once (&s_once, s_read);
    return s_active && !strcmp (s_active, name);
}
#else
//  ISO C wants a declaration in every translation unit.
typedef int trove_mutant_none_t;
#endif
