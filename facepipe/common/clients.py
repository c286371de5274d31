"""`ClientFor`: what the tools take to build boto3 clients, one service at a time, typed per service.

A deployed stack's is a boto3 Session's `client` method; the local stack's builds clients for its endpoints
(facepipe.local.aws); tests pass moto's clients or their own. Whichever it is, `client_for("s3")` is an S3Client to
mypy: the client types come from the stub packages (boto3-stubs, mypy-boto3-<service>, requirements-dev.txt),
imported under TYPE_CHECKING only, so nothing here needs them at run time.

A factory that takes any service name, `(str) -> Any` (a dict's `__getitem__`, local mode's), satisfies the
protocol as it is: the protocol, not the factory, says which client each name gives.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, Protocol, overload

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_rekognition import RekognitionClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3control import S3ControlClient
    from mypy_boto3_service_quotas import ServiceQuotasClient
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_ssm import SSMClient
    from mypy_boto3_sts import STSClient


class ClientFor(Protocol):
    """A boto3 client for the named service: `client_for("s3")`."""

    @overload
    def __call__(self, service_name: Literal["cloudformation"], /) -> CloudFormationClient: ...
    @overload
    def __call__(self, service_name: Literal["cloudwatch"], /) -> CloudWatchClient: ...
    @overload
    def __call__(self, service_name: Literal["dynamodb"], /) -> DynamoDBClient: ...
    @overload
    # Any: the stubs for DynamoDB Streams (mypy-boto3-dynamodbstreams) are not in requirements-dev.txt; local mode
    # alone reads a stream (local/outcome_stream.py)
    def __call__(self, service_name: Literal["dynamodbstreams"], /) -> Any: ...
    @overload
    def __call__(self, service_name: Literal["events"], /) -> EventBridgeClient: ...
    @overload
    def __call__(self, service_name: Literal["lambda"], /) -> LambdaClient: ...
    @overload
    def __call__(self, service_name: Literal["rekognition"], /) -> RekognitionClient: ...
    @overload
    def __call__(self, service_name: Literal["s3"], /) -> S3Client: ...
    @overload
    def __call__(self, service_name: Literal["s3control"], /) -> S3ControlClient: ...
    @overload
    def __call__(self, service_name: Literal["service-quotas"], /) -> ServiceQuotasClient: ...
    @overload
    def __call__(self, service_name: Literal["sns"], /) -> SNSClient: ...
    @overload
    def __call__(self, service_name: Literal["sqs"], /) -> SQSClient: ...
    @overload
    def __call__(self, service_name: Literal["ssm"], /) -> SSMClient: ...
    @overload
    def __call__(self, service_name: Literal["sts"], /) -> STSClient: ...
