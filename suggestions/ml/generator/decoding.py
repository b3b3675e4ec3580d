"""Constrained decoding: a trie of the token sequences of the shop's words.

Every word the generator may write is a path ``" word"`` → tokens in the trie;
:meth:`WordTrie.allowed` gives, for what has been generated so far, the tokens
that continue a known word or (after a whole word) start another or end the
text. Passed to ``generate(prefix_allowed_tokens_fn=...)``, the model cannot
write a word (a brand, an attribute) that is not in the list: the catalog's
words and the words of queries that passed the k-anonymity gate.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

_END = -1


class WordTrie:
    """Token trie of whole words, each encoded with a leading space.

    Args:
        tokenizer: A Hugging Face tokenizer (byte-level BPE: a word after a
            space is tokenised the same wherever it occurs).
        words: Allowed words.
        eos_id: Token that ends a generated text.
        max_words: Most words in one generated text.
    """

    def __init__(self, tokenizer, words: Iterable[str], eos_id: int, *, max_words: int = 8):
        self.root: dict[int, dict] = {}
        self.eos_id = eos_id
        self.max_words = max_words
        self.words: set[str] = set()
        for word in words:
            word = word.strip()
            if not word or " " in word or not any(ch.isalnum() for ch in word):
                continue  # punctuation ("-", "&") is no word to search for
            ids = tokenizer.encode(" " + word, add_special_tokens=False)
            if not ids or eos_id in ids:
                continue
            node = self.root
            for token in ids:
                node = node.setdefault(token, {})
            node[_END] = {}
            self.words.add(word)
        self._starts = [t for t in self.root if t != _END]
        # Words of one token and no longer word after them: not started twice.
        self._leaves = {t for t in self._starts if set(self.root[t]) == {_END}}

    def allowed(self, generated: Sequence[int], banned: frozenset[tuple[int, ...]] = frozenset(),
                required: frozenset[tuple[int, ...]] = frozenset()) -> list[int]:
        """Tokens allowed after ``generated`` (the tokens written after the prompt).

        A word is not written twice, the text may not end as one of ``banned``
        (token sequences: the seed itself), nor before every word of
        ``required`` (the seed's words the trie knows: a refinement keeps them)
        is written."""
        node, done, current = self.root, [], []
        for token in generated:
            token = int(token)
            if token == self.eos_id:
                return [self.eos_id]
            if node is not self.root and token in node:
                node = node[token]
                current.append(token)
            elif (node is self.root or _END in node) and token in self.root:
                if current:
                    done.append(tuple(current))
                node, current = self.root[token], [token]
            else:  # not a path of the trie (cannot happen under the constraint)
                return [self.eos_id]
        if node is self.root:
            return list(self._starts)
        options = [t for t in node if t != _END]
        if _END in node and tuple(current) not in done:
            if tuple(generated) not in banned and required <= {*done, tuple(current)}:
                options.append(self.eos_id)
            if len(done) + 1 < self.max_words:
                used = {w[0] for w in (*done, tuple(current)) if len(w) == 1 and w[0] in self._leaves}
                options.extend(t for t in self._starts if t not in used)
        return options or [self.eos_id]

    def known(self, tokens: tuple[int, ...]) -> bool:
        """Whether ``tokens`` spell a whole word of the trie."""
        node = self.root
        for token in tokens:
            if token not in node:
                return False
            node = node[token]
        return _END in node

    def prefix_fn(self, prompt_length: int, banned: Sequence[frozenset[tuple[int, ...]]] = (),
                  required: Sequence[frozenset[tuple[int, ...]]] = ()):
        """A ``prefix_allowed_tokens_fn`` for prompts left-padded to
        ``prompt_length``; ``banned[i]`` / ``required[i]``: see :meth:`allowed`,
        for the i-th prompt."""
        def allowed(batch_id: int, input_ids) -> list[int]:
            ban = banned[batch_id] if batch_id < len(banned) else frozenset()
            need = required[batch_id] if batch_id < len(required) else frozenset()
            return self.allowed(input_ids[prompt_length:].tolist(), ban, need)
        return allowed
