"""What the function is subscribed to, as the stack (infra/delivery.py) and local mode both set it up: the
same events, buckets and prefixes whichever delivery carries them (docs/CONFIGURATION.md)."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote_plus

# Every change of an object, with no suffix filter (S3's filters are case-sensitive: ".JPG" would be missed, so the
# function decides by the object's bytes): every object-created kind (PUT, POST, COPY, multipart), every removal by a
# request, and every removal by a lifecycle rule. s3:ObjectRemoved:* does not cover the last: "You will not receive
# event notifications from automatic deletes from lifecycle policies or from failed operations" (S3 user guide,
# "Supported event types for SQS, SNS, and Lambda"); those are s3:LifecycleExpiration:Delete and
# s3:LifecycleExpiration:DeleteMarkerCreated. EventBridge's Object Deleted carries both kinds of removal (its
# `reason` is DeleteObject or Lifecycle Expiration), so both deliveries see the same changes.
NOTIFICATION_EVENTS = ("s3:ObjectCreated:*", "s3:ObjectRemoved:*", "s3:LifecycleExpiration:*")
EVENTBRIDGE_SOURCE = "aws.s3"
EVENTBRIDGE_DETAIL_TYPES = ("Object Created", "Object Deleted")

# The S3 user guide's "safe characters" besides letters and digits: "! - _ . * ' ( )". A filter holds them as they
# are; every other special character is URL-encoded ("Configuring event notifications using object key name
# filtering").
_SAFE_SPECIALS = "!-_.*'()"
# Among them, the ones form encoding (application/x-www-form-urlencoded, the encoding of keys in S3's events)
# escapes. The user guide says a filter holds them raw; whether S3 then matches them against a raw or an escaped key
# is not documented, so S3 delivery does not take a prefix that holds one (infra/config.py): EventBridge does.
UNSETTLED_IN_FILTERS = "!*'()"


def notification_form(text: str) -> str:
    """A key, or a prefix of keys, in the URL-encoded form S3 writes keys in its event notifications and matches
    notification filters against: a space is "+", other characters are UTF-8 bytes as %XX, except letters, digits,
    "/" and the user guide's safe characters. A prefix's filter must be written so ("If your prefix or suffix
    contains a space, you must replace it with the "+" character. If you use any other special characters in the
    value of the prefix or suffix, you must enter them in URL-encoded (percent-encoded) format"), and the function
    decodes event keys with unquote_plus, which undoes it: unquote_plus(notification_form(k)) == k for every key.
    (For the characters in UNSETTLED_IN_FILTERS the form S3 matches is not documented; see there.)"""
    return quote_plus(text, safe="/" + _SAFE_SPECIALS).replace("~", "%7E")  # "~" is not a safe character


def split_locations(text: str) -> tuple[str, ...]:
    """The stack's WatchedLocations output ("s3://bucket/prefix" joined by spaces) as locations. A prefix may hold a
    space ("Camera Uploads/"), so a location ends only where the next "s3://" begins."""
    return tuple(found for found in re.split(r"\s+(?=s3://)", text.strip()) if found)


def eventbridge_pattern(buckets: list[str], prefixes: tuple[str, ...]) -> dict[str, Any]:
    """The rule's event pattern: the buckets' Object Created / Object Deleted events under any of the prefixes
    (all keys when there are none, or when one of them is empty). EventBridge events carry keys as they are, so
    the prefixes are too."""
    detail: dict[str, Any] = {"bucket": {"name": list(buckets)}}
    if prefixes and all(prefixes):
        detail["object"] = {"key": [{"prefix": p} for p in prefixes]}
    return {"source": [EVENTBRIDGE_SOURCE], "detail-type": list(EVENTBRIDGE_DETAIL_TYPES), "detail": detail}
