#!/usr/bin/env python3
"""A TEST DOUBLE of the Kubernetes API server, for bench/ingresses.sh's kube source. Not an API server: no auth, no
admission, no validation beyond parsing, no persistence, one process, plain HTTP on 127.0.0.1.

What it serves, in the shapes and with the semantics kube-rs (the controller's client and watchers) relies on:
  - lists of any resource in its table, cluster-wide or per namespace, paged by `limit` / `continue` (the watcher
    asks for pages of 500), filtered by `labelSelector` and `fieldSelector` (equality, inequality, existence, in,
    notin; fields by dotted path, e.g. `type=kubernetes.io/tls`), with the list's `metadata.resourceVersion`;
  - watches (`watch=true` or `watch=1`, or the legacy `/watch/` paths) as chunked JSON lines: from a given
    `resourceVersion` every later event is replayed and then new ones streamed as they happen; with no
    `resourceVersion` or `0`, or with `sendInitialEvents=true`, first an ADDED per existing object (and, for
    `sendInitialEvents`, the BOOKMARK annotated `k8s.io/initial-events-end`); a `resourceVersion` older than the
    event log holds gets an ERROR event with a 410 Expired Status, as a real server's compaction would; BOOKMARKs
    every --bookmark-seconds when `allowWatchBookmarks=true`; the stream ends after `timeoutSeconds` (or sooner,
    --max-watch-seconds, to make clients resume). An object
    leaving a watch's selector is sent as DELETED, entering it as ADDED, as the real watch cache does;
  - get, create (POST; `generateName`), replace (PUT, refused with 409 when `metadata.resourceVersion` differs),
    patch (merge, strategic merge treated as merge, server-side apply treated as create-or-merge; 409 on a
    `metadata.resourceVersion` precondition that fails), delete (a Namespace takes its objects with it), and the
    `status` subresource (GET, PUT, PATCH: only `.status` changes). Leases (leader election) and events.k8s.io
    Events (the controller's warnings) go through these like any other kind;
  - the discovery documents kubectl reads (/api, /apis, /api/v1, /apis/GROUP/VERSION) and /version, /healthz,
    /readyz, /livez. Anything else is answered with a Kubernetes 404 (or 405) Status at once, never left hanging.

resourceVersions: one counter for the whole store, like etcd's revision. Seeding gives each object the next value;
every write (create, replace, patch, delete) takes the next value, stamps it on the object and appends one event
to the log (the last --event-log events are kept; a watch from before the oldest one kept, or from before the seed,
is answered 410 Expired). A list carries the counter's value when its first page was served (the continue token
keeps it), so a watch started from it misses nothing. The counter is exposed as a decimal string, opaque to
clients as the API conventions require.

The "control endpoint" the bench edits an EndpointSlice through is the ordinary API: a PATCH (or PUT) of
/apis/discovery.k8s.io/v1/namespaces/NS/endpointslices/NAME, which emits the MODIFIED event to every open watch
before the PATCH is answered. The same request goes to a real API server (through `kubectl proxy`) unchanged.
GET /_double/stats returns the requests served per verb and resource (lists counted by first page, so a relist
shows as a second list), for the bench to print.

  kube_api_double.py objects --ingresses N --endpoint-port P [--addresses A,B,..] [--namespace NS] [--class C]
                             [--controller NAME]
      prints a v1 List: the Namespace, the IngressClass and, per Ingress, the Ingress, its Service and an EndpointSlice of 10
      endpoints (--addresses, default 127.0.0.1-10, at port P), the shapes of bench/ingresses.sh's generate();
  kube_api_double.py serve --objects FILE [--listen 127.0.0.1:0] [--time-limit SECONDS]
      serves FILE's objects; prints `listening 127.0.0.1:PORT` once bound (port 0: the system picks; no rebind race)
      and exits by itself after --time-limit seconds (default 1800).
"""
import argparse
import base64
import bisect
import copy
import json
import os
import random
import re
import string
import sys
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# (group, version, plural) -> (Kind, namespaced, short names)
RESOURCES = {
    ("", "v1", "namespaces"): ("Namespace", False, ["ns"]),
    ("", "v1", "services"): ("Service", True, ["svc"]),
    ("", "v1", "secrets"): ("Secret", True, []),
    ("", "v1", "configmaps"): ("ConfigMap", True, ["cm"]),
    ("", "v1", "endpoints"): ("Endpoints", True, ["ep"]),
    ("", "v1", "events"): ("Event", True, ["ev"]),
    ("", "v1", "pods"): ("Pod", True, ["po"]),
    ("networking.k8s.io", "v1", "ingresses"): ("Ingress", True, ["ing"]),
    ("networking.k8s.io", "v1", "ingressclasses"): ("IngressClass", False, []),
    ("discovery.k8s.io", "v1", "endpointslices"): ("EndpointSlice", True, []),
    ("coordination.k8s.io", "v1", "leases"): ("Lease", True, []),
    ("events.k8s.io", "v1", "events"): ("Event", True, ["ev"]),
    ("holdfast.io", "v1alpha1", "uploadpolicies"): ("UploadPolicy", True, []),
}
KIND_TO_RESOURCE = {(g, v, kind): plural for (g, v, plural), (kind, _, _) in RESOURCES.items()}
NAMESPACES = ("", "v1", "namespaces")
HAS_STATUS = {"services", "ingresses", "uploadpolicies", "namespaces", "pods"}
VERBS = ["create", "delete", "get", "list", "patch", "update", "watch"]


def gv(group, version):
    return f"{group}/{version}" if group else version


def now_rfc3339():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def status(code, reason, message, details=None):
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure" if code >= 400 else "Success",
            "message": message, "reason": reason, "code": code}
    if details:
        body["details"] = details
    return body


class ApiError(Exception):
    def __init__(self, code, reason, message, details=None):
        super().__init__(message)
        self.body = status(code, reason, message, details)


def not_found(plural, name):
    return ApiError(404, "NotFound", f'{plural} "{name}" not found', {"name": name, "kind": plural})


def query_number(query, key, default, parse):
    """A numeric query parameter (`limit`, `timeoutSeconds`), `default` when absent or empty; 400 when not a number."""
    try:
        return parse(query.get(key) or default)
    except ValueError:
        raise ApiError(400, "BadRequest", f"{key} must be an integer")


def merge_patch(target, patch):
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def field(obj, path):
    for part in path.split("."):
        if not isinstance(obj, dict) or part not in obj:
            return None
        obj = obj[part]
    return obj if isinstance(obj, str) else (None if obj is None else json.dumps(obj))


LABEL_TERM = re.compile(r"\s*(!?)([A-Za-z0-9._/-]+)\s*(?:(==|=|!=)\s*([A-Za-z0-9._-]*)|\s+(in|notin)\s*\(([^)]*)\))?\s*(?:,|$)")


def parse_labels(text):
    """A label selector as a list of (key, op, values); raises ApiError on what it cannot read."""
    terms, pos = [], 0
    while pos < len(text):
        m = LABEL_TERM.match(text, pos)
        if not m or m.end() == pos:
            raise ApiError(400, "BadRequest", f"unable to parse requirement: {text[pos:]!r}")
        bang, key, op, value, setop, values = m.groups()
        if bang:
            terms.append((key, "!", None))
        elif op:
            terms.append((key, "!=" if op == "!=" else "=", [value]))
        elif setop:
            terms.append((key, setop, [v.strip() for v in values.split(",") if v.strip()]))
        else:
            terms.append((key, "exists", None))
        pos = m.end()
    return terms


def labels_match(terms, obj):
    labels = (obj.get("metadata") or {}).get("labels") or {}
    for key, op, values in terms:
        present, value = key in labels, labels.get(key)
        ok = {"!": not present, "exists": present, "=": present and value == (values or [""])[0],
              "!=": not present or value != (values or [""])[0], "in": present and value in (values or []),
              "notin": not present or value not in (values or [])}[op]
        if not ok:
            return False
    return True


def parse_fields(text):
    terms = []
    for term in filter(None, (t.strip() for t in text.split(","))):
        m = re.fullmatch(r"([A-Za-z0-9._-]+)\s*(==|=|!=)\s*(.*)", term)
        if not m:
            raise ApiError(400, "BadRequest", f"invalid field selector: {term!r}")
        terms.append((m.group(1), m.group(2) != "!=", m.group(3)))
    return terms


def fields_match(terms, obj):
    return all((field(obj, path) == value) == equal for path, equal, value in terms)


class Watcher:
    """What one watch asks for: resource, namespace (None: all) and selectors."""

    def __init__(self, res, namespace, labels, fields):
        self.res, self.namespace, self.labels, self.fields = res, namespace, labels, fields

    def matches(self, obj):
        if obj is None:
            return False
        if self.namespace is not None and (obj.get("metadata") or {}).get("namespace") != self.namespace:
            return False
        return labels_match(self.labels, obj) and fields_match(self.fields, obj)


class Store:
    """All objects, the resourceVersion counter and the event log; every access under one condition variable."""

    def __init__(self, log_size):
        self.cond = threading.Condition()
        self.rv = 0
        self.objects = {}  # res -> {(namespace, name): object}
        self.sorted = {}  # res -> sorted keys, dropped on create/delete
        self.log, self.log_rvs, self.log_size = [], [], log_size
        self.compacted = 0  # a watch must resume from at least this resourceVersion
        self.stats = {}
        self.ip = 0

    def count(self, verb, plural):
        with self.cond:
            key = f"{verb} {plural}"
            self.stats[key] = self.stats.get(key, 0) + 1

    def seed(self, objects):
        with self.cond:
            for ns in ["default", "kube-system"] + sorted({o["metadata"].get("namespace") for o in objects} - {None}):
                namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
                self._put(NAMESPACES, self._defaulted(NAMESPACES, namespace), None, log=False)
            for obj in objects:
                group, _, version = obj["apiVersion"].rpartition("/")
                res = (group, version, KIND_TO_RESOURCE[(group, version, obj["kind"])])
                self._put(res, self._defaulted(res, copy.deepcopy(obj)), obj["metadata"].get("namespace"), log=False)
            self.compacted = self.rv

    def _defaulted(self, res, obj):
        """The defaults the real API server would fill in, for the kinds the bench creates."""
        meta = obj.setdefault("metadata", {})
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", now_rfc3339())
        if res[2] not in ("namespaces", "leases", "events", "endpointslices", "secrets", "configmaps"):
            meta.setdefault("generation", 1)
        if res[2] == "services":
            spec = obj.setdefault("spec", {})
            spec.setdefault("type", "ClusterIP")
            spec.setdefault("sessionAffinity", "None")
            if "clusterIP" not in spec:
                self.ip += 1
                spec["clusterIP"] = f"10.96.{self.ip // 250}.{self.ip % 250 + 1}"
                spec["clusterIPs"] = [spec["clusterIP"]]
            for port in spec.get("ports") or []:
                port.setdefault("protocol", "TCP")
                port.setdefault("targetPort", port.get("port"))
        if res[2] == "endpointslices":
            for port in obj.get("ports") or []:
                port.setdefault("protocol", "TCP")
        if res[2] == "namespaces":
            obj.setdefault("spec", {"finalizers": ["kubernetes"]})
            obj.setdefault("status", {"phase": "Active"})
        return obj

    def _put(self, res, obj, namespace, log=True, kind="ADDED"):
        key = (namespace, obj["metadata"]["name"])
        table = self.objects.setdefault(res, {})
        old = table.get(key)
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        if namespace is not None:
            obj["metadata"]["namespace"] = namespace
        if old is None:
            self.sorted.pop(res, None)
        table[key] = obj
        if log:
            self._log(res, "ADDED" if old is None else kind, obj, old)
        return obj

    def _log(self, res, kind, obj, old):
        self.log.append((self.rv, res, kind, obj, old))
        self.log_rvs.append(self.rv)
        if len(self.log) > self.log_size + max(1, self.log_size // 10):
            cut = len(self.log) - self.log_size
            self.compacted = self.log_rvs[cut - 1]
            del self.log[:cut], self.log_rvs[:cut]
        self.cond.notify_all()

    def get(self, res, namespace, name):
        with self.cond:
            obj = self.objects.get(res, {}).get((namespace, name))
            if obj is None:
                raise not_found(res[2], name)
            return obj

    def list_page(self, res, watcher, limit, token):
        """Items after the token's key, up to `limit`; (items, list resourceVersion, next token or None)."""
        with self.cond:
            table = self.objects.get(res, {})
            keys = self.sorted.get(res)
            if keys is None:
                keys = self.sorted[res] = sorted(table, key=lambda k: (k[0] or "", k[1]))
            list_rv, start = self.rv, 0
            if token:
                try:
                    state = json.loads(base64.urlsafe_b64decode(token.encode()))
                    list_rv, after = state["rv"], tuple(state["after"])
                except (ValueError, KeyError, TypeError):
                    raise ApiError(400, "BadRequest", "invalid continue token")
                start = bisect.bisect_right(keys, after, key=lambda k: (k[0] or "", k[1]))
            items, i = [], start
            while i < len(keys) and (not limit or len(items) < limit):
                if watcher.matches(table[keys[i]]):
                    items.append(table[keys[i]])
                i += 1
            next_token = None
            if any(watcher.matches(table[k]) for k in keys[i:]):
                last = keys[i - 1]
                next_token = base64.urlsafe_b64encode(json.dumps(
                    {"rv": list_rv, "after": [last[0] or "", last[1]]}).encode()).decode()
            return items, list_rv, next_token

    def create(self, res, namespace, obj):
        with self.cond:
            meta = obj.setdefault("metadata", {})
            if not meta.get("name"):
                if not meta.get("generateName"):
                    raise ApiError(422, "Invalid", "metadata.name: Required value: name or generateName is required")
                meta["name"] = meta["generateName"] + "".join(random.choices(string.ascii_lowercase + string.digits, k=5))
            if namespace is not None and (None, namespace) not in self.objects.get(NAMESPACES, {}):
                raise not_found("namespaces", namespace)
            if (namespace, meta["name"]) in self.objects.get(res, {}):
                raise ApiError(409, "AlreadyExists", f'{res[2]} "{meta["name"]}" already exists',
                               {"name": meta["name"], "kind": res[2]})
            meta.pop("resourceVersion", None)
            obj["apiVersion"], obj["kind"] = gv(res[0], res[1]), RESOURCES[res][0]
            return self._put(res, self._defaulted(res, obj), namespace)

    def update(self, res, namespace, name, change, subresource=None, precondition=None):
        """Applies `change(current) -> new` to an existing object; 409 when `precondition` (a resourceVersion)
        is not the object's."""
        with self.cond:
            current = self.objects.get(res, {}).get((namespace, name))
            if current is None:
                raise not_found(res[2], name)
            if precondition and precondition != current["metadata"]["resourceVersion"]:
                raise ApiError(409, "Conflict", f'Operation cannot be fulfilled on {res[2]} "{name}": the object has '
                               "been modified; please apply your changes to the latest version and try again",
                               {"name": name, "kind": res[2]})
            new = change(copy.deepcopy(current))
            if subresource == "status":
                new, wanted = copy.deepcopy(current), new.get("status")
                new.pop("status", None)
                if wanted is not None:
                    new["status"] = wanted
            else:
                if "status" in current:
                    new["status"] = current["status"]
                for keep in ("uid", "creationTimestamp", "generation"):
                    if keep in current["metadata"]:
                        new.setdefault("metadata", {})[keep] = current["metadata"][keep]
                if "generation" in current["metadata"] and new.get("spec") != current.get("spec"):
                    new["metadata"]["generation"] = current["metadata"]["generation"] + 1
            new["metadata"]["name"] = name
            new["apiVersion"], new["kind"] = current["apiVersion"], current["kind"]
            return self._put(res, new, namespace, kind="MODIFIED")

    def delete(self, res, namespace, name):
        with self.cond:
            obj = self.objects.get(res, {}).pop((namespace, name), None)
            if obj is None:
                raise not_found(res[2], name)
            self.sorted.pop(res, None)
            self.rv += 1
            gone = copy.deepcopy(obj)
            gone["metadata"]["resourceVersion"] = str(self.rv)
            self._log(res, "DELETED", gone, obj)
            if res == NAMESPACES:
                for other, table in self.objects.items():
                    for key in [k for k in table if k[0] == name]:
                        self.delete(other, key[0], key[1])
                gone["status"] = {"phase": "Terminating"}
            return gone

    def events_after(self, cursor):
        """Log entries with a resourceVersion above `cursor`; None when the log no longer reaches back to it."""
        if cursor < self.compacted:
            return None
        return self.log[bisect.bisect_right(self.log_rvs, cursor):]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kube-api-double"
    store: Store = None
    deadline = 0.0
    bookmark_seconds = 10.0
    max_watch_seconds = float("inf")

    def log_message(self, *args):
        pass

    def note(self, text):
        print(f"[kube-api-double {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)

    def send_json(self, code, body):
        data = json.dumps(body, separators=(",", ":")).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            return json.loads(raw or b"{}")
        except ValueError:
            raise ApiError(415, "UnsupportedMediaType", "the test double reads JSON bodies only")

    def do_GET(self):
        self.dispatch("GET")

    def do_POST(self):
        self.dispatch("POST")

    def do_PUT(self):
        self.dispatch("PUT")

    def do_PATCH(self):
        self.dispatch("PATCH")

    def do_DELETE(self):
        self.dispatch("DELETE")

    def dispatch(self, method):
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        parts = [urllib.parse.unquote(p) for p in url.path.strip("/").split("/") if p]
        try:
            if method == "GET" and self.meta_route(parts):
                return
            route = self.route(parts)
            if route is None:
                # Drain the body so that the connection stays usable.
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            self.serve(method, query, *route)
        except ApiError as error:
            self.send_json(error.body["code"], error.body)
        except OSError:  # the client went away, mid-watch most often
            self.close_connection = True

    def meta_route(self, parts):
        if parts == ["_double", "stats"]:
            with self.store.cond:
                self.send_json(200, {"resourceVersion": self.store.rv, "requests": dict(sorted(self.store.stats.items()))})
        elif parts in (["healthz"], ["readyz"], ["livez"]):
            data = b"ok"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(data)
        elif parts == ["version"]:
            self.send_json(200, {"major": "1", "minor": "35", "gitVersion": "v1.35.0-holdfast-api-test-double",
                                 "platform": "linux/amd64"})
        elif parts == ["api"]:
            self.send_json(200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]})
        elif parts == ["apis"]:
            groups = sorted({(g, v) for (g, v, _) in RESOURCES if g})
            self.send_json(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
                {"name": g, "versions": [{"groupVersion": gv(g, v), "version": v}],
                 "preferredVersion": {"groupVersion": gv(g, v), "version": v}} for g, v in groups]})
        elif parts == ["api", "v1"] or (len(parts) == 3 and parts[0] == "apis"):
            group, version = ("", "v1") if parts[0] == "api" else (parts[1], parts[2])
            resources = []
            for (g, v, plural), (kind, namespaced, short) in sorted(RESOURCES.items()):
                if (g, v) != (group, version):
                    continue
                resources.append({"name": plural, "singularName": kind.lower(), "namespaced": namespaced,
                                  "kind": kind, "verbs": VERBS, "shortNames": short})
                if plural in HAS_STATUS:
                    resources.append({"name": plural + "/status", "singularName": "", "namespaced": namespaced,
                                      "kind": kind, "verbs": ["get", "patch", "update"]})
            if not resources:
                return False
            self.send_json(200, {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv(group, version),
                                 "resources": resources})
        else:
            return False
        return True

    def route(self, parts):
        """(resource, namespace, name, subresource, legacy watch) from a path, or None."""
        if parts[:2] == ["api", "v1"]:
            group, version, rest = "", "v1", parts[2:]
        elif len(parts) >= 3 and parts[0] == "apis":
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            return None
        legacy_watch = bool(rest) and rest[0] == "watch"
        rest = rest[1:] if legacy_watch else rest
        namespace = None
        if len(rest) >= 3 and rest[0] == "namespaces" and RESOURCES.get((group, version, rest[2]), (0, False))[1]:
            namespace, rest = rest[1], rest[2:]
        if not rest or len(rest) > 3 or (group, version, rest[0]) not in RESOURCES:
            return None
        res = (group, version, rest[0])
        namespaced = RESOURCES[res][1]
        name = rest[1] if len(rest) > 1 else None
        if name is not None and namespaced and namespace is None:
            return None
        sub = rest[2] if len(rest) > 2 else None
        if sub is not None and (sub != "status" or rest[0] not in HAS_STATUS):
            return None
        return res, namespace, name, sub, legacy_watch

    def serve(self, method, query, res, namespace, name, sub, legacy_watch):
        plural = res[2]
        if name is None:
            watch = legacy_watch or query.get("watch") in ("true", "1")
            if method == "GET" and watch:
                self.store.count("watch", plural)
                return self.watch(res, namespace, query)
            if method == "GET":
                if not query.get("continue"):
                    self.store.count("list", plural)
                return self.list(res, namespace, query)
            if method == "POST":
                self.store.count("create", plural)
                return self.send_json(201, self.store.create(res, namespace, self.body()))
            raise ApiError(405, "MethodNotAllowed", f"{method} is not supported on a collection by the test double")
        if method == "GET":
            self.store.count("get", plural)
            return self.send_json(200, self.store.get(res, namespace, name))
        if method == "PUT":
            self.store.count("update", plural)
            obj = self.body()
            precondition = (obj.get("metadata") or {}).get("resourceVersion")
            return self.send_json(200, self.store.update(res, namespace, name, lambda _: obj, sub, precondition))
        if method == "PATCH":
            self.store.count("patch", plural)
            return self.patch(res, namespace, name, sub)
        if method == "DELETE":
            self.store.count("delete", plural)
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            return self.send_json(200, self.store.delete(res, namespace, name))
        raise ApiError(405, "MethodNotAllowed", f"{method} is not supported by the test double")

    def patch(self, res, namespace, name, sub):
        kind = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        patch = self.body()
        if kind not in ("application/merge-patch+json", "application/strategic-merge-patch+json",
                        "application/apply-patch+yaml"):
            raise ApiError(415, "UnsupportedMediaType", f"the test double does not take {kind!r} patches")
        precondition = (patch.get("metadata") or {}).get("resourceVersion") if isinstance(patch, dict) else None
        if kind == "application/apply-patch+yaml":
            # Server-side apply, roughly: create when absent, else merge (no field ownership).
            try:
                self.store.get(res, namespace, name)
            except ApiError:
                patch.setdefault("metadata", {})["name"] = name
                return self.send_json(201, self.store.create(res, namespace, patch))
        if isinstance(patch, dict) and precondition:
            patch = merge_patch(patch, {"metadata": {"resourceVersion": None}})
        self.send_json(200, self.store.update(res, namespace, name, lambda cur: merge_patch(cur, patch), sub,
                                              precondition))

    def selection(self, res, namespace, query):
        return Watcher(res, namespace, parse_labels(query.get("labelSelector", "")),
                       parse_fields(query.get("fieldSelector", "")))

    def list(self, res, namespace, query):
        watcher = self.selection(res, namespace, query)
        limit = query_number(query, "limit", 0, int)
        items, list_rv, token = self.store.list_page(res, watcher, max(0, limit), query.get("continue"))
        meta = {"resourceVersion": str(list_rv)}
        if token:
            meta["continue"] = token
        if not query.get("continue"):
            self.note(f"LIST {res[2]} namespace={namespace or '*'} rv={list_rv} limit={limit or '-'} "
                      f"selector={query.get('labelSelector', '') or query.get('fieldSelector', '') or '-'}")
        self.send_json(200, {"kind": RESOURCES[res][0] + "List", "apiVersion": gv(res[0], res[1]), "metadata": meta,
                             "items": items})

    def chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def event_line(self, kind, obj):
        return json.dumps({"type": kind, "object": obj}, separators=(",", ":")).encode() + b"\n"

    def bookmark(self, res, rv, initial_end=False):
        meta = {"resourceVersion": str(rv)}
        if initial_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        return self.event_line("BOOKMARK", {"kind": RESOURCES[res][0], "apiVersion": gv(res[0], res[1]),
                                            "metadata": meta})

    def watch(self, res, namespace, query):
        watcher = self.selection(res, namespace, query)
        timeout = query_number(query, "timeoutSeconds", 1800, float)
        bookmarks = query.get("allowWatchBookmarks") in ("true", "1")
        initial = query.get("sendInitialEvents") in ("true", "1")
        rv_text = query.get("resourceVersion", "")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        store, end = self.store, min(time.monotonic() + min(timeout, self.max_watch_seconds), self.deadline)
        with store.cond:
            if initial or rv_text in ("", "0"):
                cursor = store.rv
                table = store.objects.get(res, {})
                first = [self.event_line("ADDED", o) for o in table.values() if watcher.matches(o)]
                if initial:
                    first.append(self.bookmark(res, cursor, initial_end=True))
            else:
                try:
                    cursor = int(rv_text)
                except ValueError:
                    cursor = -1
                first = []
                if cursor < store.compacted:
                    first = [self.event_line("ERROR", status(410, "Expired", f"too old resource version: {rv_text} "
                                                         f"({store.compacted})"))]
                    end = 0
        self.note(f"WATCH {res[2]} namespace={namespace or '*'} from rv={rv_text or '-'} "
                  f"selector={query.get('labelSelector', '') or query.get('fieldSelector', '') or '-'}")
        if first:
            self.chunk(b"".join(first))
        next_bookmark = time.monotonic() + self.bookmark_seconds
        while time.monotonic() < end:
            with store.cond:
                events = store.events_after(cursor)
                if events == []:
                    store.cond.wait(max(0.0, min(end, next_bookmark) - time.monotonic()))
                    events = store.events_after(cursor)
                if events is None:
                    lines = [self.event_line("ERROR", status(410, "Expired", f"too old resource version: {cursor}"))]
                    end = 0
                else:
                    lines = []
                    for rv, eres, kind, obj, old in events:
                        cursor = rv
                        if eres != res:
                            continue
                        now_in, was_in = watcher.matches(obj), watcher.matches(old)
                        if kind == "DELETED":
                            kind = "DELETED" if was_in else None
                        elif now_in and not was_in:
                            kind = "ADDED"
                        elif was_in and not now_in:
                            kind = "DELETED"
                        elif not now_in:
                            kind = None
                        if kind:
                            lines.append(self.event_line(kind, obj))
                    if bookmarks and not lines and time.monotonic() >= next_bookmark:
                        lines.append(self.bookmark(res, store.rv))
                        cursor = store.rv
            if lines:
                self.chunk(b"".join(lines))
            if time.monotonic() >= next_bookmark:
                next_bookmark = time.monotonic() + self.bookmark_seconds
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


def objects(args):
    ns = args.namespace
    items = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}]
    items.append({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", "metadata": {"name": args.klass},
                  "spec": {"controller": args.controller}})
    endpoints = [{"addresses": [a], "conditions": {"ready": True}} for a in args.addresses.split(",")]
    for i in range(args.ingresses):
        backend = {"service": {"name": f"app-{i}", "port": {"number": 80}}}
        items.append({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                      "metadata": {"name": f"app-{i}", "namespace": ns},
                      "spec": {"ingressClassName": args.klass, "rules": [{"host": f"h{i}.bench.test", "http": {
                          "paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]}}]}})
        items.append({"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"app-{i}", "namespace": ns},
                      "spec": {"ports": [{"name": "http", "port": 80}]}})
        items.append({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
                      "metadata": {"name": f"app-{i}-x", "namespace": ns,
                                   "labels": {"kubernetes.io/service-name": f"app-{i}"}},
                      "ports": [{"name": "http", "port": args.endpoint_port}], "endpoints": endpoints})
    json.dump({"apiVersion": "v1", "kind": "List", "items": items}, sys.stdout, separators=(",", ":"))


def serve(args):
    with open(args.objects) as f:
        seed = json.load(f)["items"]
    store = Store(args.event_log)
    store.seed(seed)
    Handler.store, Handler.bookmark_seconds, Handler.max_watch_seconds = store, args.bookmark_seconds, args.max_watch_seconds
    Handler.deadline = time.monotonic() + args.time_limit
    host, _, port = args.listen.rpartition(":")
    if not host.startswith("127."):
        sys.exit("kube_api_double: --listen must be on 127.0.0.0/8")
    server = ThreadingHTTPServer((host, int(port)), Handler)
    server.daemon_threads = True

    def expire():
        print(f"[kube-api-double] time limit of {args.time_limit:.0f} s reached; exiting", file=sys.stderr, flush=True)
        os._exit(0)

    timer = threading.Timer(args.time_limit, expire)
    timer.daemon = True
    timer.start()
    print(f"listening {server.server_address[0]}:{server.server_address[1]} "
          f"({len(seed)} objects, resourceVersion {store.rv})", flush=True)
    server.serve_forever()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("objects", help="print the bench's objects as a v1 List")
    p.add_argument("--ingresses", type=int, required=True)
    p.add_argument("--endpoint-port", type=int, required=True)
    p.add_argument("--addresses", default=",".join(f"127.0.0.{k}" for k in range(1, 11)),
                   help="the endpoints' addresses, comma-separated (one endpoint each)")
    p.add_argument("--namespace", default="bench")
    p.add_argument("--class", dest="klass", default="holdfast")
    p.add_argument("--controller", default="holdfast.io/ingress-controller")
    p = sub.add_parser("serve", help="serve objects as a Kubernetes API test double")
    p.add_argument("--objects", required=True)
    p.add_argument("--listen", default="127.0.0.1:0")
    p.add_argument("--time-limit", type=float, default=1800)
    p.add_argument("--bookmark-seconds", type=float, default=10)
    p.add_argument("--event-log", type=int, default=100000, help="events kept for watches to resume from")
    p.add_argument("--max-watch-seconds", type=float, default=float("inf"),
                   help="end every watch stream after this long, whatever its timeoutSeconds (to try resumes)")
    args = parser.parse_args()
    objects(args) if args.command == "objects" else serve(args)


if __name__ == "__main__":
    main()
