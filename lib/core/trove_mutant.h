/*  trove_mutant - TEST ONLY: the known bugs of a mutant build, which the
    checks must catch (tests/integration/test_mutants.sh, test_chaos_mutant.sh,
    test_power_loss.sh). A mutant build (CMake -DTROVE_MUTANT_BUILD=ON, never
    deployed) carries them all, and each process switches on at most one,
    named by its environment: TROVE_MUTANT=NAME. So one build serves every
    mutant check instead of one build per bug.

    In every other build TROVE_MUTANT (name) is the constant false and the
    bug's code is compiled out.

      ack_before_commit  the scorer answers before its commit (events lost on a kill)
      wal_sync_skipped   the log answers from the page cache (lost on a power cut)
      dedup_skipped      an event sent again by another submission is applied again
      state_not_saved    rule state is not written with its batch (lost once applied)
      cap_off_by_one     a capped `each` rule allows one award more per period
      utc_day            day caps follow UTC days instead of the hunt's time zone */
#ifndef TROVE_MUTANT_H_INCLUDED
#define TROVE_MUTANT_H_INCLUDED

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifdef TROVE_MUTANT_BUILD
//  True when TROVE_MUTANT names this bug. The environment is read once; a
//  name that is no mutant stops the process (a typo must not pass for a
//  caught bug), and the active one is announced on stderr.
bool trove_mutant_on (const char *name);
#    define TROVE_MUTANT(name) trove_mutant_on (#    name)
#else
#    define TROVE_MUTANT(name) false
#endif

#ifdef __cplusplus
}
#endif
#endif
