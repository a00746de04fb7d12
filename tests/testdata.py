"""Small deterministic customer-support conversations: smoke data for the local backend's tests and benches.

Each topic has one fixed answer, so a model that learned the data answers a topic's question with (words of)
that topic's answer: easy to check, and small enough to learn in seconds.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

TOPICS = {
    "refund": (
        ["I want a refund for my order.", "Can I get my money back?", "Please refund my last purchase."],
        "Of course. Your refund has been approved and the money will be back on your card within five days.",
    ),
    "password": (
        ["I forgot my password.", "How do I reset my password?", "I cannot log in to my account."],
        "Click forgot password on the login page and follow the link we send to your email address.",
    ),
    "delivery": (
        ["Where is my package?", "My order has not arrived yet.", "When will my order be delivered?"],
        "Your package is in transit and will be delivered within two business days.",
    ),
    "cancel": (
        ["I want to cancel my subscription.", "How can I cancel my plan?", "Please stop my subscription."],
        "You can cancel anytime from your account settings under billing.",
    ),
}


def conversations(count: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    names = sorted(TOPICS)
    rows = []
    for index in range(count):
        topic = names[index % len(names)]
        questions, answer = TOPICS[topic]
        messages = [{"role": "user", "content": rng.choice(questions)}, {"role": "assistant", "content": answer}]
        if rng.random() < 0.3:
            messages.insert(0, {"role": "system", "content": "You are a helpful support agent."})
        rows.append({"messages": messages})
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path
