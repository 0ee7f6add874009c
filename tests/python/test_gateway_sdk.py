"""The official SDKs against `izzi serve` forwarding to providers of their own format."""

import anthropic
import openai
import pytest

from conftest import KEY

PREFIXES = ["/v1", "/openai/v1", "/api/v1"]


def oai(gw, prefix="/v1"):
    return openai.OpenAI(base_url=f"{gw.url}{prefix}", api_key=KEY, max_retries=0)


def claude(gw, prefix="", bearer=False):
    # The Anthropic SDK appends /v1/messages itself; `prefix` is what comes before `/v1`.
    root = f"{gw.url}{prefix}"
    if bearer:
        return anthropic.Anthropic(base_url=root, auth_token=KEY, api_key=None, max_retries=0)
    return anthropic.Anthropic(base_url=root, api_key=KEY, max_retries=0)


@pytest.mark.parametrize("prefix", PREFIXES)
def test_openai_chat_plain_and_stream(gateway, mock, prefix):
    client = oai(gateway, prefix)
    done = client.chat.completions.create(model="gpt-4.1", messages=[{"role": "user", "content": "hi"}])
    assert done.choices[0].message.content == "Hello from the mock upstream."
    assert done.choices[0].finish_reason == "stop"
    assert done.usage.completion_tokens == 5

    stream = client.chat.completions.create(
        model="gpt-4.1", messages=[{"role": "user", "content": "hi mock:words=3"}], stream=True,
        stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello from the mock upstream. w0 w1 w2"
    assert chunks[-1].usage.completion_tokens == 8
    assert mock.last("/v1/chat/completions")["headers"]["authorization"] == "Bearer sk-upstream-openai"


def test_openai_stream_accumulator(gateway):
    with oai(gateway).chat.completions.stream(
            model="gpt-4.1", messages=[{"role": "user", "content": "mock:tools"}],
            tools=[{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}],
    ) as stream:
        final = stream.get_final_completion()
    call = final.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert call.function.arguments == '{"city":"Paris","n":0}'
    assert final.choices[0].finish_reason == "tool_calls"


@pytest.mark.parametrize("prefix", ["", "/openai", "/api"])
@pytest.mark.parametrize("bearer", [False, True])
def test_anthropic_messages_plain_and_stream(gateway, mock, prefix, bearer):
    client = claude(gateway, prefix, bearer)
    msg = client.messages.create(model="claude-sonnet-4-20250514", max_tokens=50,
                                 messages=[{"role": "user", "content": "hi"}])
    assert msg.content[0].text == "Hello from the mock upstream."
    assert msg.stop_reason == "end_turn"
    with client.messages.stream(model="sonnet", max_tokens=50,
                                messages=[{"role": "user", "content": "mock:tools mock:words=2"}],
                                tools=[{"name": "lookup", "input_schema": {"type": "object"}}]) as stream:
        final = stream.get_final_message()
    assert final.content[0].text == "Hello from the mock upstream. w0 w1"
    assert final.content[1].type == "tool_use" and final.content[1].input == {"city": "Paris", "n": 0}
    assert final.stop_reason == "tool_use"
    seen = mock.last("/v1/messages")
    assert seen["body"]["model"] == "claude-sonnet-4-20250514"
    assert seen["headers"]["x-api-key"] == "sk-upstream-anthropic"
    assert KEY not in str(seen)


def test_anthropic_thinking_is_forwarded(gateway, mock):
    client = claude(gateway)
    msg = client.messages.create(
        model="claude-opus-4-20250514", max_tokens=8000,
        thinking={"type": "enabled", "budget_tokens": 4000},
        messages=[{"role": "user", "content": "Solve this step by step mock:thinking"}])
    assert msg.content[0].type == "thinking"
    assert msg.content[0].signature == "mock-signature"
    assert mock.last("/v1/messages")["body"]["thinking"] == {"type": "enabled", "budget_tokens": 4000}


def test_anthropic_count_tokens_is_native(gateway, mock):
    counted = claude(gateway).messages.count_tokens(
        model="sonnet", messages=[{"role": "user", "content": "Hello!"}, {"role": "assistant", "content": "Hi"},
                                  {"role": "user", "content": "Again"}])
    # The mock answers 1000 + the number of messages: the upstream counted, not izzi.
    assert counted.input_tokens == 1003
    assert mock.last("/v1/messages/count_tokens")["body"]["model"] == "claude-sonnet-4-20250514"


def test_errors_parse_in_both_sdks(gateway):
    with pytest.raises(openai.RateLimitError) as e:
        oai(gateway).chat.completions.create(model="gpt-4.1",
                                             messages=[{"role": "user", "content": "mock:status=429 mock:retry_after=3"}])
    assert e.value.response.headers["retry-after"] == "3"
    with pytest.raises(openai.InternalServerError) as e:
        oai(gateway).chat.completions.create(model="gpt-4.1", messages=[{"role": "user", "content": "mock:status=500"}])
    assert e.value.status_code == 502
    assert e.value.body["type"] == "upstream_error"
    with pytest.raises(anthropic.InternalServerError) as e:
        claude(gateway).messages.create(model="sonnet", max_tokens=5,
                                        messages=[{"role": "user", "content": "mock:status=503"}])
    assert e.value.status_code == 502
    assert e.value.body["error"]["type"] == "upstream_error"
    with pytest.raises(anthropic.AuthenticationError) as e:
        anthropic.Anthropic(base_url=gateway.url, api_key="izzi-wrong", max_retries=0).messages.create(
            model="sonnet", max_tokens=5, messages=[{"role": "user", "content": "hi"}])
    assert e.value.body["error"]["type"] == "authentication_error"
    with pytest.raises(openai.NotFoundError) as e:
        oai(gateway).chat.completions.create(model="gpt-4.1", messages=[{"role": "user", "content": "mock:status=404"}])
    with pytest.raises(anthropic.BadRequestError) as e:
        claude(gateway).messages.create(model="sonnet", max_tokens=5,
                                        messages=[{"role": "user", "content": "mock:status=400"}])
    assert e.value.body["error"]["message"] == "mock failure 400"


@pytest.mark.parametrize("cut", ["drop_after", "half_after"])
def test_a_cut_stream_raises_in_both_sdks(gateway, cut):
    # Cut between two events, or in the middle of one: either way the SDK gets the gateway's
    # error event, never a line it cannot parse.
    with pytest.raises(anthropic.APIStatusError) as e:
        with claude(gateway).messages.stream(model="sonnet", max_tokens=50, messages=[
                {"role": "user", "content": f"mock:{cut}=4 mock:chunk_delay_ms=10"}]) as stream:
            stream.get_final_message()
    assert "failed mid-request" in str(e.value)
    with pytest.raises(openai.APIError) as e:
        for _ in oai(gateway).chat.completions.create(
                model="gpt-4.1", stream=True,
                messages=[{"role": "user", "content": f"mock:{cut}=3 mock:chunk_delay_ms=10"}]):
            pass
    assert "failed mid-request" in str(e.value)


def test_models_in_both_sdks(gateway):
    ids = [m.id for m in oai(gateway).models.list()]
    assert "gpt-5" in ids and "claude-opus-4-20250514" in ids
    assert oai(gateway).models.retrieve("opus").id == "claude-opus-4-20250514"
    page = claude(gateway).models.list()
    assert any(m.id == "claude-sonnet-4-20250514" and m.display_name == "Claude Sonnet 4" for m in page.data)
