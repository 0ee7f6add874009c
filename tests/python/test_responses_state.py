"""Stateful Responses with the official OpenAI SDK through a Claude model: a
`previous_response_id` chain, `responses.retrieve`, `responses.delete` and
`responses.input_items.list` (its pages too), each key seeing only its own."""

import json

import openai
import pytest

from conftest import KEY, providers

OTHER = "izzi-other-key-0123456789abcdef"


def test_previous_response_id_chain_through_claude(start_gateway, mock):
    gw = start_gateway(providers(mock) + f'\n[[keys]]\nname = "other"\nkey = "{OTHER}"\nplan = "ultra"\n')
    client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=KEY, max_retries=0)
    first = client.responses.create(model="sonnet", input="My name is Ada. mock:rid=py1")
    second = client.responses.create(model="sonnet", previous_response_id=first.id,
                                     input="What is my name? mock:rid=py2")
    with client.responses.stream(model="sonnet", previous_response_id=second.id,
                                 input=[{"role": "user", "content": "Once more. mock:rid=py3"}]) as stream:
        third = stream.get_final_response()
    assert (first.id, second.id, third.id) == ("resp_py1", "resp_py2", "resp_py3")
    assert third.output_text == "Hello from the mock upstream."

    # Claude got the whole conversation, in order, and never izzi's ids.
    sent = json.dumps(mock.last("/v1/messages")["body"])
    assert "resp_py" not in sent
    marks = [sent.find("My name is Ada."), sent.find("Hello from the mock upstream."),
             sent.find("What is my name?"), sent.rfind("Hello from the mock upstream."), sent.find("Once more.")]
    assert -1 not in marks and marks == sorted(marks) and marks[1] != marks[3], sent

    got = client.responses.retrieve(third.id)
    assert got.id == third.id and got.output_text == third.output_text

    items = list(client.responses.input_items.list(third.id))
    assert [i.role for i in items] == ["user", "assistant", "user", "assistant", "user"]
    newest = items[0].content
    assert "Once more." in (newest if isinstance(newest, str) else newest[0].text)
    page = client.responses.input_items.list(third.id, limit=2, order="asc")
    assert len(page.data) == 2 and page.has_more
    # The SDK pages on by `after` itself.
    paged = list(client.responses.input_items.list(third.id, limit=2, order="asc"))
    assert [i.id for i in paged] == [i.id for i in reversed(items)]

    other = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=OTHER, max_retries=0)
    with pytest.raises(openai.NotFoundError):
        other.responses.retrieve(third.id)
    with pytest.raises(openai.NotFoundError):
        other.responses.create(model="sonnet", previous_response_id=third.id, input="hi")

    client.responses.delete(third.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(third.id)
    # `store: false` keeps nothing.
    unstored = client.responses.create(model="sonnet", store=False, input="hi mock:rid=py4")
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(unstored.id)


@pytest.mark.parametrize("model", ["sonnet", "gpt-4.1"])
def test_compact_and_continue(gateway, mock, model):
    """`responses.compact` answers the SDK's `CompactedResponse` (the user's messages, then one
    compaction item) on either provider kind, and the next turn carrying it back works."""
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=KEY, max_retries=0)
    history = [
        {"role": "user", "content": "Refactor the parser."},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Done: split in two."}]},
    ]
    compacted = client.responses.compact(model=model, input=history, instructions="You are Codex.")
    assert compacted.object == "response.compaction"
    assert [item.type for item in compacted.output] == ["message", "compaction"]
    assert compacted.usage.output_tokens > 0
    carried = [item.model_dump(exclude_none=True) for item in compacted.output]
    answer = client.responses.create(model=model, store=False,
                                     input=carried + [{"role": "user", "content": "Now the tests."}])
    assert answer.output_text == "Hello from the mock upstream."
    sent = json.dumps(mock.requests()[-1]["body"])
    assert "This conversation was compacted" in sent and "Done: split in two." not in sent
