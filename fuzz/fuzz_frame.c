/*  Fuzz target: request framing, the bytes a connection sends first, as
    the HTTP listener's door reads them (trove_http_frame_check), and the
    same head split into fields (trove_http_fields_check, what a kept-alive
    connection's later request gets). Properties checked: the answer is
    0 (complete), 1 (incomplete) or a refusal 400/431/505 with a code and a
    sentence; a complete head ends in CRLF CRLF within the input, has at
    most one framing (never both a length and chunked), checks the same
    alone, and its fields pass the field checks; a head that is complete in
    a prefix is complete, with the same size, in every longer input (no
    byte after a head changes how it is framed). The regressions are the
    smuggling cases of issue 18 (fuzz/regressions/frame). */
#include "fuzz_common.h"
#include "trove_http.h"

#include <stdbool.h>

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    const char *buf = (const char *) data;
    trove_http_frame_t frame;
    const char *code = NULL, *detail = NULL;
    int status = trove_http_frame_check (buf, size, &frame, &code, &detail);
    if (status == 1)
        return 0;
    if (status != 0) {
        if ((status != 400 && status != 431 && status != 505) || !code || !*code || !detail || !*detail)
            abort ();
        return 0;
    }
    if (frame.head_size < 4 || frame.head_size > size || frame.head_size > TROVE_HTTP_MAX_HEAD
        || memcmp (buf + frame.head_size - 4, "\r\n\r\n", 4) != 0 || (frame.has_length && frame.chunked)
        || (frame.chunked && !frame.http11) || (!frame.has_length && frame.length))
        abort ();
    //  The head alone frames the same: nothing after it counts.
    trove_http_frame_t alone;
    if (trove_http_frame_check (buf, frame.head_size, &alone, &code, &detail) != 0
        || memcmp (&alone, &frame, sizeof frame) != 0)
        abort ();
    //  One byte less is never complete.
    trove_http_frame_t shorter;
    if (trove_http_frame_check (buf, frame.head_size - 1, &shorter, &code, &detail) == 0)
        abort ();
    //  Split into fields as libmicrohttpd would (name, trimmed value): the
    //  field checks agree.
    const char *fields [2 * TROVE_HTTP_MAX_FIELDS];
    char *copy = malloc (frame.head_size + 1);
    if (!copy)
        return 0;
    memcpy (copy, buf, frame.head_size);
    copy [frame.head_size] = 0;
    size_t n = 0;
    char *line = strstr (copy, "\r\n") + 2;
    while (*line != '\r') {
        char *end = strstr (line, "\r\n");
        *end = 0;
        char *colon = strchr (line, ':');
        *colon = 0;
        char *value = colon + 1;
        while (*value == ' ' || *value == '\t')
            value++;
        char *vend = value + strlen (value);
        while (vend > value && (vend [-1] == ' ' || vend [-1] == '\t'))
            *--vend = 0;
        fields [2 * n] = line;
        fields [2 * n + 1] = value;
        n++;
        line = end + 2;
    }
    if (trove_http_fields_check (frame.http11, fields, n, &code, &detail) != 0)
        abort ();
    free (copy);
    return 0;
}
