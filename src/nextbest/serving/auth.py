"""API-key authentication as pure ASGI middleware (open-source BentoML has none server-side).

Every request needs ``Authorization: Bearer <key>`` with a key from
``NEXTBEST_API_KEY`` (comma-separated to rotate keys without downtime),
except the probes, metrics and API docs (:data:`.openapi.PUBLIC_PATHS`). Anything
else gets 401 with a JSON body and ``WWW-Authenticate: Bearer``. Keys are
compared in constant time.

The data-access endpoint (``GET /customers/{id}/data``, under
:data:`.openapi.ADMIN_PREFIX`) needs a key from ``NEXTBEST_ADMIN_KEY``
instead: no key or an unknown one is 401, a valid API key that is not an
admin key is 403, and without ``NEXTBEST_ADMIN_KEY`` the endpoint is off
(403) - an operator turns it on knowingly, with a key only the people who
answer data-subject requests hold.

Without a key the service refuses to start unless ``NEXTBEST_ALLOW_NO_AUTH=1``
(:func:`nextbest.serving.settings.api_keys_from_env`, called when the
service is created). The middleware itself fails closed: built without a
key, it answers every non-public request with 503 - it never lets a request
through unauthenticated by accident. (It does not raise: middleware is
built before the app's lifespan, where an exception would make uvicorn
silently skip start-up instead of exiting.)
"""

from __future__ import annotations

import hmac

from nextbest.errors import ConfigurationError
from nextbest.serving.http import send_error
from nextbest.serving.openapi import is_admin, is_public
from nextbest.serving.settings import admin_keys_from_env, api_keys_from_env


def bearer_token(scope) -> bytes | None:
    """The token of an ``Authorization: Bearer <token>`` header, else ``None``."""
    for key, value in scope.get("headers", ()):
        if key == b"authorization":
            scheme, _, token = value.partition(b" ")
            return token.strip() if scheme.lower() == b"bearer" and token.strip() else None
    return None


class AuthMiddleware:
    """Reject requests without a valid bearer key (see the module docstring).

    Parameters
    ----------
    app : ASGI app
    keys : sequence of str, optional
        Accepted keys; read from the environment when not given (then
        ``NEXTBEST_ALLOW_NO_AUTH=1`` lets everyone in). An explicit empty
        sequence refuses everything.
    on_failure : callable, optional
        Called on each 401 (metrics).
    """

    def __init__(self, app, keys=None, on_failure=None, admin_keys=None) -> None:
        self.app = app
        self.on_failure = on_failure
        self.open = False
        if keys is None:
            try:
                keys = api_keys_from_env()
            except ConfigurationError:
                keys = ()  # fail closed; the service itself refuses to start
            else:
                self.open = not keys
        self.keys = tuple(k.encode("utf-8") for k in keys)
        admin_keys = admin_keys_from_env() if admin_keys is None else admin_keys
        self.admin_keys = tuple(k.encode("utf-8") for k in admin_keys)

    def allowed(self, scope, keys=None) -> bool:
        token = bearer_token(scope)
        if token is None:
            return False
        ok = False
        for key in self.keys if keys is None else keys:  # no early exit: constant time
            ok |= hmac.compare_digest(token, key)
        return ok

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and is_admin(scope["path"]):
            return await self._admin(scope, receive, send)
        if scope["type"] != "http" or self.open or is_public(scope["path"]) or self.allowed(scope):
            return await self.app(scope, receive, send)
        if not self.keys:
            return await send_error(
                send,
                503,
                "authentication is not configured",
                "set NEXTBEST_API_KEY and restart the service",
            )
        if self.on_failure is not None:
            self.on_failure()
        await send_error(
            send,
            401,
            "unauthorized",
            "send the header 'Authorization: Bearer <key>' with a key from NEXTBEST_API_KEY",
            [(b"www-authenticate", b'Bearer realm="nextbest"')],
        )

    async def _admin(self, scope, receive, send) -> None:
        """Data-access endpoints: the admin key, never the API key alone."""
        if self.admin_keys and self.allowed(scope, self.admin_keys):
            return await self.app(scope, receive, send)
        if not self.allowed(scope) and not self.open:
            if self.on_failure is not None:
                self.on_failure()
            return await send_error(
                send,
                401,
                "unauthorized",
                "send the header 'Authorization: Bearer <key>' with a key from NEXTBEST_ADMIN_KEY",
                [(b"www-authenticate", b'Bearer realm="nextbest-admin"')],
            )
        detail = (
            "this endpoint needs a key from NEXTBEST_ADMIN_KEY, not an API key"
            if self.admin_keys
            else "data access is off: set NEXTBEST_ADMIN_KEY and restart the service"
        )
        await send_error(send, 403, "forbidden", detail)
