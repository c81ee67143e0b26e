"""Test rows in the layouts `cdr` reads: pairwise (string and message-list prompts) and best-of-N."""

PAIRWISE = [
    {"id": "p1", "prompt": "What is 2 + 2?", "chosen": "4.", "rejected": "Fish.", "subset": "math-prm"},
    {
        "id": "p2",
        "prompt": [
            {"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": "Name a prime number."},
        ],
        "chosen": "Seven is prime.",
        "rejected": "Eight, obviously.",
        "subset": "alpacaeval-easy",
    },
    {
        "id": "p3",
        "chosen": [
            {"role": "user", "content": "Say hello."},
            {"role": "assistant", "content": "Hello there!"},
        ],
        "rejected": [
            {"role": "user", "content": "Say hello."},
            {"role": "assistant", "content": "Go away."},
        ],
        "subset": "math-prm",
    },
]

BEST_OF_N = [
    {"id": "b1", "prompt": "Write a haiku about rust.", "responses": ["Red flakes on iron", "Borrow checker sings", "ok"]},
    {"id": "b2", "prompt": [{"role": "user", "content": "Pick a color."}], "responses": ["Blue.", "Green, like grass.", "I refuse."]},
    {"id": "b3", "prompt": "Count to three.", "responses": ["1 2 3", "one two three", "3 2 1"]},
]
