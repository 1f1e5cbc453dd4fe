"""Routes of the batches function: OpenAI's Files and Batches API, the caller's own files and batches only.

  POST /v1/files (multipart: `file`, `purpose=batch`), GET /v1/files, GET /v1/files/{id}, GET /v1/files/{id}/content,
  DELETE /v1/files/{id}; POST /v1/batches, GET /v1/batches (after, limit), GET /v1/batches/{id},
  POST /v1/batches/{id}/cancel.

POST /v1/files is dispatched without the resolver (its body is multipart, delivered base64-encoded by API Gateway as
a binary media type); everything else goes through it. The tenant comes only from the authorizer's context. A
file's content is answered inline up to INLINE_CONTENT_BYTES and otherwise by a 302 to a presigned S3 URL (a
Lambda answer carries at most 6 MB; the openai SDK follows the redirect and drops its key for the other host).
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass
from email.parser import HeaderParser
from typing import Annotated

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Query

from maas.api.openapi import DOCS_ONLY
from maas.api.resolver import (
    JSON,
    create_resolver,
    documented,
    dumps,
    error_docs,
    error_result,
    proxy_result,
    resolver_response,
)
from maas.errors import ApiError, InvalidRequest, NotFound, PayloadTooLarge, Unauthorized, UnsupportedMediaType
from maas.jobs.batches import BatchesService, Conflict
from maas.jobs.files import PART_ID_RE, FileStore, UploadStore, upload_body
from maas.metering.charge import caller_from_event
from maas.schemas.batches import (
    Batch,
    BatchCreate,
    BatchList,
    FileDeleted,
    FileList,
    FileObject,
    Upload,
    UploadComplete,
    UploadCreate,
    UploadPart,
)
from maas.settings.names import DEFAULT_MAX_BODY_BYTES
from maas.tenancy.store import Caller

FILES_PATH = "/v1/files"
UPLOADS_PATH = "/v1/uploads"
PARTS_PATH = "/v1/uploads/{upload_id}/parts"
# A Lambda invocation carries at most 6 MB, and API Gateway sends a binary body base64-encoded (4/3 larger): a file
# posted to POST /v1/files may have 4 MiB. Larger batch files: the Uploads API is not served; see the README.
MAX_FILE_BYTES = 4 * 1024 * 1024
INLINE_CONTENT_BYTES = 4 * 1024 * 1024
ERRORS = error_docs(
    (400, "Invalid request"), (401, "Missing API key"), (404, "No such file or batch"), (409, "Batch already ended")
)


@dataclass(frozen=True)
class FormPart:
    name: str
    filename: str | None
    data: bytes


def parse_multipart(body: bytes, content_type: str) -> dict[str, FormPart]:
    """The fields of a multipart/form-data body (RFC 7578), by name; 400 in the error shape when malformed."""
    header = HeaderParser().parsestr(f"Content-Type: {content_type}\r\n\r\n")
    boundary = header.get_param("boundary")
    if not boundary or not isinstance(boundary, str):
        raise InvalidRequest("The multipart body has no boundary in its Content-Type.", code="invalid_multipart")
    delimiter = b"\r\n--" + boundary.encode("latin-1")
    chunks = (b"\r\n" + body).split(delimiter)
    if len(chunks) < 3 or not chunks[-1].startswith(b"--"):
        raise InvalidRequest("The multipart body is truncated or malformed.", code="invalid_multipart")
    fields = {}
    for chunk in chunks[1:-1]:
        head, sep, data = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        part = HeaderParser().parsestr(head.decode("utf-8", errors="replace") + "\r\n\r\n")
        name = part.get_param("name", header="content-disposition")
        if not sep or not isinstance(name, str):
            raise InvalidRequest("A multipart field has no name or no body.", code="invalid_multipart")
        fields[name] = FormPart(name, part.get_filename(), data)
    return fields


def form_of(event: dict, max_bytes: int) -> dict[str, FormPart]:
    """The multipart/form-data fields of an API Gateway event (415 for another type, 413 over ``max_bytes``)."""
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    content_type = headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        raise UnsupportedMediaType("Upload the file as multipart/form-data with the fields 'file' and 'purpose'.")
    raw = event.get("body") or ""
    body = base64.b64decode(raw) if event.get("isBase64Encoded") else raw.encode("utf-8")
    if len(body) > max_bytes + 64 * 1024:  # the form's own headers and boundaries beside the file
        raise PayloadTooLarge(f"The upload exceeds the {max_bytes}-byte limit of a file posted to {FILES_PATH}.")
    return parse_multipart(body, content_type)


class BatchesApi:
    """The function's API: call it with an API Gateway REST event and a Lambda context."""

    def __init__(self, batches: BatchesService, files: FileStore, uploads: UploadStore, logger: logging.Logger):
        self.batches, self.files, self.uploads, self.logger = batches, files, uploads, logger
        self.app = self._resolver()

    def __call__(self, event: dict, context) -> dict:
        if event.get("httpMethod") == "POST":
            resource = event.get("resource") or event.get("path")
            if resource == FILES_PATH:
                return self.upload(event)
            if resource == PARTS_PATH:
                return self.add_part(event)
        return self.app.resolve(event, context)

    def pending_upload(self, caller: Caller, upload_id: str) -> dict:
        """The caller's upload ``upload_id``, still taking parts (404 if none, 409 once it ended)."""
        upload = self.uploads.get(caller.tenant_id, upload_id)
        if upload is None:
            raise NotFound(f"No upload '{upload_id}'.", code="upload_not_found")
        if upload["status"] != "pending":
            raise Conflict(f"The upload '{upload_id}' is {upload['status']}.", code="upload_not_pending")
        return upload

    def add_part(self, event: dict) -> dict:
        """POST /v1/uploads/{id}/parts without the resolver: one part, the multipart field `data`."""
        try:
            caller = self._caller(event)
            upload_id = (event.get("pathParameters") or {}).get("upload_id") or ""
            upload = self.pending_upload(caller, upload_id)
            data = form_of(event, MAX_FILE_BYTES).get("data")
            if data is None:
                raise InvalidRequest("Send the part as the multipart field 'data'.", param="data")
            if len(data.data) > MAX_FILE_BYTES:
                raise PayloadTooLarge(f"A part has at most {MAX_FILE_BYTES} bytes; send smaller parts.")
            part = self.uploads.add_part(caller.tenant_id, upload, data.data)
        except ApiError as err:
            self.logger.info("request refused", extra={"status": err.status, "code": err.code})
            return error_result(err)
        return proxy_result(200, dumps(part))

    def upload(self, event: dict) -> dict:
        """POST /v1/files without the resolver: the multipart body is bytes, not JSON."""
        try:
            caller = self._caller(event)
            form = form_of(event, MAX_FILE_BYTES)
            purpose = form.get("purpose")
            if purpose is None or purpose.data.decode("utf-8", errors="replace").strip() != "batch":
                raise InvalidRequest(
                    "'purpose' must be 'batch': this API keeps files for the Batch API only.",
                    code="invalid_purpose",
                    param="purpose",
                )
            upload = form.get("file")
            if upload is None or upload.filename is None:
                raise InvalidRequest("Send the file as the multipart field 'file'.", param="file")
            if len(upload.data) > MAX_FILE_BYTES:
                raise PayloadTooLarge(f"The file has {len(upload.data)} bytes; {FILES_PATH} takes {MAX_FILE_BYTES}.")
            record = self.files.put(caller.tenant_id, upload.filename[:255], "batch", upload.data)
        except ApiError as err:
            self.logger.info("request refused", extra={"status": err.status, "code": err.code})
            return error_result(err)
        self.logger.info("file stored", extra={"tenant_id": caller.tenant_id, "file_id": record.id})
        return proxy_result(200, dumps(record.body()))

    @staticmethod
    def _caller(event: dict) -> Caller:
        found = caller_from_event(event)
        if found is None:
            raise Unauthorized("Missing API key: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'.")
        return found

    def _resolver(self) -> APIGatewayRestResolver:
        app = create_resolver(DEFAULT_MAX_BODY_BYTES, self.logger)
        files, batches = self.files, self.batches

        def caller() -> Caller:
            return self._caller(app.current_event.raw_event)

        def ok(body: dict) -> Response:
            return Response(status_code=200, content_type=JSON, body=dumps(body))

        def file_record(who: Caller, file_id: str):
            record = files.get(who.tenant_id, file_id)
            if record is None:
                raise NotFound(f"No file '{file_id}'.", code="file_not_found")
            return record

        @app.post(
            FILES_PATH,
            summary="Upload a batch input file (multipart/form-data: file, purpose=batch)",
            responses={200: documented(FileObject, "The file"), 400: ERRORS[400], 401: ERRORS[401]},
        )
        def upload_file():
            return resolver_response(self.upload(app.current_event.raw_event))

        # both listings validate their query (limit, order): 400 in the error shape
        @app.get(
            FILES_PATH, summary="The caller's files", responses={200: documented(FileList, "Files"), 400: ERRORS[400]}
        )
        def list_files(
            purpose: Annotated[str | None, Query()] = None,
            limit: Annotated[int, Query(ge=1, le=10_000)] = 10_000,
            after: Annotated[str | None, Query()] = None,
            order: Annotated[str, Query(pattern="^(asc|desc)$")] = "desc",
        ):
            found = [r for r in files.list(caller().tenant_id) if purpose is None or r.purpose == purpose]
            if order == "asc":
                found.reverse()
            if after:
                ids = [r.id for r in found]
                found = found[ids.index(after) + 1 :] if after in ids else []
            page = found[:limit]
            return ok(
                {
                    "object": "list",
                    "data": [r.body() for r in page],
                    "first_id": page[0].id if page else None,
                    "last_id": page[-1].id if page else None,
                    "has_more": len(found) > len(page),
                }
            )

        @app.get(
            f"{FILES_PATH}/<file_id>",
            summary="A file",
            responses={200: documented(FileObject, "The file"), 404: ERRORS[404]},
        )
        def get_file(file_id: str):
            return ok(file_record(caller(), file_id).body())

        @app.get(
            f"{FILES_PATH}/<file_id>/content",
            summary="A file's content (JSON lines); large files answer 302 to a presigned URL",
            responses={
                200: {
                    "description": "The file's bytes",
                    "content": {"application/jsonl": {"schema": {"type": "string", "description": "JSON lines"}}},
                },
                302: {"description": "Location: a presigned URL of the content"},
                404: ERRORS[404],
            },
        )
        def file_content(file_id: str):
            who = caller()
            record = file_record(who, file_id)
            redirect = Response(status_code=302, headers={"Location": files.url(who.tenant_id, file_id)}, body="")
            if record.bytes > INLINE_CONTENT_BYTES:
                return redirect
            data = files.read(who.tenant_id, file_id)
            try:
                return Response(status_code=200, content_type="application/jsonl", body=data.decode("utf-8"))
            except UnicodeDecodeError:  # an uploaded file that is not text: S3 answers its bytes as they are
                return redirect

        @app.delete(
            f"{FILES_PATH}/<file_id>",
            summary="Delete a file",
            responses={200: documented(FileDeleted, "Deleted"), 404: ERRORS[404]},
        )
        def delete_file(file_id: str):
            who = caller()
            if not files.delete(who.tenant_id, file_id):
                raise NotFound(f"No file '{file_id}'.", code="file_not_found")
            return ok({"id": file_id, "object": "file", "deleted": True})

        @app.post(
            "/v1/batches",
            summary="Create a batch from an uploaded file (OpenAI's Batch API)",
            responses={200: documented(Batch, "The batch, validating"), 400: ERRORS[400], 404: ERRORS[404]},
        )
        def create_batch(request: Annotated[BatchCreate, Body()]):
            who = caller()
            body = batches.create(who, request.input_file_id, request.endpoint, request.metadata)
            self.logger.info("batch created", extra={"tenant_id": who.tenant_id, "batch_id": body["id"]})
            return ok(body)

        @app.get(
            "/v1/batches",
            summary="Batches, newest first",
            # 404: ``after`` names no batch of the caller's (a cursor that names nothing is not an empty page)
            responses={200: documented(BatchList, ""), 404: ERRORS[404]},
        )
        def list_batches(after: Annotated[str | None, Query()] = None, limit: Annotated[int, Query(ge=1, le=100)] = 20):
            return ok(batches.list(caller(), after, limit))

        @app.get(
            "/v1/batches/<batch_id>",
            summary="A batch: status, request counts, output and error files",
            responses={200: documented(Batch, "The batch"), 404: ERRORS[404]},
        )
        def get_batch(batch_id: str):
            return ok(batches.get(caller(), batch_id))

        @app.post(
            "/v1/batches/<batch_id>/cancel",
            summary="Cancel a batch: it stops at the next part boundary; the lines done are billed and kept",
            responses={200: documented(Batch, "The batch, cancelling"), 404: ERRORS[404], 409: ERRORS[409]},
        )
        def cancel_batch(batch_id: str):
            return ok(batches.cancel(caller(), batch_id))

        @app.post(
            UPLOADS_PATH,
            summary="Start an upload of a file in parts (parts of at most 4 MiB)",
            responses={200: documented(Upload, "The upload, pending"), 400: ERRORS[400]},
        )
        def create_upload(request: Annotated[UploadCreate, Body()]):
            who = caller()
            upload = self.uploads.create(
                who.tenant_id, request.filename, request.purpose, request.bytes, request.mime_type
            )
            return ok(upload_body(upload))

        @app.post(
            "/v1/uploads/<upload_id>/parts",
            summary="Add a part (multipart/form-data: data)",
            responses={200: documented(UploadPart, "The part"), 404: ERRORS[404], 409: ERRORS[409]},
        )
        def add_upload_part(upload_id: str):
            return resolver_response(self.add_part(app.current_event.raw_event))

        @app.post(
            "/v1/uploads/<upload_id>/complete",
            summary="Assemble the parts, in the order given, into a file",
            responses={200: documented(Upload, "The upload, completed, with its file"), 400: ERRORS[400]},
        )
        def complete_upload(upload_id: str, request: Annotated[UploadComplete, Body()]):
            who = caller()
            upload = self.pending_upload(who, upload_id)
            bad = [p for p in request.part_ids if not PART_ID_RE.match(p)]
            if bad or len(set(request.part_ids)) != len(request.part_ids):
                raise InvalidRequest("'part_ids' must name this upload's parts, each once.", param="part_ids")
            try:
                record, md5 = self.uploads.complete(who.tenant_id, upload, request.part_ids)
            except self.files.s3.exceptions.NoSuchKey:
                raise InvalidRequest("'part_ids' names a part this upload does not have.", param="part_ids") from None
            size = record.bytes if record else 0
            problem = None
            if size != upload["bytes"]:
                problem = f"The parts hold {size} bytes; the upload was created for {upload['bytes']}."
            elif request.md5 is not None and request.md5.lower() != md5:
                problem = f"The parts' md5 is {md5}, not {request.md5}."
            if problem:
                if record is not None:
                    self.files.delete(who.tenant_id, record.id)
                raise InvalidRequest(problem, code="upload_mismatch", param="part_ids")
            return ok(upload_body(self.uploads.finish(who.tenant_id, upload, "completed", record.body())))

        @app.post(
            "/v1/uploads/<upload_id>/cancel",
            summary="Cancel an upload; its parts are dropped",
            responses={200: documented(Upload, "The upload, cancelled"), 404: ERRORS[404], 409: ERRORS[409]},
        )
        def cancel_upload(upload_id: str):
            who = caller()
            return ok(upload_body(self.uploads.finish(who.tenant_id, self.pending_upload(who, upload_id), "cancelled")))

        return app


def openapi_app() -> APIGatewayRestResolver:
    """The resolver as the function registers it, for the API's OpenAPI document (maas.api.openapi)."""
    return BatchesApi(DOCS_ONLY, DOCS_ONLY, DOCS_ONLY, DOCS_ONLY).app


def openapi_patch(doc: dict) -> None:
    """What the resolver cannot declare: the multipart upload's fields, and cancel's empty body."""
    multipart_limit = {
        "description": f"At most {MAX_FILE_BYTES} bytes of file, multipart/form-data, not compressed.",
        "x-max-body-bytes": MAX_FILE_BYTES,
    }
    upload = doc["paths"][FILES_PATH]["post"]
    upload["requestBody"] = {
        **multipart_limit,
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file", "purpose"],
                    "properties": {
                        "file": {"type": "string", "format": "binary", "description": "JSON lines, at most 4 MiB"},
                        "purpose": {"type": "string", "enum": ["batch"]},
                    },
                }
            }
        },
    }
    doc["paths"][PARTS_PATH]["post"]["requestBody"] = {
        **multipart_limit,
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["data"],
                    "properties": {"data": {"type": "string", "format": "binary", "description": "at most 4 MiB"}},
                }
            }
        },
    }
    # A redirect has a Location and no body (Powertools gives every response a JSON content).
    doc["paths"][f"{FILES_PATH}/{{file_id}}/content"]["get"]["responses"]["302"].pop("content", None)
    for path, item in doc["paths"].items():
        if path.endswith("/cancel"):
            item["post"]["requestBody"] = {"required": False, "content": {JSON: {"schema": {"type": "object"}}}}
