"""The OpenAPI document describes the errors and the authentication the app really has.

Generated clients are built from it: every error is problem+json with the Problem schema,
every operation that needs credentials says so, and the document is valid OpenAPI 3.1.
The answers themselves are held to the document by test_schemathesis.py; here, the
document's own promises and the headers problems carry.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import jsonschema_rs
import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient

from crmsync.api import problems
from crmsync.api.app import API_PREFIX
from crmsync.api.openapi import BEARER, SESSION_COOKIE, install_openapi
from crmsync.api.problems import PROBLEM_JSON
from crmsync.app import create_app
from crmsync.config import Settings
from crmsync.crm.errors import CrmError
from crmsync.crm.secrets import SecretBox
from crmsync.crm.store import Store

METHODS = ("get", "put", "post", "patch", "delete")
UNAUTHENTICATED = {
    ("post", f"{API_PREFIX}/auth/login"),
    ("post", f"{API_PREFIX}/panel/tokens"),  # the connect code is the credential
    ("get", "/healthz"),
}
# Operations whose body names something that may not be found (no id in their path).
NAMED_IN_BODY = {("post", f"{API_PREFIX}/emails/track")}
PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FastAPI]:
    # The document needs the routes only: this store is never opened.
    root = tmp_path_factory.mktemp("openapi")
    store = Store(f"sqlite:///{root / 'unused.sqlite3'}", root / "blobs")
    app = create_app(Settings(data_dir=root, secret_key=SecretBox.generate_key()), store)
    install_openapi(app)
    yield app
    store.dispose()


@pytest.fixture(scope="module")
def document(app: FastAPI) -> dict[str, Any]:
    return app.openapi()


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method in METHODS:
            if method in item:
                yield method, path, item[method]


def test_the_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1.")
    schemathesis.openapi.from_dict(json.loads(json.dumps(document))).validate()


def test_it_is_built_once_and_served_as_built(app: FastAPI, document: dict[str, Any]) -> None:
    assert app.openapi() is document
    with TestClient(app) as client:
        assert client.get(f"{API_PREFIX}/openapi.json").json() == document


def test_every_error_is_a_problem_and_fastapi_s_422_shape_is_gone(
    document: dict[str, Any],
) -> None:
    for method, path, operation in operations(document):
        for status, response in operation["responses"].items():
            if int(status) >= 400:
                assert response["content"] == {PROBLEM_JSON: {"schema": PROBLEM_REF}}, (
                    method,
                    path,
                    status,
                )
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    assert "ValidationError" not in schemas
    assert "HTTPValidationError" not in json.dumps(document)


def test_the_problem_schema_is_what_problem_answers(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    problem = schemas["Problem"]
    assert set(problem["required"]) == {"type", "title", "status", "code", "detail"}
    assert {"field", "errors", "reason", "retry_after", "limit"} <= set(problem["properties"])
    assert problem["properties"]["errors"]["items"] == {"$ref": "#/components/schemas/FieldError"}
    assert set(schemas["FieldError"]["required"]) == {"field", "message"}
    validator = jsonschema_rs.validator_for({**PROBLEM_REF, "components": {"schemas": schemas}})
    response = problems.problem(
        422,
        "VALIDATION_FAILED",
        "Invalid input",
        "Check: name",
        errors=[{"field": "name", "message": "Field required"}],
    )
    body = json.loads(bytes(response.body))
    validator.validate(body)
    assert not validator.is_valid({**body, "errors": [{"field": "name"}]})
    assert not validator.is_valid({key: body[key] for key in ("type", "title", "status")})


def test_every_operation_that_takes_input_documents_422_and_every_one_500(
    document: dict[str, Any],
) -> None:
    for method, path, operation in operations(document):
        takes_input = bool(operation.get("parameters")) or "requestBody" in operation
        assert ("422" in operation["responses"]) == takes_input, (method, path)
        assert "500" in operation["responses"], (method, path)


def test_operations_that_need_credentials_say_so_and_answer_401(
    document: dict[str, Any],
) -> None:
    needing = 0
    for method, path, operation in operations(document):
        if (method, path) in UNAUTHENTICATED:
            assert "security" not in operation, (method, path)
            continue
        needing += 1
        assert operation["security"] == [{BEARER: []}, {SESSION_COOKIE: []}], (method, path)
        unauthorized = operation["responses"]["401"]
        assert unauthorized["headers"]["WWW-Authenticate"]["required"] is True
        assert "403" in operation["responses"], (method, path)
    assert needing > 90
    # Found through get_principal_briefly, the dependency of routes that talk to servers.
    test_enable = document["paths"][f"{API_PREFIX}/mailboxes/{{mailbox_id}}/test-enable"]
    assert "401" in test_enable["post"]["responses"]


def test_the_security_schemes_are_the_bearer_token_and_the_session_cookie(
    document: dict[str, Any],
) -> None:
    schemes = document["components"]["securitySchemes"]
    assert schemes[BEARER]["type"] == "http"
    assert schemes[BEARER]["scheme"] == "bearer"
    assert schemes[SESSION_COOKIE] | {"description": ""} == {
        "type": "apiKey",
        "in": "cookie",
        "name": "crmsync_session",
        "description": "",
    }


def test_login_documents_wrong_passwords_and_throttling(document: dict[str, Any]) -> None:
    responses = document["paths"][f"{API_PREFIX}/auth/login"]["post"]["responses"]
    assert {"200", "400", "401", "403", "413", "422", "429", "500"} <= set(responses)
    assert responses["429"]["headers"]["Retry-After"]["schema"] == {"type": "integer", "minimum": 0}
    health = document["paths"]["/healthz"]["get"]["responses"]
    assert set(health) == {"200", "500"}


def test_404_for_paths_with_ids_and_403_409_413_for_unsafe_methods(
    document: dict[str, Any],
) -> None:
    for method, path, operation in operations(document):
        statuses = set(operation["responses"])
        assert ("404" in statuses) == ("{" in path or (method, path) in NAMED_IN_BODY), (
            method,
            path,
        )
        if method == "get":
            assert not {"409", "413"} & statuses, (method, path)
        else:
            # 403: the CSRF check refuses unsafe requests, authenticated or not.
            assert {"403", "409", "413"} <= statuses, (method, path)
        assert ("400" in statuses) == ("requestBody" in operation), (method, path)


def test_204_answers_have_no_content(document: dict[str, Any]) -> None:
    no_content = [
        operation["responses"]["204"]
        for _, _, operation in operations(document)
        if "204" in operation["responses"]
    ]
    assert no_content
    assert all("content" not in response for response in no_content)


class Throttled(CrmError):
    code = "TOO_MANY_ATTEMPTS"
    status = 429


def _problem_app() -> FastAPI:
    app = FastAPI()
    problems.install(app)

    @app.get("/things")
    def list_things() -> list[str]:
        return []

    @app.post("/things")
    def add_thing() -> None:
        raise Throttled("Too many failed logins; try again in 7 seconds", retry_after=7)

    @app.delete("/things/{thing_id}")
    def delete_thing(thing_id: int) -> None:
        raise CrmError("nope", record_type="thing", secret="not for clients")

    return app


def test_a_405_lists_every_method_of_the_path() -> None:
    with TestClient(_problem_app()) as client:
        response = client.put("/things")
    assert response.status_code == 405
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.headers["allow"] == "GET, POST"


def test_a_retry_after_becomes_a_member_and_a_header() -> None:
    with TestClient(_problem_app()) as client:
        response = client.post("/things")
    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"
    assert response.json()["retry_after"] == 7
    assert response.json()["code"] == "TOO_MANY_ATTEMPTS"


def test_fields_a_crm_error_carries_for_logs_stay_out_of_the_problem() -> None:
    with TestClient(_problem_app()) as client:
        response = client.delete("/things/1")
    assert response.status_code == 400
    assert set(response.json()) == {"type", "title", "status", "code", "detail"}


def test_a_401_names_the_scheme(client: TestClient) -> None:
    response = client.get(f"{API_PREFIX}/users/me")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.headers["content-type"] == PROBLEM_JSON
