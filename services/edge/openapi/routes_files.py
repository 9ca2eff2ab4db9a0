"""Route table: the Files API, job results and the key-less signed links to both
(services/edge/files.py, file_upload.py, job_files.py)."""

from typing import Annotated, Final, Literal

import msgspec

from libs.contracts import files
from libs.contracts.files import FileDeleted, FileList, FileObject, SignedUrl
from services.edge.file_upload import MAX_EXPIRES_AFTER_S, MIN_EXPIRES_AFTER_S
from services.edge.files import MAX_LIMIT
from services.edge.openapi.table import (
    DOWNLOAD_HEADERS,
    KEYLESS,
    READ_ONE,
    Answer,
    Body,
    Param,
    Route,
    ok_json,
    path_id,
)
from services.edge.signed_urls import MAX_EXPIRES_IN_S

_FILE_ID = path_id("id", "A file id (file-...).")
_JOB_ID = path_id("job_id", "The job whose result this is.")
_FILENAME = path_id("filename", "The result's file name, as the job's result lists it.")
_EXPIRES_IN = Param(name="expires_in", where="query", type=Annotated[int, msgspec.Meta(ge=1, le=MAX_EXPIRES_IN_S)],
                    description=f"Seconds the link stays valid: 1 to {MAX_EXPIRES_IN_S} (7 days), default 3600.")
_SIGNATURE = (Param(name="account", where="query", required=True, description="Minted into the link."),
              Param(name="expires", where="query", required=True, description="Unix seconds; minted into the link."),
              Param(name="signature", where="query", required=True, description="HMAC of the link's fields."))
_UPLOAD_FORM: Final = {
    "type": "object", "required": ["file", "purpose"],
    "properties": {
        "file": {"type": "string", "format": "binary"},
        "purpose": {"type": "string", "enum": list(files.PURPOSES)},
        "expires_after[anchor]": {"type": "string", "enum": ["created_at"]},
        "expires_after[seconds]": {"type": "integer", "minimum": MIN_EXPIRES_AFTER_S, "maximum": MAX_EXPIRES_AFTER_S},
    },
}


def _bytes(description: str) -> tuple[Answer, Answer]:
    """A download: the whole object (200) or the Range asked for (206)."""
    types = (("*/*", None),)
    return (Answer(status=200, description=description, kind="binary", types=types, headers=DOWNLOAD_HEADERS),
            Answer(status=206, description="The byte range asked for.", kind="binary", types=types,
                   headers=DOWNLOAD_HEADERS))


ROUTES: Final = (
    Route(method="POST", path="/v1/files", operation_id="uploadFile", tag="files", summary="Upload a file",
          auth="bearer", description="Streamed into the object store part by part (SWITCHBOARD_MAX_FILE_BYTES).",
          body=Body(media=(("multipart/form-data", _UPLOAD_FORM),)),
          answers=(ok_json(200, "The file.", FileObject, ("Idempotent-Replayed",)),),
          errors=(400, 401, 403, 409, 413, 503), reads=("X-Request-Id", "Idempotency-Key")),
    Route(method="GET", path="/v1/files", operation_id="listFiles", tag="files", summary="List files",
          auth="bearer",
          params=(Param(name="purpose", where="query", description="Only files with this purpose."),
                  Param(name="limit", where="query", type=Annotated[int, msgspec.Meta(ge=1, le=MAX_LIMIT)]),
                  Param(name="order", where="query", type=Literal["asc", "desc"]),
                  Param(name="after", where="query", description="The last id of the previous page.")),
          answers=(ok_json(200, "A page of files.", FileList),), errors=(400, 401, 403, 503)),
    Route(method="GET", path="/v1/files/{id}", operation_id="getFile", tag="files", summary="Get a file's record",
          auth="bearer", params=(_FILE_ID,), answers=(ok_json(200, "The file.", FileObject),),
          errors=(400, 401, 403, 404, 503)),
    Route(method="DELETE", path="/v1/files/{id}", operation_id="deleteFile", tag="files", summary="Delete a file",
          auth="bearer", params=(_FILE_ID,), answers=(ok_json(200, "Deleted.", FileDeleted),),
          errors=(400, 401, 403, 404, 503)),
    Route(method="GET", path="/v1/files/{id}/content", operation_id="downloadFile", tag="files",
          summary="Download a file", auth="bearer", params=(_FILE_ID,), answers=_bytes("The file's bytes."),
          errors=(400, 401, 403, 404, 416, 503), reads=("Range",)),
    Route(method="GET", path="/v1/files/{id}/signed", operation_id="signFile", tag="files",
          summary="Mint a signed URL for a file", auth="bearer", params=(_FILE_ID, _EXPIRES_IN),
          answers=(ok_json(200, "A key-less link, valid until expires_at.", SignedUrl),),
          errors=(400, 401, 403, 404, 503)),
    Route(method="GET", path="/v1/files/signed/files/{id}", operation_id="getSignedFile", tag="files",
          summary="Download a file through a signed URL", auth="signed", params=(_FILE_ID, *_SIGNATURE),
          answers=_bytes("The file's bytes."), errors=KEYLESS, reads=("Range",)),
    Route(method="GET", path="/v1/files/jobs/{job_id}/{filename}", operation_id="downloadJobFile", tag="files",
          summary="Download a job result", auth="bearer", params=(_JOB_ID, _FILENAME),
          answers=_bytes("The result's bytes."), errors=(*READ_ONE, 416), reads=("Range",)),
    Route(method="GET", path="/v1/files/jobs/{job_id}/{filename}/signed", operation_id="signJobFile", tag="files",
          summary="Mint a signed URL for a job result", auth="bearer", params=(_JOB_ID, _FILENAME, _EXPIRES_IN),
          answers=(ok_json(200, "A key-less link, valid until expires_at.", SignedUrl),), errors=READ_ONE),
    Route(method="GET", path="/v1/files/signed/jobs/{job_id}/{filename}", operation_id="getSignedJobFile",
          tag="files", summary="Download a job result through a signed URL", auth="signed",
          params=(_JOB_ID, _FILENAME, *_SIGNATURE), answers=_bytes("The result's bytes."), errors=KEYLESS,
          reads=("Range",)),
)
