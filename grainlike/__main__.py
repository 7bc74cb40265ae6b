"""``python -m grainlike`` is the ``grainlike`` command."""

from .cli import main

raise SystemExit(main())
