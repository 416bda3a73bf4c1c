"""Allow `python -m hpsearch ...`."""

from hpsearch.cli import main

raise SystemExit(main())
