"""`python -m verify.cli SUBCOMMAND`: the `verify` command without its console script."""

from verify.cli import main

raise SystemExit(main())
