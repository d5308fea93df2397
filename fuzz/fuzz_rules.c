/*  Fuzz target: the hunt file parser (trove_rules_load_text), as
    `trovectl rules check` and a scorer's rules_apply read a file sent by an
    operator. Property checked: a refusal always says why. */
#include "fuzz_common.h"
#include "trove_rules.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    char *err = NULL;
    trove_rules_t *rules = trove_rules_load_text ("fuzz.yaml", (const char *) data, size, &err);
    if (!rules && !err)
        abort ();
    if (rules) {
        for (size_t h = 0; h < trove_rules_hunts (rules); h++)
            (void) trove_rules_latest (rules, h);
    }
    trove_rules_destroy (&rules);
    free (err);
    return 0;
}
