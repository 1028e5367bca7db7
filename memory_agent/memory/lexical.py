"""Lexical relevance: the analyzer that turns text into terms, and BM25 over them.

Every memory stores its analyzed terms (`terms`: stem -> weight) and their total (`length`) in
its store value, so the lexical index lives in the same row as the memory and can never drift
from it. An episode (one sentence of a message) also carries the speaker's name and, at lower
weights, the words of the rest of its message and of the messages around it (what it answered,
what answered it): a reply like "Yes, twice last year!" is then found by the question it
answered. On PostgreSQL, BM25 is computed in SQL over the
user's rows (see `memory.pg`); on any other store, by `bm25_scores` here. Both use the same
formula and parameters.

See benchmarks/locomo.py and the README for what each of these measured on LoCoMo.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from functools import lru_cache

import snowballstemmer

from memory_agent.utils import words

K1 = 1.2
"""BM25 term-frequency saturation."""
B = 0.75
"""BM25 length normalisation."""
CONTEXT_BEFORE = 0.5
"""Weight of the words of the message an episode answered."""
CONTEXT_AFTER = 0.3
"""Weight of the words of the message that answered it."""
CONTEXT_MESSAGE = 0.3
"""Weight of the words of the rest of its message (an episode is one sentence of a message)."""

MAX_TERM_CHARS = 64
"""A longer word (a hash, a DNA sequence) is indexed by its first this many characters: every
term fits in an index row (PostgreSQL's btree holds about 2,700 bytes), and the same cut on
the query's words still finds it."""

STOPWORDS = frozenset(
    """a an the and or but if of to in on at by for with about as is am are was were be been
    being do does did have has had i me my mine myself you your yours yourself we our ours us
    he him his she her hers it its they them their theirs this that these those what which who
    whom whose when where why how not no so than too very can will just would could should
    shall may might must there here from into up down out over under again then once all any
    both each few more most other some such only own same s t d m ll re ve don didn doesn isn
    wasn aren weren won wouldn couldn shouldn haven hasn hadn now also oh yeah yes ok okay hey
    hi really""".split()
)
_STEMMER = snowballstemmer.stemmer("english")


@lru_cache(maxsize=65_536)
def stem(word: str) -> str:
    """The Snowball (Porter 2) stem of a lower-cased word."""
    stemmed: str = _STEMMER.stemWord(word)
    return stemmed


def analyze(text: str) -> list[str]:
    """The terms of `text`: lower-cased words, stop words dropped, stemmed."""
    return [stem(w[:MAX_TERM_CHARS]) for w in words(text) if w not in STOPWORDS]


def term_weights(parts: Iterable[tuple[str, float]]) -> dict[str, float]:
    """Weighted term frequencies of several texts (text, weight), rounded for storage."""
    weights: dict[str, float] = {}
    for text, weight in parts:
        if not text or weight <= 0:
            continue
        for term in analyze(text):
            weights[term] = weights.get(term, 0.0) + weight
    return {t: round(w, 3) for t, w in weights.items()}


def query_terms(text: str) -> list[str]:
    """The distinct terms of a query, in order."""
    return list(dict.fromkeys(analyze(text)))


def jaccard(a: Iterable[str], b: Iterable[str]) -> float:
    """Overlap of two term sets (1.0: the same words)."""
    sa, sb = set(a), set(b)
    if not sa and not sb:
        return 1.0
    return len(sa & sb) / len(sa | sb)


def similar_pairs(
    sets: Sequence[set[str]], threshold: float, *, min_terms: int = 3
) -> Iterator[tuple[int, int, float]]:
    """Pairs (i, j, Jaccard) of `sets` whose Jaccard similarity is at least `threshold`.

    Prefix filtering (Bayardo et al., "Scaling up all pairs similarity search"): with the terms
    of every set in one order (rarest first), two sets that similar share a term among the
    first len - ceil(threshold * len) + 1 of each, so only those are compared, not all pairs.
    Sets with fewer than `min_terms` terms are skipped.
    """
    df = Counter(t for s in sets for t in s)
    postings: dict[str, list[int]] = defaultdict(list)
    for j, terms in enumerate(sets):
        if len(terms) < min_terms:
            continue
        ordered = sorted(terms, key=lambda t: (df[t], t))
        prefix = ordered[: len(ordered) - math.ceil(threshold * len(ordered)) + 1]
        candidates: set[int] = set()
        for t in prefix:
            candidates.update(postings[t])
            postings[t].append(j)
        for i in sorted(candidates):
            similarity = jaccard(sets[i], terms)
            if similarity >= threshold:
                yield i, j, similarity


def bm25_scores(
    terms: Sequence[str], docs: Sequence[tuple[Mapping[str, float], float]]
) -> list[float]:
    """BM25 of each document (its term weights, its length) for the query `terms`.

    The collection is `docs` itself (document frequencies and the mean length are taken from
    it), exactly as the SQL version takes them from the user's rows.
    """
    n = len(docs)
    if n == 0 or not terms:
        return [0.0] * n
    avgdl = sum(length for _, length in docs) / n or 1.0
    df = {t: sum(1 for tf, _ in docs if t in tf) for t in terms}
    idf = {t: math.log(1 + (n - d + 0.5) / (d + 0.5)) for t, d in df.items() if d}
    scores: list[float] = []
    for tf, length in docs:
        score = 0.0
        norm = K1 * (1 - B + B * length / avgdl)
        for t, w in idf.items():
            f = tf.get(t)
            if f:
                score += w * f * (K1 + 1) / (f + norm)
        scores.append(score)
    return scores
