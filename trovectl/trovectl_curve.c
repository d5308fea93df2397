/*  trovectl curve - certificates for CURVE between hosts (docs/security.md,
    "CURVE between hosts"). The Ansible deployment runs `new` once per host
    and `show` to learn each host's public key. */
#include "trovectl.h"
#include "trove_curve.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const trovectl_curve_help =
    "usage: trovectl curve new PATH [--name NAME] [--role ROLE [--source S]] [--json]\n"
    "       trovectl curve show PATH [--json]\n"
    "\n"
    "new   make a CURVE key pair: PATH holds the public certificate (0644: copy\n"
    "      it into the peers folder of every host that must admit this one),\n"
    "      PATH_secret the secret one (0600, the service user's; never copy it).\n"
    "      Refuses to overwrite an existing PATH_secret. NAME goes into the\n"
    "      certificate's metadata. Prints the public key (40 Z85 characters):\n"
    "      the value of `curve_key` for the processes of this host.\n"
    "      ROLE (in the metadata too) says what the holder may do once its\n"
    "      certificate is in a peers folder (docs/security.md, \"Roles\"):\n"
    "        daemon    (default) a host's processes: all but control operations\n"
    "        operator  trovectl: control operations (rules, exclusions, reconcile)\n"
    "        producer  submits events of source S only (--source S)\n"
    "        reader    queries and the award stream only\n"
    "show  print the public key of the certificate at PATH (public or secret).\n";

int
trovectl_curve (const trovectl_opts_t *opts)
{
    if (opts->nargs != 2 || (strcmp (opts->args [0], "new") && strcmp (opts->args [0], "show")))
        return trovectl_fail ("curve: want `new PATH` or `show PATH` (see trovectl curve --help)");
    if ((opts->name || opts->role || opts->source) && strcmp (opts->args [0], "new"))
        return trovectl_fail ("curve show: --name, --role and --source are for `new`");
    char *err = NULL;
    const char *path = opts->args [1];
    char *key = strcmp (opts->args [0], "new") == 0
                  ? trove_curve_keygen (path, opts->name, opts->role, opts->source, &err)
                  : trove_curve_public_key (path, &err);
    if (!key) {
        trovectl_fail ("curve %s: %s", opts->args [0], err ? err : "out of memory");
        free (err);
        return 1;
    }
    json_t *out = opts->json ? json_pack ("{s:s, s:s}", "public_key", key, "path", path) : NULL;
    char *text = out ? json_dumps (out, JSON_COMPACT) : NULL;
    json_decref (out);
    if (text)
        printf ("%s\n", text);
    else
        printf ("%s\n", key);
    free (text);
    free (key);
    return 0;
}
