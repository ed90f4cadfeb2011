"""The directory as an attacker with an ordinary account probes it: escalation must fail.

Each probe is a custom role granting one directory privilege at a shallow depth, a user
holding it, and the request that would make that user an administrator — or lock the
real administrator out. Every one must be refused and leave nothing changed.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import Org
from tests.unit.api.conftest import login

API = "/api/v1"


def _roles(client: TestClient, admin: dict[str, str]) -> dict[str, dict[str, Any]]:
    return {role["name"]: role for role in client.get(f"{API}/roles", headers=admin).json()}


def _role(
    client: TestClient, admin: dict[str, str], name: str, *grants: tuple[str, str, str]
) -> str:
    body = {
        "name": name,
        "privileges": [
            {"record_type": record_type, "privilege": privilege, "depth": depth}
            for record_type, privilege, depth in grants
        ],
    }
    response = client.post(f"{API}/roles", json=body, headers=admin)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _user(
    client: TestClient,
    admin: dict[str, str],
    username: str,
    *role_ids: str,
    business_unit_id: str | None = None,
    addresses: tuple[str, ...] = (),
) -> tuple[str, dict[str, str]]:
    body: dict[str, Any] = {
        "username": username,
        "password": f"{username}-password",
        "role_ids": list(role_ids),
        "email_addresses": list(addresses),
    }
    if business_unit_id:
        body["business_unit_id"] = business_unit_id
    response = client.post(f"{API}/users", json=body, headers=admin)
    assert response.status_code == 201, response.text
    return str(response.json()["id"]), login(client, username, f"{username}-password")


def _can_administer(client: TestClient, headers: dict[str, str]) -> bool:
    probe = client.post(f"{API}/business-units", json={"name": "probe-unit"}, headers=headers)
    return probe.status_code == 201


@pytest.fixture
def sysadmin(client: TestClient, admin: dict[str, str]) -> str:
    return str(_roles(client, admin)["System Administrator"]["id"])


def test_user_write_at_user_depth_cannot_grant_itself_the_admin_role(
    client: TestClient, admin: dict[str, str], sysadmin: str
) -> None:
    role = _role(client, admin, "Self editor", ("user", "write", "user"))
    mallory_id, mallory = _user(client, admin, "mallory", role)
    escalate = client.patch(
        f"{API}/users/{mallory_id}", json={"role_ids": [role, sysadmin]}, headers=mallory
    )
    assert escalate.status_code == 403, escalate.text
    assert "do not hold" in escalate.json()["detail"]
    me = client.get(f"{API}/users/me", headers=mallory).json()
    assert me["role_ids"] == [role]
    assert not _can_administer(client, mallory)
    # What user depth does allow: your own name.
    renamed = client.patch(f"{API}/users/{mallory_id}", json={"full_name": "M"}, headers=mallory)
    assert renamed.status_code == 200


def test_user_create_at_user_depth_cannot_create_an_administrator(
    client: TestClient, admin: dict[str, str], sysadmin: str
) -> None:
    role = _role(client, admin, "Creator", ("user", "create", "user"))
    _, mallory = _user(client, admin, "mallory", role)
    body = {"username": "mallory2", "password": "mallory2-password", "role_ids": [sysadmin]}
    created = client.post(f"{API}/users", json=body, headers=mallory)
    assert created.status_code == 403
    refused = client.post(
        f"{API}/auth/login", json={"username": "mallory2", "password": "mallory2-password"}
    )
    assert refused.status_code == 401


def test_role_write_below_organisation_depth_cannot_raise_a_role(
    client: TestClient, admin: dict[str, str]
) -> None:
    grants = [("role", "write", "user"), ("account", "read", "user")]
    role = _role(client, admin, "Role tinkerer", *grants)
    _, mallory = _user(client, admin, "mallory", role)
    raised = client.put(
        f"{API}/roles/{role}/privileges",
        json={
            "privileges": [{"record_type": "account", "privilege": "read", "depth": "organisation"}]
        },
        headers=mallory,
    )
    assert raised.status_code == 403
    after = _roles(client, admin)["Role tinkerer"]["privileges"]
    assert {(g["record_type"], g["depth"]) for g in after} == {
        ("role", "user"),
        ("account", "user"),
    }


def test_role_write_at_organisation_depth_cannot_grant_beyond_its_own(
    client: TestClient, admin: dict[str, str]
) -> None:
    grants = [("role", "write", "organisation"), ("role", "create", "organisation")]
    role = _role(client, admin, "Role manager", *grants)
    _, mallory = _user(client, admin, "mallory", role)
    everything = [
        {"record_type": "user", "privilege": "write", "depth": "organisation"},
        *[{"record_type": t, "privilege": p, "depth": "organisation"} for t, p, _ in grants],
    ]
    raised = client.put(
        f"{API}/roles/{role}/privileges", json={"privileges": everything}, headers=mallory
    )
    assert raised.status_code == 403
    assert "user:write@organisation" in raised.json()["detail"]
    new_role = client.post(
        f"{API}/roles", json={"name": "Mine", "privileges": everything}, headers=mallory
    )
    assert new_role.status_code == 403
    # Within what they hold, they may.
    modest = client.post(
        f"{API}/roles", json={"name": "Modest", "privileges": everything[1:]}, headers=mallory
    )
    assert modest.status_code == 201, modest.text


def test_team_write_cannot_join_a_team_that_holds_the_admin_role(
    client: TestClient, admin: dict[str, str], sysadmin: str
) -> None:
    team = client.post(
        f"{API}/teams", json={"name": "Admins", "role_ids": [sysadmin]}, headers=admin
    ).json()
    for depth in ("user", "business_unit", "organisation"):
        role = _role(client, admin, f"Team editor {depth}", ("team", "write", depth))
        mallory_id, mallory = _user(client, admin, f"mallory-{depth}", role)
        joined = client.patch(
            f"{API}/teams/{team['id']}", json={"member_ids": [mallory_id]}, headers=mallory
        )
        assert joined.status_code == 403, (depth, joined.text)
        assert not _can_administer(client, mallory)
    members = client.get(f"{API}/teams/{team['id']}", headers=admin).json()["member_ids"]
    assert members == []


def test_business_unit_user_admin_cannot_take_over_the_organisation_admin(
    client: TestClient, admin: dict[str, str], org: Org
) -> None:
    me = client.get(f"{API}/users/me", headers=admin).json()
    grants = [("user", "write", "business_unit"), ("user", "read", "business_unit")]
    role = _role(client, admin, "Unit user admin", *grants)
    _, mallory = _user(client, admin, "mallory", role)  # same (root) unit as the admin
    reset = client.put(
        f"{API}/users/{me['id']}/password", json={"password": "taken-over-1"}, headers=mallory
    )
    assert reset.status_code == 403
    deactivate = client.patch(f"{API}/users/{me['id']}", json={"is_active": False}, headers=mallory)
    assert deactivate.status_code == 403
    assert login(client, "admin-acme", "admin-password")
    # The old field is gone: a password is never set through PATCH.
    patched = client.patch(
        f"{API}/users/{me['id']}", json={"password": "taken-over-1"}, headers=mallory
    )
    assert patched.status_code == 422


def test_a_unit_admin_manages_its_own_unit_only_and_grants_only_what_it_holds(
    client: TestClient, admin: dict[str, str]
) -> None:
    roles = _roles(client, admin)
    units = {
        name: client.post(f"{API}/business-units", json={"name": name}, headers=admin).json()["id"]
        for name in ("Sales", "Support")
    }
    manager_grants = [
        ("user", "create", "business_unit"),
        ("user", "write", "business_unit"),
        *[
            (g["record_type"], g["privilege"], g["depth"])
            for g in roles["Salesperson"]["privileges"]
        ],
    ]
    manager_role = _role(client, admin, "Sales manager", *manager_grants)
    _, manager = _user(client, admin, "manager", manager_role, business_unit_id=units["Sales"])
    salesperson = roles["Salesperson"]["id"]
    body = {"username": "newbie", "role_ids": [salesperson], "business_unit_id": units["Sales"]}
    assert client.post(f"{API}/users", json=body, headers=manager).status_code == 201
    elsewhere = {**body, "username": "outsider", "business_unit_id": units["Support"]}
    assert client.post(f"{API}/users", json=elsewhere, headers=manager).status_code == 403
    other_id, _ = _user(client, admin, "support-1", business_unit_id=units["Support"])
    foreign = client.patch(f"{API}/users/{other_id}", json={"full_name": "x"}, headers=manager)
    assert foreign.status_code == 403


def test_the_built_in_admin_role_and_the_last_admin_cannot_be_removed(
    client: TestClient, admin: dict[str, str], sysadmin: str
) -> None:
    emptied = client.put(
        f"{API}/roles/{sysadmin}/privileges", json={"privileges": []}, headers=admin
    )
    assert emptied.status_code == 422
    assert emptied.json()["code"] == "BUILT_IN_ROLE"
    me = client.get(f"{API}/users/me", headers=admin).json()
    for change in ({"role_ids": []}, {"is_active": False}):
        refused = client.patch(f"{API}/users/{me['id']}", json=change, headers=admin)
        assert refused.status_code == 422, refused.text
        assert refused.json()["code"] == "LAST_ADMINISTRATOR"
    assert _can_administer(client, admin)
    # With a second administrator, the first may step down.
    _user(client, admin, "second-admin", sysadmin)
    stepped = client.patch(f"{API}/users/{me['id']}", json={"role_ids": []}, headers=admin)
    assert stepped.status_code == 200


def test_a_team_holding_the_admin_role_cannot_lose_the_last_admin(
    client: TestClient, admin: dict[str, str], sysadmin: str
) -> None:
    me = client.get(f"{API}/users/me", headers=admin).json()
    team = client.post(
        f"{API}/teams",
        json={"name": "Admins", "role_ids": [sysadmin], "member_ids": [me["id"]]},
        headers=admin,
    ).json()
    assert client.patch(f"{API}/users/{me['id']}", json={"role_ids": []}, headers=admin).is_success
    emptied = client.patch(f"{API}/teams/{team['id']}", json={"member_ids": []}, headers=admin)
    assert emptied.status_code == 422
    assert emptied.json()["code"] == "LAST_ADMINISTRATOR"


def test_changing_a_password_needs_the_current_one_and_ends_other_sessions(
    client: TestClient, admin: dict[str, str]
) -> None:
    ann_id, ann = _user(client, admin, "ann")
    other = login(client, "ann", "ann-password")
    wrong = client.post(
        f"{API}/users/me/password",
        json={"current_password": "guess-guess", "new_password": "ann-new-password"},
        headers=ann,
    )
    assert wrong.status_code == 422
    assert wrong.json()["field"] == "current_password"
    changed = client.post(
        f"{API}/users/me/password",
        json={"current_password": "ann-password", "new_password": "ann-new-password"},
        headers=ann,
    )
    assert changed.status_code == 204
    assert client.get(f"{API}/users/me", headers=ann).status_code == 200
    assert client.get(f"{API}/users/me", headers=other).status_code == 401
    old = client.post(f"{API}/auth/login", json={"username": "ann", "password": "ann-password"})
    assert old.status_code == 401
    assert login(client, "ann", "ann-new-password")
    # An administrator's reset ends every session of the user.
    reset = client.put(
        f"{API}/users/{ann_id}/password", json={"password": "reset-by-admin"}, headers=admin
    )
    assert reset.status_code == 204
    assert client.get(f"{API}/users/me", headers=ann).status_code == 401
    assert login(client, "ann", "reset-by-admin")


def test_a_user_cannot_claim_another_users_address(
    client: TestClient, admin: dict[str, str]
) -> None:
    role = _role(client, admin, "Self editor", ("user", "write", "user"))
    mallory_id, mallory = _user(client, admin, "mallory", role, addresses=("m@acme.test",))
    claimed = client.patch(
        f"{API}/users/{mallory_id}", json={"email_addresses": ["admin@acme.test"]}, headers=mallory
    )
    assert claimed.status_code == 403
    also_own = client.patch(
        f"{API}/users/{mallory_id}",
        json={"email_addresses": ["ceo@customer.test"]},
        headers=mallory,
    )
    assert also_own.status_code == 403
    # Even an administrator cannot give one address to two users.
    taken = client.patch(
        f"{API}/users/{mallory_id}", json={"email_addresses": ["ADMIN@acme.test"]}, headers=admin
    )
    assert taken.status_code == 409
    assert taken.json()["field"] == "email_addresses"
    twice = client.post(
        f"{API}/users",
        json={"username": "copy", "email_addresses": ["admin@acme.test"]},
        headers=admin,
    )
    assert twice.status_code == 409
    me = client.get(f"{API}/users/{mallory_id}", headers=admin).json()
    assert me["email_addresses"] == ["m@acme.test"]


def test_usernames_do_not_leak_across_organisations(client: TestClient, org: Org) -> None:
    from tests.conftest import make_org

    make_org(org.store, "Globex")
    globex = login(client, "admin-globex", "admin-password", organisation="Globex")
    same_name = client.post(
        f"{API}/users",
        json={"username": "admin-acme", "password": "globex-password"},
        headers=globex,
    )
    assert same_name.status_code == 201, same_name.text
    within = client.post(f"{API}/users", json={"username": "admin-acme"}, headers=globex)
    assert within.status_code == 409
    assert "this organisation" in within.json()["detail"]
    # With two organisations, a login names its own.
    ambiguous = client.post(
        f"{API}/auth/login", json={"username": "admin-acme", "password": "admin-password"}
    )
    assert ambiguous.status_code == 422
    assert ambiguous.json()["field"] == "organisation"
    acme = login(client, "admin-acme", "admin-password", organisation="Acme")
    globex_user = login(client, "admin-acme", "globex-password", organisation="Globex")
    acme_me = client.get(f"{API}/users/me", headers=acme).json()
    globex_me = client.get(f"{API}/users/me", headers=globex_user).json()
    assert acme_me["id"] != globex_me["id"]
