"""Words with timings → readable cues: line length, lines per cue, time on screen, gaps
and reading speed, breaking at punctuation and never inside a word."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from subtitled.config import CueLimits
from subtitled.engines.base import Segment, Word

_SENTENCE_END = (".", "?", "!", "…", "。", "？", "！")
_CLAUSE_END = (",", ";", ":", "—", "–", "、", "，", "；", "：")


@dataclass(frozen=True)
class Cue:
    start_seconds: float
    end_seconds: float
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    @property
    def char_count(self) -> int:
        return sum(len(line) for line in self.lines)


def segment_words(segment: Segment) -> list[Word]:
    """The segment's words; without word timings, its text split on spaces with the time
    shared out by length."""
    if segment.words:
        return [w for w in segment.words if w.text.strip()]
    parts = segment.text.split()
    total = sum(len(p) for p in parts) or 1
    span = segment.end_seconds - segment.start_seconds
    words, start = [], segment.start_seconds
    for part in parts:
        end = start + span * len(part) / total
        words.append(Word(start, end, " " + part))
        start = end
    return words


def _join(words: Sequence[Word]) -> str:
    return "".join(w.text for w in words).strip()


def _break_bonus(word: Word) -> int:
    text = word.text.rstrip()
    if text.endswith(_SENTENCE_END):
        return 3
    return 1 if text.endswith(_CLAUSE_END) else 0


def layout(words: Sequence[Word], limits: CueLimits) -> tuple[str, ...] | None:
    """The best split of `words` into at most max_lines lines of at most max_line_chars,
    breaking only between words; None when they do not fit."""
    text = _join(words)
    if len(text) <= limits.max_line_chars:
        return (text,)
    if limits.max_lines < 2:
        return None
    best: tuple[float, tuple[str, ...]] | None = None
    for cut in range(1, len(words)):
        head = _join(words[:cut])
        if len(head) > limits.max_line_chars:
            break
        rest = layout(words[cut:], replace(limits, max_lines=limits.max_lines - 1))
        if rest is None:
            continue
        lengths = [len(head), *(len(line) for line in rest)]
        # Balanced lines read best; a break after punctuation reads better still.
        cost = (max(lengths) - min(lengths)) - 8 * _break_bonus(words[cut - 1])
        if best is None or cost < best[0]:
            best = (cost, (head, *rest))
    return best[1] if best else None


def _split_long_word(word: Word, limit: int) -> list[Word]:
    """Last resort for one 'word' longer than a line (a URL, unspaced text)."""
    text = word.text.strip()
    pieces = [text[i : i + limit] for i in range(0, len(text), limit)]
    span = (word.end_seconds - word.start_seconds) / len(pieces)
    return [Word(word.start_seconds + i * span, word.start_seconds + (i + 1) * span,
                 (" " if i == 0 else "") + p, word.probability) for i, p in enumerate(pieces)]


def group_words(words: Sequence[Word], limits: CueLimits) -> list[list[Word]]:
    """Greedy grouping: a cue ends at a long pause, at the end of a sentence once it has
    been on screen long enough, or when the next word would not fit; then it is cut back
    to its last punctuation if that lies in its second half."""
    groups: list[list[Word]] = []
    current: list[Word] = []
    queue = [p for w in words for p in (
        _split_long_word(w, limits.max_line_chars)
        if len(w.text.strip()) > limits.max_line_chars else [w])]
    for word in queue:
        if current and _must_break(current, word, limits):
            cut = len(current)
            if _overflows(current, word, limits) and not _paused(current, word, limits):
                cut = _best_cut(current, limits)
            groups.append(current[:cut])
            current = current[cut:]
            if current and _must_break(current, word, limits):
                groups.append(current)
                current = []
        current.append(word)
    if current:
        groups.append(current)
    return groups


def _overflows(current: Sequence[Word], word: Word, limits: CueLimits) -> bool:
    if not current:
        return False
    too_long = word.end_seconds - current[0].start_seconds > limits.max_duration_seconds
    return too_long or layout([*current, word], limits) is None


def _paused(current: Sequence[Word], word: Word, limits: CueLimits) -> bool:
    return word.start_seconds - current[-1].end_seconds > limits.max_word_gap_seconds


def _must_break(current: Sequence[Word], word: Word, limits: CueLimits) -> bool:
    if _paused(current, word, limits):
        return True
    shown = current[-1].end_seconds - current[0].start_seconds
    if _break_bonus(current[-1]) == 3 and shown >= limits.min_duration_seconds:
        return True
    return _overflows(current, word, limits)


def _best_cut(current: Sequence[Word], limits: CueLimits) -> int:
    """Where to end a cue that cannot take the next word: after the strongest punctuation,
    else at the longest pause, among cuts that leave the first part on screen long enough;
    ties go to the later cut so cues stay full."""
    best, best_score = len(current), 0.0
    for index in range(1, len(current)):
        shown = current[index - 1].end_seconds - current[0].start_seconds
        if shown < limits.min_duration_seconds:
            continue
        pause = current[index].start_seconds - current[index - 1].end_seconds
        score = _break_bonus(current[index - 1]) + min(max(pause, 0.0), 1.0)
        if score >= best_score and score > 0.2:
            best, best_score = index, score
    return best


# A cue too fast to read even when held to the next one may come up this much before its
# first word, into the pause before it: dense dialogue leaves no room after a cue, often
# some before. Within the start-error target (0.3 s), so it is not seen as early.
MAX_LEAD_IN_SECONDS = 0.3
# Still too fast, it may stay up this much into the next cue's first words, when that cue
# has more time than its own reading needs: the next comes up that much late (a lag). Fast
# speech runs on into a slower line more often than it follows a pause, and this is the
# same bound as the lead-in, from the other side.
MAX_LAG_SECONDS = MAX_LEAD_IN_SECONDS


def time_cues(groups: Sequence[Sequence[Word]], limits: CueLimits) -> list[Cue]:
    """Timings that hold the limits: start at the first word (never before the previous cue
    ends plus the gap), at least min and at most max duration, then as long as reading
    speed asks and the next cue allows; still too fast, a little earlier (a lead-in), then
    a little into the next cue where that one has time to spare (a lag)."""
    cues: list[Cue] = []
    for index, group in enumerate(groups):
        lines = layout(group, limits) or (_join(group),)
        start = max(group[0].start_seconds, 0.0)
        if cues:
            start = max(start, cues[-1].end_seconds + limits.min_gap_seconds)
        chars = sum(len(line) for line in lines)
        wanted = max(group[-1].end_seconds, start + chars / limits.max_chars_per_second,
                     start + limits.min_duration_seconds)
        end = min(wanted, start + limits.max_duration_seconds)
        if index + 1 < len(groups):
            next_start = groups[index + 1][0].start_seconds - limits.min_gap_seconds
            end = max(min(end, next_start), start + limits.min_duration_seconds)
        short = chars / limits.max_chars_per_second - (end - start)
        if short > 0:
            earliest = cues[-1].end_seconds + limits.min_gap_seconds if cues else 0.0
            start = max(earliest, start - min(short, MAX_LEAD_IN_SECONDS),
                        end - limits.max_duration_seconds, 0.0)
        cues.append(Cue(round(start, 3), round(end, 3), lines))
    return _lag(cues, [group[0].start_seconds for group in groups], limits)


def _lag(cues: list[Cue], onsets: Sequence[float], limits: CueLimits) -> list[Cue]:
    """Each cue still too fast to read takes what it lacks, up to MAX_LAG_SECONDS, from the
    start of the next cue, leaving that one the time its own reading needs."""
    for index in range(len(cues) - 1):
        cue, following = cues[index], cues[index + 1]
        short = cue.char_count / limits.max_chars_per_second - _duration(cue)
        if short <= 0:
            continue
        need = max(following.char_count / limits.max_chars_per_second,
                   limits.min_duration_seconds)
        late = max(following.start_seconds - onsets[index + 1], 0.0)
        take = min(short, MAX_LAG_SECONDS - late, _duration(following) - need,
                   limits.max_duration_seconds - _duration(cue))
        if take > 0.0005:
            cues[index] = replace(cue, end_seconds=round(cue.end_seconds + take, 3))
            cues[index + 1] = replace(following,
                                      start_seconds=round(following.start_seconds + take, 3))
    return cues


def _duration(cue: Cue) -> float:
    return cue.end_seconds - cue.start_seconds


def shape_cues(words: Sequence[Word], limits: CueLimits) -> list[Cue]:
    ordered = sorted(words, key=lambda w: w.start_seconds)
    return time_cues(group_words(ordered, limits), limits)
