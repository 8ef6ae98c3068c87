"""UserFactsAnnotator: what users say about themselves, their name ("my name is Olga", «меня зовут
Ольга») and what they like ("I love cats", «мне нравится осень»), as `values["user_facts"]`.

Patterns, not a model: a wrong name is worse than none, so the rules are cautious. "I'm X" and
«я X» count only with a capitalised X that is not a state or an adjective ("I'm Tired", «Я Рад»);
"my name is" / "call me" / «меня зовут» are unambiguous and take a lower-case name too.
"""

from __future__ import annotations

import re
from typing import Any

from bot.core.annotations import Annotations

# A story passage or a long letter is not an introduction; only the start of a message is read.
MAX_TEXT_CHARS = 400
MAX_LIKE_CHARS = 60
MAX_LIKE_WORDS = 8
MAX_LIKES = 5

_LETTERS = r"[^\W\d_]"
# A name word: letters, with an apostrophe or a hyphen inside ("O'Brien", "Mary-Jane", «Анна-Мария»).
_NAME_WORD = re.compile(rf"{_LETTERS}(?:{_LETTERS}|['’\-](?={_LETTERS}))*")
_NAME_START = re.compile(
    rf"(?:(?:just|simply|просто)\s+)?(?P<first>{_NAME_WORD.pattern})"
    rf"(?:(?P<gap>\.?[ \t]+)(?P<second>{_NAME_WORD.pattern}))?",
    re.IGNORECASE)
_QUOTED = re.compile(r"«[^»]*»|“[^”]*”|„[^“”]*[“”]|\"[^\"]*\"")
_LEADING_QUOTES = " \t\"'«“„‘"

# Words that follow "I'm"/"my name is" but are not names (compared lower-case). States, adjectives,
# nationalities, roles, fillers: "I'm Fine", "I'm English", "I'm New here", "call me Later".
_NOT_NAMES_EN = frozenset("""
a an the not no so very really just also too still only now new old young here there home back in out on off up
down over at from with into about for to of by as like because but and or if when then than that this it its
what who whom how why where which whatever anything something nothing everything someone somebody anyone nobody
fine good ok okay alright great well tired sad happy bored sorry sure busy free ready done hungry thirsty sick ill
cold hot warm lonely alone angry upset scared afraid excited glad lost confused curious interested serious kidding
joking going coming leaving trying looking thinking working doing feeling writing reading sleeping listening
waiting talking staying getting having making playing watching eating drinking learning studying living sitting
standing running walking using asking saying telling wondering hoping planning starting finishing
human person man woman boy girl guy lady gentleman student teacher developer programmer engineer writer author
doctor nurse parent mom mum dad mother father kid child adult teen teenager friend stranger user customer bot
robot ai beginner fan
english american british russian french german spanish italian chinese japanese korean ukrainian canadian
australian indian polish dutch swedish irish scottish welsh mexican brazilian turkish greek jewish muslim christian
catholic buddhist hindu atheist vegan vegetarian male female single married divorced pregnant retired
awesome amazing cool nice bad terrible awful exhausted sleepy stressed worried nervous better worse late early
positive negative right wrong left always never almost quite pretty kind sort all both one two first last
finally actually literally totally honestly definitely probably maybe perhaps afraid later tomorrow tonight today
soon again sometime anytime whenever crazy names name anytime please thanks thank hi hello hey yes yeah yep nope
my your his her our their me you him us them i myself yourself tandem bot btw lol haha
alive awake safe strong weak smart stupid dumb funny boring beautiful ugly tall short fat thin rich poor broke dead
certain calm cozy comfortable full sober outside inside online offline away around nearby near far unemployed
employed blessed grateful thankful proud jealous shy brave honest lucky unlucky cute special normal weird strange
different unique relaxed chill chilling hurt injured
""".split())
_NOT_NAMES_RU = frozenset("""
не ни из в во на за с со к ко по у о об от до для без под над при про через и а но или да нет вот тут здесь там
дома домой сейчас уже ещё еще тоже также сам сама сами просто очень так такой такая такое только почти вообще
рад рада устал устала готов готова согласен согласна уверен уверена здоров здорова болен больна занят занята
свободен свободна один одна счастлив счастлива грустный грустная весёлый веселый весёлая веселая голоден голодна
жив жива дома понял поняла знаю думаю хочу могу буду был была люблю тут
человек бот робот мужчина женщина парень девушка мальчик девочка студент студентка школьник школьница учитель
учительница врач программист разработчик писатель писательница мама папа ребёнок ребенок взрослый друг подруга
русский русская украинец украинка белорус белоруска москвич москвичка новичок фанат
кто что как где когда почему зачем который это этот эта то тот та
тебя тебе ты меня мне мой моя моё мое твой твоя его её ее их он она они мы
так-то типа кстати короче ну ладно
""".split())
# Titles kept with the name that follows: "call me Dr. Smith".
_TITLES = {"mr": "Mr.", "mrs": "Mrs.", "ms": "Ms.", "miss": "Miss", "dr": "Dr.", "doctor": "Doctor", "prof": "Prof.",
           "professor": "Professor", "sir": "Sir", "lady": "Lady", "captain": "Captain"}

# Unambiguous introductions: the name follows at once, lower-case allowed.
_INTRO_EN = re.compile(
    r"(?<![\w'’])(?:my\s+name\s+is|my\s+name['’]s|the\s+name['’]s|name['’]s|i\s+am\s+called|i['’]?m\s+called|"
    r"(?:people|everyone|everybody|friends|my\s+friends)\s+call\s+me|"
    r"(?:(?:you\s+(?:can|may|could)|please|pls|just|so)\s+)*call\s+me|i\s+go\s+by)\s*[:\-–—]?\s+",
    re.IGNORECASE)
_INTRO_RU = re.compile(
    r"(?<!\w)(?:меня\s+зовут|зовут\s+меня|меня\s+звать|звать\s+меня|мо[её]\s+имя|имя\s+мо[её]|меня\s+кличут)"
    r"\s*[:\-–—]?\s*(?=\S)", re.IGNORECASE)
# "Call me" in Russian takes the instrumental as often as not: «зови меня Сашей».
_CALL_RU = re.compile(r"(?<!\w)(?:(?:можешь|можно|лучше|просто|пожалуйста)\s+)*(?:зови|называй|звать|называть)"
                      r"\s+меня\s*[:\-–—]?\s*(?=\S)", re.IGNORECASE)
# "I'm X" / «я X»: a name only when capitalised, not a state, and followed by little else.
_IAM_EN = re.compile(r"(?<![\w'’])(?:i['’]m|i\s+am|im)\s+", re.IGNORECASE)
_IAM_RU = re.compile(r"(?<!\w)я\s+(?:[—–-]\s*)?", re.IGNORECASE)
_AFTER_NAME = re.compile(
    r"^\s*(?:$|[^\w\s]|(?:and|from|btw|here|i|nice|pleased|glad|how|what|who|but|so|by|lol|haha|"
    r"и|а|из|тут|здесь|но|кстати|приятно|рад|рада|как|что|кто)\b)", re.IGNORECASE)
_NEGATION_BEFORE = re.compile(r"(?:\b(?:don['’]?t|do\s+not|never|not|didn['’]?t)|(?<!\w)(?:не|ни|как))\s*$",
                              re.IGNORECASE)

_FORGET = re.compile(r"^\s*(?:please\s+|can\s+you\s+|could\s+you\s+)*(?:forget|delete|erase|remove)\b|"
                     r"^\s*(?:пожалуйста,?\s+)?(?:забудь|удали|сотри)\b", re.IGNORECASE)

# Likes.
_LIKE_EN = re.compile(
    r"(?<![\w'’])i\s+(?:(?:really|also|just|absolutely|totally|truly|do|so|simply|kind\s+of|kinda)\s+)*"
    r"(?:like|love|adore|enjoy)\s+"
    r"|(?<![\w'’])i(?:['’]m|\s+am)\s+(?:(?:really|so|very|also|totally)\s+)*"
    r"(?:into|a\s+(?:big\s+|huge\s+)?fan\s+of|crazy\s+about|passionate\s+about|fond\s+of)\s+",
    re.IGNORECASE)
_FAVOURITE_EN = re.compile(
    r"(?<![\w'’])my\s+(?:(?:absolute|all-time|very)\s+)?(?:favourite|favorite|fave|fav)\s+"
    r"(?:[\w'’-]+\s+){0,3}?(?:is|are|['’]s|would\s+be|has\s+to\s+be)\s+", re.IGNORECASE)
_LIKE_RU = re.compile(
    r"(?<!\w)(?:я\s+)?(?:(?:очень|тоже|просто|так|реально|безумно|ужасно|правда|всегда)\s+)*(?:люблю|обожаю)\s+",
    re.IGNORECASE)
_LIKE_RU_SINGULAR = re.compile(
    r"(?<!\w)мне\s+(?:(?:очень|тоже|просто|так|реально|безумно|ужасно|правда|всегда)\s+)*нравится\s+", re.IGNORECASE)
_LIKE_RU_PLURAL = re.compile(
    r"(?<!\w)мне\s+(?:(?:очень|тоже|просто|так|реально|безумно|ужасно|правда|всегда)\s+)*нравятся\s+", re.IGNORECASE)
_FAVOURITE_RU_DASH = re.compile(
    r"(?<!\w)(?:мой|моя|моё|мое|мои)\s+(?:(?:самый|самая|самое|самые)\s+)?любим(?P<ending>ый|ая|ое|ые)\s+"
    r"(?:[^\W\d_]+\s*){1,3}?\s*(?:[—–:]|\s-\s)\s*(?:это\s+)?", re.IGNORECASE)
_FAVOURITE_RU = re.compile(
    r"(?<!\w)(?:мой|моя|моё|мое|мои)\s+(?:(?:самый|самая|самое|самые)\s+)?любим(?P<ending>ый|ая|ое|ые)\s+"
    r"[^\W\d_]+\s+(?:это\s+)?(?=\S)", re.IGNORECASE)
# A question about likes ("do I like cats?", "what do I love?") is not a statement of one.
_QUESTION_BEFORE = re.compile(r"\b(?:do|did|does|would|could|should|if|whether|why|what|how|don['’]?t|doesn['’]?t|"
                              r"not|never|no\s+longer|no)\s*$|(?<!\w)(?:не|ни|что|ли|разве|почему|за\s+что)\s*$",
                              re.IGNORECASE)
# Where a like ends: punctuation, or a word that starts another clause.
_LIKE_END = re.compile(
    r"[.;:!?()\[\]…\n]|\s[—–-]\s|(?<=[\s,])(?:but|because|cause|since|though|although|when|whenever|if|so|as\s+well|too|"
    r"which|who|that\s+is|a\s+lot|very\s+much|so\s+much|more\s+than|than|lol|haha|btw|"
    r"но|потому|когда|если|хотя|так\s+как|тоже|больше\s+всего|очень|а\s+ещё|а\s+еще|а\s+также|а\s+ты|а\s+вот|"
    r"ведь|лол|кстати)(?=\s|$)",
    re.IGNORECASE)
_LIKE_SPLIT = re.compile(r"\s*,\s*(?:(?:and|or|и|или)\s+)?|\s+(?:and|&|or|plus|as\s+well\s+as|и|или|а\s+также)\s+",
                         re.IGNORECASE)
_NOT_LIKE_FIRST = frozenset("""
it its this that these those them him her you your yours ya u ur us me myself when how what where why who which
whatever to-be being something anything everything nothing all none some much lots most neither either here there
not no talking chatting
i we he she they it's it’s that's i'm im you're they're we're i've i'd i'll there's
тебя тебе тобой ты его её ее их него неё нее это этого эту этот эта эти этих то того так такое такие
всё все всех всем когда что как где чем кого себя сам сама меня мне ничего никого не ни нет да вот там тут здесь
и а но очень больше меньше твой твою твоя твоё твое твои твоих твоего я мы он она они
""".split())
# Words that show the like is about the bot or this chat ("I like your jokes", «мне нравится с тобой говорить»).
_ABOUT_US = frozenset("""
you your yours u ur tandem bot
тебя тебе тобой ты твой твоя твою твоё твое твои твоих твоим твоей тандем бот бота ботом
""".split())
# A like that is only one of these is about the conversation, not the user ("I like the idea").
# The formal "you" in all its forms, for both lists above («я люблю вас», «мне нравится ваш бот»).
_FORMAL_YOU = re.compile(r"^(?:вы|вас|вам|вами|ваш\w*)$", re.IGNORECASE)
_META = frozenset("""
idea ideas story stories plot ending beginning answer answers reply replies joke jokes fact facts option options
suggestion version one ones name chat conversation question questions way fact
идея идею идеи история историю истории сюжет концовка концовку конец начало ответ ответы вариант варианты
продолжение финал имя шутка шутку шутки анекдот анекдоты факт вопрос разговор
""".split())
_DETERMINERS = ("the ", "a ", "an ", "this ", "that ", "our ", "эта ", "эту ", "этот ", "наша ", "нашу ", "наш ")
_PREPOSITIONS_RU = frozenset("в во на с со по из у о об для без под над за про к ко от до при через".split())
_MALE_EJ_NAMES = frozenset("андрей алексей сергей матвей тимофей гордей елисей корней евсей моисей".split())
_NOMINATIVE_EM = frozenset("артем ефрем салем".split())


class UserFactsAnnotator:
    """Finds the user's name and likes in a message; sets `values["user_facts"]` only when it found one."""

    name = "user_facts"

    async def annotate(self, text: str, annotations: Annotations) -> None:
        facts = extract_user_facts(text)
        if facts:
            annotations.values[self.name] = facts


def extract_user_facts(text: str) -> dict[str, Any]:
    """{"name": "Olga", "likes": ["cats"]}, with only the keys found; {} for none."""
    text = text[:MAX_TEXT_CHARS]
    if _FORGET.match(text):
        return {}  # "forget that I like cats" takes a like away (skills/profile.py), not adds one
    quoted = _quoted_spans(text)
    facts: dict[str, Any] = {}
    name = find_name(text, quoted)
    if name:
        facts["name"] = name
    likes = find_likes(text, quoted)
    if likes:
        facts["likes"] = likes
    return facts


# --- the name ----------------------------------------------------------------


def find_name(text: str, quoted: list[tuple[int, int]] | None = None) -> str | None:
    quoted = _quoted_spans(text) if quoted is None else quoted
    for pattern, capitalised, instrumental in ((_INTRO_EN, False, False), (_INTRO_RU, False, False),
                                               (_CALL_RU, False, True), (_IAM_EN, True, False),
                                               (_IAM_RU, True, False)):
        for found in pattern.finditer(text):
            if _inside(found.start(), quoted) or _NEGATION_BEFORE.search(text[:found.start()]):
                continue
            name = _take_name(text[found.end():], capitalised=capitalised, instrumental=instrumental)
            if name:
                return name
    return None


def _quoted_spans(text: str) -> list[tuple[int, int]]:
    return [m.span() for m in _QUOTED.finditer(text)]


def _inside(position: int, spans: list[tuple[int, int]]) -> bool:
    return any(start < position < end for start, end in spans)


def _take_name(rest: str, *, capitalised: bool, instrumental: bool) -> str | None:
    """The name at the start of `rest`: one name word, and a second one when it is capitalised
    ("Olga Petrova"), or a title and a name ("Dr. Smith"); None when it is not a name."""
    found = _NAME_START.match(rest.lstrip(_LEADING_QUOTES))
    if found is None:
        return None
    first, second = found.group("first"), found.group("second")
    after = found.string[found.end("first"):]
    title = _TITLES.get(first.casefold())
    if title and second and second[0].isupper():
        words, after = [title, second], found.string[found.end("second"):]
    elif not _is_name_word(first, capitalised=capitalised):
        return None
    elif second and "." not in found.group("gap") and _is_name_word(second, capitalised=False) and (
            second[0].isupper() or _lower_full_name(first, second, found.string[found.end("second"):], capitalised)):
        words, after = [first, second], found.string[found.end("second"):]
    else:
        words = [first]
    if capitalised and not _AFTER_NAME.match(after):
        return None  # "I'm Going home": more of a sentence than a name
    if instrumental and len(words) == 1:
        words = [_nominative(first)]
    return " ".join(_name_case(w) for w in words)


def _lower_full_name(first: str, second: str, after: str, capitalised: bool) -> bool:
    """"my name is olga petrova": a lower-case surname, after an unambiguous phrase, at the end."""
    return not capitalised and first.islower() and second.islower() and re.match(r"\s*(?:$|[^\w\s])", after) is not None


def _is_name_word(word: str, *, capitalised: bool) -> bool:
    folded = word.casefold()
    if folded in _NOT_NAMES_EN or folded in _NOT_NAMES_RU or not 2 <= len(word) <= 30:
        return False
    if capitalised and not word[0].isupper():
        return False
    # "I'm Travelling": a verb, whatever the stop list misses.
    return not (capitalised and len(word) > 5 and folded.endswith("ing"))


def _name_case(word: str) -> str:
    """"olga" / "OLGA" -> "Olga", "mary-jane" -> "Mary-Jane"; "McKenzie" as written."""
    if word.islower() or word.isupper():
        return "-".join(part[:1].upper() + part[1:].lower() for part in word.split("-"))
    return word


def _nominative(word: str) -> str:
    """«Сашей» -> «Саша», «Иваном» -> «Иван», «Игорем» -> «Игорь»: the instrumental of «зови меня …»
    back to the name (a nominative «зови меня Андрей» stays)."""
    low = word.casefold()
    if not re.fullmatch(r"[а-яё-]+", low) or len(low) < 4:
        return word
    stem = word[:-2]
    if low in _MALE_EJ_NAMES or low in _NOMINATIVE_EM:
        return word
    if low.endswith("ой"):
        return stem + "а"
    if low.endswith("ей"):
        return stem + ("а" if stem[-1:].casefold() in "шжчщц" else "я")
    if low.endswith(("ом", "ём")) and len(stem) >= 3:
        return stem
    if low.endswith("ем") and len(stem) >= 3:
        return stem + ("й" if stem[-1:].casefold() in "аеёиоуыэюя" else "ь")
    if low.endswith("ью"):
        return stem + "ь"
    return word


# --- likes -------------------------------------------------------------------


def find_likes(text: str, quoted: list[tuple[int, int]] | None = None) -> list[str]:
    quoted = _quoted_spans(text) if quoted is None else quoted
    found: list[tuple[int, int, str]] = []  # (where, order within the phrase, like)
    patterns = ((_LIKE_EN, False), (_FAVOURITE_EN, False), (_LIKE_RU, False), (_LIKE_RU_SINGULAR, True),
                (_LIKE_RU_PLURAL, False), (_FAVOURITE_RU_DASH, None), (_FAVOURITE_RU, None))
    taken_until = -1
    for pattern, to_accusative in patterns:
        for match in pattern.finditer(text):
            if match.start() < taken_until or _inside(match.start(), quoted):
                continue
            if _QUESTION_BEFORE.search(text[:match.start()]):
                continue
            singular = to_accusative if to_accusative is not None else match.group("ending") != "ые"
            for order, like in enumerate(_take_likes(text[match.end():], accusative=singular and _is_russian(text))):
                found.append((match.start(), order, like))
            if pattern is _FAVOURITE_RU_DASH:
                taken_until = max(taken_until, match.end())
    likes: list[str] = []
    for _, _, like in sorted(found):
        if like.casefold() not in {x.casefold() for x in likes}:
            likes.append(like)
    return likes[:MAX_LIKES]


def _is_russian(text: str) -> bool:
    return re.search(r"[а-яё]", text, re.IGNORECASE) is not None


def _take_likes(rest: str, *, accusative: bool) -> list[str]:
    """The short noun phrases at the start of `rest`: "cats and rainy days, but..." -> cats, rainy days."""
    quote = re.match(r"\s*(«[^»]{1,58}»|“[^”]{1,58}”|\"[^\"]{1,58}\")", rest)
    if quote:  # a title in quotes is one like, whatever is inside it
        return [quote.group(1)]
    end = _LIKE_END.search(rest)
    phrase = rest[: end.start()] if end else rest
    likes = []
    for part in _LIKE_SPLIT.split(phrase):
        part = part.strip(" \t\"'«»“”")
        if not part:
            break
        first = part.split()[0].casefold()
        if first in _NOT_LIKE_FIRST or _FORMAL_YOU.match(first):
            break  # "cats and I also like dogs": the rest is another clause
        like = _clean_like(part, accusative=accusative)
        if like:
            likes.append(like)
    return likes


def _clean_like(part: str, *, accusative: bool) -> str | None:
    words = part.split()
    folded = [w.casefold().strip("'’\"") for w in words]
    if len(part) > MAX_LIKE_CHARS or len(words) > MAX_LIKE_WORDS:
        return None
    if any(w in _ABOUT_US or _FORMAL_YOU.match(w) for w in folded) or part.casefold().startswith(("the way", "to be ", "it when")):
        return None
    bare = part.casefold()
    for determiner in _DETERMINERS:
        bare = bare.removeprefix(determiner)
    if bare in _META:
        return None
    if folded[0] == "to" and len(words) > 1:
        words = [_gerund(words[1]), *words[2:]]  # "I like to swim" -> swimming
    elif accusative:
        words = _accusative(words)
    like = " ".join(words)
    return like.lower() if like.isupper() and len(like) > 3 else like


def _gerund(verb: str) -> str:
    low = verb.casefold()
    if low.endswith("ie"):
        return verb[:-2] + "ying"
    if low.endswith("e") and not low.endswith(("ee", "ye", "oe")) and len(low) > 2:
        return verb[:-1] + "ing"
    if re.fullmatch(r"[^aeiou]*[aeiou][bdgklmnprt]", low) and len(low) <= 4:
        return verb + verb[-1] + "ing"  # swim -> swimming, run -> running, shop -> shopping
    return verb + "ing"


def _accusative(words: list[str]) -> list[str]:
    """«пицца» -> «пиццу», «итальянская кухня» -> «итальянскую кухню»: what «мне нравится X» names,
    put as «ты любишь X» needs it. Stops at a preposition or an infinitive; other words stay."""
    out = list(words)
    for i, word in enumerate(words):
        low = word.casefold()
        if low in _PREPOSITIONS_RU or low.endswith(("ть", "ти", "чь", "ться", "тись")):
            break
        if not re.fullmatch(r"[а-яё-]+", low):
            continue
        if low.endswith("ая"):
            out[i] = word[:-2] + _same_case(word[-2:], "ую")
        elif low.endswith("яя"):
            out[i] = word[:-2] + _same_case(word[-2:], "юю")
        elif low.endswith("а") and len(low) > 2:
            out[i] = word[:-1] + _same_case(word[-1], "у")
        elif low.endswith("я") and len(low) > 2 and low not in ("моя",):
            out[i] = word[:-1] + _same_case(word[-1], "ю")
        elif low == "моя":
            out[i] = _same_case(word[0], "м") + "ою"
    return out


def _same_case(original: str, replacement: str) -> str:
    return replacement.upper() if original.isupper() else replacement
