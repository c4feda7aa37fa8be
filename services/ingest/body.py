"""Read a request body within the contract's size limits, before reading all of it.

``Content-Length`` over the limit is refused at once; a chunked or lying body is refused as
soon as the bytes read pass the limit. ``Content-Encoding: gzip`` is inflated incrementally,
with the same limit on the inflated size (no zip bombs).
"""

from __future__ import annotations

import zlib

import orjson
from fastapi import Request

from shared.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType

JSON_TYPES = ("application/json", "text/plain")


def check_content_type(request: Request) -> None:
    raw = request.headers.get("content-type")
    if raw is None:
        return  # lenient: some beacons omit it; the body must still be JSON
    media = raw.split(";", 1)[0].strip().lower()
    if media not in JSON_TYPES and not media.endswith("+json"):
        raise UnsupportedMediaType(f"Content-Type must be application/json, got {media!r}")


async def read_body(request: Request, limit: int) -> bytes:
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit and not _gzip(request):
        raise PayloadTooLarge(f"request body is over {limit // 1024} KB")
    decoder = zlib.decompressobj(16 + zlib.MAX_WBITS) if _gzip(request) else None
    chunks: list[bytes] = []
    size = 0
    raw_size = 0
    try:
        async for chunk in request.stream():
            raw_size += len(chunk)
            if raw_size > limit * 4:  # even compressed, this is no Tracking API request
                raise PayloadTooLarge(f"request body is over {limit // 1024} KB")
            if decoder is not None:
                chunk = decoder.decompress(chunk, limit + 1 - size)
                if decoder.unconsumed_tail:
                    raise PayloadTooLarge(f"request body is over {limit // 1024} KB uncompressed")
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"request body is over {limit // 1024} KB")
            chunks.append(chunk)
        if decoder is not None:
            tail = decoder.flush()
            size += len(tail)
            if size > limit:
                raise PayloadTooLarge(f"request body is over {limit // 1024} KB uncompressed")
            chunks.append(tail)
            if not decoder.eof:
                raise BadRequest("gzip body is truncated")
    except zlib.error as exc:
        raise BadRequest(f"body is not valid gzip: {exc}") from exc
    return b"".join(chunks)


def _gzip(request: Request) -> bool:
    encoding = request.headers.get("content-encoding", "").strip().lower()
    if encoding in ("", "identity"):
        return False
    if encoding in ("gzip", "x-gzip"):
        return True
    raise UnsupportedMediaType(f"Content-Encoding {encoding!r} is not supported (use gzip)")


def parse_json_object(body: bytes) -> dict[str, object]:
    if not body.strip():
        raise BadRequest("request body is empty; send a JSON object")
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"malformed JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise BadRequest("request body must be a JSON object")
    return value
