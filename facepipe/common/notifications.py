"""S3 notification configurations as S3 judges them: which entries overlap (S3 refuses the whole configuration),
which are facepipe's own. `doctor` uses this before a deploy attaches to an existing bucket, and local mode's
moto refuses overlaps with it as S3 does (facepipe/local/moto_patches.py).

S3 keeps a filter's prefix and suffix as written, in the URL-encoded form it matches keys in (a space is "+",
"größe" is "gr%C3%B6%C3%9Fe"), and compares them so: an entry facepipe is about to add must be in that form too
(detect_faces.subscriptions.notification_form), never the raw prefix."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

CONFIGURATION_TYPES = {
    "LambdaFunctionConfigurations": "LambdaFunctionArn",
    "QueueConfigurations": "QueueArn",
    "TopicConfigurations": "TopicArn",
}
# S3's own words when it refuses a configuration.
OVERLAP_MESSAGE = (
    "Configuration is ambiguously defined. Cannot have overlapping suffixes in two rules if the prefixes are"
    " overlapping for the same event type."
)


@dataclass(frozen=True)
class Subscription:
    """One entry of a bucket's notification configuration; `prefix` and `suffix` as the filter holds them."""

    target: str
    events: tuple[str, ...]
    prefix: str = ""
    suffix: str = ""
    id: str = ""

    def describe(self) -> str:
        where = f"prefix {self.prefix!r}" if self.prefix else "every key"
        if self.suffix:
            where += f", suffix {self.suffix!r}"
        return f"{self.target.rsplit(':', 1)[-1] or self.target} ({', '.join(self.events)}; {where})"


def subscriptions(configuration: Mapping[str, Any]) -> list[Subscription]:
    """The entries of a GetBucketNotificationConfiguration answer (or a PutBucketNotificationConfiguration request)."""
    found = []
    for kind, arn_field in CONFIGURATION_TYPES.items():
        for entry in configuration.get(kind) or []:
            rules = {
                r["Name"].lower(): r["Value"] for r in entry.get("Filter", {}).get("Key", {}).get("FilterRules", [])
            }
            found.append(
                Subscription(
                    target=str(entry.get(arn_field, "")),
                    events=tuple(entry.get("Events", [])),
                    prefix=rules.get("prefix", ""),
                    suffix=rules.get("suffix", ""),
                    id=str(entry.get("Id", "")),
                )
            )
    return found


def _events_overlap(a: Iterable[str], b: Iterable[str]) -> bool:
    """A common event type: the same one, or one that a wildcard of its own kind covers ("s3:ObjectRemoved:*" covers
    "s3:ObjectRemoved:Delete"). Each kind is S3's own: "s3:ObjectRemoved:*" and "s3:LifecycleExpiration:*" are
    different types (a lifecycle deletion sends only the second), so entries for them never overlap."""

    def covers(pattern: str, event: str) -> bool:
        return pattern == event or (pattern.endswith("*") and event.startswith(pattern[:-1]))

    return any(covers(x, y) or covers(y, x) for x in a for y in b)


def overlap(a: Subscription, b: Subscription) -> bool:
    """S3's rule: a common event type, and prefixes and suffixes that could both match one key."""
    return (
        _events_overlap(a.events, b.events)
        and (a.prefix.startswith(b.prefix) or b.prefix.startswith(a.prefix))
        and (a.suffix.endswith(b.suffix) or b.suffix.endswith(a.suffix))
    )


def first_overlap(entries: list[Subscription]) -> tuple[Subscription, Subscription] | None:
    for i, a in enumerate(entries):
        for b in entries[i + 1 :]:
            if overlap(a, b):
                return a, b
    return None


def ours(entry: Subscription, stack_name: str) -> bool:
    """CDK's notification handler names the entries it adds "<stack ARN>-<hash>"; the ARN holds ":stack/<name>/"."""
    return f":stack/{stack_name}/" in entry.id


def conflicts(
    existing: Mapping[str, Any], wanted: list[Subscription], stack_name: str
) -> list[tuple[Subscription, Subscription]]:
    """The other consumers' entries that S3 would refuse next to the ones the stack adds (facepipe's own entries
    from an earlier deploy are replaced, so they do not count)."""
    others = [e for e in subscriptions(existing) if not ours(e, stack_name)]
    return [(other, want) for want in wanted for other in others if overlap(other, want)]
