#!/usr/bin/env python3
"""Renders published chat templates with transformers, as the reference for cdr-prompt's renderer.

Input: a folder of `*.jinja` chat templates (tools/fetch_assets.sh templates puts the ~70
templates that llama.cpp collects from published models under .cache/assets/templates/; they are
third-party files, so they are fetched, never committed). Output: one JSON file with, for every
template and every conversation below, what transformers renders for
`add_generation_prompt=True` (the prompt) and for the conversation plus an assistant turn with
`add_generation_prompt=False` (prompt and response), or the error it raises.

transformers is the reference, not a jinja2 imitation of it: rendering goes through
`transformers.utils.chat_template_utils.render_jinja_template`, the function
`apply_chat_template(tokenize=False)` calls, with the special tokens a tokenizer passes.

    python3 -m venv .cache/venv-templates
    .cache/venv-templates/bin/pip install transformers==5.24.0
    .cache/venv-templates/bin/python tools/template_conformance.py \
        .cache/assets/templates .cache/assets/templates/expected.json

cdr-prompt/tests/published_templates.rs compares cdr's rendering with the file.
"""

import json
import sys
from pathlib import Path

import transformers
from transformers.utils.chat_template_utils import render_jinja_template

# The special tokens a tokenizer hands every template (apply_chat_template passes its
# special_tokens_map); cdr passes the same two.
SPECIAL = {"bos_token": "<s>", "eos_token": "</s>"}


def user(text):
    return {"role": "user", "content": text}


def assistant(text):
    return {"role": "assistant", "content": text}


def system(text):
    return {"role": "system", "content": text}


# name, messages, response. Written for this project; they exercise what scoring datasets hold:
# a bare question, a system prompt, a multi-turn history, and text with characters templates
# treat specially (quotes, braces, backslashes, newlines, non-ASCII, leading/trailing spaces).
CASES = [
    ("single-user", [user("What is the capital of France?")], "Paris."),
    (
        "system-user",
        [system("You are a terse assistant."), user("Name a prime number.")],
        "Seven.",
    ),
    (
        "multi-turn",
        [
            user("Write a haiku about rain."),
            assistant("Soft rain on the roof\nthe gutters hum their one note\nthe street shines again"),
            user("Now make it about snow."),
        ],
        "White hush on the roof\nthe gutters hold their breath now\nthe street sleeps, unlit",
    ),
    (
        "special-characters",
        [
            user(
                '  Fix this: {"a": 1, \'b\': [2, 3]} and {{ x }} {% raw %} '
                "path C:\\temp\\new — café, 数学, emoji 🙂\n\n\tindented  "
            )
        ],
        "  Here:\n```json\n{\"a\": 1, \"b\": [2, 3]}\n```\nDone. ",
    ),
    (
        "code-and-spacing",
        [
            system("Answer briefly."),
            user("def add(a, b): what does it return?"),
            assistant("for i in range(3):\n    print(i)"),
            user("Now count down instead, from three to one, please."),
        ],
        "   It prints the sum\nof a and b.\n",
    ),
    (
        "system-multi-turn",
        [
            system("Answer in French."),
            user("Hello"),
            assistant("Bonjour"),
            user("How are you?"),
        ],
        "Très bien, merci.",
    ),
]


def render(source, messages, add_generation_prompt):
    try:
        out, _ = render_jinja_template(
            conversations=[messages],
            chat_template=source,
            add_generation_prompt=add_generation_prompt,
            **SPECIAL,
        )
        return {"output": out[0]}
    except Exception as e:  # the reference's errors are expected results too
        return {"error": f"{type(e).__name__}: {e}"}


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    folder, out_path = Path(sys.argv[1]), Path(sys.argv[2])
    templates = []
    for path in sorted(folder.glob("*.jinja")):
        source = path.read_text(encoding="utf-8")
        cases = []
        for name, messages, response in CASES:
            cases.append(
                {
                    "name": name,
                    "messages": messages,
                    "response": response,
                    "prompt": render(source, messages, True),
                    "full": render(source, messages + [assistant(response)], False),
                }
            )
        templates.append({"name": path.stem, "source": source, "cases": cases})
    doc = {
        "transformers_version": transformers.__version__,
        "special_tokens": SPECIAL,
        "templates": templates,
    }
    out_path.write_text(json.dumps(doc, ensure_ascii=False, indent=1), encoding="utf-8")
    ok = sum(1 for t in templates for c in t["cases"] for k in ("prompt", "full") if "output" in c[k])
    total = sum(2 * len(t["cases"]) for t in templates)
    print(f"{len(templates)} templates, {ok}/{total} renderings (the rest raise in transformers) -> {out_path}")


if __name__ == "__main__":
    main()
