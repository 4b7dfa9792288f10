"""Command line: ``python -m robustkit assign ...`` (see :mod:`robustkit.assign_cli`)."""
from robustkit.assign_cli import main

raise SystemExit(main())
