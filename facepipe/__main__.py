"""python -m facepipe: the CLI (facepipe/cli/)."""

from facepipe.cli import main

raise SystemExit(main())
