"""The redaction function: a publishable mirror of the watched buckets with every detected face hidden, driven by
facepipe's outcome events (docs/REDACTION.md)."""
