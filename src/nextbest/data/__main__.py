"""``python -m nextbest.data [--force] [NAME...]``: fetch and verify the public data sets.

The entry point of :func:`nextbest.data.fetch.main` (``make data``). It lives
here, not under ``python -m nextbest.data.fetch``, because the package imports
``fetch`` itself, and running an imported module as ``__main__`` runs it twice.
"""

from nextbest.data.fetch import main

raise SystemExit(main())
