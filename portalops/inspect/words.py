"""The customer's sensitive-word list matched over published text: one Aho-Corasick automaton.

Written here, in pure Python, rather than taking pyahocorasick: the lists a county keeps are hundreds
to a few thousand words and the text is the site's published posts (megabytes at most), which this
walks once in linear time; a C extension would add a build and a pinned, hashed dependency to every
operator's machine for no measurable gain at that size. Matching is case-insensitive (``casefold``)
and finds overlapping words ("法轮" and "法轮功" both).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable


class WordMatcher:
    """Every occurrence of any of ``words`` in a text, in one pass."""

    def __init__(self, words: Iterable[str]) -> None:
        self.words = sorted({w.casefold() for w in words if w and w.strip()})
        self._goto: list[dict[str, int]] = [{}]
        self._fail: list[int] = [0]
        self._out: list[list[str]] = [[]]
        for word in self.words:
            node = 0
            for char in word:
                nxt = self._goto[node].get(char)
                if nxt is None:
                    nxt = len(self._goto)
                    self._goto[node][char] = nxt
                    self._goto.append({})
                    self._fail.append(0)
                    self._out.append([])
                node = nxt
            self._out[node].append(word)
        queue = deque(self._goto[0].values())
        while queue:
            node = queue.popleft()
            for char, child in self._goto[node].items():
                queue.append(child)
                fallback = self._fail[node]
                while fallback and char not in self._goto[fallback]:
                    fallback = self._fail[fallback]
                target = self._goto[fallback].get(char, 0)
                self._fail[child] = target if target != child else 0
                self._out[child] = self._out[child] + self._out[self._fail[child]]

    def __bool__(self) -> bool:
        return bool(self.words)

    def find(self, text: str) -> list[tuple[int, str]]:
        """(start offset, word) of every occurrence, in order of their end."""
        found: list[tuple[int, str]] = []
        node = 0
        for index, char in enumerate(text.casefold()):
            while node and char not in self._goto[node]:
                node = self._fail[node]
            node = self._goto[node].get(char, 0)
            for word in self._out[node]:
                found.append((index - len(word) + 1, word))
        return found

    def words_in(self, text: str) -> list[str]:
        """The distinct words found, in order of first appearance."""
        return list(dict.fromkeys(word for _, word in self.find(text)))
