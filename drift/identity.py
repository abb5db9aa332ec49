"""Who a reviewer is: one canonical name per person, and names that look alike are one person.

A name typed on a command line or read from the environment is free text, so two
spellings of one person (``Bob``/``bob``, a fullwidth ``ａｌｉｃｅ``) or a look-alike
(``alіce`` with a Cyrillic ``і``) must not count as two approvers. The rules:

* **Canonical form**: Unicode NFKC, then case folding, then surrounding white space
  removed. ``Bob``, ``BOB`` and ``ｂｏｂ`` are all ``bob``.
* **Allowed characters**: letters and combining marks, ASCII digits and ``. _ - @ +``;
  no white space, control or other characters inside.
* **One script**: every letter of a name belongs to one Unicode script (ASCII letters
  are Latin). ``alіce`` mixes Latin and Cyrillic and is refused; ``алиса`` is fine.
* **Look-alikes are one person**: :func:`skeleton` maps letters that look like Latin
  ones (Cyrillic ``а е о р с у х і ј ѕ``..., Greek ``α ο ρ ν``..., the digits ``0``
  and ``1``) to them, and two names with the same skeleton are the same person when
  requesters and approvers are compared (:func:`same_person`). A whole-script
  look-alike such as Cyrillic ``аре`` therefore cannot pass for a second ``ape``.
"""

from __future__ import annotations

import unicodedata
from typing import Final

from drift.errors import ReviewError

__all__ = ["canonical", "same_person", "script_of", "skeleton"]

_PUNCTUATION: Final = frozenset("._-@+")

# Lower-case letters of other scripts (and of Latin extensions) that render like a
# Latin letter in common fonts, after NFKC and case folding. A subset of Unicode's
# confusables.txt: the letters an impersonator would pick for a Latin user name.
_CONFUSABLES: Final[dict[str, str]] = {
    # Cyrillic
    "а": "a", "в": "b", "е": "e", "ё": "e", "һ": "h", "і": "i", "ї": "i", "ј": "j", "к": "k",
    "ӏ": "l", "м": "m", "н": "h", "о": "o", "р": "p", "ԛ": "q", "г": "r", "ѕ": "s", "т": "t",
    "с": "c", "ц": "u", "ѵ": "v", "ԝ": "w", "х": "x", "у": "y", "ү": "y", "ԁ": "d", "ɡ": "g",
    # Greek
    "α": "a", "β": "b", "ε": "e", "η": "n", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p",
    "τ": "t", "υ": "u", "χ": "x", "γ": "y", "ω": "w", "ϲ": "c", "ϳ": "j",
    # Latin look-alikes and digits
    "ı": "i", "ɑ": "a", "ɩ": "i", "0": "o", "1": "l",
}


def _folded(name: str) -> str:
    return unicodedata.normalize("NFKC", name).casefold().strip()


def script_of(char: str) -> str | None:
    """The script of a letter (``LATIN``, ``CYRILLIC``, ...); None for marks, digits, punctuation.

    >>> script_of("a"), script_of("і"), script_of("1")
    ('LATIN', 'CYRILLIC', None)
    """
    if char.isascii():
        return "LATIN" if char.isalpha() else None
    if not unicodedata.category(char).startswith("L"):
        return None
    name = unicodedata.name(char, "")
    return name.split(" ", 1)[0] if name else "UNKNOWN"


def canonical(name: str, what: str = "the reviewer") -> str:
    """``name`` in canonical form (NFKC, case-folded, trimmed), or :class:`ReviewError`.

    >>> canonical(" Bob "), canonical("ＡＬＩＣＥ")
    ('bob', 'alice')
    >>> canonical("alіce")
    Traceback (most recent call last):
    ...
    drift.errors.ReviewError: the reviewer 'alіce' mixes scripts (CYRILLIC, LATIN): a name's letters must all be of one script
    """
    folded = _folded(name)
    if not folded:
        raise ReviewError(f"{what} must name a person; got {name!r}")
    scripts: set[str] = set()
    for char in folded:
        category = unicodedata.category(char)
        if char.isascii():
            if not (char.isalnum() or char in _PUNCTUATION):
                raise ReviewError(
                    f"{what} {name!r} holds {char!r}: a name has letters, digits and . _ - @ + only"
                )
        elif not (category.startswith("L") or category.startswith("M")):
            raise ReviewError(
                f"{what} {name!r} holds {char!r} ({unicodedata.name(char, 'U+%04X' % ord(char))}): "
                f"a name has letters, ASCII digits and . _ - @ + only"
            )
        script = script_of(char)
        if script is not None:
            scripts.add(script)
    if len(scripts) > 1:
        raise ReviewError(
            f"{what} {name!r} mixes scripts ({', '.join(sorted(scripts))}): a name's letters must all be "
            f"of one script"
        )
    return folded


def skeleton(name: str) -> str:
    """What ``name`` looks like: its folded form with look-alike letters mapped to Latin.

    Never raises, so names stored before these rules still compare.

    >>> skeleton("Аlice") == skeleton("alice") == skeleton("ａｌｉｃｅ")
    True
    """
    folded = unicodedata.normalize("NFD", _folded(name))
    # Accents do not make a different person either: "alicé" looks like "alice".
    bare = "".join(c for c in folded if not unicodedata.category(c).startswith("M"))
    return "".join(_CONFUSABLES.get(c, c) for c in unicodedata.normalize("NFC", bare))


def same_person(a: str | None, b: str | None) -> bool:
    """Whether two names are one person: equal after folding, or alike (:func:`skeleton`).

    >>> same_person("Bob", "bob"), same_person("alice", "alіce"), same_person("alice", "bob")
    (True, True, False)
    """
    if a is None or b is None:
        return False
    return skeleton(a) == skeleton(b)
