"""The API object: /api/v1/, its OpenAPI schema at /api/v1/openapi.json and the docs page at
/api/v1/docs. Every operation needs a token or a session (access.py); each area's router lives in its
own module and calls the same services and selectors as that area's pages. Errors are always
{"detail": [{"loc": [where], "msg": why, "type": kind}]}, loc being the field path in the request."""
from django.core.exceptions import ValidationError
from django.http import Http404
from ninja import NinjaAPI
from ninja.parser import Parser
from ninja.errors import AuthenticationError, HttpError
from ninja.errors import ValidationError as NinjaValidationError

from webapp import json_bounds
from webapp.api import access, catalog, evaluation, labelling, projects, training



class BoundedParser(Parser):
    """Request bodies read as every outside JSON is (webapp/json_bounds.py): too deep, NaN or out of range is a 400."""

    def parse_body(self, request):
        return json_bounds.loads(request.body)


api = NinjaAPI(parser=BoundedParser(), title="Distillery API", version="1", urls_namespace="api", openapi_url="/openapi.json", docs_url="/docs",
               auth=[access.TokenAuth(), access.SessionCsrfAuth()],
               description="Drive the loop from scripts: tokens from /account/tokens/, sent as "
                           "`Authorization: Bearer dst_...`. Lists take ?page and ?page_size; long operations answer "
                           "202 with the job and its URL.")
for module in (projects, catalog, labelling, training, evaluation):
    api.add_router("", module.router)


def _json(request, status: int, errors: list, headers=None):
    response = api.create_response(request, {"detail": errors}, status=status)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


@api.exception_handler(access.ApiError)
def _api_error(request, exc):
    return _json(request, exc.status, exc.errors, exc.headers)


@api.exception_handler(NinjaValidationError)
def _schema_error(request, exc):
    return _json(request, 422, [{"loc": list(e.get("loc", [])), "msg": e.get("msg", "invalid"), "type": e.get("type", "invalid")}
                                for e in exc.errors])


@api.exception_handler(ValidationError)
def _service_error(request, exc):
    return _api_error(request, access.validation_errors(exc))


@api.exception_handler(AuthenticationError)
def _unauthenticated(request, exc):
    return _json(request, 401, [{"loc": ["header", "Authorization"], "msg": "Send a valid API token (Authorization: "
                                 "Bearer dst_...); it may be revoked or expired.", "type": "unauthenticated"}])


@api.exception_handler(HttpError)
def _http_error(request, exc):
    return _json(request, exc.status_code, [{"loc": [], "msg": str(exc), "type": "error"}])


@api.exception_handler(Http404)
def _not_found(request, exc):
    return _json(request, 404, [{"loc": ["path"], "msg": "Not found.", "type": "not_found"}])
