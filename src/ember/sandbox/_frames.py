"""The wire format between ember and a session's executor (:mod:`ember.sandbox._executor`
holds its own copy, as it imports nothing of ember).

A *message* is a JSON object framed as a 4-byte big-endian length and its UTF-8 bytes,
followed by as many raw frames (length, bytes: binary safe) as its ``blobs`` field says.
"""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import Mapping
from typing import Any

__all__ = ["MAX_BLOBS", "MAX_HEADER", "Broken", "Message", "encode", "read_message"]

LENGTH = struct.Struct(">I")
MAX_HEADER = 1 << 20
MAX_BLOBS = 2
"""The most blobs a reply carries (stdout and stderr)."""

Message = tuple[dict[str, Any], list[bytes]]


class Broken(Exception):
    """The executor wrote something that is not the protocol."""


def encode(header: Mapping[str, Any], *blobs: bytes) -> bytes:
    """One message: ``header`` (with ``blobs``, their count) as framed JSON, then each blob
    framed."""
    data = json.dumps({**header, "blobs": len(blobs)}, separators=(",", ":")).encode()
    parts = [LENGTH.pack(len(data)), data]
    for blob in blobs:
        parts += [LENGTH.pack(len(blob)), blob]
    return b"".join(parts)


async def read_message(stream: asyncio.StreamReader, max_blob: int) -> Message:
    """The next message on ``stream``.

    :raises Broken: it is not the protocol (a frame too long, not a JSON object, too many
        blobs).
    :raises asyncio.IncompleteReadError: the stream ended.
    """
    (size,) = LENGTH.unpack(await stream.readexactly(LENGTH.size))
    if size > MAX_HEADER:
        raise Broken(f"a header of {size} bytes")
    try:
        header = json.loads(await stream.readexactly(size))
    except ValueError as exc:
        raise Broken(f"a header that is not JSON: {exc}") from exc
    count = header.get("blobs", 0) if isinstance(header, dict) else None
    if not isinstance(count, int) or not 0 <= count <= MAX_BLOBS:
        raise Broken(f"a header that is not an object with at most {MAX_BLOBS} blobs")
    blobs = []
    for _ in range(count):
        (size,) = LENGTH.unpack(await stream.readexactly(LENGTH.size))
        if size > max_blob:
            raise Broken(f"a blob of {size} bytes (at most {max_blob})")
        blobs.append(await stream.readexactly(size))
    return header, blobs
