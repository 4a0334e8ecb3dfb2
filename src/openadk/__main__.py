"""``python -m openadk`` runs the command line."""

from openadk.cli import main

raise SystemExit(main())
