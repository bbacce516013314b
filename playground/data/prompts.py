"""Prompts from the emoji's own names: the vocabulary is every word of the CLDR names in emoji-test.txt
("grinning cat with smiling eyes", "red heart", "alarm clock"), and a prompt is any of those words in any order.

    vocabulary = emoji_vocabulary(read_emoji_test())   # about 1,900 words
    vocabulary.encode("red heart")                      # [ids], 1-based (0 pads a batch)
    vocabulary.encode("kat")                            # PromptError: 'kat' is not a word ... cat, hat, bat?
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch

WORD = re.compile(r"[a-z0-9]+")


class PromptError(ValueError):
    """A prompt that can't be used; ``str(error)`` is one sentence naming the nearest known words."""


def words_of(text: str) -> list[str]:
    """The words of a name or prompt: lower case, letters and digits ("o’clock" is "o" and "clock")."""
    return WORD.findall(text.lower())


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance: insertions, deletions and substitutions."""
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, start=1):
        current = [i]
        for j, y in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


def nearest_words(word: str, words: Iterable[str], count: int = 5) -> list[str]:
    """Known words within two edits of ``word``, the closest and the most alike in length first."""
    scored = sorted((edit_distance(word, w), abs(len(w) - len(word)), w) for w in words if abs(len(w) - len(word)) <= 2)
    return [w for distance, _, w in scored if distance <= 2][:count]


@dataclass(frozen=True)
class Vocabulary:
    words: tuple[str, ...]
    index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "index", {word: i + 1 for i, word in enumerate(self.words)})

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, prompt: str, drop_unknown: bool = False) -> list[int]:
        """The word ids of ``prompt`` (empty for an empty prompt: the unconditional model). A word the model never
        learned raises PromptError with the nearest known ones, or with ``drop_unknown`` is left out."""
        ids, unknown = [], []
        for word in words_of(prompt or ""):
            if word in self.index:
                ids.append(self.index[word])
            else:
                unknown.append(word)
        if unknown and not drop_unknown:
            word = unknown[0]
            near = nearest_words(word, self.words)
            hint = f" The nearest known words: {', '.join(near)}." if near else " Try words from emoji names, " \
                "such as cat, heart, moon or face."
            raise PromptError(f"{word!r} is not a word of any emoji's name, so the model never learned it.{hint}")
        return ids

    def batch(self, prompts: list[str], drop_unknown: bool = False) -> torch.Tensor:
        """(B, L) word ids, padded with 0 to the longest prompt (at least one column)."""
        encoded = [self.encode(p, drop_unknown) for p in prompts]
        length = max([1, *(len(e) for e in encoded)])
        return torch.tensor([e + [0] * (length - len(e)) for e in encoded], dtype=torch.long)


def emoji_vocabulary(names: Iterable[str]) -> Vocabulary:
    """Every word of the given emoji names, sorted."""
    return Vocabulary(tuple(sorted({word for name in names for word in words_of(name)})))
