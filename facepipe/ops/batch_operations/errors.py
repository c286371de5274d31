"""S3 Control's and S3's errors on the way to a job, as one line for the operator naming what is missing (a
permission, a job id in this account) and what to do."""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError

from ..errors import OpsError

_ACCESS_DENIED = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "Forbidden"}
_NO_SUCH_JOB = {"NotFoundException", "NoSuchJob", "NoSuchJobException"}
# What to do, by error code, when the code says it better than the service's message.
_ADVICE = {
    "IdempotencyException": "a job with the same request token exists with other parameters; rerun in a minute",
    "TooManyRequestsException": "S3 Control throttled the request; rerun shortly",
}
# The permission each call on the way to a job needs, by operation (CreateJob's names the job role: _needs).
_PERMISSIONS = {
    "DescribeJob": "s3:DescribeJob",
    "UpdateJobStatus": "s3:UpdateJobStatus",
    "PutObject": "s3:PutObject on the reports bucket",
    "ListObjectVersions": "s3:ListBucketVersions on the bucket",
    "GetItem": "dynamodb:GetItem on the results table",
}


def job_error(
    exc: ClientError | BotoCoreError,
    action: str,
    *,
    role_arn: str | None = None,
    job_id: str | None = None,
    account_id: str | None = None,
) -> OpsError:
    if not isinstance(exc, ClientError):
        return OpsError(f"{action}: {exc}")
    error = exc.response.get("Error", {})
    code = str(error.get("Code", "Error"))
    message = str(error.get("Message", "")).strip()
    if code in _NO_SUCH_JOB and job_id:
        return OpsError(f"no Batch Operations job {job_id} in account {account_id} (check the region): {message}")
    if code in _ACCESS_DENIED:
        detail = f"your credentials need {_needs(exc.operation_name, role_arn)}{': ' + message if message else ''}"
    else:
        detail = _ADVICE.get(code, message)
    return OpsError(f"{code} {action}: {detail}" if detail else f"{code} {action}")


def _needs(operation: str, role_arn: str | None) -> str:
    if operation == "CreateJob":
        who = f"iam:PassRole on {role_arn}" if role_arn else "iam:PassRole on the job role"
        return f"s3:CreateJob and {who} (the stack's operator policy grants both)"
    return _PERMISSIONS.get(operation, operation)
