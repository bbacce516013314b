"""Prompts for a prompt model: the one check of a prompt and its guidance scale, and help while a person types.

Shared by the Sample and Edit tabs, the API and the CLI, so every one of them says the same sentence about an unknown
word (with the nearest known ones).
"""

from __future__ import annotations

from playground.checkpoints import Checkpoint
from playground.data.prompts import PromptError, nearest_words, words_of
from playground.diffusion.guidance import DEFAULT_GUIDANCE

MAX_GUIDANCE = 15.0


def check_prompt(checkpoint: Checkpoint, prompt: str | None, guidance=DEFAULT_GUIDANCE) -> tuple[str, float]:
    """A prompt and guidance scale this checkpoint can follow, or ValueError (PromptError) with one sentence."""
    prompt = (prompt or "").strip()
    try:
        guidance = float(DEFAULT_GUIDANCE if guidance is None else guidance)
    except (TypeError, ValueError):
        raise ValueError("The guidance scale must be a number, such as 3.") from None
    if not 0.0 <= guidance <= MAX_GUIDANCE:
        raise ValueError(f"The guidance scale must be between 0 and {MAX_GUIDANCE:g}; you asked for {guidance:g}.")
    if prompt and checkpoint.vocabulary is None:
        raise PromptError(f"{checkpoint.name!r} was trained without prompts, so it can't follow one: clear the "
                          "prompt, or choose a prompt model.")
    if prompt:
        checkpoint.vocabulary.encode(prompt)  # an unknown word: a sentence with the nearest known ones
    return prompt, guidance


def prompt_suggestions(checkpoint: Checkpoint, prompt: str | None, count: int = 10) -> str:
    """One line for the prompt box: words that complete the word being typed, or what is wrong with the prompt."""
    vocabulary = checkpoint.vocabulary
    if vocabulary is None:
        return ""
    words = words_of(prompt or "")
    if not words:
        return "Type words from emoji names, such as *cat*, *red heart*, *moon* or *smiling face with sunglasses*."
    try:
        vocabulary.encode(" ".join(words[:-1]))
    except PromptError as error:
        return f"⚠️ {error}"
    last = words[-1]
    if last in vocabulary.index and (prompt or "").rstrip() != (prompt or ""):
        return f"✓ All {len(words)} word{'s' * (len(words) > 1)} known."
    completions = [w for w in vocabulary.words if w.startswith(last)][:count]
    if last in vocabulary.index:
        return f"✓ All words known. Also: {', '.join(w for w in completions if w != last) or 'nothing longer'}."
    if completions:
        return f"Words starting with *{last}*: {', '.join(completions)}."
    near = nearest_words(last, vocabulary.words)
    return f"⚠️ No emoji name has *{last}*." + (f" Nearest: {', '.join(near)}." if near else "")
