"""Names shared by the function, the stack, local mode and the operator tools, defined once.

This module imports nothing from the project: it sits at the bottom of the import graph.
"""

from __future__ import annotations

# An event that carries this key is an operator's replay of a dead-lettered record (`facepipe redrive`).
# Its value names the redrive run, so that run can tell the failure records its own replays create.
REDRIVE_FLAG = "facepipeRedrive"

# Records `facepipe backfill` makes for objects that were in the bucket before the stack.
BACKFILL_EVENT_NAME = "ObjectCreated:Backfill"
BACKFILL_EVENT_SOURCE = "facepipe:backfill"
# The lowest sequencer there is: any real event of the key outranks a backfill result.
BACKFILL_SEQUENCER = "0"
