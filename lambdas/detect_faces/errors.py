"""What went wrong, by AWS error code (never by message text): the two ways an image ends early."""

from __future__ import annotations

from botocore.exceptions import ClientError


def error_code(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def error_message(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Message", "")) or str(exc)
    return str(exc)


class ImageProblem(Exception):
    """An image that ends without a DetectFaces result: `code` names the error, `message` says why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class ImageRejected(ImageProblem):
    """The image can never be analysed; record it as REJECTED with this reason."""


class ObjectUnreadable(ImageProblem):
    """The S3 object cannot be read (gone, wrong region, unreadable): straight to the DLQ."""
