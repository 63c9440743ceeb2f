"""Serving internals behind :mod:`nextbest.service` (the BentoML service).

* :mod:`.settings`  - configuration from the environment, read at start-up;
* :mod:`.schemas`   - typed request and response bodies (pydantic), with examples;
* :mod:`.decisions` - precomputed ``score()`` rows for every snapshot customer, stored compactly;
* :mod:`.state`     - one immutable serving state (models, snapshot, decisions) and how to build it;
* :mod:`.holder`    - the current state, atomic swap on reload, the champion/snapshot watcher;
* :mod:`.coldstart` - posted transactions -> a feature row (``/predict_features``);
* :mod:`.audit`     - the decision audit log (JSON lines under ``NEXTBEST_HOME/audit``);
* :mod:`.metrics`   - Prometheus counters;
* :mod:`.errors`, :mod:`.http`, :mod:`.auth` - JSON errors, ASGI middleware, API-key auth.

Nothing here does I/O or reads the environment at import time.
"""
