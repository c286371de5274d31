"""S3 Control's and S3's errors on the way to a job, as one line for the operator naming what is missing (a
permission, a job id in this account) and what to do."""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError

from ..errors import OpsError

_ACCESS_DENIED = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "Forbidden"}


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
    operation = exc.operation_name
    if code in _ACCESS_DENIED:
        if operation == "CreateJob":
            who = f"iam:PassRole on {role_arn}" if role_arn else "iam:PassRole on the job role"
            return OpsError(
                f"{code} {action}: your credentials need s3:CreateJob and {who} "
                f"(the stack's operator policy grants both){': ' + message if message else ''}"
            )
        needs = {
            "DescribeJob": "s3:DescribeJob",
            "UpdateJobStatus": "s3:UpdateJobStatus",
            "PutObject": "s3:PutObject on the reports bucket",
            "ListObjectVersions": "s3:ListBucketVersions on the bucket",
            "GetItem": "dynamodb:GetItem on the results table",
        }.get(operation, operation)
        return OpsError(f"{code} {action}: your credentials need {needs}{': ' + message if message else ''}")
    if code in ("NotFoundException", "NoSuchJob", "NoSuchJobException") and job_id:
        return OpsError(f"no Batch Operations job {job_id} in account {account_id} (check the region): {message}")
    if code == "IdempotencyException":
        return OpsError(
            f"{code} {action}: a job with the same request token exists with other parameters; rerun in a minute"
        )
    if code == "TooManyRequestsException":
        return OpsError(f"{code} {action}: S3 Control throttled the request; rerun shortly")
    return OpsError(f"{code} {action}: {message}" if message else f"{code} {action}")
