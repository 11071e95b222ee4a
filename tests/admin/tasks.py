"""Tasks only the dashboard's tests schedule (never run by a consumer)."""

from __future__ import annotations

from firefly_tasks import task


@task()
def sign_in(username: str, password: str, *, token: str = "") -> dict[str, str]:
    return {"username": username, "token": token}


@task(queue="reports")
def build_report(name: str) -> str:
    return name
