"""Every text Tandem ships for users: Russian always in ты (never вы), and every text table in both languages.

Scanned: string literals of bot/ and skills/ (docstrings left out), the responses and other texts of
dialog_graphs/*.yaml and skills/**/*.yaml (the persona, jokes, facts), the string literals of the widget's JavaScript and the demo
page. Not scanned, because they hold what users may type rather than what they are shown:
intents/ (examples and rules), skills/unsafe_words.yaml (a detection list), `when:` conditions of
graphs and `words`/`keywords` lists of the persona.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from bot.settings import PROJECT_ROOT

LANGUAGES = {"en", "ru"}
_CYRILLIC = re.compile(r"[\u0400-\u04ff]")
# вы-forms: the pronoun in every case, the plural imperative ("Попробуйте", "Напишите", "Отправьте",
# "Возвращайтесь") and the second person plural present/future ("Хотите", "Попробуете", "знаете",
# "найдёте", "можете").
VY_FORM = re.compile(
    r"(?<![\w-])("
    r"вы|вас|вам|вами|ваш\w*"
    r"|\w+(?:ите|йте|ьте)(?:сь)?"
    r"|\w+(?:аете|яете|уете|юете|еете|иете|оете|ёте|дете)(?:сь)?"
    r"|(?:с|по)?можете|(?:на)?пишете|(?:рас)?скажете|будете|(?:по)?едете"
    r")(?![\w-])",
    re.IGNORECASE,
)
# Ordinary words that only look like a вы-form (prepositional case of nouns in -ит, -айт, -ёт).
LOOKALIKES = frozenset({
    "сайте", "байте", "лайте", "граните", "кредите", "орбите", "визите", "лимите", "защите", "элите",
    "зените", "аппетите", "транзите", "иммунитете", "полёте", "налёте", "перелёте", "самолёте", "пилоте",
})
LOOKALIKE_ENDINGS = ("байте", "сайте")  # в килобайте, на веб-сайте
# A string literal with regex syntax in it is a pattern that recognises what a user or a model writes
# (the passage filter's "ваша очередь", the aside detector's "you|ты|вы"), never shown to anyone.
_PATTERN = re.compile(r"\(\?|\\[bwsdW]|\[\^|(?:\|[^|]*){3,}")
# Other texts where a вы-form is meant, never shown to a user.
ALLOWED = {
    # A stop string of story generation ("\nВы:"): the model starting the user's line.
    ("bot/story/settings.py", "вы"),
    # The evaluation report's description of the register check ("addresses the user as вы").
    ("bot/evaluation/checks.py", "вы"),
    # Small talk's instructions to the model to say ты, "never «вы», «вас», «вам», «ваш»" (prompts,
    # never shown).
    ("skills/smalltalk.py", "вы"), ("skills/smalltalk.py", "вас"), ("skills/smalltalk.py", "вам"),
    ("skills/smalltalk.py", "ваш"),
    # The candidate checker's Russian stop words, never shown: words it skips when it compares passages.
    ("bot/story/quality.py", "вы"), ("bot/story/quality.py", "вам"),
}
SKIPPED_YAML_KEYS = {"when", "words", "keywords"}
SKIPPED_FILES = {"skills/unsafe_words.yaml"}


# --- sources ---------------------------------------------------------------------------------

def shipped(pattern: str) -> list[Path]:
    return sorted(p for p in PROJECT_ROOT.glob(pattern)
                  if "__pycache__" not in p.parts and p.relative_to(PROJECT_ROOT).as_posix() not in SKIPPED_FILES)


PYTHON = shipped("bot/**/*.py") + shipped("skills/**/*.py")
YAML = shipped("dialog_graphs/*.yaml") + shipped("skills/**/*.yaml")
WEB = shipped("bot/web/static/*.js") + shipped("bot/web/static/*.html")


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                ids.add(id(first.value))
    return ids


def python_texts(source: str) -> Iterator[tuple[int, str]]:
    """(line, text) of every string literal with Cyrillic in it, docstrings left out."""
    tree = ast.parse(source)
    docstrings = _docstrings(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings \
                and _CYRILLIC.search(node.value):
            yield node.lineno, node.value


def yaml_texts(source: str) -> Iterator[tuple[int, str]]:
    """(line, text) of every scalar with Cyrillic in it, outside user-input subtrees."""
    def walk(node: yaml.Node) -> Iterator[tuple[int, str]]:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if not (isinstance(key, yaml.ScalarNode) and key.value in SKIPPED_YAML_KEYS):
                    yield from walk(value)
        elif isinstance(node, yaml.SequenceNode):
            for item in node.value:
                yield from walk(item)
        elif isinstance(node, yaml.ScalarNode) and _CYRILLIC.search(node.value):
            yield node.start_mark.line + 1, node.value

    root = yaml.compose(source)
    if root is not None:
        yield from walk(root)


_JS_STRING = re.compile(r'"(?:[^"\\\n]|\\.)*"|\'(?:[^\'\\\n]|\\.)*\'|`(?:[^`\\]|\\.)*`')


def web_texts(source: str, html: bool) -> Iterator[tuple[int, str]]:
    """(line, text) of Cyrillic string literals (JavaScript) or Cyrillic lines (HTML)."""
    for number, line in enumerate(source.splitlines(), 1):
        if not _CYRILLIC.search(line):
            continue
        if html:
            yield number, line
        else:
            for literal in _JS_STRING.findall(line):
                if _CYRILLIC.search(literal):
                    yield number, literal


def texts_of(path: Path) -> Iterator[tuple[int, str]]:
    source = path.read_text(encoding="utf-8")
    if path.suffix == ".py":
        return python_texts(source)
    if path.suffix == ".yaml":
        return yaml_texts(source)
    return web_texts(source, html=path.suffix == ".html")


def vy_forms(text: str) -> list[str]:
    return [m.group(1) for m in VY_FORM.finditer(text)
            if m.group(1).lower() not in LOOKALIKES and not m.group(1).lower().endswith(LOOKALIKE_ENDINGS)]


# --- Russian in ты -----------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "Попробуйте ещё раз чуть позже.", "Возвращайтесь в любое время.", "Как вам разговор?", "Вы можете",
    "Хотите что-нибудь добавить?", "Отправьте его заново", "Извините!", "ответьте числом", "Попробуете ещё раз?",
    "Вы найдёте всё в «помощи»", "Ваши данные удалены.", "с вами", "Вас приветствует Тандем", "Давайте начнём",
    "вы знаете", "если можете", "Не стесняйтесь",
])
def test_the_scan_catches_vy_forms(text: str) -> None:
    assert vy_forms(text), text
    assert not _PATTERN.search(text)  # and a text is not taken for a pattern


@pytest.mark.parametrize("text", [
    "Попробуй ещё раз чуть позже.", "Возвращайся в любое время.", "Как тебе разговор?", "Ты можешь",
    "Хочешь что-нибудь добавить?", "Отправь его заново", "Извини!", "на сайте", "в ответе", "на свете",
    "в сюжете", "Выбери вариант", "Твои данные удалены.", "вампир", "Вася", "Привет! Я Тандем.",
    "при выходе", "выйти", "в полёте", "в килобайте",
])
def test_the_scan_leaves_ty_forms_and_ordinary_words_alone(text: str) -> None:
    assert not vy_forms(text), text


def test_a_new_vy_form_in_a_python_constant_is_found_with_its_line() -> None:
    source = '"""A docstring: Попробуйте."""\nOK = {"ru": "Попробуй ещё раз."}\nNEW = {"ru": "Попробуйте ещё раз."}\n'
    found = [(line, vy_forms(text)) for line, text in python_texts(source) if vy_forms(text)]
    assert found == [(3, ["Попробуйте"])]


def test_yaml_responses_are_scanned_and_user_input_is_not() -> None:
    source = ("nodes:\n  a:\n    response:\n      ru: \"Напишите мне\"\n"
              "    transitions:\n      - when: {text: \"Скажите\"}\n")
    assert [(line, vy_forms(text)) for line, text in yaml_texts(source)] == [(4, ["Напишите"])]


def test_every_shipped_russian_text_says_ty() -> None:
    assert PYTHON and YAML and WEB
    problems = []
    for path in PYTHON + YAML + WEB:
        relative = path.relative_to(PROJECT_ROOT).as_posix()
        for line, text in texts_of(path):
            if _PATTERN.search(text):
                continue
            for form in vy_forms(text):
                if (relative, form.lower()) not in ALLOWED:
                    problems.append(f"{relative}:{line}: {form!r} in {text.strip()[:80]!r}")
    assert not problems, "вы-forms in texts users see (use ты):\n" + "\n".join(problems)


# --- both languages ------------------------------------------------------------------------------

def _is_text(node: ast.expr) -> bool:
    """A literal text, or a tuple or list of them (several phrasings, quick replies)."""
    if isinstance(node, (ast.Tuple, ast.List)):
        return bool(node.elts) and all(_is_text(e) for e in node.elts)
    return isinstance(node, ast.JoinedStr) or (isinstance(node, ast.Constant) and isinstance(node.value, str))


def _language_tables_py(source: str) -> Iterator[tuple[int, set[str], list[ast.expr]]]:
    """Dict literals keyed by language codes and holding texts: (line, keys, values). Dicts of other
    values keyed by language ({"en": [value]} while a catalogue is normalised) are not text tables."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Dict) and node.keys and all(
                isinstance(k, ast.Constant) and isinstance(k.value, str) for k in node.keys):
            keys = {k.value for k in node.keys}
            if keys <= LANGUAGES and any(_is_text(v) for v in node.values):
                yield node.lineno, keys, node.values


def test_every_text_table_in_python_has_english_and_russian() -> None:
    problems = []
    for path in PYTHON:
        relative = path.relative_to(PROJECT_ROOT).as_posix()
        for line, keys, values in _language_tables_py(path.read_text(encoding="utf-8")):
            if keys != LANGUAGES:
                problems.append(f"{relative}:{line}: only {sorted(keys)}")
            elif any(isinstance(v, ast.Constant) and v.value in ("", None) for v in values):
                problems.append(f"{relative}:{line}: an empty text")
    assert not problems, "text tables missing a language:\n" + "\n".join(problems)


# Modules whose InputErrors are shown to users (chat replies, the story API's messages): each one is
# raised with texts in both languages, InputError(texts={...}) or bot.core.errors.refusal(en, ru).
# Others (bot/storage/feedback.py) refuse API clients' malformed requests, in English.
REFUSING = shipped("bot/story/**/*.py") + shipped("skills/**/*.py") + [
    PROJECT_ROOT / "bot/channels/story_api.py", PROJECT_ROOT / "bot/core/text.py"]


def _has_cyrillic(node: ast.expr) -> bool:
    return any(isinstance(n, ast.Constant) and isinstance(n.value, str) and _CYRILLIC.search(n.value)
               for n in ast.walk(node))


def one_language_refusals(source: str) -> Iterator[tuple[int, str]]:
    """(line, why) of every InputError raised with a message in one language only: a message of its
    own instead of `texts=`, or a refusal(en, ru) whose Russian is missing or not Russian."""
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
        if name == "InputError" and (node.args or not any(k.arg == "texts" for k in node.keywords)):
            yield node.lineno, "InputError with a message of its own, not texts={...} in every language"
        elif name == "refusal" and (len(node.args) != 2 or not _has_cyrillic(node.args[1])):
            yield node.lineno, "refusal(en, ru) without its Russian text"


def test_the_scan_finds_refusals_in_one_language() -> None:
    source = ('raise InputError("Nothing to redo.")\nraise InputError(f"No passage {n}.")\n'
              'raise refusal("Nothing to redo.", "Nothing to redo.")\nraise errors.InputError(turn.say(T))\n'
              'raise refusal("Nothing to redo.", "Возвращать нечего.")\nraise InputError(texts=EMPTY)\n'
              'raise refusal(f"No passage {n}.", f"Отрывка {n} нет.")\nraise say.refusal_of(say.NO_STORY)\n')
    assert [line for line, _ in one_language_refusals(source)] == [1, 2, 3, 4]


def test_every_refusal_users_see_has_english_and_russian() -> None:
    assert REFUSING and all(path.exists() for path in REFUSING)
    problems = [f"{path.relative_to(PROJECT_ROOT).as_posix()}:{line}: {why}"
                for path in REFUSING for line, why in one_language_refusals(path.read_text(encoding="utf-8"))]
    assert not problems, "refusals users see in one language only:\n" + "\n".join(problems)


def test_every_text_table_in_yaml_has_english_and_russian() -> None:
    problems = []

    def walk(node, where: str) -> None:
        if isinstance(node, dict):
            keys = set(node)
            if keys and keys <= LANGUAGES and keys != LANGUAGES:
                problems.append(f"{where}: only {sorted(keys)}")
            for key, value in node.items():
                walk(value, f"{where}.{key}")
        elif isinstance(node, list):
            for index, item in enumerate(node):
                walk(item, f"{where}[{index}]")

    for path in YAML:
        walk(yaml.safe_load(path.read_text(encoding="utf-8")), path.relative_to(PROJECT_ROOT).as_posix())
    assert not problems, "text tables missing a language:\n" + "\n".join(problems)


def test_every_data_file_in_one_language_has_its_other_language() -> None:
    # skills/data/jokes.en.yaml and jokes.ru.yaml: a skill's texts kept one file per language.
    stems: dict[str, set[str]] = {}
    for path in YAML:
        name, _, language = path.stem.rpartition(".")
        if name and language in LANGUAGES:
            stems.setdefault(str(path.with_name(name)), set()).add(language)
    assert stems, "no per-language data files found"
    missing = {stem: LANGUAGES - found for stem, found in stems.items() if found != LANGUAGES}
    assert not missing, missing


def _object_keys(source: str, start: int) -> tuple[dict[str, tuple[int, int]], int]:
    """The top-level keys of the JavaScript object literal opening at `source[start] == "{"`, each with
    the span of its value; and the index after the closing brace. Strings and nesting are skipped."""
    keys: dict[str, tuple[int, int]] = {}
    depth, i, key, value_start = 0, start, None, 0
    while i < len(source):
        char = source[i]
        if char in "\"'`":
            i = _JS_STRING.match(source, i).end()
            continue
        if char in "{[(":
            depth += 1
        elif char in "}])":
            depth -= 1
            if depth == 0:
                if key is not None:
                    keys[key] = (value_start, i)
                return keys, i + 1
        elif depth == 1:
            name = re.compile(r"\s*([A-Za-z_$][\w$]*)\s*:").match(source, i)
            if name and (source[i - 1] in "{," or source[i] in " \n"):
                if key is not None:
                    keys[key] = (value_start, i)
                key, value_start = name.group(1), name.end()
                i = name.end()
                continue
        i += 1
    raise AssertionError("unclosed object literal")


@pytest.mark.parametrize("name", ["widget.js", "widget-story.js"])
def test_the_widget_has_every_ui_string_in_english_and_russian(name: str) -> None:
    source = (PROJECT_ROOT / "bot/web/static" / name).read_text(encoding="utf-8")
    start = source.index("var TEXTS = {") + len("var TEXTS = ")
    tables, _ = _object_keys(source, start)
    assert set(tables) == LANGUAGES
    keys = {}
    for language, (begin, _end) in tables.items():
        keys[language], _ = _object_keys(source, source.index("{", begin))
    assert set(keys["en"]) == set(keys["ru"]) and len(keys["en"]) > 10
    # Russian labels really are Russian (not English left in place), apart from names and symbols.
    same = [k for k in keys["en"] if source[slice(*keys["en"][k])].strip(" ,\n") ==
            source[slice(*keys["ru"][k])].strip(" ,\n")]
    assert set(same) <= {"bot", "top_p"}, same


def test_the_demo_page_has_both_languages() -> None:
    page = (PROJECT_ROOT / "bot/web/static/index.html").read_text(encoding="utf-8")
    assert 'data-lang="en"' in page and 'data-lang="ru"' in page
