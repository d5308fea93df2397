#!/usr/bin/env python3
"""Check docs/openapi.json (the OpenAPI 3.1 description of the ingestor's
HTTP API) three ways; tests/integration/test_openapi.sh drives it.

  check_openapi.py lint DOC
      The document is OpenAPI 3.1 as far as its structure goes (no Debian
      package validates 3.1, so the rules of the specification that bear on
      this document are written out here): the required fields, known
      fields only, operation ids unique, every $ref resolves, every path
      template parameter declared once as a required path parameter (and
      no other), security requirements naming declared schemes, tags
      declared, and every schema a valid JSON Schema 2020-12
      (Draft202012Validator.check_schema).

  check_openapi.py routes DOC ROUTES
      ROUTES is what `trove-ingestor --routes` printed (the server's real
      route table, "METHOD PATH[ open]" per line; a path ending in '/' is a
      prefix). Every route serves at least one documented operation, every
      documented operation is served by a route of its method (the longest
      match, as the server routes), and a route is open (no key) exactly
      when its operations say `security: []`. A route registered without
      documentation fails here.

  check_openapi.py live DOC --base URL --dir CLUSTER --trovectl PATH
                   --key K --write-key K --read-key K
      Against a running cluster: every documented operation called with
      valid and invalid inputs. Each answer must have a status the
      operation documents and a body (and required headers) valid against
      that status's schema; each case also states the status and error code
      it expects, from the docs, not from Trove. Finally every operation
      must have been seen answering both 2xx and 4xx.

  check_openapi.py selftest DOC
      The checks can fail: a broken $ref, an undeclared path parameter, a
      duplicated operationId, an undocumented route and an answer outside
      the schema must each be caught.

Exit 0 when everything holds; otherwise every problem on stderr, exit 1.
Works with python3-jsonschema 4.10 (Debian 12) and later.
"""
import argparse
import concurrent.futures
import copy
import datetime
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.parse

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"]
TOP_FIELDS = {"openapi", "info", "jsonSchemaDialect", "servers", "paths", "webhooks", "components",
              "security", "tags", "externalDocs"}
INFO_FIELDS = {"title", "summary", "description", "termsOfService", "contact", "license", "version"}
PATH_ITEM_FIELDS = {"$ref", "summary", "description", "servers", "parameters"} | set(METHODS)
OPERATION_FIELDS = {"tags", "summary", "description", "externalDocs", "operationId", "parameters",
                    "requestBody", "responses", "callbacks", "deprecated", "security", "servers"}
PARAMETER_FIELDS = {"name", "in", "description", "required", "deprecated", "allowEmptyValue", "style",
                    "explode", "allowReserved", "schema", "example", "examples", "content"}
HEADER_FIELDS = PARAMETER_FIELDS - {"name", "in", "allowEmptyValue", "allowReserved"}
RESPONSE_FIELDS = {"description", "headers", "content", "links"}
MEDIA_FIELDS = {"schema", "example", "examples", "encoding"}
REQUEST_BODY_FIELDS = {"description", "content", "required"}
COMPONENT_KINDS = {"schemas", "responses", "parameters", "examples", "requestBodies", "headers",
                   "securitySchemes", "links", "callbacks", "pathItems"}
SCHEME_TYPES = {"apiKey", "http", "mutualTLS", "oauth2", "openIdConnect"}
DIALECT = "https://json-schema.org/draft/2020-12/schema"


def extensions_ok(obj, allowed, where, problems):
    for key in obj:
        if key not in allowed and not key.startswith("x-"):
            problems.append("%s: unknown field '%s'" % (where, key))


def pointer(doc, ref):
    """The node a local reference names, or raise KeyError."""
    if not ref.startswith("#/"):
        raise KeyError("not a local reference: %s" % ref)
    node = doc
    for part in ref[2:].split("/"):
        part = urllib.parse.unquote(part).replace("~1", "/").replace("~0", "~")
        if isinstance(node, list):
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            raise KeyError(ref)
    return node


def deref(doc, node):
    """node, or what its $ref names (followed to the end)."""
    seen = 0
    while isinstance(node, dict) and "$ref" in node and seen < 20:
        node = pointer(doc, node["$ref"])
        seen += 1
    return node


def walk(node, where="#"):
    yield where, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from walk(value, "%s/%s" % (where, key.replace("~", "~0").replace("/", "~1")))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from walk(value, "%s/%d" % (where, i))


def template_params(path):
    return re.findall(r"\{([^{}/]+)\}", path)


# --------------------------------------------------------------------------------------------------
# lint

def lint(doc):
    problems = []
    p = problems.append
    if not isinstance(doc, dict):
        return ["the document is not a JSON object"]
    extensions_ok(doc, TOP_FIELDS, "#", problems)
    if not re.fullmatch(r"3\.1\.\d+", str(doc.get("openapi", ""))):
        p("#/openapi: want 3.1.x, got %r" % doc.get("openapi"))
    if doc.get("jsonSchemaDialect", DIALECT) != DIALECT:
        p("#/jsonSchemaDialect: want %s" % DIALECT)
    info = doc.get("info")
    if not isinstance(info, dict):
        p("#/info: required object")
    else:
        extensions_ok(info, INFO_FIELDS, "#/info", problems)
        for field in ("title", "version"):
            if not isinstance(info.get(field), str) or not info.get(field):
                p("#/info/%s: required string" % field)
    for i, server in enumerate(doc.get("servers", [])):
        url = server.get("url") if isinstance(server, dict) else None
        if not isinstance(url, str):
            p("#/servers/%d: url required" % i)
            continue
        variables = server.get("variables", {})
        for name in re.findall(r"\{([^}]+)\}", url):
            if not isinstance(variables.get(name), dict) or not isinstance(variables[name].get("default"), str):
                p("#/servers/%d: variable {%s} needs a string default" % (i, name))
    if "paths" not in doc and "webhooks" not in doc and "components" not in doc:
        p("#: one of paths, webhooks, components is required")
    tags = [t.get("name") for t in doc.get("tags", []) if isinstance(t, dict)]
    if len(tags) != len(set(tags)) or None in tags:
        p("#/tags: names must be present and unique")

    comps = doc.get("components", {})
    extensions_ok(comps, COMPONENT_KINDS, "#/components", problems)
    for kind, entries in comps.items():
        if kind.startswith("x-"):
            continue
        for name in entries:
            if not re.fullmatch(r"[a-zA-Z0-9.\-_]+", name):
                p("#/components/%s/%s: a component name is [a-zA-Z0-9.-_]+" % (kind, name))
    schemes = comps.get("securitySchemes", {})
    for name, scheme in schemes.items():
        where = "#/components/securitySchemes/" + name
        scheme = deref(doc, scheme)
        if scheme.get("type") not in SCHEME_TYPES:
            p("%s: type must be one of %s" % (where, sorted(SCHEME_TYPES)))
        if scheme.get("type") == "http" and not isinstance(scheme.get("scheme"), str):
            p("%s: an http scheme needs `scheme`" % where)
        if scheme.get("type") == "apiKey" and (not scheme.get("name") or scheme.get("in") not in ("query", "header", "cookie")):
            p("%s: an apiKey scheme needs `name` and `in`" % where)

    def check_security(req, where):
        if not isinstance(req, list):
            p("%s: security must be an array" % where)
            return
        for i, alt in enumerate(req):
            for name, roles in alt.items():
                if name not in schemes:
                    p("%s/%d: no security scheme '%s'" % (where, i, name))
                if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
                    p("%s/%d/%s: want an array of strings" % (where, i, name))

    if "security" in doc:
        check_security(doc["security"], "#/security")

    # Every reference resolves.
    for where, node in walk(doc):
        if isinstance(node, dict) and isinstance(node.get("$ref"), str):
            try:
                pointer(doc, node["$ref"])
            except (KeyError, ValueError, IndexError):
                p("%s: $ref %s does not resolve" % (where, node["$ref"]))
    if problems:
        return problems  # the rest follows references

    schemas = []  # (where, schema)
    for name, schema in comps.get("schemas", {}).items():
        schemas.append(("#/components/schemas/" + name, schema))

    def check_parameter(param, where):
        param = deref(doc, param)
        extensions_ok(param, PARAMETER_FIELDS, where, problems)
        if not isinstance(param.get("name"), str) or param.get("in") not in ("query", "header", "path", "cookie"):
            p("%s: a parameter needs a name and `in` of query, header, path, cookie" % where)
        if param.get("in") == "path" and param.get("required") is not True:
            p("%s: a path parameter must say required: true" % where)
        if ("schema" in param) == ("content" in param):
            p("%s: a parameter has exactly one of schema, content" % where)
        if "schema" in param:
            schemas.append((where + "/schema", param["schema"]))
        return param

    def check_content(content, where):
        if not isinstance(content, dict) or not content:
            p("%s: content must be a non-empty map of media types" % where)
            return
        for media, obj in content.items():
            if not re.fullmatch(r"[\w.+-]+/[\w.+-]+(\s*;.*)?", media):
                p("%s: '%s' is not a media type" % (where, media))
            extensions_ok(obj, MEDIA_FIELDS, "%s/%s" % (where, media), problems)
            if "schema" not in obj:
                p("%s/%s: no schema (every body is described here)" % (where, media))
            else:
                schemas.append(("%s/%s/schema" % (where, media), obj["schema"]))

    op_ids = {}
    normalized = {}
    for path, item in doc.get("paths", {}).items():
        where = "#/paths/" + path.replace("~", "~0").replace("/", "~1")
        if not path.startswith("/"):
            p("%s: a path starts with '/'" % where)
        norm = re.sub(r"\{[^}]*\}", "{}", path)
        if norm in normalized:
            p("%s: the same template as %s" % (where, normalized[norm]))
        normalized[norm] = path
        item = deref(doc, item)
        extensions_ok(item, PATH_ITEM_FIELDS, where, problems)
        in_path = template_params(path)
        if len(in_path) != len(set(in_path)):
            p("%s: a template parameter appears twice" % where)
        common = [check_parameter(x, "%s/parameters/%d" % (where, i)) for i, x in enumerate(item.get("parameters", []))]
        for method in METHODS:
            if method not in item:
                continue
            op = item[method]
            ow = "%s/%s" % (where, method)
            extensions_ok(op, OPERATION_FIELDS, ow, problems)
            oid = op.get("operationId")
            if not isinstance(oid, str):
                p("%s: operationId required (the checks name operations by it)" % ow)
            elif oid in op_ids:
                p("%s: operationId %s also at %s" % (ow, oid, op_ids[oid]))
            else:
                op_ids[oid] = ow
            for tag in op.get("tags", []):
                if tag not in tags:
                    p("%s: tag '%s' is not declared in #/tags" % (ow, tag))
            if "security" in op:
                check_security(op["security"], ow + "/security")
            own = [check_parameter(x, "%s/parameters/%d" % (ow, i)) for i, x in enumerate(op.get("parameters", []))]
            keys = [(x.get("name"), x.get("in")) for x in own]
            if len(keys) != len(set(keys)):
                p("%s: a parameter (name, in) is declared twice" % ow)
            # The operation's parameters override the path item's.
            merged = {(x.get("name"), x.get("in")): x for x in common}
            merged.update({(x.get("name"), x.get("in")): x for x in own})
            declared = sorted(name for (name, where_in) in merged if where_in == "path")
            if declared != sorted(in_path):
                p("%s: path parameters declared %s, template has %s" % (ow, declared, sorted(in_path)))
            if "requestBody" in op:
                body = deref(doc, op["requestBody"])
                extensions_ok(body, REQUEST_BODY_FIELDS, ow + "/requestBody", problems)
                check_content(body.get("content"), ow + "/requestBody/content")
            responses = op.get("responses")
            if not isinstance(responses, dict) or not responses:
                p("%s: responses required" % ow)
                continue
            for code, resp in responses.items():
                rw = "%s/responses/%s" % (ow, code)
                if code != "default" and not re.fullmatch(r"[1-5](\d\d|XX)", code):
                    p("%s: not a status code" % rw)
                resp = deref(doc, resp)
                extensions_ok(resp, RESPONSE_FIELDS, rw, problems)
                if not isinstance(resp.get("description"), str):
                    p("%s: description required" % rw)
                for hname, header in resp.get("headers", {}).items():
                    hw = "%s/headers/%s" % (rw, hname)
                    if hname.lower() == "content-type":
                        p("%s: Content-Type is not described as a header" % hw)
                    header = deref(doc, header)
                    extensions_ok(header, HEADER_FIELDS, hw, problems)
                    if "schema" in header:
                        schemas.append((hw + "/schema", header["schema"]))
                if "content" in resp:
                    check_content(resp["content"], rw + "/content")
    for name, header in comps.get("headers", {}).items():
        if "schema" in header:
            schemas.append(("#/components/headers/%s/schema" % name, header["schema"]))
    # Every schema is a JSON Schema 2020-12.
    for where, schema in schemas:
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as e:
            p("%s: not a valid 2020-12 schema: %s" % (where, e.message))
    return problems


# --------------------------------------------------------------------------------------------------
# routes

def parse_routes(text):
    routes = []
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] != "open"):
            raise ValueError("route line %r: want METHOD PATH [open]" % line)
        routes.append((parts[0], parts[1], len(parts) == 3))
    return routes


def operations(doc):
    for path, item in doc.get("paths", {}).items():
        item = deref(doc, item)
        for method in METHODS:
            if method in item:
                yield method.upper(), path, item[method]


def serving_route(routes, method, path):
    """The route the server would call for method and path (longest match of
    that method), as lib/http/trove_http.c routes; None when none."""
    best = None
    for route in routes:
        r_method, r_path, _ = route
        if r_method != method:
            continue
        matches = path.startswith(r_path) if r_path.endswith("/") else path == r_path
        if matches and (best is None or len(r_path) > len(best[1])):
            best = route
    return best


def check_routes(doc, routes):
    problems = []
    served = {route: [] for route in routes}
    top_security = doc.get("security", [])
    for method, path, op in operations(doc):
        # A template parameter stands for one segment.
        sample = re.sub(r"\{[^}]*\}", "x", path)
        route = serving_route(routes, method, sample)
        name = "%s %s (%s)" % (method, path, op.get("operationId"))
        if route is None:
            problems.append("%s is documented but no route of the server serves it" % name)
            continue
        served[route].append(name)
        is_open = op.get("security", top_security) == []
        if is_open != route[2]:
            problems.append("%s: the document says %s, the route is %s" % (
                name, "open (security: [])" if is_open else "keyed", "open" if route[2] else "keyed"))
    for route, names in served.items():
        if not names:
            problems.append("route %s %s%s is not documented in the OpenAPI document" % (
                route[0], route[1], " (open)" if route[2] else ""))
    return problems


# --------------------------------------------------------------------------------------------------
# answers against the document

class Answer:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = {k.lower(): v for k, v in headers}
        self.body = body

    def json(self):
        return json.loads(self.body.decode("utf-8"))


def find_operation(doc, method, raw_path):
    """The documented operation of a request (raw path, encoded, no query)."""
    best = None
    for m, path, op in operations(doc):
        if m != method:
            continue
        pattern = "^" + re.sub(r"\\\{[^}]*\\\}", "[^/]+", re.escape(path)) + "$"
        if re.match(pattern, raw_path):
            literal = len(re.sub(r"\{[^}]*\}", "", path))
            if best is None or literal > best[0]:
                best = (literal, path, op)
    return (best[1], best[2]) if best else (None, None)


def schema_errors(doc, schema, instance):
    # The schema's references point into the document: validate with the
    # document's components beside it (an unknown keyword to the
    # validator), so a JSON pointer from the root finds them.
    root = dict(schema)
    root["components"] = doc.get("components", {})
    validator = Draft202012Validator(root)
    return ["%s at %s" % (e.message, "/".join(str(x) for x in e.absolute_path) or "(root)")
            for e in validator.iter_errors(instance)]


def sse_events(text):
    """The complete events of a Server-Sent Events text (as the WHATWG
    parser reads them; an unfinished last block is left out): a list of
    {"event", "data", "id"} (each None when the block had no such field)."""
    events = []
    blocks = text.replace("\r\n", "\n").replace("\r", "\n").split("\n\n")
    for block in blocks[:-1]:
        ev = {"event": None, "data": None, "id": None}
        for line in block.split("\n"):
            if not line or line.startswith(":"):
                continue
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "data":
                ev["data"] = value if ev["data"] is None else ev["data"] + "\n" + value
            elif field in ("event", "id"):
                ev[field] = value
        events.append(ev)
    return events


def sse_problems(doc, media, body):
    """A text/event-stream body against its media object: every `id:`
    valid against x-sse-id, every event that dispatches (has data) named
    in x-sse-events and its data (JSON) valid against that schema."""
    problems = []
    named = media.get("x-sse-events", {})
    for i, ev in enumerate(sse_events(body.decode("utf-8", "replace"))):
        if ev["id"] is not None and "x-sse-id" in media:
            problems += ["event %d: id %r: %s" % (i, ev["id"], e) for e in schema_errors(doc, media["x-sse-id"], ev["id"])]
        if ev["data"] is None:
            if ev["event"] is not None:
                problems.append("event %d: `event: %s` without data" % (i, ev["event"]))
            continue
        name = ev["event"] or "message"
        if name not in named:
            problems.append("event %d: event %r is not documented (x-sse-events)" % (i, name))
            continue
        try:
            data = json.loads(ev["data"])
        except ValueError as e:
            problems.append("event %d (%s): data is not JSON: %s" % (i, name, e))
            continue
        problems += ["event %d (%s): %s" % (i, name, e) for e in schema_errors(doc, named[name], data)]
    return problems


def check_answer(doc, method, raw_path, answer):
    """Problems of one answer against its operation in the document."""
    path, op = find_operation(doc, method, raw_path)
    if op is None:
        # Not an operation (401 without a key, 404 an unknown path, 405
        # another method): still the shared error shape.
        if answer.status in (401, 404, 405):
            try:
                errs = schema_errors(doc, {"$ref": "#/components/schemas/Error"}, answer.json())
            except ValueError as e:
                errs = ["not JSON: %s" % e]
            return ["%s %s -> %d: %s" % (method, raw_path, answer.status, "; ".join(errs))] if errs else []
        return ["%s %s: no documented operation, answered %d" % (method, raw_path, answer.status)]
    name = "%s %s (%s) -> %d" % (method, raw_path, op["operationId"], answer.status)
    problems = []
    # The document's info says so for every answer.
    if answer.headers.get("cache-control") != "no-store":
        problems.append("%s: Cache-Control %r, want no-store" % (name, answer.headers.get("cache-control")))
    responses = op.get("responses", {})
    resp = responses.get(str(answer.status)) or responses.get("%dXX" % (answer.status // 100)) or responses.get("default")
    if resp is None:
        return problems + ["%s: status not documented for %s (documented: %s)" % (
            name, op["operationId"], ", ".join(responses))]
    resp = deref(doc, resp)
    for hname, header in resp.get("headers", {}).items():
        header = deref(doc, header)
        value = answer.headers.get(hname.lower())
        if value is None:
            if header.get("required"):
                problems.append("%s: header %s missing" % (name, hname))
            continue
        for e in schema_errors(doc, header.get("schema", {}), value):
            problems.append("%s: header %s: %s" % (name, hname, e))
    content = resp.get("content")
    if not content:
        if answer.body:
            problems.append("%s: a body where none is documented" % name)
        return problems
    ctype = answer.headers.get("content-type", "")
    media = None
    for m in content:
        if m.replace(" ", "").lower() == ctype.replace(" ", "").lower() or (
                m.lower() == "application/json" and ctype.split(";")[0].strip().lower() == "application/json"):
            media = m
    if media is None:
        if method == "HEAD" and not answer.body:
            return problems
        return problems + ["%s: Content-Type %r, documented %s" % (name, ctype, ", ".join(content))]
    if method == "HEAD":
        if answer.body:
            problems.append("%s: HEAD answered with a body" % name)
        return problems
    schema = content[media].get("schema", {})
    if media.split(";")[0].strip().lower() == "text/event-stream":
        problems += ["%s: %s" % (name, p) for p in sse_problems(doc, content[media], answer.body)]
    if media.startswith("application/json"):
        try:
            instance = answer.json()
        except ValueError as e:
            return problems + ["%s: body is not JSON: %s" % (name, e)]
    else:
        instance = answer.body.decode("utf-8", "replace")
    for e in schema_errors(doc, schema, instance):
        problems.append("%s: %s" % (name, e))
    return problems


# --------------------------------------------------------------------------------------------------
# live

class Live:
    def __init__(self, doc, base, args):
        self.doc = doc
        url = urllib.parse.urlsplit(base)
        self.host, self.port = url.hostname, url.port
        assert self.host.startswith("127."), "loopback only"
        self.args = args
        self.problems = []
        self.seen = {}  # operationId -> set of statuses
        self.calls = 0
        self.times = []  # (section, seconds), to keep the test within its time budget
        self._section = None

    def section(self, name):
        now = time.monotonic()
        if self._section:
            self.times.append((self._section[0], now - self._section[1]))
        self._section = (name, now) if name else None

    def request(self, method, path, key=None, body=None, headers=None):
        h = dict(headers or {})
        if key:
            h["Authorization"] = "Bearer " + key
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=h)
            resp = conn.getresponse()
            answer = Answer(resp.status, resp.getheaders(), resp.read())
        finally:
            conn.close()
        return answer

    def raw(self, data, wait_close=True):
        """Send bytes on a new connection, read the answer until the server
        closes (the listener closes after every refusal it makes itself)."""
        s = socket.create_connection((self.host, self.port), timeout=30)
        try:
            s.sendall(data)
            chunks = []
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
                if not wait_close and b"\r\n\r\n" in b"".join(chunks):
                    break
        finally:
            s.close()
        head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = [tuple(x.strip() for x in line.split(":", 1)) for line in lines[1:] if ":" in line]
        length = dict((k.lower(), v) for k, v in headers).get("content-length")
        if length is not None:
            body = body[:int(length)]
        return Answer(status, headers, body)

    def record(self, method, raw_path, answer, want, error=None, label=""):
        self.calls += 1
        path_only = raw_path.split("?", 1)[0]
        name = "%s %s%s" % (method, raw_path[:120], " [%s]" % label if label else "")
        problems = check_answer(self.doc, method, path_only, answer)
        _, op = find_operation(self.doc, method, path_only)
        if op is not None:
            self.seen.setdefault(op["operationId"], set()).add(answer.status)
        if answer.status != want:
            problems.append("%s: HTTP %d, want %d: %s" % (name, answer.status, want, answer.body[:300]))
        elif error is not None:
            try:
                got = answer.json().get("error")
            except (ValueError, AttributeError):
                got = None
            if got != error:
                problems.append("%s: error %r, want %r: %s" % (name, got, error, answer.body[:300]))
        self.problems.extend(problems)
        return answer

    def call(self, method, path, want, error=None, key="default", body=None, headers=None, label=""):
        if key == "default":
            key = self.args.key
        answer = self.request(method, path, key=key, body=body, headers=headers)
        return self.record(method, path, answer, want, error, label)

    def stream(self, path, key="default", headers=None, until=None, timeout=10, label=""):
        """GET an award stream: the status and headers, then for a 200 the
        stream's text until until(text) holds (by default: the opening
        retry/id block) or the timeout passes; then the connection is
        closed. The answer is recorded like any other (want: the status
        the caller checks itself). Returns the Answer."""
        if key == "default":
            key = self.args.key
        h = dict(headers or {})
        if key:
            h["Authorization"] = "Bearer " + key
        h["Accept"] = "text/event-stream"
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        deadline = time.monotonic() + timeout
        try:
            conn.request("GET", path, headers=h)
            resp = conn.getresponse()
            if resp.status != 200:
                return Answer(resp.status, resp.getheaders(), resp.read())
            until = until or (lambda text: "\n\n" in text)
            body = b""
            while not until(body.decode("utf-8", "replace")):
                if time.monotonic() >= deadline:
                    self.problems.append("GET %s%s: the stream did not show what was awaited within %d s: %r" % (
                        path[:120], " [%s]" % label if label else "", timeout, body[:300]))
                    break
                conn.sock.settimeout(max(0.1, deadline - time.monotonic()))
                try:
                    line = resp.readline()
                except socket.timeout:
                    continue
                if not line:
                    self.problems.append("GET %s: the stream ended: %r" % (path[:120], body[:300]))
                    break
                body += line
            return Answer(resp.status, resp.getheaders(), body)
        finally:
            conn.close()

    def expect(self, cond, what):
        if not cond:
            self.problems.append(what)


def run_live(doc, doc_bytes, args):
    live = Live(doc, args.base, args)
    K, W, R = args.key, args.write_key, args.read_key
    enc = lambda s: urllib.parse.quote(s, safe="")
    now = datetime.datetime.now(datetime.timezone.utc)
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    today = now.strftime("%Y-%m-%d")
    run = str(int(time.time() * 1000))

    live.section("meta")
    # --- meta: open, no key --------------------------------------------------------------------
    a = live.call("GET", "/v1/openapi.json", 200, key=None)
    live.expect(a.body == doc_bytes, "GET /v1/openapi.json is not docs/openapi.json byte for byte")
    live.call("GET", "/v1/openapi.json?x=1", 400, "bad_param", key=None)
    live.call("GET", "/v1/openapi.json?x=%zz", 400, "bad_query", key=None)
    a = live.call("GET", "/metrics", 200, key=None)
    live.expect(b"trove_ingestor_http_refused_total" in a.body, "GET /metrics without the listener's counters")
    live.call("HEAD", "/metrics", 200, key=None)
    live.call("GET", "/metrics?a=%00", 400, "bad_query", key=None)
    # Unknown paths and methods: not operations, but the shared error shape.
    live.call("GET", "/v1/nope", 401, "unauthorized", key=None)
    live.call("GET", "/v1/nope", 404, "not_found")
    live.call("POST", "/v1/users/u/balance", 405, "method_not_allowed")
    live.call("GET", "/v1/users//balance", 404, "not_found")

    live.section("events")
    # --- POST /v1/events ------------------------------------------------------------------------
    def ev(i, user, typ="checkin", **extra):
        e = {"id": "oa-%s-%s" % (run, i), "user": user, "type": typ, "ts": stamp}
        e.update(extra)
        return e
    special = "x/y é"
    batch = [ev(1, "u1"), ev(2, "u1", "visit", attrs={"zone": "A"}), ev(3, "u2", "purchase"),
             ev(4, special, "checkin", source="web"), ev(5, "u1", "clueA")]
    a = live.call("POST", "/v1/events", 200, body=json.dumps(batch), headers={"Content-Type": "application/json"})
    if a.status == 200:
        live.expect(a.json().get("accepted") == 5, "the first batch: %s" % a.body[:300])
    # NDJSON, a line that is no event, an event of another source, a resend.
    nd = "\n".join([json.dumps(ev(6, "u2", "visit")), "{not json", json.dumps(ev(7, "u2", source="game")),
                    json.dumps(ev(1, "u1")), ""])
    a = live.call("POST", "/v1/events", 200, body=nd.encode(), headers={"Content-Type": "application/x-ndjson"})
    if a.status == 200:
        got = [(r["status"], r.get("reason")) for r in a.json()["results"]]
        live.expect(got == [("accepted", None), ("rejected", "bad_json"), ("rejected", "source_mismatch"),
                            ("duplicate", None)], "the NDJSON batch: %s" % got)
    # Enough coins for a user that a page of them passes the cost limit.
    many = [ev("f%d" % i, "fay", "purchase") for i in range(150)]
    live.call("POST", "/v1/events", 200, body=json.dumps(many), label="150 for fay")
    live.call("POST", "/v1/events", 429, "rate_limited",
              body=json.dumps([ev("g%d" % i, "fay", "purchase") for i in range(100)]), label="fay's bucket")
    live.call("POST", "/v1/events", 401, "unauthorized", key=None, body="[]")
    live.call("POST", "/v1/events", 401, "unauthorized", key="trk_nosuchkey_nosuchkey_nosuchkey_nosuchk", body="[]")
    live.call("POST", "/v1/events", 403, "forbidden", key=R, body=json.dumps([ev(8, "u3")]))
    live.call("POST", "/v1/events", 400, "bad_idempotency_key", body=json.dumps([ev(8, "u3")]),
              headers={"Idempotency-Key": "has space"})
    idem = {"Idempotency-Key": "oa-%s" % run}
    live.call("POST", "/v1/events", 200, body=json.dumps([ev(9, "u3")]), headers=idem)
    live.call("POST", "/v1/events", 422, "idempotency_mismatch", body=json.dumps([ev(10, "u3")]), headers=idem)
    live.call("POST", "/v1/events", 400, "bad_json", body="[1, 2")
    live.call("POST", "/v1/events", 400, "empty", body="  \n ")
    live.call("POST", "/v1/events", 400, "empty", body="[]")
    live.call("POST", "/v1/events", 413, "too_many_events", body="[" + ",".join(["{}"] * 1001) + "]")
    live.call("POST", "/v1/events", 413, "event_too_large", body=json.dumps([ev(11, "u3", attrs={"a": "z" * 17000})]))
    live.call("POST", "/v1/events?ignored=1", 200, body=json.dumps([ev(12, "u3")]), label="parameters ignored")
    # The write key's source: burst 3, almost no refill.
    live.call("POST", "/v1/events", 413, "over_burst", key=W,
              body=json.dumps([ev("m%d" % i, "u4", source="mobile") for i in range(4)]))
    live.call("POST", "/v1/events", 200, key=W, body=json.dumps([ev("m%d" % i, "u4") for i in range(3)]))
    a = live.call("POST", "/v1/events", 429, "rate_limited", key=W, body=json.dumps([ev("m9", "u4")]))
    if a.status == 429:
        live.expect(a.json().get("scope") == "source", "429 of the source: %s" % a.body)
    live.call("GET", "/v1/users/u4/balance", 403, "forbidden", key=W)
    live.call("GET", "/v1/leaderboards/demo", 403, "forbidden", key=W)
    # The listener's refusals, on raw sockets (each closes the connection).
    a = live.raw(b"POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + K.encode()
                 + b"\r\nContent-Length: 5000000\r\n\r\n")
    live.record("POST", "/v1/events", a, 413, "body_too_large", label="Content-Length over max_body")
    a = live.raw(b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n[]")
    live.record("POST", "/v1/events", a, 400, "ambiguous_length")
    a = live.raw(b"GET /v1/openapi.json HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 33000 + b"\r\n\r\n")
    live.record("GET", "/v1/openapi.json", a, 431, "headers_too_large")
    a = live.raw(b"GET /v1/openapi.json HTTP/2.0\r\nHost: x\r\n\r\n")
    live.record("GET", "/v1/openapi.json", a, 505, "http_version")
    # A head that never ends: 408 after limits/http_header_timeout_s (1 s here).
    a = live.raw(b"GET /v1/users/u1/balance HTTP/1.1\r\nHost: x\r\n")
    live.record("GET", "/v1/users/u1/balance", a, 408, "header_timeout")

    live.section("users")
    # --- users ------------------------------------------------------------------------------------
    subprocess.run([args.trovectl, "exclude", "--dir", args.dir, "u2", "--reason", "staff"], check=True,
                   stdout=subprocess.DEVNULL)
    live.call("GET", "/v1/users/u1/balance", 200)
    a = live.call("GET", "/v1/users/%s/balance" % enc(special), 200)
    if a.status == 200:
        # One checkin: 1 coin in demo, 3 in oa.
        live.expect(a.json()["user"] == special and a.json()["balance"] == 4 and a.json()["hunts"] == {"demo": 1, "oa": 3},
                    "balance of %r: %s" % (special, a.body))
    a = live.call("GET", "/v1/users/u1/balance?as_of=" + enc(stamp), 200, label="as_of")
    if a.status == 200:
        live.expect("as_of_ms" in a.json(), "balance as_of without as_of_ms: %s" % a.body)
    live.call("GET", "/v1/users/u1/balance?as_of=yesterday", 400, "bad_param")
    live.call("GET", "/v1/users/u1/balance?limit=1", 400, "bad_param")
    live.call("GET", "/v1/users/u1/balance?as_of=1&as_of=2", 400, "bad_param")
    live.call("GET", "/v1/users/%s/balance" % ("u" * 129), 400, "bad_user")
    live.call("GET", "/v1/users/a%zz/balance", 400, "bad_path")
    live.call("GET", "/v1/users/a%00/balance", 400, "bad_path")
    live.call("GET", "/v1/users/u1/balance?as_of=%zz", 400, "bad_query")
    live.call("GET", "/v1/users/u1/balance", 401, "unauthorized", key=None)
    a = live.call("GET", "/v1/users/u1/coins?limit=2", 200)
    coin_id, cursor = None, ""
    if a.status == 200:
        page = a.json()
        cursor = page["next_cursor"]
        coin_id = page["coins"][0]["id"] if page["coins"] else None
        live.expect(len(page["coins"]) == 2 and cursor != "", "u1's first page of 2: %s" % a.body)
    live.call("GET", "/v1/users/u1/coins?limit=2&cursor=" + enc(cursor), 200, label="next page")
    live.call("GET", "/v1/users/u1/coins?as_of=" + enc(stamp), 200, label="as_of")
    live.call("GET", "/v1/users/u1/coins?as_of=%s&cursor=1" % enc(stamp), 400, "bad_param")
    live.call("GET", "/v1/users/u1/coins?cursor=x", 400, "bad_param")
    live.call("GET", "/v1/users/u1/coins?limit=0", 400, "bad_param")
    live.call("GET", "/v1/users/u1/coins?limit=1001", 400, "bad_param")
    live.call("GET", "/v1/users/fay/coins?limit=50", 200)
    live.call("GET", "/v1/users/fay/coins?limit=100", 422, "cost_limit")
    a = live.call("GET", "/v1/users/u1/progress", 200)
    if a.status == 200:
        kinds = {r["kind"] for r in a.json()["rules"]}
        capped = [r for r in a.json()["rules"] if "period" in r]
        live.expect({"each", "count", "sequence"} <= kinds and capped, "progress of u1: %s" % a.body)
    live.call("GET", "/v1/users/u1/progress?limit=1", 400, "bad_param")

    live.section("coins")
    # --- coins ----------------------------------------------------------------------------------
    if coin_id:
        live.call("GET", "/v1/coins/" + coin_id, 200)
    else:
        live.problems.append("no coin id from u1's coins")
    live.call("GET", "/v1/coins/" + "0" * 32, 404, "not_found")
    live.call("GET", "/v1/coins/ABC", 400, "bad_coin_id")
    live.call("GET", "/v1/coins/%s?x=1" % ("0" * 32), 400, "bad_param")

    live.section("boards")
    # --- leaderboards -----------------------------------------------------------------------------
    a = live.call("GET", "/v1/leaderboards/demo", 200)
    if a.status == 200 and a.json()["entries"]:
        last = a.json()["entries"][-1]
        live.call("GET", "/v1/leaderboards/demo?limit=2&after=" + enc("%d:%s" % (last["score"], last["user"])), 200,
                  label="after")
    live.call("GET", "/v1/leaderboards/%2A", 200)
    live.call("GET", "/v1/leaderboards/demo?period=day:" + today, 200)
    live.call("GET", "/v1/leaderboards/demo?period=month", 400, "bad_period")
    live.call("GET", "/v1/leaderboards/%2A?period=day:" + today, 400, "bad_period")
    live.call("GET", "/v1/leaderboards/a%20b", 400, "bad_hunt")
    live.call("GET", "/v1/leaderboards/demo?limit=0", 400, "bad_param")
    live.call("GET", "/v1/leaderboards/demo?after=x", 400, "bad_param")
    live.call("GET", "/v1/leaderboards/demo/around/u1", 200)
    a = live.call("GET", "/v1/leaderboards/demo/around/nobody", 200, label="not on the board")
    if a.status == 200:
        live.expect(a.json()["score"] == 0, "around a user with no coins: %s" % a.body)
    live.call("GET", "/v1/leaderboards/demo/around/u2", 404, "excluded")
    live.call("GET", "/v1/leaderboards/demo/around/u1?k=101", 400, "bad_param")
    live.call("GET", "/v1/leaderboards/demo/around/%s" % ("u" * 129), 400, "bad_user")
    live.call("GET", "/v1/leaderboards/demo/periods", 200)
    live.call("GET", "/v1/leaderboards/demo/periods?period=all", 400, "bad_param")
    live.call("GET", "/v1/leaderboards/a%20b/periods", 400, "bad_hunt")

    live.section("read key")
    # --- the read key: another source's events hidden, then its read bucket ------------------------
    if coin_id:
        a = live.call("GET", "/v1/coins/" + coin_id, 200, key=R, label="another source's key")
        if a.status == 200:
            ids = [e["id"] for e in a.json()["coin"]["events"]] + [e["id"] for e in a.json()["events"]]
            live.expect(ids and all(i is None for i in ids), "web's event ids shown to partner: %s" % a.body)
    live.call("GET", "/v1/users/u1/coins", 200, key=R)
    live.call("GET", "/v1/leaderboards/demo", 403, "forbidden", key=R)
    live.call("GET", "/v1/users/u1/balance", 429, "rate_limited", key=R)

    # The stream with the read key: its source's read bucket is empty now.
    a = live.stream("/v1/awards/stream", key=R)
    live.record("GET", "/v1/awards/stream", a, 429, "rate_limited", label="no read token")

    live.section("stream")
    live_stream(live, doc, ev, enc)
    live.section("operator")
    live_operator(live, args, today)
    live.section("console")
    live_console(live)

    live.section("503")
    # --- a shard that does not answer: 503 ------------------------------------------------------------
    with open(os.path.join(args.dir, "pids", "s1.pid")) as f:
        pid = int(f.read().strip())
    os.kill(pid, signal.SIGSTOP)
    try:
        # At once: each waits for the stopped scorer (4 s, 1 s, 2 s).
        calls = [
            lambda: live.call("GET", "/v1/leaderboards/demo/periods", 503, "shard_unavailable"),
            # Without an id the stream asks each scorer its position.
            lambda: live.record("GET", "/v1/awards/stream", live.stream("/v1/awards/stream"), 503,
                                "shard_unavailable", label="a scorer stopped"),
            lambda: live.call("GET", "/v1/metrics/scorer/s1", 503, "shard_unavailable", key=args.admin_key,
                              label="a scorer stopped")]
        with concurrent.futures.ThreadPoolExecutor(len(calls)) as pool:
            for done in [pool.submit(c) for c in calls]:
                done.result()
    finally:
        os.kill(pid, signal.SIGCONT)

    live.section(None)
    # --- coverage -----------------------------------------------------------------------------------
    for method, path, op in operations(doc):
        statuses = live.seen.get(op["operationId"], set())
        # Success is 2xx, or 3xx for an operation that only redirects.
        ok_codes = [c for c in op.get("responses", {}) if c[0] in "23"]
        ok = any(200 <= s < 300 for s in statuses) or (
            all(c[0] == "3" for c in ok_codes) and any(300 <= s < 400 for s in statuses))
        if not ok or (method != "HEAD" and not any(400 <= s < 500 for s in statuses)):
            live.problems.append("%s %s (%s) was not seen answering both success and 4xx: %s" % (
                method, path, op["operationId"], sorted(statuses)))
    return live


def stream_opening(live, answer, what):
    """The position the stream opened at (its first block: retry, id)."""
    text = answer.body.decode("utf-8", "replace")
    lines = text.split("\n")
    live.expect(answer.headers.get("content-type") == "text/event-stream", "%s: Content-Type %r" % (
        what, answer.headers.get("content-type")))
    ok = len(lines) >= 3 and lines[0] == "retry: 1000" and lines[1].startswith("id: ") and lines[2] == ""
    live.expect(ok, "%s: the stream does not open with retry: and id: lines: %r" % (what, text[:300]))
    return lines[1][4:] if ok else None


def first_award(text):
    for ev in sse_events(text):
        if ev["event"] == "award" and ev["data"]:
            return ev
    return None


def live_stream(live, doc, ev, enc):
    """GET /v1/awards/stream: open, an award, a resume, the refusals."""
    user = "sse-%s" % ev(0, "x")["id"]
    path = "/v1/awards/stream?user=" + enc(user)
    # Open, then an event of that user: its awards arrive on the open stream.
    h = dict(Authorization="Bearer " + live.args.key, Accept="text/event-stream")
    conn = http.client.HTTPConnection(live.host, live.port, timeout=15)
    opened_at, award = None, None
    try:
        conn.request("GET", path, headers=h)
        resp = conn.getresponse()
        body = b""
        if resp.status == 200:
            deadline = time.monotonic() + 15
            posted = False
            while time.monotonic() < deadline and first_award(body.decode("utf-8", "replace")) is None:
                if not posted and b"\n\n" in body:
                    live.call("POST", "/v1/events", 200, body=json.dumps([ev("sse", user, "checkin")]),
                              label="an award for the stream")
                    posted = True
                conn.sock.settimeout(max(0.1, deadline - time.monotonic()))
                try:
                    line = resp.readline()
                except socket.timeout:
                    continue
                if not line:
                    break
                body += line
        else:
            body = resp.read()
        a = Answer(resp.status, resp.getheaders(), body)
    finally:
        conn.close()
    live.record("GET", path, a, 200, label="an award on an open stream")
    if a.status == 200:
        opened_at = stream_opening(live, a, "the award stream")
        award = first_award(a.body.decode("utf-8", "replace"))
        live.expect(award is not None, "no award on the stream within 15 s: %r" % a.body[:500])
    if award:
        coin = json.loads(award["data"])
        live.expect(coin["user"] == user and not coin["revoked"], "the streamed award: %s" % award["data"])
    # Resumed from its opening position (header, then parameter): the stream
    # opens at that position and the same award comes first.
    if opened_at and award:
        got = lambda text: first_award(text) is not None
        for how, extra, hdrs in (("Last-Event-ID", "", {"Last-Event-ID": opened_at}),
                                 ("last_event_id", "&last_event_id=" + enc(opened_at), None)):
            a = live.record("GET", path + extra, live.stream(path + extra, headers=hdrs, until=got, label=how),
                            200, label="resumed by " + how)
            if a.status == 200:
                at = stream_opening(live, a, "resumed by " + how)
                again = first_award(a.body.decode("utf-8", "replace"))
                live.expect(at == opened_at, "resumed by %s: opened at %r, not %r" % (how, at, opened_at))
                live.expect(again is not None and json.loads(again["data"])["id"] == json.loads(award["data"])["id"],
                            "resumed by %s: the first award is not the one streamed before: %r" % (how, a.body[:500]))
    a = live.record("GET", "/v1/awards/stream?hunt=oa&rule=daily",
                    live.stream("/v1/awards/stream?hunt=oa&rule=daily"), 200, label="hunt and rule")
    if a.status == 200:
        stream_opening(live, a, "the stream of oa/daily")
    # Refusals.
    for query, error in (("x=1", "bad_param"), ("user=a&user=b", "bad_param"), ("user=" + "u" * 129, "bad_user"),
                         ("hunt=%2A", "bad_hunt"), ("hunt=a%20b", "bad_hunt"), ("rule=a%20b", "bad_param"),
                         ("last_event_id=0:1", "bad_param"), ("last_event_id=0:1,0:2", "bad_param"),
                         ("last_event_id=9:1,0:1", "bad_param"), ("user=%zz", "bad_query")):
        a = live.stream("/v1/awards/stream?" + query)
        live.record("GET", "/v1/awards/stream?" + query, a, 400, error)
    a = live.stream("/v1/awards/stream", headers={"Last-Event-ID": "0:1;1:1"})
    live.record("GET", "/v1/awards/stream", a, 400, "bad_param", label="Last-Event-ID not a position")
    live.record("GET", "/v1/awards/stream", live.stream("/v1/awards/stream", key=None), 401, "unauthorized")
    live.record("GET", "/v1/awards/stream", live.stream("/v1/awards/stream", key=live.args.write_key), 403,
                "forbidden", label="a write-only key")


HUNT_PV = """hunt: pv
version: 1
effective: 2020-01-01T00:00:00Z
rules:
  - {id: every, kind: each, match: {type: checkin}, coins: 2}
"""


def live_operator(live, args, today):
    """The operator routes: with the admin key, without admin (403), without a key."""
    A, K, W = args.admin_key, args.key, args.write_key
    a = live.call("GET", "/v1/metrics", 200, key=A)
    if a.status == 200:
        targets = {(t["role"], t["name"]) for t in a.json()["targets"]}
        live.expect({("broker", "broker"), ("ingestor", "i0"), ("scorer", "s0"), ("scorer", "s1")} <= targets,
                    "GET /v1/metrics: %s" % a.body)
    live.call("GET", "/v1/metrics?x=1", 400, "bad_param", key=A)
    live.call("GET", "/v1/metrics", 403, "forbidden", key=K)
    live.call("GET", "/v1/metrics", 401, "unauthorized", key=None)
    a = live.call("GET", "/v1/metrics/scorer/s0", 200, key=A)
    live.expect(a.status != 200 or b"trove_scorer_" in a.body, "GET /v1/metrics/scorer/s0 without scorer metrics")
    live.call("GET", "/v1/metrics/broker/broker", 200, key=A)
    live.call("GET", "/v1/metrics/scorer/nope", 404, "not_found", key=A)
    live.call("GET", "/v1/metrics/nope/s0", 404, "not_found", key=A)
    live.call("GET", "/v1/metrics/scorer/s%zz", 404, "not_found", key=A)
    live.call("GET", "/v1/metrics/scorer/s0/x", 404, "not_found", key=A)
    live.call("GET", "/v1/metrics/scorer/s0?x=1", 400, "bad_param", key=A)
    live.call("GET", "/v1/metrics/scorer/s0", 403, "forbidden", key=W)

    pv = HUNT_PV.encode()
    a = live.call("POST", "/v1/rules/preview?file=pv.yaml", 200, key=A, body=pv,
                  headers={"Content-Type": "application/yaml"})
    if a.status == 200:
        p = a.json()
        live.expect(p["mint"] > 0 and p["revoke"] == 0 and [(r["hunt"], r["rule"]) for r in p["rules"]] == [("pv", "every")]
                    and all(c["action"] == "mint" and c["hunt"] == "pv" and c["value"] == 2 for c in p["changes"]),
                    "preview of a new hunt paying 2 per checkin: %s" % a.body[:500])
    a = live.call("POST", "/v1/rules/preview?file=pv.yaml&user=u1", 200, key=A, body=pv, label="one user")
    if a.status == 200:
        p = a.json()
        live.expect(p["mint"] > 0 and {c["user"] for c in p["changes"]} == {"u1"},
                    "preview for u1: %s" % a.body[:500])
    live.call("POST", "/v1/rules/preview?file=pv.txt", 422, "rules_refused", key=A, body=pv, label="not .yaml")
    live.call("POST", "/v1/rules/preview", 400, "bad_param", key=A, body=pv, label="no file")
    live.call("POST", "/v1/rules/preview?file=", 400, "bad_param", key=A, body=pv, label="empty file")
    live.call("POST", "/v1/rules/preview?file=pv.yaml&x=1", 400, "bad_param", key=A, body=pv)
    live.call("POST", "/v1/rules/preview?file=pv.yaml&file=pv.yaml", 400, "bad_param", key=A, body=pv)
    live.call("POST", "/v1/rules/preview?file=pv.yaml&file+user=x", 400, "bad_param", key=A, body=pv,
              label="a parameter named by two words")
    live.call("POST", "/v1/rules/preview?file=pv.yaml&user=", 400, "bad_user", key=A, body=pv)
    live.call("POST", "/v1/rules/preview?file=pv.yaml&user=" + "u" * 129, 400, "bad_user", key=A, body=pv)
    live.call("POST", "/v1/rules/preview?file=pv.yaml", 400, "bad_rules", key=A, body=b"", label="empty body")
    live.call("POST", "/v1/rules/preview?file=pv.yaml", 400, "bad_rules", key=A, body=pv + b"\0x",
              label="a NUL byte")
    live.call("POST", "/v1/rules/preview?file=pv.yaml", 400, "bad_rules", key=A, body=b"hunt: [pv\n",
              label="does not parse")
    live.call("POST", "/v1/rules/preview?file=pv.yaml", 403, "forbidden", key=K, body=pv)
    live.call("POST", "/v1/rules/preview?file=pv.yaml", 401, "unauthorized", key=None, body=pv)

    # Reports: shard s0 gets a run now (trovectl, the operator's), so it has
    # one to show whatever the schedule did before.
    subprocess.run([args.trovectl, "reconcile", "--dir", args.dir, "--shard", "s0"], check=True,
                   stdout=subprocess.DEVNULL, timeout=60)
    a = live.call("GET", "/v1/reconciler/reports", 200, key=A)
    if a.status == 200:
        shards = {e["shard"]: e for e in a.json()["shards"]}
        live.expect(sorted(shards) == ["s0", "s1"] and "report" in shards["s0"] and shards["s0"]["report"]["shard"] == "s0",
                    "GET /v1/reconciler/reports after a run of s0: %s" % a.body[:500])
    live.call("GET", "/v1/reconciler/reports?x=1", 400, "bad_param", key=A)
    live.call("GET", "/v1/reconciler/reports", 403, "forbidden", key=K)
    live.call("GET", "/v1/reconciler/reports", 401, "unauthorized", key=None)


def live_console(live):
    """The console's files: open, with their types; 404, the redirect."""
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "console")
    for path, name in (("/console/", "index.html"), ("/console/trove.js", "trove.js"), ("/console/style.css", "style.css")):
        a = live.call("GET", path, 200, key=None)
        with open(os.path.join(src, name), "rb") as f:
            live.expect(a.body == f.read(), "GET %s is not console/%s byte for byte" % (path, name))
    live.call("GET", "/console/index.html?ignored=1", 200, key=None, label="parameters ignored")
    live.call("GET", "/console/nope.js", 404, "not_found", key=None)
    live.call("GET", "/console/trove%2Ejs", 404, "not_found", key=None, label="matched as sent")
    live.call("GET", "/console/?a=%zz", 400, "bad_query", key=None)
    live.call("GET", "/console/trove.js?a=%zz", 400, "bad_query", key=None)
    a = live.call("GET", "/console", 301, "moved", key=None)
    live.expect(a.headers.get("location") == "/console/", "GET /console: Location %r" % a.headers.get("location"))
    live.call("GET", "/console?a=%zz", 400, "bad_query", key=None)
    # Other methods are not open: a key first, then 405.
    live.call("POST", "/console/", 401, "unauthorized", key=None, body=b"")
    live.call("POST", "/console/", 405, "method_not_allowed", body=b"")


# --------------------------------------------------------------------------------------------------
# selftest: each check can fail

def selftest(doc):
    problems = []

    def must_fail(what, found):
        if not found:
            problems.append("selftest: %s was not caught" % what)

    bad = copy.deepcopy(doc)
    bad["paths"]["/v1/coins/{id}"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"] = \
        "#/components/schemas/NoSuch"
    must_fail("a $ref that does not resolve", any("does not resolve" in x for x in lint(bad)))
    bad = copy.deepcopy(doc)
    bad["paths"]["/v1/coins/{id}"]["get"]["parameters"] = []
    must_fail("an undeclared path parameter", any("path parameters declared" in x for x in lint(bad)))
    bad = copy.deepcopy(doc)
    bad["paths"]["/v1/coins/{id}"]["get"]["operationId"] = "getBalance"
    must_fail("a duplicated operationId", any("operationId" in x for x in lint(bad)))
    bad = copy.deepcopy(doc)
    bad["components"]["schemas"]["Cost"]["type"] = "integr"
    must_fail("an invalid schema", any("2020-12" in x for x in lint(bad)))
    routes = [(m, p, op.get("security") == []) for m, p, op in operations(doc)]
    must_fail("an undocumented route", check_routes(doc, routes + [("GET", "/v1/nosuch", False)]))
    must_fail("a documented route the server lacks", check_routes(doc, [r for r in routes if r[1] != "/v1/openapi.json"]))
    must_fail("a keyed route documented as open",
              check_routes(doc, [(m, p, False) for m, p, _ in routes]))
    json_headers = [("Content-Type", "application/json"), ("Cache-Control", "no-store")]
    good = b'{"user":"u","balance":1,"hunts":{"demo":1},"cost":1}'
    found = check_answer(doc, "GET", "/v1/users/u/balance", Answer(200, json_headers, good))
    if found:
        problems.append("selftest: a good answer was refused: %s" % found)
    must_fail("a missing Cache-Control",
              check_answer(doc, "GET", "/v1/users/u/balance", Answer(200, json_headers[:1], good)))
    answer = Answer(200, json_headers, b'{"user":"u","balance":"1","hunts":{},"cost":1}')
    must_fail("a body outside its schema", check_answer(doc, "GET", "/v1/users/u/balance", answer))
    answer = Answer(200, json_headers, b'{"user":"u","balance":1,"hunts":{},"cost":1,"extra":2}')
    must_fail("an undocumented field", check_answer(doc, "GET", "/v1/users/u/balance", answer))
    answer = Answer(418, json_headers, b'{"error":"x","detail":"y"}')
    must_fail("an undocumented status", check_answer(doc, "GET", "/v1/users/u/balance", answer))
    answer = Answer(400, json_headers, b'{"error":"bad_hunt","detail":"y"}')
    must_fail("an error code the operation does not list", check_answer(doc, "GET", "/v1/users/u/balance", answer))
    answer = Answer(429, json_headers, b'{"error":"rate_limited","detail":"y","scope":"read","retry_after_s":1}')
    must_fail("a missing required header (Retry-After)", check_answer(doc, "GET", "/v1/users/u/balance", answer))
    # The award stream: its opening, an event's data and id against the document.
    sse_headers = [("Content-Type", "text/event-stream"), ("Cache-Control", "no-store"), ("X-Accel-Buffering", "no")]
    coin = {"id": "0" * 32, "user": "u", "hunt": "demo", "rule": "r", "rule_version": 1, "value": 1,
            "reason": "scored", "minted": "2026-01-01T00:00:00Z", "minted_ms": 1, "shard": 0, "aseq": 3,
            "events": [{"source": "web", "id": "e1"}], "revoked": False}
    opening = "retry: 1000\nid: 0:2,1:0\n\n"
    award = lambda c, i="0:3,1:0": ("id: %s\nevent: award\ndata: %s\n\n" % (i, json.dumps(c))).encode()
    found = check_answer(doc, "GET", "/v1/awards/stream", Answer(200, sse_headers, opening.encode() + award(coin)))
    if found:
        problems.append("selftest: a good award stream was refused: %s" % found)
    must_fail("a stream without its opening retry/id",
              check_answer(doc, "GET", "/v1/awards/stream", Answer(200, sse_headers, award(coin))))
    must_fail("a missing X-Accel-Buffering",
              check_answer(doc, "GET", "/v1/awards/stream", Answer(200, sse_headers[:2], opening.encode())))
    bad_coin = dict(coin)
    del bad_coin["aseq"]
    must_fail("an award whose data is outside Coin",
              check_answer(doc, "GET", "/v1/awards/stream", Answer(200, sse_headers, opening.encode() + award(bad_coin))))
    must_fail("an event id that is no position",
              check_answer(doc, "GET", "/v1/awards/stream", Answer(200, sse_headers, opening.encode() + award(coin, "0-3"))))
    must_fail("an undocumented event name", check_answer(
        doc, "GET", "/v1/awards/stream",
        Answer(200, sse_headers, opening.encode() + award(coin).replace(b"event: award", b"event: other"))))
    return problems


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["lint", "routes", "live", "selftest"])
    parser.add_argument("doc")
    parser.add_argument("routes", nargs="?")
    parser.add_argument("--base")
    parser.add_argument("--dir")
    parser.add_argument("--trovectl")
    parser.add_argument("--key")
    parser.add_argument("--write-key")
    parser.add_argument("--read-key")
    parser.add_argument("--admin-key")
    args = parser.parse_args()
    with open(args.doc, "rb") as f:
        doc_bytes = f.read()
    doc = json.loads(doc_bytes.decode("utf-8"))
    if args.command == "lint":
        problems = lint(doc)
        summary = "%d paths, %d operations" % (len(doc.get("paths", {})), len(list(operations(doc))))
    elif args.command == "routes":
        with open(args.routes) as f:
            routes = parse_routes(f.read())
        problems = lint(doc) or check_routes(doc, routes)
        summary = "%d routes, %d operations" % (len(routes), len(list(operations(doc))))
    elif args.command == "selftest":
        problems = selftest(doc)
        summary = "every check caught its fault"
    else:
        live = run_live(doc, doc_bytes, args)
        problems = live.problems
        summary = "%d calls, %d operations seen; seconds: %s" % (
            live.calls, len(live.seen), ", ".join("%s %.1f" % t for t in live.times))
    for problem in problems:
        print("openapi %s: %s" % (args.command, problem), file=sys.stderr)
    if problems:
        print("openapi %s: %d problems" % (args.command, len(problems)), file=sys.stderr)
        return 1
    print("openapi %s: ok (%s)" % (args.command, summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
