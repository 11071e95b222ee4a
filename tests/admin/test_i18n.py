"""The dashboard in the admin's active language: every message of ``firefly_admin`` (and of the
engine's labels the admin shows) translated into French, the compiled catalogs in step with
their sources, and the pages rendered in French for a French browser, numbers included."""

from __future__ import annotations

import ast
import gettext
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import formats, translation

from firefly_admin.counting import Count
from firefly_tasks.models import TaskStatus
from tests.admin.conftest import make_attempt, make_task, make_worker

if TYPE_CHECKING:
    from django.test.client import _MonkeyPatchedWSGIResponse as TestResponse

ROOT = Path(__file__).resolve().parents[2]
# The apps whose messages the admin shows, each with its own catalog.
APPS = ("firefly_admin", "firefly_tasks")
FRENCH = {"Accept-Language": "fr"}
SEPARATORS = ("THOUSAND_SEPARATOR", "DECIMAL_SEPARATOR")
CHANGELIST = reverse("admin:firefly_admin_task_changelist")


@dataclass(frozen=True)
class Message:
    context: str | None
    msgid: str
    plural: str | None
    translations: tuple[str, ...]
    fuzzy: bool


def read_po(path: Path) -> list[Message]:
    """The messages of a .po file, header excluded (gettext's syntax, no polib)."""
    messages: list[Message] = []
    fields: dict[str, list[str]] = {}
    flags: set[str] = set()
    current = ""

    def flush() -> None:
        if "msgid" in fields:
            text = {
                name: "".join(ast.literal_eval(part) for part in parts)
                for name, parts in fields.items()
            }
            if text["msgid"]:
                translations = tuple(
                    text[name] for name in sorted(text) if name.startswith("msgstr")
                )
                messages.append(
                    Message(
                        text.get("msgctxt"),
                        text["msgid"],
                        text.get("msgid_plural"),
                        translations,
                        "fuzzy" in flags,
                    )
                )
        fields.clear()
        flags.clear()

    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line.startswith("#~"):
            continue  # obsolete: no longer in the code
        starts = line.startswith(("#", "msgctxt ", "msgid "))
        if starts and any(name.startswith("msgstr") for name in fields):
            flush()
        if line.startswith("#,"):
            flags.update(flag.strip() for flag in line[2:].split(","))
        elif match := re.match(r"(msgctxt|msgid_plural|msgid|msgstr(?:\[\d+\])?) (\".*\")$", line):
            current = match.group(1)
            fields[current] = [match.group(2)]
        elif line.startswith('"'):
            fields[current].append(line)
    flush()
    return messages


@pytest.fixture(autouse=True)
def english_again() -> Iterator[None]:
    """The language a French request activated ends with the test (the middleware leaves it
    active in the test's thread)."""
    yield
    translation.deactivate()


def catalog(app: str) -> Path:
    return ROOT / app / "locale" / "fr" / "LC_MESSAGES" / "django.po"


def extracted_now(app: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[Message]:
    """What ``makemessages -l fr`` makes of the app's code as it is now, merged with its
    shipped catalog, in a copy of the app (the tree is left alone)."""
    if shutil.which("xgettext") is None:
        message = "makemessages needs GNU gettext's xgettext (Debian package gettext)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}: .ci/run installs it")
        pytest.skip(message)
    copy = tmp_path / app
    shutil.copytree(ROOT / app, copy, ignore=shutil.ignore_patterns("__pycache__", "*.mo"))
    monkeypatch.chdir(copy)
    call_command("makemessages", locale=["fr"], verbosity=0)
    return read_po(copy / "locale" / "fr" / "LC_MESSAGES" / "django.po")


# The catalogs --------------------------------------------------------------------------------


@pytest.mark.parametrize("app", APPS)
def test_every_message_the_code_holds_now_has_a_french_translation(
    app: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    messages = extracted_now(app, tmp_path, monkeypatch)

    assert len(messages) > 40
    untranslated = [m.msgid for m in messages if not all(m.translations) or m.fuzzy]
    assert not untranslated, f"translate them in {catalog(app).relative_to(ROOT)}: {untranslated}"


@pytest.mark.parametrize("app", APPS)
def test_the_compiled_catalog_says_what_its_source_says(app: str) -> None:
    source = read_po(catalog(app))
    with catalog(app).with_suffix(".mo").open("rb") as stream:
        mo = gettext.GNUTranslations(stream)

    for message in source:
        assert compiled(mo, message) == message.translations, f"compilemessages in {app}"


def compiled(mo: gettext.GNUTranslations, message: Message) -> tuple[str, ...]:
    """What the compiled catalog says for ``message``: its one text, or its singular (for 1)
    and plural (for 2) in French (Plural-Forms: n > 1)."""
    context, msgid, plural = message.context, message.msgid, message.plural
    if plural is None:
        return (mo.pgettext(context, msgid) if context else mo.gettext(msgid),)
    if context:
        return tuple(mo.npgettext(context, msgid, plural, n) for n in (1, 2))
    return tuple(mo.ngettext(msgid, plural, n) for n in (1, 2))


def test_counts_follow_the_active_language() -> None:
    with translation.override("fr"):
        separator = formats.get_format("THOUSAND_SEPARATOR")
        assert str(Count(10_050)) == f"10{separator}050"
        assert str(Count(10_000, capped=True)) == f"10{separator}000+"
        assert Count(5, stopped_after=0.5).seconds == "0,5"
    assert str(Count(10_050)) == "10,050" and Count(5, stopped_after=0.5).seconds == "0.5"


# The pages -----------------------------------------------------------------------------------


def page(client: Client, url: str) -> str:
    response: TestResponse = client.get(url, headers=FRENCH)
    assert response.status_code == 200
    assert response["Content-Language"] == "fr"
    return response.content.decode()


def assert_french(html: str, french: list[str], english: list[str]) -> None:
    assert [text for text in french if text not in html] == []
    assert [text for text in english if text in html] == []


def test_the_dashboard_speaks_french(operator_client: Client) -> None:
    make_task(TaskStatus.FAILED)
    make_worker()

    html = page(operator_client, reverse("admin:firefly_admin_task_dashboard"))

    assert_french(
        html,
        [
            "Tableau de bord Firefly",
            "Contrôle des files",
            "Échecs des dernières 24 heures, par tâche et par erreur",
            "Planifications périodiques",
            "Dernières tâches",
            "Dernier signal de vie",
            "Remettre 1 en file",
            "toute file",
        ],
        ["Queue controls", "Failures of the last", "Latest tasks", "Last heartbeat", "any queue"],
    )


def test_the_task_list_speaks_french(operator_client: Client) -> None:
    make_task(TaskStatus.FAILED)

    html = page(operator_client, f"{CHANGELIST}?status=failed")

    assert_french(
        html,
        [
            "Remettre en file les tâches sélectionnées",
            "Tableau de bord",
            "Par création",
            "échouée",
            "1 tâche",
        ],
        ["Requeue selected tasks", ">Dashboard<", "Par created", "1 task<"],
    )


def test_a_task_page_speaks_french(operator_client: Client) -> None:
    task = make_task(TaskStatus.FAILED)
    make_attempt(task)

    html = page(operator_client, reverse("admin:firefly_admin_task_change", args=[task.pk]))

    assert_french(
        html,
        [
            "Dernier échec",
            "Nom de la fonction",
            "Tentative 1 échouée",
            "Historique",
            "Planifiée dans la file",
        ],
        ["Last failure", "Func name", "Timeline", "Scheduled on queue", "Attempt 1 failed"],
    )


def test_the_worker_list_speaks_french(operator_client: Client) -> None:
    make_worker(memory_kib=1_258_291)

    html = page(operator_client, reverse("admin:firefly_admin_worker_changelist"))

    thousands, decimals = (formats.get_format(name, lang="fr") for name in SEPARATORS)
    assert_french(
        html,
        ["Tâches exécutées", "Dernier signal de vie", f"1{thousands}228{decimals}8 Mio"],
        ["Tasks it ran", "Last heartbeat", "1,228.8", "MiB"],
    )


def test_the_lists_head_the_engines_columns_in_french(operator_client: Client) -> None:
    make_worker(processed=12_345)
    make_task(TaskStatus.CREATED)

    workers = page(operator_client, reverse("admin:firefly_admin_worker_changelist"))
    thousands = formats.get_format("THOUSAND_SEPARATOR", lang="fr")
    headers = re.findall(r'<th scope="col" class="[^"]*">.*?</th>', workers, re.S)
    assert_french(" ".join(headers), ["Hôte", "Traitées", "Échouées"], ["Hostname", "Processed"])
    assert f"12{thousands}345" in workers
    tasks = page(operator_client, reverse("admin:firefly_admin_task_changelist"))
    headers = re.findall(r'<th scope="col" class="[^"]*">.*?</th>', tasks, re.S)
    assert_french(" ".join(headers), ["File", "Priorité"], ["Queue", "Priority"])


def test_a_bulk_action_asks_and_answers_in_french(operator_client: Client) -> None:
    tasks = [make_task(TaskStatus.FAILED) for _ in range(2)]
    make_attempt(tasks[0])
    selected = {"index": 0, "_selected_action": [task.pk for task in tasks]}

    confirm = operator_client.post(
        CHANGELIST, {"action": "delete_tasks", **selected}, headers=FRENCH
    )
    html = confirm.content.decode()
    assert_french(
        html,
        [
            "2 tâches sélectionnées",
            "Les supprimer supprime aussi 1 tentative.",
            "Oui, les supprimer",
        ],
        ["tasks selected", "This cannot be undone", "Yes, delete them"],
    )

    done = operator_client.post(
        CHANGELIST, {"action": "requeue_tasks", **selected}, follow=True, headers=FRENCH
    )
    said = [str(message) for message in done.context["messages"]]
    assert said == ["Remettre en file\u00a0: 2 traitées, 0 ignorée."]
