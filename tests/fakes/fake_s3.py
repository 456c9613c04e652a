r"""A fake S3: a small HTTP server (stdlib, on 127.0.0.1, in a thread) speaking the part of Amazon S3's REST
API the backup target's client (MinIO's Python SDK) uses, path-style (`/<bucket>/<key>`), so the `s3://` target
is tested over real HTTP with real request signing.

Operations, as the S3 API reference documents them:
- PutObject `PUT /b/k`: the body is the object; answers 200 with `ETag: "<md5>"`.
- CreateMultipartUpload `POST /b/k?uploads`: `<InitiateMultipartUploadResult>` with `Bucket`, `Key`, `UploadId`.
- UploadPart `PUT /b/k?partNumber=N&uploadId=U`: `ETag` of the part. Parts other than the last must be at
  least 5 MiB (else CompleteMultipartUpload answers 400 `EntityTooSmall`, as S3 does).
- CompleteMultipartUpload `POST /b/k?uploadId=U` with `<CompleteMultipartUpload><Part><PartNumber>
  <ETag>...`: parts in ascending order, each ETag matching; the object becomes visible only now;
  `<CompleteMultipartUploadResult>` with `Location`, `Bucket`, `Key`, `ETag` ("<md5 of the part md5s>-<n>").
- AbortMultipartUpload `DELETE /b/k?uploadId=U`: 204.
- HeadObject / GetObject `HEAD|GET /b/k` (GET honours `Range: bytes=a-` and `bytes=a-b`): `Content-Length`,
  `ETag`, `Last-Modified` (RFC 7231), `Content-Type`.
- ListObjectsV2 `GET /b?list-type=2&prefix=&max-keys=&continuation-token=&start-after=&delimiter=`:
  `<ListBucketResult>` with `Name`, `Prefix`, `KeyCount`, `MaxKeys`, `IsTruncated`, `Contents` (`Key`,
  `LastModified` ISO 8601, `ETag`, `Size`, `StorageClass`), `NextContinuationToken` when truncated.
- DeleteObject `DELETE /b/k`: 204, also for a missing key.
- GetBucketLocation `GET /b?location`: `<LocationConstraint>` of the fake's region.
- Errors: `<Error><Code>…</Code><Message>…</Message></Error>` with S3's status codes (`NoSuchBucket` 404,
  `NoSuchKey` 404, `NoSuchUpload` 404, `InvalidPart` 400, `AccessDenied` 403, `SignatureDoesNotMatch` 403,
  `XAmzContentSHA256Mismatch` 400).

Every request must be signed with AWS Signature Version 4 (`Authorization: AWS4-HMAC-SHA256 Credential=…,
SignedHeaders=…, Signature=…`) by the fake's one access key; the fake recomputes the signature (canonical
request from the method, path, sorted query, the signed headers and `x-amz-content-sha256`), and checks a
declared payload hash against the body. Not implemented: virtual-hosted addressing, versioning, ACLs,
checksums other than the payload's SHA-256, chunked (streaming) signatures, presigned URLs.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, unquote, urlsplit
from xml.etree import ElementTree as ET

MIN_PART = 5 * 1024 * 1024
NS = "http://s3.amazonaws.com/doc/2006-03-01/"
_AUTH = re.compile(r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/s3/aws4_request, ?"
                   r"SignedHeaders=([^,]+), ?Signature=([0-9a-f]{64})")


@dataclass
class StoredObject:
    data: bytes
    etag: str
    modified: datetime


@dataclass
class FakeS3:
    """The fake's state: buckets of objects, open multipart uploads, and every request as (method, operation)."""

    access_key: str = "fake-access-key"
    secret_key: str = "fake-secret-key"
    region: str = "us-east-1"
    buckets: dict[str, dict[str, StoredObject]] = field(default_factory=dict)
    uploads: dict[str, tuple[str, str, dict[int, bytes]]] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    endpoint: str = ""

    def operations(self) -> list[str]:
        return [op for _, op in self.requests]


def _signing_key(secret: str, date: str, region: str) -> bytes:
    key = hmac.new(f"AWS4{secret}".encode(), date.encode(), hashlib.sha256).digest()
    for part in (region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # quiet: tests read `requests`
        pass

    # -- plumbing ---------------------------------------------------------------------------------------------
    def _reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
               content_type: str = "application/xml") -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if body or status not in (204, 304):
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, status: int, code: str, message: str) -> None:
        root = ET.Element("Error")
        ET.SubElement(root, "Code").text = code
        ET.SubElement(root, "Message").text = message
        ET.SubElement(root, "RequestId").text = uuid.uuid4().hex
        self._reply(status, ET.tostring(root, xml_declaration=True, encoding="UTF-8"))

    def _xml(self, root: ET.Element, headers: dict[str, str] | None = None) -> None:
        root.set("xmlns", NS)
        self._reply(200, ET.tostring(root, xml_declaration=True, encoding="UTF-8"), headers)

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _authorized(self, body: bytes) -> bool:
        s3 = self.server.s3
        m = _AUTH.fullmatch(self.headers.get("Authorization", ""))
        if not m:
            self._error(403, "AccessDenied", "Access Denied (no AWS4-HMAC-SHA256 signature)")
            return False
        access, date, region, signed, signature = m.groups()
        if access != s3.access_key:
            self._error(403, "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records.")
            return False
        declared = self.headers.get("x-amz-content-sha256", "")
        if declared != "UNSIGNED-PAYLOAD" and declared != hashlib.sha256(body).hexdigest():
            self._error(400, "XAmzContentSHA256Mismatch", "The provided 'x-amz-content-sha256' header does not match")
            return False
        url = urlsplit(self.path)
        pairs = sorted(tuple(p.split("=", 1)) if "=" in p else (p, "") for p in url.query.split("&") if p)
        canonical = "\n".join([
            self.command, url.path or "/", "&".join(f"{k}={v}" for k, v in pairs),
            "".join(f"{h}:{' '.join((self.headers.get(h) or '').split())}\n" for h in signed.split(";")),
            signed, declared])
        to_sign = "\n".join(["AWS4-HMAC-SHA256", self.headers.get("x-amz-date", ""),
                             f"{date}/{region}/s3/aws4_request", hashlib.sha256(canonical.encode()).hexdigest()])
        expected = hmac.new(_signing_key(s3.secret_key, date, region), to_sign.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature):
            self._error(403, "SignatureDoesNotMatch", "The request signature we calculated does not match")
            return False
        return True

    def _route(self) -> tuple[str, str, dict[str, str]]:
        url = urlsplit(self.path)
        bucket, _, key = url.path.lstrip("/").partition("/")
        return unquote(bucket), unquote(key), dict(parse_qsl(url.query, keep_blank_values=True))

    def _handle(self) -> None:
        body = self._body()
        bucket, key, query = self._route()
        op = self._operation(key, query)
        s3 = self.server.s3
        with s3.lock:
            s3.requests.append((self.command, op))
        if not self._authorized(body):
            return
        if bucket not in s3.buckets:
            self._error(404, "NoSuchBucket", "The specified bucket does not exist")
            return
        getattr(self, f"_op_{op}")(s3.buckets[bucket], bucket, key, query, body)

    def _operation(self, key: str, query: dict[str, str]) -> str:
        c = self.command
        if not key:
            if c == "GET" and "location" in query:
                return "GetBucketLocation"
            if c == "GET" and query.get("list-type") == "2":
                return "ListObjectsV2"
            return "Unsupported"
        if c == "POST" and "uploads" in query:
            return "CreateMultipartUpload"
        if c == "POST" and "uploadId" in query:
            return "CompleteMultipartUpload"
        if c == "PUT" and "uploadId" in query:
            return "UploadPart"
        if c == "DELETE" and "uploadId" in query:
            return "AbortMultipartUpload"
        return {"PUT": "PutObject", "GET": "GetObject", "HEAD": "HeadObject", "DELETE": "DeleteObject"}.get(
            c, "Unsupported")

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

    # -- operations -------------------------------------------------------------------------------------------
    def _op_Unsupported(self, *_: object) -> None:
        self._error(501, "NotImplemented", "A header or query you provided implies functionality not implemented")

    def _op_GetBucketLocation(self, objects: dict[str, StoredObject], *_: object) -> None:
        root = ET.Element("LocationConstraint")
        root.text = self.server.s3.region
        self._xml(root)

    def _op_PutObject(self, objects: dict[str, StoredObject], bucket: str, key: str,
                      query: dict[str, str], body: bytes) -> None:
        etag = hashlib.md5(body).hexdigest()  # noqa: S324 (S3's ETag is an MD5)
        with self.server.s3.lock:
            objects[key] = StoredObject(body, etag, datetime.now(UTC))
        self._reply(200, headers={"ETag": f'"{etag}"'})

    def _op_CreateMultipartUpload(self, objects: dict[str, StoredObject], bucket: str, key: str,
                                  query: dict[str, str], body: bytes) -> None:
        upload_id = uuid.uuid4().hex
        with self.server.s3.lock:
            self.server.s3.uploads[upload_id] = (bucket, key, {})
        root = ET.Element("InitiateMultipartUploadResult")
        for tag, text in (("Bucket", bucket), ("Key", key), ("UploadId", upload_id)):
            ET.SubElement(root, tag).text = text
        self._xml(root)

    def _upload(self, bucket: str, key: str, query: dict[str, str]) -> dict[int, bytes] | None:
        found = self.server.s3.uploads.get(query.get("uploadId", ""))
        if found is None or found[:2] != (bucket, key):
            self._error(404, "NoSuchUpload", "The specified multipart upload does not exist")
            return None
        return found[2]

    def _op_UploadPart(self, objects: dict[str, StoredObject], bucket: str, key: str,
                       query: dict[str, str], body: bytes) -> None:
        parts = self._upload(bucket, key, query)
        if parts is None:
            return
        number = int(query.get("partNumber", "0"))
        if not 1 <= number <= 10000:
            self._error(400, "InvalidArgument", "Part number must be an integer between 1 and 10000, inclusive")
            return
        with self.server.s3.lock:
            parts[number] = body
        self._reply(200, headers={"ETag": f'"{hashlib.md5(body).hexdigest()}"'})  # noqa: S324

    def _op_CompleteMultipartUpload(self, objects: dict[str, StoredObject], bucket: str,
                                    key: str, query: dict[str, str], body: bytes) -> None:
        parts = self._upload(bucket, key, query)
        if parts is None:
            return
        listed = [(int(p.findtext(f"{{{NS}}}PartNumber") or p.findtext("PartNumber") or 0),
                   (p.findtext(f"{{{NS}}}ETag") or p.findtext("ETag") or "").strip('"'))
                  for p in ET.fromstring(body) if p.tag.endswith("Part")]  # noqa: S314 (signed by our client)
        numbers = [n for n, _ in listed]
        if not listed or numbers != sorted(set(numbers)):
            self._error(400, "InvalidPartOrder", "The list of parts was not in ascending order")
            return
        data = []
        for i, (n, etag) in enumerate(listed):
            if n not in parts or hashlib.md5(parts[n]).hexdigest() != etag:  # noqa: S324
                self._error(400, "InvalidPart", "One or more of the specified parts could not be found")
                return
            if i < len(listed) - 1 and len(parts[n]) < MIN_PART:
                self._error(400, "EntityTooSmall", "Your proposed upload is smaller than the minimum allowed")
                return
            data.append(parts[n])
        digest = hashlib.md5(b"".join(bytes.fromhex(e) for _, e in listed)).hexdigest()  # noqa: S324
        etag = f"{digest}-{len(listed)}"
        with self.server.s3.lock:
            objects[key] = StoredObject(b"".join(data), etag, datetime.now(UTC))
            del self.server.s3.uploads[query["uploadId"]]
        root = ET.Element("CompleteMultipartUploadResult")
        for tag, text in (("Location", f"{self.server.s3.endpoint}/{bucket}/{key}"), ("Bucket", bucket),
                          ("Key", key), ("ETag", f'"{etag}"')):
            ET.SubElement(root, tag).text = text
        self._xml(root)

    def _op_AbortMultipartUpload(self, objects: dict[str, StoredObject], bucket: str, key: str,
                                 query: dict[str, str], body: bytes) -> None:
        if self._upload(bucket, key, query) is None:
            return
        with self.server.s3.lock:
            del self.server.s3.uploads[query["uploadId"]]
        self._reply(204)

    def _object(self, objects: dict[str, StoredObject], key: str) -> StoredObject | None:
        obj = objects.get(key)
        if obj is None:
            self._error(404, "NoSuchKey", "The specified key does not exist.")
        return obj

    def _op_HeadObject(self, objects: dict[str, StoredObject], bucket: str, key: str,
                       query: dict[str, str], body: bytes) -> None:
        obj = self._object(objects, key)
        if obj is not None:
            self.send_response(200)
            for k, v in self._object_headers(obj).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(obj.data)))
            self.end_headers()

    @staticmethod
    def _object_headers(obj: StoredObject) -> dict[str, str]:
        return {"ETag": f'"{obj.etag}"', "Last-Modified": format_datetime(obj.modified, usegmt=True),
                "Content-Type": "application/octet-stream", "Accept-Ranges": "bytes"}

    def _op_GetObject(self, objects: dict[str, StoredObject], bucket: str, key: str,
                      query: dict[str, str], body: bytes) -> None:
        obj = self._object(objects, key)
        if obj is None:
            return
        data, status, headers = obj.data, 200, self._object_headers(obj)
        m = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        if m:
            start = int(m[1])
            end = int(m[2]) if m[2] else len(obj.data) - 1
            data, status = obj.data[start: end + 1], 206
            headers["Content-Range"] = f"bytes {start}-{start + len(data) - 1}/{len(obj.data)}"
        self._reply(status, data, headers, content_type="application/octet-stream")

    def _op_DeleteObject(self, objects: dict[str, StoredObject], bucket: str, key: str,
                         query: dict[str, str], body: bytes) -> None:
        with self.server.s3.lock:
            objects.pop(key, None)
        self._reply(204)

    def _op_ListObjectsV2(self, objects: dict[str, StoredObject], bucket: str, key: str,
                          query: dict[str, str], body: bytes) -> None:
        prefix = query.get("prefix", "")
        max_keys = min(int(query.get("max-keys") or 1000), 1000)
        after = query.get("continuation-token") or query.get("start-after") or ""
        with self.server.s3.lock:
            keys = sorted(k for k in objects if k.startswith(prefix) and k > after)
        page, truncated = keys[:max_keys], len(keys) > max_keys
        root = ET.Element("ListBucketResult")
        for tag, text in (("Name", bucket), ("Prefix", prefix), ("KeyCount", str(len(page))),
                          ("MaxKeys", str(max_keys)), ("IsTruncated", "true" if truncated else "false")):
            ET.SubElement(root, tag).text = text
        if "continuation-token" in query:
            ET.SubElement(root, "ContinuationToken").text = query["continuation-token"]
        if truncated:
            ET.SubElement(root, "NextContinuationToken").text = page[-1]
        for k in page:
            obj = objects[k]
            c = ET.SubElement(root, "Contents")
            for tag, text in (("Key", k), ("LastModified", obj.modified.strftime("%Y-%m-%dT%H:%M:%S.000Z")),
                              ("ETag", f'"{obj.etag}"'), ("Size", str(len(obj.data))),
                              ("StorageClass", "STANDARD")):
                ET.SubElement(c, tag).text = text
        self._xml(root)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, s3: FakeS3) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.s3 = s3


@contextmanager
def fake_s3(*buckets: str) -> Iterator[FakeS3]:
    """A fake S3 on a free loopback port holding the empty `buckets`; `.endpoint` is its http URL."""
    s3 = FakeS3(buckets={b: {} for b in buckets})
    server = _Server(s3)
    s3.endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="fake-s3", daemon=True)
    thread.start()
    try:
        yield s3
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
