"""`make_app(settings)`: the admin service as one FastAPI application: the routers (one per
area), the session cookie and security headers, static CSS, and the ONE handler that turns
the domain errors of admin_api/errors.py into a page for people or JSON under /api.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import quote

from fastapi import Depends, FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from swagger_ui_bundle import swagger_ui_path  # type: ignore[import-untyped]

from schoolgate.admin_api import (
    audit,
    auth,
    calendar,
    exceptions,
    explain,
    home,
    lists,
    monitoring,
    policy_view,
    records,
    requests,
    schools,
    system,
    teacher,
)
from schoolgate.admin_api.auth import load_session
from schoolgate.admin_api.deps import CurrentUser, check_csrf
from schoolgate.admin_api.errors import AdminError, NotSignedIn, TooManyAttempts
from schoolgate.admin_api.render import Pages
from schoolgate.admin_api.resources import Resources, make_resources
from schoolgate.admin_api.sessions import SessionData
from schoolgate.admin_api.settings import Settings, get_settings

STATIC = Path(__file__).resolve().with_name("static")
MAX_BODY_BYTES = 1_500_000  # a pasted policy (512 kB) and some; forms are far smaller
_CSP = (
    "default-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


_DOCS_PAGE = """<!doctype html>
<html lang="en-GB"><head><meta charset="utf-8"><title>schoolgate admin API</title>
<link rel="stylesheet" href="/docs-assets/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/docs-assets/swagger-ui-bundle.js"></script>
<script src="/static/swagger-init.js"></script></body></html>
"""


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/") or request.url.path in ("/healthz", "/readyz")


def _error_page(
    request: Request, status: int, message: str, problems: dict[str, str] | None = None
) -> Response:
    pages: Pages = request.app.state.pages
    session = getattr(request.state, "session", None)
    user = session.user if isinstance(session, SessionData) else None
    return pages.render(
        request,
        "error.html",
        user=user,
        status=status,
        code=status,
        message=message,
        problems=problems or {},
    )


async def handle_admin_error(request: Request, error: Exception) -> Response:
    """The one mapping from domain errors to HTTP."""
    assert isinstance(error, AdminError)
    headers = (
        {"Retry-After": str(error.retry_after)} if isinstance(error, TooManyAttempts) else None
    )
    if _wants_json(request):
        body: dict[str, object] = {"error": error.code, "message": error.message}
        if problems := getattr(error, "problems", None):
            body["problems"] = problems
        return JSONResponse(body, status_code=error.status, headers=headers)
    if isinstance(error, NotSignedIn):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/signin?next={quote(target, safe='')}", status_code=303)
    response = _error_page(request, error.status, error.message, getattr(error, "problems", None))
    if headers:
        response.headers.update(headers)
    return response


async def handle_framework_error(request: Request, error: Exception) -> Response:
    """FastAPI's own answers (bad query parameters, unknown paths) as pages for people."""
    if _wants_json(request) or request.url.path in ("/docs", "/openapi.json"):
        if isinstance(error, RequestValidationError):
            # Our own body, without FastAPI's echo of the input: that may hold text that
            # cannot even be encoded (lone surrogates), and it repeats what was sent.
            problems = {
                ".".join(str(p) for p in item["loc"]): str(item["msg"]) for item in error.errors()
            }
            return JSONResponse(
                {
                    "error": "invalid_input",
                    "message": "; ".join(f"{where}: {text}" for where, text in problems.items()),
                    "problems": problems,
                },
                status_code=422,
            )
        assert isinstance(error, StarletteHTTPException)
        return await http_exception_handler(request, error)
    if isinstance(error, RequestValidationError):
        return _error_page(
            request,
            422,
            "Some of the details in the address are not valid; "
            "go back and use the page's own links and forms.",
        )
    assert isinstance(error, StarletteHTTPException)
    words = {404: "There is no such page.", 405: "This page cannot be used that way."}
    return _error_page(request, error.status_code, words.get(error.status_code, str(error.detail)))


def make_app(
    settings: Settings | None = None,
    *,
    resources: Resources | None = None,
) -> FastAPI:
    settings = settings or (resources.settings if resources else get_settings())
    resources = resources or make_resources(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        resources.close()

    app = FastAPI(
        title="schoolgate admin",
        version="1",
        description="Unblock requests, local lists, exceptions, explain, the policy "
        "and the audit log. Sign in at /signin; unsafe calls need the "
        "session's X-CSRF-Token header.",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
        dependencies=[Depends(check_csrf)],
    )
    app.state.resources = resources
    app.state.pages = Pages(
        school_name=settings.school_name, zone=resources.settings.zone
    )  # the zone as make_resources settled it (the policy's, unless given)

    @app.middleware("http")
    async def sessions_and_headers(
        request: Request,
        call_next: Callable[[Request], Awaitable[Response]],
    ) -> Response:
        length = request.headers.get("content-length", "")
        if length and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
            return JSONResponse(
                {"error": "too_large", "message": "the request is too large"}, status_code=413
            )
        if request.url.path.endswith(".csv") and request.headers.get(
            "sec-fetch-site", "same-origin"
        ) not in ("same-origin", "none"):
            # An export is audited: a link on another site must not make someone "export".
            return JSONResponse(
                {"error": "not_allowed", "message": "open the export from the admin's own page"},
                status_code=403,
            )
        request.state.session = await load_session(resources, request)
        response = await call_next(request)
        session: SessionData = request.state.session
        if session.changed:
            resources.codec.write(response, session)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("Content-Security-Policy", _CSP)  # /docs too
        return response

    app.add_exception_handler(AdminError, handle_admin_error)
    app.add_exception_handler(RequestValidationError, handle_framework_error)
    app.add_exception_handler(StarletteHTTPException, handle_framework_error)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.mount("/docs-assets", StaticFiles(directory=swagger_ui_path), name="docs-assets")

    @app.get("/openapi.json", include_in_schema=False)
    def openapi(user: CurrentUser) -> JSONResponse:
        """The API's description, for people signed in (finding 22: not for anyone)."""
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False)
    def docs(user: CurrentUser) -> HTMLResponse:
        """Swagger UI from the package's own files on this origin, with the CSP kept: no
        third-party script (finding 20)."""
        return HTMLResponse(_DOCS_PAGE, headers={"Cache-Control": "no-store"})

    for module in (
        home,
        auth,
        requests,
        lists,
        exceptions,
        explain,
        policy_view,
        audit,
        system,
        monitoring,
        records,
        calendar,
        teacher,
        schools,
    ):
        app.include_router(module.router)
        if hasattr(module, "api"):
            app.include_router(module.api)
    return app
