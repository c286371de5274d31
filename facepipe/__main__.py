from facepipe.cli import main

raise SystemExit(main())
