"""The official SDKs against `izzi serve` when the client's format differs from the provider's
kind: each SDK's own accumulators must rebuild the whole answer, tool input included."""

import json

import anthropic
import openai
import pytest

from conftest import KEY, providers

TOOL = {"name": "get_weather", "description": "Weather for a city.",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}
CHAT_TOOL = {"type": "function", "function": {"name": "get_weather", "description": "Weather for a city.",
                                              "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}
RESPONSES_TOOL = {"type": "function", "name": "get_weather", "description": "Weather for a city.",
                  "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}
TEXT = "Hello from the mock upstream."


@pytest.fixture(scope="module")
def swapped(mock):
    """Claude models behind an OpenAI-kind provider, the rest behind an Anthropic-kind one."""
    from conftest import Gateway
    gw = Gateway(providers(mock, anthropic_kind="openai", openai_kind="anthropic"))
    yield gw
    gw.stop()


@pytest.fixture(scope="module")
def native(mock):
    from conftest import Gateway
    gw = Gateway(providers(mock))
    yield gw
    gw.stop()


def claude(gw):
    return anthropic.Anthropic(base_url=gw.url, api_key=KEY, max_retries=0)


def oai(gw):
    return openai.OpenAI(base_url=f"{gw.url}/v1", api_key=KEY, max_retries=0)


def test_anthropic_sdk_on_openai_kind(swapped, mock):
    client = claude(swapped)
    msg = client.messages.create(model="claude-sonnet-4-20250514", max_tokens=500,
                                 system=[{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
                                 messages=[{"role": "user", "content": "hi mock:cache"}])
    assert msg.content[0].type == "text" and msg.content[0].text == TEXT
    assert msg.stop_reason == "end_turn"
    assert msg.model == "claude-sonnet-4-20250514"
    assert msg.usage.cache_read_input_tokens == 100
    sent = mock.last("/v1/chat/completions")["body"]
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
    # Claude 4 models reason, so the OpenAI-side limit is `max_completion_tokens`.
    assert sent["max_completion_tokens"] == 500 and "max_tokens" not in sent

    question = {"role": "user", "content": "Weather in Paris? mock:tools mock:words=2"}
    with client.messages.stream(model="claude-sonnet-4-20250514", max_tokens=500, tools=[TOOL],
                                messages=[question]) as stream:
        final = stream.get_final_message()
    assert [b.type for b in final.content] == ["text", "tool_use"]
    assert final.content[0].text == TEXT + " w0 w1"
    call = final.content[1]
    assert call.name == "get_weather" and call.input == {"city": "Paris", "n": 0}
    assert final.stop_reason == "tool_use"
    assert final.usage.output_tokens > 0 and final.usage.input_tokens > 0

    # The tool round trip: the result goes upstream as a `tool` message right after the call.
    answer = client.messages.create(
        model="claude-sonnet-4-20250514", max_tokens=500, tools=[TOOL],
        messages=[question, {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in final.content]},
                  {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "Sunny"}]}])
    assert answer.content
    sent = mock.last("/v1/chat/completions")["body"]["messages"]
    assert sent[1]["tool_calls"][0]["id"] == call.id
    assert json.loads(sent[1]["tool_calls"][0]["function"]["arguments"]) == {"city": "Paris", "n": 0}
    assert sent[2] == {"role": "tool", "tool_call_id": call.id, "content": "Sunny"}


def test_openai_sdk_on_anthropic_kind(swapped, mock):
    client = oai(swapped)
    done = client.chat.completions.create(
        model="gpt-4.1", messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}])
    assert done.choices[0].message.content == TEXT
    assert done.choices[0].finish_reason == "stop"
    assert done.model == "gpt-4.1"
    sent = mock.last("/v1/messages")["body"]
    assert sent["system"] == [{"type": "text", "text": "Be brief."}]
    assert sent["max_tokens"] > 0

    stream = client.chat.completions.create(
        model="gpt-4.1", messages=[{"role": "user", "content": "hi mock:words=3 mock:cache"}], stream=True,
        stream_options={"include_usage": True})
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == TEXT + " w0 w1 w2"
    usage = chunks[-1].usage
    assert usage.prompt_tokens_details.cached_tokens == 100
    assert usage.prompt_tokens > 150

    question = {"role": "user", "content": "Weather in Paris? mock:tools"}
    with client.chat.completions.stream(model="gpt-4.1", messages=[question], tools=[CHAT_TOOL]) as stream:
        final = stream.get_final_completion()
    message = final.choices[0].message
    assert message.content == TEXT
    assert final.choices[0].finish_reason == "tool_calls"
    call = message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris", "n": 0}

    answer = client.chat.completions.create(
        model="gpt-4.1", tools=[CHAT_TOOL],
        messages=[question, {"role": "assistant", "content": message.content,
                             "tool_calls": [call.model_dump(exclude_none=True)]},
                  {"role": "tool", "tool_call_id": call.id, "content": "Sunny"}])
    assert answer.choices[0].message
    sent = mock.last("/v1/messages")["body"]["messages"]
    assert sent[1]["content"][1] == {"type": "tool_use", "id": call.id, "name": "get_weather",
                                     "input": {"city": "Paris", "n": 0}}
    assert sent[2]["content"] == [{"type": "tool_result", "tool_use_id": call.id, "content": "Sunny"}]


@pytest.mark.parametrize("model,path", [("gpt-4.1", "/v1/chat/completions"),
                                        ("claude-sonnet-4-20250514", "/v1/messages")])
def test_responses_on_both_kinds(native, mock, model, path):
    client = oai(native)
    done = client.responses.create(model=model, input="hi")
    assert done.output_text == TEXT
    assert done.status == "completed"
    assert done.usage.input_tokens > 0 and done.usage.output_tokens > 0

    done = client.responses.create(model=model, instructions="Be brief.", input=[
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": [{"type": "output_text", "text": "ok"}]},
        {"role": "user", "content": [{"type": "input_text", "text": "second"}]}])
    assert done.output_text == TEXT
    sent = mock.last(path)["body"]
    if path == "/v1/messages":
        assert sent["system"] == [{"type": "text", "text": "Be brief."}]
        assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "user"]
        assert sent["max_tokens"] > 0
    else:
        assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
        assert [m["role"] for m in sent["messages"]] == ["system", "user", "assistant", "user"]

    events = list(client.responses.create(model=model, input="hi mock:words=2", stream=True))
    assert events[0].type == "response.created"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[-1].type == "response.completed"
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == TEXT + " w0 w1"

    with client.responses.stream(model=model, input="Weather in Paris? mock:tools", tools=[RESPONSES_TOOL]) as stream:
        final = stream.get_final_response()
    assert final.output_text == TEXT
    calls = [item for item in final.output if item.type == "function_call"]
    assert len(calls) == 1 and calls[0].name == "get_weather"
    assert json.loads(calls[0].arguments) == {"city": "Paris", "n": 0}

    answer = client.responses.create(model=model, tools=[RESPONSES_TOOL], input=[
        {"role": "user", "content": "Weather in Paris?"},
        {"type": "function_call", "call_id": calls[0].call_id, "name": "get_weather", "arguments": calls[0].arguments},
        {"type": "function_call_output", "call_id": calls[0].call_id, "output": "Sunny"}])
    assert answer.output_text == TEXT
    sent = mock.last(path)["body"]["messages"]
    if path == "/v1/messages":
        assert sent[1]["content"][0]["type"] == "tool_use"
        assert sent[2]["content"] == [{"type": "tool_result", "tool_use_id": calls[0].call_id, "content": "Sunny"}]
    else:
        assert sent[1]["tool_calls"][0]["id"] == calls[0].call_id
        assert sent[2] == {"role": "tool", "tool_call_id": calls[0].call_id, "content": "Sunny"}


def test_translation_refusal_names_the_field(swapped):
    with pytest.raises(anthropic.BadRequestError) as err:
        claude(swapped).messages.create(
            model="claude-sonnet-4-20250514", max_tokens=100, messages=[{"role": "user", "content": "hi"}],
            tools=[{"type": "computer_20250124", "name": "computer", "display_width_px": 1024,
                    "display_height_px": 768}])
    assert "`tools[0].type`" in str(err.value)


@pytest.mark.parametrize("model", ["gpt-4.1", "claude-sonnet-4-20250514"])
def test_first_translated_event_before_the_upstream_ends(swapped, model):
    """A slow upstream (200 ms between events): the first translated text reaches the client
    long before the upstream's last event, so translation adds no wait for the first token."""
    import time
    client = oai(swapped)
    started = time.monotonic()
    first = None
    for event in client.responses.create(model=model, input="hi mock:words=6 mock:chunk_delay_ms=200", stream=True):
        if event.type == "response.output_text.delta" and first is None:
            first = time.monotonic() - started
    total = time.monotonic() - started
    assert first is not None
    assert total - first > 1.0, f"first text at {first:.2f}s of {total:.2f}s"


def test_openai_sdk_gets_codex_freeform_calls_from_claude(native, mock):
    """A Responses `custom` tool on Claude: the SDK reads back a `custom_tool_call` with the raw
    input, whole and streamed, and the next turn carries it and its output."""
    client = oai(native)
    tools = [{"type": "custom", "name": "apply_patch", "description": "Edit files.",
              "format": {"type": "grammar", "syntax": "lark", "definition": "start: /.+/"}}]
    resp = client.responses.create(model="sonnet", tools=tools, input="add a file mock:tools")
    call = next(item for item in resp.output if item.type == "custom_tool_call")
    assert call.name == "apply_patch" and call.input.startswith("*** Begin Patch\n")
    with client.responses.stream(model="sonnet", tools=tools, input="again mock:tools") as stream:
        deltas = [e.delta for e in stream if e.type == "response.custom_tool_call_input.delta"]
        final = stream.get_final_response()
    streamed = next(item for item in final.output if item.type == "custom_tool_call")
    assert "".join(deltas) == streamed.input == call.input
    follow = client.responses.create(model="sonnet", tools=tools, input=[
        {"role": "user", "content": "add a file"},
        {"type": "custom_tool_call", "call_id": call.call_id, "name": call.name, "input": call.input},
        {"type": "custom_tool_call_output", "call_id": call.call_id, "output": "Done."}])
    assert follow.output_text == TEXT
    sent = mock.last("/v1/messages")["body"]
    assert sent["messages"][1]["content"][0]["input"] == {"input": call.input}
    assert sent["messages"][2]["content"][0]["content"] == "Done."


def test_openai_sdk_chat_on_claude_reads_the_cache_izzi_placed(native, mock):
    """A Chat client on Claude that never heard of `cache_control`: its second turn reads the
    prefix the first wrote, and the SDK sees it as `cached_tokens`."""
    client = oai(native)
    system = "".join(f"Rule {i}: keep each edit small and explain it. " for i in range(300))
    messages = [{"role": "system", "content": system}, {"role": "user", "content": "first"}]
    first = client.chat.completions.create(model="sonnet", messages=messages)
    messages += [{"role": "assistant", "content": first.choices[0].message.content},
                 {"role": "user", "content": "second"}]
    second = client.chat.completions.create(model="sonnet", messages=messages)
    assert first.usage.prompt_tokens_details.cached_tokens == 0
    assert second.usage.prompt_tokens_details.cached_tokens > 3000
    assert "cache_control" in json.dumps(mock.last("/v1/messages")["body"])


def test_openai_sdk_chat_custom_tool_calls_from_claude(native):
    """Chat's `custom` tools on Claude: the SDK parses the call as a custom tool call."""
    client = oai(native)
    tools = [{"type": "custom", "custom": {"name": "apply_patch", "description": "Edit files."}}]
    resp = client.chat.completions.create(model="sonnet", tools=tools, messages=[
        {"role": "user", "content": "add a file mock:tools"}])
    call = resp.choices[0].message.tool_calls[0]
    assert call.type == "custom" and call.custom.name == "apply_patch"
    assert call.custom.input.startswith("*** Begin Patch\n")
    assert resp.choices[0].finish_reason == "tool_calls"
