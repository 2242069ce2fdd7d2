"""Members' scopes: what each role brings into a certificate, and which policies a project owns."""

from __future__ import annotations

import pytest

from sealbox.approver.members import invite_scopes
from sealbox.errors import MalformedInput
from sealbox.protocol import members, scopes


def test_each_role_gives_its_scopes_and_the_whole_project() -> None:
    assert members.member_scopes({"shop": {"viewer"}}) == ("items:shop/*/*", "role:shop:viewer")
    assert members.member_scopes({"shop": {"writer"}}) == (
        "items:shop/*/*", "read", "role:shop:writer", "write")  # fmt: skip
    for role in ("machine-admin", "policy-admin"):
        assert members.member_scopes({"shop": {role}}) == (
            "items:shop/*/*", "read", f"role:shop:{role}")  # fmt: skip
    both = members.member_scopes({"shop": {"writer"}, "blog": {"viewer"}})
    assert scopes.roles(both) == {"shop": frozenset({"writer"}), "blog": frozenset({"viewer"})}
    assert scopes.item_patterns(both) == ("blog/*/*", "shop/*/*")
    assert members.member_scopes({}) == ()
    assert members.member_scopes({"shop": set()}) == ()
    for scope in both:
        scopes.check_scope(scope)


def test_unknown_roles_and_bad_projects_are_refused() -> None:
    with pytest.raises(ValueError, match="role"):
        members.member_scopes({"shop": {"owner"}})
    with pytest.raises(ValueError, match="role:PROJECT:ROLE"):
        members.member_scopes({"sh/op": {"viewer"}})
    with pytest.raises(KeyError):
        members.ROLE_SCOPES["owner"]


def test_only_a_pattern_naming_its_project_exactly_lies_in_it() -> None:
    assert members.policy_project("shop/*/*") == "shop"
    assert members.policy_project("shop/prod/db") == "shop"
    for pattern in ("*/prod/*", "sh*/prod/*", "sho?/*/*", "*/*/*"):
        assert members.policy_project(pattern) is None, pattern
    with pytest.raises(ValueError, match="three segments"):
        members.policy_project("shop/prod")


def test_who_may_ask_for_what() -> None:
    assert not members.may_ask({"viewer"}, "read")
    assert members.may_ask({"writer"}, "write")
    assert members.may_ask({"viewer", "policy-admin"}, "read")
    assert not members.may_ask({"policy-admin", "machine-admin"}, "write")
    assert not members.may_ask(set(), "read")
    assert members.project_of("shop/prod/db") == "shop"


def test_the_approver_certifies_an_invited_login_with_exactly_its_role() -> None:
    assert invite_scopes({"user_code": "X", "project": None, "role": None}) is None
    assert invite_scopes({"project": "shop", "role": "writer"}) == list(
        members.member_scopes({"shop": {"writer"}})
    )
    for bad in ({"project": "shop", "role": "owner"}, {"project": "shop", "role": None},
                {"project": 3, "role": "viewer"}):  # fmt: skip
        with pytest.raises(MalformedInput):
            invite_scopes(bad)
