"""The official SDKs see which model served them: `x-izzi-model` and `x-izzi-route` on answers
that `[[routes]]` sent to another model, plain and streamed, translated across formats."""

import anthropic
import openai

from conftest import KEY, providers

ROUTES = """
[[routes]]
name = "background"
model = "claude-*haiku*"
to = "gpt-4.1-mini"

[[routes]]
name = "to-claude"
model = "gpt-4o*"
to = "sonnet"
"""


def test_sdks_see_the_served_model_and_the_route(start_gateway, mock):
    gw = start_gateway(providers(mock) + ROUTES)
    claude = anthropic.Anthropic(base_url=gw.url, api_key=KEY, max_retries=0)
    raw = claude.messages.with_raw_response.create(
        model="claude-3-5-haiku-20241022", max_tokens=50, messages=[{"role": "user", "content": "title"}])
    assert raw.headers["x-izzi-model"] == "gpt-4.1-mini"
    assert raw.headers["x-izzi-route"] == "background"
    assert raw.parse().content[0].text == "Hello from the mock upstream."
    with claude.messages.with_streaming_response.create(
            model="claude-3-5-haiku-20241022", max_tokens=50, stream=True,
            messages=[{"role": "user", "content": "title"}]) as streamed:
        assert streamed.headers["x-izzi-model"] == "gpt-4.1-mini"
        assert any(line for line in streamed.iter_lines())

    oai = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=KEY, max_retries=0)
    raw = oai.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert raw.headers["x-izzi-model"].startswith("claude-sonnet")
    assert raw.headers["x-izzi-route"] == "to-claude"
    assert raw.parse().choices[0].message.content == "Hello from the mock upstream."
    # No rule: the model asked for serves, and says so; no route header.
    raw = oai.chat.completions.with_raw_response.create(
        model="gpt-4.1", messages=[{"role": "user", "content": "hi"}])
    assert raw.headers["x-izzi-model"] == "gpt-4.1"
    assert "x-izzi-route" not in raw.headers
