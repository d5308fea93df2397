/*  trove_http_frame - the framing checks of a request head (RFC 9112): the
    door applies them to each connection's first head, trove_http.c to the
    headers of a kept-alive connection's later requests. See trove_http.h,
    trove_http_frame_check. */
#include "trove_http_internal.h"

#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

//  RFC 9110 token characters (method, header name).
static bool
s_tchar (unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
        || (c && strchr ("!#$%&'*+-.^_`|~", c));
}

typedef struct {
    const char *name, *value;
    size_t nlen, vlen;
} s_field_t;

static bool
s_name_is (const s_field_t *f, const char *name)
{
    return f->nlen == strlen (name) && strncasecmp (f->name, name, f->nlen) == 0;
}

static int
s_refuse_frame (int status, const char *code, const char *detail, const char **code_p, const char **detail_p)
{
    *code_p = code;
    *detail_p = detail;
    return status;
}

//  What the framing headers say, whichever parser split them.
static int
s_fields_check (bool http11, const s_field_t *fields, size_t n, trove_http_frame_t *frame,
                const char **code_p, const char **detail_p)
{
    size_t lengths = 0, encodings = 0, hosts = 0;
    const s_field_t *length = NULL, *encoding = NULL;
    for (size_t i = 0; i < n; i++) {
        const s_field_t *f = &fields [i];
        if (f->nlen == 0)
            return s_refuse_frame (400, "bad_header", "a header field has no name", code_p, detail_p);
        for (size_t k = 0; k < f->nlen; k++)
            if (!s_tchar ((unsigned char) f->name [k]))
                return s_refuse_frame (400, "bad_header",
                                       "a header name holds a character other than letters, digits and "
                                       "!#$%&'*+-.^_`|~ (a space before the colon?)",
                                       code_p, detail_p);
        for (size_t k = 0; k < f->vlen; k++) {
            unsigned char c = (unsigned char) f->value [k];
            if ((c < 0x20 && c != '\t') || c == 0x7f)
                return s_refuse_frame (400, "bad_header", "a header value holds a control character", code_p,
                                       detail_p);
        }
        if (s_name_is (f, "Content-Length"))
            lengths++, length = f;
        else if (s_name_is (f, "Transfer-Encoding"))
            encodings++, encoding = f;
        else if (s_name_is (f, "Host"))
            hosts++;
    }
    if (lengths && encodings)
        return s_refuse_frame (400, "ambiguous_length",
                               "the request has both Content-Length and Transfer-Encoding: send one", code_p,
                               detail_p);
    if (lengths > 1)
        return s_refuse_frame (400, "ambiguous_length", "the request has several Content-Length headers",
                               code_p, detail_p);
    if (encodings > 1)
        return s_refuse_frame (400, "bad_transfer_encoding",
                               "the request has several Transfer-Encoding headers", code_p, detail_p);
    frame->has_length = lengths == 1;
    frame->chunked = encodings == 1;
    frame->length = 0;
    if (length) {
        if (length->vlen == 0 || length->vlen > 18)
            return s_refuse_frame (400, "bad_content_length", "Content-Length must be 1 to 18 decimal digits",
                                   code_p, detail_p);
        for (size_t k = 0; k < length->vlen; k++) {
            if (length->value [k] < '0' || length->value [k] > '9')
                return s_refuse_frame (400, "bad_content_length",
                                       "Content-Length must be decimal digits only (no sign, no list)",
                                       code_p, detail_p);
            frame->length = frame->length * 10 + (uint64_t) (length->value [k] - '0');
        }
    }
    if (encoding) {
        if (!http11)
            return s_refuse_frame (400, "bad_transfer_encoding", "HTTP/1.0 has no Transfer-Encoding", code_p,
                                   detail_p);
        if (encoding->vlen != 7 || strncasecmp (encoding->value, "chunked", 7) != 0)
            return s_refuse_frame (400, "bad_transfer_encoding",
                                   "the only Transfer-Encoding taken is exactly 'chunked'", code_p, detail_p);
    }
    if (http11 && hosts == 0)
        return s_refuse_frame (400, "missing_host", "an HTTP/1.1 request must have a Host header", code_p,
                               detail_p);
    if (hosts > 1)
        return s_refuse_frame (400, "bad_header", "the request has several Host headers", code_p, detail_p);
    return 0;
}

int
trove_http_fields_check (bool http11, const char *const *headers, size_t nheaders, const char **code_p,
                         const char **detail_p)
{
    s_field_t fields [HTTP_MAX_PAIRS];
    if (nheaders > HTTP_MAX_PAIRS)
        return s_refuse_frame (400, "bad_header", "too many header fields", code_p, detail_p);
    for (size_t i = 0; i < nheaders; i++) {
        const char *name = headers [2 * i] ? headers [2 * i] : "";
        const char *value = headers [2 * i + 1] ? headers [2 * i + 1] : "";
        fields [i] = (s_field_t){name, value, strlen (name), strlen (value)};
    }
    trove_http_frame_t frame;
    return s_fields_check (http11, fields, nheaders, &frame, code_p, detail_p);
}

//  Where the line starting at p ends ("\r\n"), within end. Returns the
//  offset of '\r', -1 when the line is not complete, -2 when a bare CR or
//  LF is in it.
static ptrdiff_t
s_line_end (const char *p, const char *end)
{
    for (const char *q = p; q < end; q++) {
        if (*q == '\n')
            return -2;  //  LF without CR
        if (*q == '\r') {
            if (q + 1 == end)
                return -1;
            return q [1] == '\n' ? q - p : -2;
        }
    }
    return -1;
}

int
trove_http_frame_check (const char *buf, size_t len, trove_http_frame_t *frame, const char **code_p,
                        const char **detail_p)
{
    assert (buf || len == 0);
    memset (frame, 0, sizeof *frame);
    const char *end = buf + (len > TROVE_HTTP_MAX_HEAD ? TROVE_HTTP_MAX_HEAD : len);
    //  Request line: METHOD SP /target SP HTTP/1.x CRLF
    ptrdiff_t eol = s_line_end (buf, end);
    if (eol == -2)
        return s_refuse_frame (400, "bad_request_line", "lines must end in CRLF", code_p, detail_p);
    if (eol == -1) {
        //  Refuse what can never become a request line without waiting for it.
        for (const char *q = buf; q < end; q++)
            if (*q == ' ')
                break;
            else if (!s_tchar ((unsigned char) *q))
                return s_refuse_frame (400, "bad_request_line", "the method is not a token", code_p,
                                       detail_p);
        if (len >= TROVE_HTTP_MAX_HEAD)
            return s_refuse_frame (431, "headers_too_large", "the request head is over 32 KiB", code_p,
                                   detail_p);
        return 1;
    }
    const char *line = buf, *line_end = buf + eol;
    const char *sp1 = memchr (line, ' ', (size_t) (line_end - line));
    const char *sp2 = sp1 ? memchr (sp1 + 1, ' ', (size_t) (line_end - sp1 - 1)) : NULL;
    if (!sp1 || sp1 == line || !sp2 || sp2 == sp1 + 1 || sp1 [1] != '/')
        return s_refuse_frame (400, "bad_request_line", "want METHOD /path HTTP/1.1", code_p, detail_p);
    for (const char *q = line; q < sp1; q++)
        if (!s_tchar ((unsigned char) *q))
            return s_refuse_frame (400, "bad_request_line", "the method is not a token", code_p, detail_p);
    for (const char *q = sp1 + 1; q < sp2; q++)
        if ((unsigned char) *q <= ' ' || (unsigned char) *q >= 0x7f)
            return s_refuse_frame (
                400, "bad_request_line",
                "the target holds a space, a control or a non-ASCII byte (percent-encode it)", code_p,
                detail_p);
    size_t vlen = (size_t) (line_end - sp2 - 1);
    const char *version = sp2 + 1;
    if (vlen == 8 && memcmp (version, "HTTP/1.1", 8) == 0)
        frame->http11 = true;
    else if (vlen == 8 && memcmp (version, "HTTP/1.0", 8) == 0)
        frame->http11 = false;
    else if (vlen == 8 && memcmp (version, "HTTP/", 5) == 0 && version [6] == '.')
        return s_refuse_frame (505, "http_version", "HTTP/1.1 or HTTP/1.0 only", code_p, detail_p);
    else
        return s_refuse_frame (400, "bad_request_line", "want METHOD /path HTTP/1.1", code_p, detail_p);
    //  Header lines up to the empty line.
    s_field_t fields [TROVE_HTTP_MAX_FIELDS];
    size_t n = 0;
    const char *p = line_end + 2;
    while (true) {
        eol = s_line_end (p, end);
        if (eol == -2)
            return s_refuse_frame (400, "bad_header", "lines must end in CRLF", code_p, detail_p);
        if (eol == -1) {
            if (len >= TROVE_HTTP_MAX_HEAD)
                return s_refuse_frame (431, "headers_too_large", "the request head is over 32 KiB", code_p,
                                       detail_p);
            return 1;
        }
        if (eol == 0) {
            frame->head_size = (size_t) (p + 2 - buf);
            break;
        }
        if (*p == ' ' || *p == '\t')
            return s_refuse_frame (400, "bad_header", "folded header lines are not taken", code_p, detail_p);
        if (n == TROVE_HTTP_MAX_FIELDS)
            return s_refuse_frame (431, "headers_too_large", "more than 100 header fields", code_p, detail_p);
        const char *colon = memchr (p, ':', (size_t) eol);
        if (!colon)
            return s_refuse_frame (400, "bad_header", "a header line without a colon", code_p, detail_p);
        const char *v = colon + 1, *vend = p + eol;
        while (v < vend && (*v == ' ' || *v == '\t'))
            v++;
        while (vend > v && (vend [-1] == ' ' || vend [-1] == '\t'))
            vend--;
        fields [n++] = (s_field_t){p, v, (size_t) (colon - p), (size_t) (vend - v)};
        p += eol + 2;
    }
    return s_fields_check (frame->http11, fields, n, frame, code_p, detail_p);
}
