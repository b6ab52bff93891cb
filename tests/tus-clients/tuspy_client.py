#!/usr/bin/env python3
"""One tus upload with tuspy (PyPI `tuspy`, import name `tusclient`), for tests and benchmarks.

    python tuspy_client.py --endpoint http://127.0.0.1:8080/upload --file big.bin --chunk-size 67108864
    -> {"url": ..., "status": 200, "body": "{\"bytes\":...}", "headers": {"upload-offset": ...}, "offset": ..., "ms": ...}

Prints ONE JSON line on stdout when it ends. A stopped upload (--stop-after) prints {"url","offset","stopped":true};
an error prints {"error", ...} with the failing response's status, body and headers when there was one, and exits
with 1; bad arguments exit with 2. See README.md for every option.

tuspy keeps the last PATCH it sent as `uploader.request` (a `tusclient.request.TusRequest`): `status_code`,
`response_content` (bytes) and `response_headers` (names lower-cased) are what this prints. The creation POST's
response is not kept by tuspy (only its Location is), so a failure there reports tuspy's message with the status.
"""

import argparse
import hashlib
import json
import sys
import time

from tusclient import client as tus_client
from tusclient.exceptions import TusCommunicationError
from tusclient.uploader import Uploader

STARTED = time.monotonic()

# Algorithms tuspy can hash with, by their tus names (the checksum extension's names are hashlib's).
ALGORITHMS = {name: getattr(hashlib, name) for name in ("sha1", "sha256", "sha512", "md5")}


class _WrongDigest:
    """A digest of other bytes than the chunk's: a well-formed Upload-Checksum that does not match."""

    def __init__(self, algorithm, chunk):
        self._hash = algorithm(b"not the chunk" + chunk)

    def digest(self):
        return self._hash.digest()


def uploader_class(algorithm_name, wrong):
    """An Uploader whose Upload-Checksum uses `algorithm_name`, and is wrong if `wrong`.

    tuspy takes the algorithm from the class attribute CHECKSUM_ALGORITHM_PAIR (name, hashlib constructor), read in
    `__init__`, and `TusRequest.add_checksum` calls `constructor(chunk).digest()`: overriding the pair in a subclass
    is enough for both another algorithm and a wrong checksum (--bad-checksum), without touching tuspy's requests.
    """
    algorithm = ALGORITHMS[algorithm_name]
    pair = (algorithm_name, (lambda chunk: _WrongDigest(algorithm, chunk)) if wrong else algorithm)
    return type("ChecksumUploader", (Uploader,), {"CHECKSUM_ALGORITHM_PAIR": pair})


def emit(obj, code):
    obj["ms"] = round((time.monotonic() - STARTED) * 1000)
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()
    sys.exit(code)


def pairs(items, name):
    out = {}
    for item in items or []:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise ValueError("--{} takes key=value, got {!r}".format(name, item))
        out[key] = value
    return out


def count(text):
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("a byte count is >= 0")
    return value


class ArgumentParser(argparse.ArgumentParser):
    def error(self, message):
        emit({"error": "usage: " + message}, 2)


def parse_args(argv):
    p = ArgumentParser(description="One tus upload with tuspy; prints one JSON line.")
    p.add_argument("--endpoint", help="creation URL (the tus POST goes here)")
    p.add_argument("--file", required=True, help="file to upload")
    p.add_argument("--chunk-size", type=count, help="bytes per PATCH (tuspy's default: the whole file in one)")
    p.add_argument("--metadata", action="append", metavar="K=V", help="Upload-Metadata pair (repeatable)")
    p.add_argument("--header", action="append", metavar="K=V", help="header on every request (repeatable)")
    p.add_argument("--upload-url", help="resume this upload (tuspy HEADs it first) instead of creating one")
    p.add_argument("--stop-after", type=count, metavar="BYTES", help="stop once the offset reaches BYTES")
    p.add_argument("--retries", type=count, default=0, help="tuspy's retries of a failed PATCH (default 0)")
    p.add_argument("--retry-delay", type=float, default=0.5, help="seconds before each retry (default 0.5)")
    p.add_argument("--checksum", action="store_true", help="send Upload-Checksum (tuspy's upload_checksum=True)")
    p.add_argument("--checksum-algorithm", choices=sorted(ALGORITHMS), default="sha1", help="default sha1")
    p.add_argument("--bad-checksum", action="store_true", help="send a wrong Upload-Checksum (expect 460)")
    args = p.parse_args(argv)
    if not args.endpoint and not args.upload_url:
        p.error("--endpoint URL or --upload-url URL is required")
    if args.stop_after == 0:
        p.error("--stop-after takes a byte count > 0 (tuspy reads 0 as 'the whole file')")
    try:
        args.metadata = pairs(args.metadata, "metadata")
        args.header = pairs(args.header, "header")
    except ValueError as err:
        p.error(str(err))
    return args


def response_of(request):
    if request is None or request.status_code is None:
        return {}
    body = request.response_content or b""
    return {
        "status": request.status_code,
        "body": body.decode("utf-8", "replace"),
        "headers": dict(request.response_headers),
    }


def main(argv):
    args = parse_args(argv)
    client = tus_client.TusClient(args.endpoint or args.upload_url, headers=args.header)
    checksum = args.checksum or args.bad_checksum
    cls = uploader_class(args.checksum_algorithm, args.bad_checksum) if checksum else Uploader
    options = dict(
        file_path=args.file,
        metadata=args.metadata,
        retries=args.retries,
        retry_delay=args.retry_delay,
        upload_checksum=checksum,
    )
    if args.chunk_size:
        options["chunk_size"] = args.chunk_size
    uploader = None
    try:
        # With url=, tuspy HEADs the upload in the constructor to learn its offset.
        uploader = cls(client=client, url=args.upload_url, **options)
        uploader.upload(stop_at=args.stop_after)
    except TusCommunicationError as err:
        out = {"error": str(err) or "tus request failed", "url": getattr(uploader, "url", None)}
        out.update(response_of(getattr(uploader, "request", None)))
        if err.status_code is not None:
            out["status"] = err.status_code
        if err.response_content is not None and "body" not in out:
            content = err.response_content
            out["body"] = content.decode("utf-8", "replace") if isinstance(content, bytes) else str(content)
        emit(out, 1)
    except (OSError, ValueError, TypeError) as err:
        # TypeError: tuspy's int(None) when a 2xx PATCH response lacks Upload-Offset.
        out = {"error": "{}: {}".format(type(err).__name__, err), "url": getattr(uploader, "url", None)}
        out.update(response_of(getattr(uploader, "request", None)))
        emit(out, 1)
    size = uploader.get_file_size()
    if args.stop_after and uploader.offset < size:
        emit({"url": uploader.url, "offset": uploader.offset, "stopped": True}, 0)
    out = {"url": uploader.url}
    out.update(response_of(uploader.request))
    out["offset"] = uploader.offset
    emit(out, 0)


if __name__ == "__main__":
    main(sys.argv[1:])
