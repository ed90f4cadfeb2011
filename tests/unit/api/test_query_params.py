"""A misspelt query parameter is a 422 naming it, never silently ignored."""

from __future__ import annotations

from fastapi.testclient import TestClient

API = "/api/v1"


def test_an_unknown_parameter_is_named_in_a_422(client: TestClient, admin: dict[str, str]) -> None:
    response = client.get(f"{API}/search", params={"q": "acme", "limt": "5"}, headers=admin)
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"field": "query.limt", "message": "Unknown query parameter"}
    ]
    nameless = client.get(f"{API}/accounts?=null", headers=admin)
    assert nameless.status_code == 422


def test_known_parameters_and_routes_without_any_are_answered(
    client: TestClient, admin: dict[str, str]
) -> None:
    assert client.get(f"{API}/search", params={"q": "acme", "limit": 5}, headers=admin).is_success
    assert client.get(f"{API}/accounts", params={"limit": 1}, headers=admin).is_success
    # A route that takes no parameters ignores a query string, as web servers do.
    assert client.get(f"{API}/users/me", params={"utm": "x"}, headers=admin).is_success
