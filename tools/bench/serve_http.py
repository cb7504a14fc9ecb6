"""A minimal HTTP/1.1 client over asyncio streams for serve_bench.py (standard library only): one
request per connection (Connection: close), bodies read as they arrive, chunked or by length.
"""

import asyncio
import json
import os
import urllib.parse


class BenchError(Exception):
    """A failure that ends the run with a message (the server unreachable, a refused request)."""


class Endpoint:
    def __init__(self, base_url, api_key):
        url = urllib.parse.urlsplit(base_url)
        if url.scheme != "http":
            raise BenchError("only http:// base URLs are supported, got %r" % base_url)
        self.host = url.hostname or "127.0.0.1"
        self.port = url.port or 80
        self.prefix = url.path.rstrip("/")
        self.api_key = api_key
        self.base_url = "http://%s:%d%s" % (self.host, self.port, self.prefix)

    def request_bytes(self, method, path, body):
        lines = ["%s %s%s HTTP/1.1" % (method, self.prefix, path), "Host: %s:%d" % (self.host, self.port),
                 "User-Agent: longbow-serve-bench", "Connection: close"]
        if body is not None:
            lines += ["Content-Type: application/json", "Content-Length: %d" % len(body)]
        if self.api_key:
            lines.append("Authorization: Bearer %s" % self.api_key)
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        return head + (body or b"")


class Response:
    """An HTTP response whose head has been read; its body is read with pieces() or read_all()."""

    def __init__(self, reader, writer, status, headers):
        self.reader, self.writer, self.status, self.headers = reader, writer, status, headers

    async def pieces(self):
        """Yields the body as it arrives (de-chunked); each piece is what one read returned."""
        r = self.reader
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            # De-chunked from large reads: every chunk that one read completed comes out as one piece (they
            # arrived together), so a busy stream costs one await per read, not three per chunk.
            raw = b""
            while True:
                data = await r.read(1 << 16)
                if not data:
                    raise ConnectionError("connection closed inside a chunked body")
                raw += data
                out = []
                pos = 0
                while True:
                    eol = raw.find(b"\r\n", pos)
                    if eol < 0:
                        break
                    size = int(raw[pos:eol].split(b";")[0].strip() or b"0", 16)
                    if size == 0:  # the last chunk (trailers, if any, are not read: the connection closes)
                        if out:
                            yield b"".join(out)
                        return
                    if len(raw) < eol + 2 + size + 2:
                        break
                    out.append(raw[eol + 2:eol + 2 + size])
                    pos = eol + 2 + size + 2
                raw = raw[pos:]
                if out:
                    yield b"".join(out)
        elif "content-length" in self.headers:
            left = int(self.headers["content-length"])
            while left > 0:
                data = await r.read(min(left, 1 << 16))
                if not data:
                    raise ConnectionError("connection closed %d bytes before the end of the body" % left)
                left -= len(data)
                yield data
        else:
            while True:
                data = await r.read(1 << 16)
                if not data:
                    return
                yield data

    async def read_all(self):
        out = b""
        async for data in self.pieces():
            out += data
        return out

    def close(self):
        self.writer.close()


async def open_request(endpoint, method, path, body=None):
    """Sends one request on a new connection and reads the response head. Raises BenchError when the
    server cannot be reached (the message names the address)."""
    try:
        reader, writer = await asyncio.open_connection(endpoint.host, endpoint.port, limit=1 << 20)
    except OSError as e:
        reason = os.strerror(e.errno) if e.errno else str(e)
        raise BenchError("cannot connect to %s: %s (is the server running?)" % (endpoint.base_url, reason))
    try:
        writer.write(endpoint.request_bytes(method, path, body))
        await writer.drain()
    except OSError:
        pass  # the server may answer (e.g. 413) and close before reading the whole body: read its answer
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError) as e:
        writer.close()
        raise ConnectionError("no HTTP response head from %s%s: %r" % (endpoint.base_url, path, e))
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        writer.close()
        raise ConnectionError("malformed status line %r" % lines[0])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    return Response(reader, writer, int(parts[1]), headers)


async def call_json(endpoint, method, path, obj=None, timeout=60.0):
    """(status, parsed JSON or raw text) of a small request."""
    body = None if obj is None else json.dumps(obj).encode()

    async def go():
        resp = await open_request(endpoint, method, path, body)
        try:
            raw = await resp.read_all()
        finally:
            resp.close()
        try:
            return resp.status, json.loads(raw.decode("utf-8", "replace"))
        except ValueError:
            return resp.status, raw.decode("utf-8", "replace")

    return await asyncio.wait_for(go(), timeout)


def error_text(obj):
    if isinstance(obj, dict) and isinstance(obj.get("error"), dict):
        return obj["error"].get("message") or json.dumps(obj["error"])
    return obj if isinstance(obj, str) else json.dumps(obj)
