"""Choosing the held-out conversations to ask, and cutting each before its last assistant message."""

from __future__ import annotations

from shared.evaluation import examples as ex


def conversation(question: str, answer: str, *, system: str = "", more: int = 0) -> dict:
    messages = [{"role": "system", "content": system}] if system else []
    for turn in range(more):
        messages += [{"role": "user", "content": f"earlier {turn}"}, {"role": "assistant", "content": f"reply {turn}"}]
    messages += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    return {"prompt": question, "prompt_id": "x", "messages": messages}


def test_cut_before_the_last_assistant_message_which_is_the_reference() -> None:
    row = conversation("Where is my package?", "In transit.", system="Be brief.", more=1)
    example = ex.cut_conversation(row)
    assert isinstance(example, ex.Example)
    assert example.reference == "In transit."
    assert [m["role"] for m in example.messages] == ["system", "user", "assistant", "user"]
    assert example.messages[-1]["content"] == "Where is my package?"
    # the id covers the whole conversation, reference included, and nothing else (prompt_id, extra keys)
    other = conversation("Where is my package?", "Delivered.", system="Be brief.", more=1)
    assert ex.cut_conversation(other).id != example.id
    again = {**row, "prompt_id": "different", "messages": [dict(m, weight=1) for m in row["messages"]]}
    assert ex.cut_conversation(again).id == example.id
    assert "weight" not in example.messages[0]


def test_unaskable_conversations_are_skipped_with_a_reason() -> None:
    assert ex.cut_conversation({"messages": [{"role": "user", "content": "hi"}]}) == ex.NO_ASSISTANT
    assert ex.cut_conversation({"messages": [{"role": "assistant", "content": "hi"}]}) == ex.NOT_AFTER_USER
    tool = {
        "messages": [
            {"role": "user", "content": "weather?"},
            {"role": "tool", "content": "sunny"},
            {"role": "assistant", "content": "Sunny."},
        ]
    }
    assert ex.cut_conversation(tool) == ex.UNSUPPORTED_ROLE
    with_tools = {**conversation("q", "a"), "tools": [{"type": "function"}]}
    assert ex.cut_conversation(with_tools) == ex.USES_TOOLS
    assert ex.cut_conversation({"messages": "nope"}) == ex.NOT_A_CONVERSATION
    assert ex.cut_conversation(conversation("q", "   ")) == ex.EMPTY_REFERENCE


def test_selection_takes_the_smallest_ids_whatever_the_order_and_counts_everything() -> None:
    rows = [conversation(f"question {i}", f"answer {i}") for i in range(50)]
    rows.insert(7, {"messages": [{"role": "user", "content": "no answer"}]})
    rows.insert(9, conversation("dup", "dup"))
    rows.insert(30, conversation("dup", "dup"))
    chosen = ex.select(rows, 10)
    assert len(chosen.examples) == 10
    ids = [e.id for e in chosen.examples]
    assert ids == sorted(ids)
    all_ids = sorted({ex.cut_conversation(r).id for r in rows if isinstance(ex.cut_conversation(r), ex.Example)})
    assert ids == all_ids[:10]
    assert [e.id for e in ex.select(list(reversed(rows)), 10).examples] == ids  # order does not matter
    assert chosen.report() == {"rows": 53, "askable": 52, "chosen": 10, "skipped": {ex.NO_ASSISTANT: 1}}
    # a growing split keeps what was chosen unless a newcomer has a smaller id
    grown = ex.select(rows + [conversation(f"new {i}", "x") for i in range(5)], 10)
    newcomers = {e.id for e in grown.examples} - set(ids)
    assert all(new < max(ids) for new in newcomers)
    assert [e.id for e in grown.examples if e.id not in newcomers] == ids[: 10 - len(newcomers)]


def test_exclusion_and_id_collection_tell_new_rows_apart() -> None:
    old = [conversation(f"old {i}", "a") for i in range(8)]
    new = [conversation(f"new {i}", "b") for i in range(5)]
    seen = ex.Selector(0, collect_ids=True)
    for row in old:
        seen.add(row)
    old_ids = seen.result().ids
    assert old_ids is not None and len(old_ids) == 8
    fresh = ex.select(old + new, 100, exclude=old_ids)
    assert sorted(e.reference for e in fresh.examples) == ["b"] * 5
    assert ex.select(old, 0).examples == []


def test_rows_from_lines_marks_unparsable_lines() -> None:
    rows = list(ex.rows_from_lines([b'{"messages": []}', b"", b"{broken", b"  "]))
    assert rows == [{"messages": []}, None]
    selection = ex.select(rows, 5)
    assert selection.skipped == {ex.NO_ASSISTANT: 1, ex.NOT_A_CONVERSATION: 1}
