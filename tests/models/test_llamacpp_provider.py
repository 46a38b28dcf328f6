"""The llamacpp provider over the real bundled model hosted in this process: the shared
provider contract, the ``qa`` prompt template and its stop sequences, and the GGUF tokenizer."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from ember.chat import ChatMessage, GenerationOptions
from ember.config.models import ModelsConfig
from ember.errors import ProviderBadRequest
from ember.models import LocalModels, ModelRecord, SqlModelCatalog
from ember.models.templates import TEMPLATES
from ember.models.tokenizer import GgufTokenizer
from ember.providers.llamacpp import LlamaCppProvider
from ember.testing.provider import ProviderContract

GREEDY = GenerationOptions(max_tokens=24, temperature=0.0, seed=7)


@pytest.fixture
async def provider(gemma: ModelRecord, catalog: SqlModelCatalog) -> AsyncIterator[LlamaCppProvider]:
    models = LocalModels.build(catalog, ModelsConfig())
    try:
        yield LlamaCppProvider("local", models)
    finally:
        await models.registry.close()


@pytest.fixture
def model(gemma: ModelRecord) -> str:
    return gemma.name


class TestLlamaCppProvider(ProviderContract):
    async def test_answers_a_question_through_the_qa_template(
        self, provider: LlamaCppProvider, model: str
    ) -> None:
        ask = [ChatMessage("user", "What is the capital of France?")]
        answer = await provider.chat(model, ask, GREEDY)
        assert "Paris" in answer.text
        assert "Question:" not in answer.text
        assert answer.finish_reason == "stop"

    async def test_lists_the_registered_model_with_its_digest(
        self, provider: LlamaCppProvider, gemma: ModelRecord
    ) -> None:
        (info,) = await provider.list_models()
        assert info.digest == gemma.digest and info.details["template"] == "qa"
        assert info.details["warm"] is gemma.warm

    async def test_tools_need_a_template_that_carries_them(
        self, provider: LlamaCppProvider, model: str
    ) -> None:
        tool = {"type": "function", "function": {"name": "lookup", "parameters": {}}}
        ask = [ChatMessage("user", "Look it up")]
        with pytest.raises(ProviderBadRequest, match="--template gguf"):
            await provider.chat(model, ask, GenerationOptions(tools=[tool]))

    async def test_does_not_embed(self, provider: LlamaCppProvider, model: str) -> None:
        with pytest.raises(ProviderBadRequest, match="sentence-transformers"):
            await provider.embed(model, ["text"])

    async def test_max_tokens_bounds_the_answer(
        self, provider: LlamaCppProvider, model: str
    ) -> None:
        options = GenerationOptions(max_tokens=5, temperature=0.0)
        answer = await provider.generate(model, "Once upon a time", options)
        assert answer.usage.completion_tokens <= 5 and answer.finish_reason == "length"

    async def test_temperature_zero_repeats_its_answer_across_interleaved_prompts(
        self, provider: LlamaCppProvider, model: str
    ) -> None:
        # Issue 15, defect 4: these prompts share a long prefix; before the fix, a prompt asked
        # again after the others reused their cached prefix and changed its greedy answer.
        options = GenerationOptions(max_tokens=48, temperature=0.0)
        prompts = [f"{_STORY}{p}" for p in ("Once upon a time", "Once upon a time, in", "In a")]
        first = [(await provider.generate(model, p, options)).text for p in prompts]
        for prompt, expected in reversed(list(zip(prompts, first, strict=True))):
            assert (await provider.generate(model, prompt, options)).text == expected

    async def test_a_seeded_chat_repeats_its_answer_after_another_chat(
        self, provider: LlamaCppProvider, model: str
    ) -> None:
        options = GenerationOptions(max_tokens=32, temperature=0.0, seed=11)
        story = [ChatMessage("user", f"{_STORY}Once upon a time")]
        other = [ChatMessage("user", f"{_STORY}Once upon a time, in")]
        expected = (await provider.chat(model, story, options)).text
        await provider.chat(model, other, options)
        assert (await provider.chat(model, story, options)).text == expected


_STORY = (
    "Write a short story for children. The story should be about friendship and kindness, "
    "and it should be happy. Story: "
)


def test_qa_template_renders_turns_and_ends_at_the_answer() -> None:
    rendered = TEMPLATES["qa"].render(
        [
            ChatMessage("system", "Be brief."),
            ChatMessage("user", "Capital of Italy?"),
            ChatMessage("assistant", "Rome"),
            ChatMessage("user", "And of Spain?"),
        ]
    )
    assert rendered.text == (
        "Be brief.\nQuestion: Capital of Italy?\nAnswer: Rome\nQuestion: And of Spain?\nAnswer:"
    )
    assert "\nQuestion:" in rendered.stop
    with pytest.raises(ProviderBadRequest, match="tool"):
        TEMPLATES["qa"].render([ChatMessage("tool", "{}")])


def test_gguf_tokenizer_counts_what_the_model_sees(gemma: ModelRecord) -> None:
    tokenizer = GgufTokenizer(gemma)
    text = "Ember packs context under a token budget. Ünïcödé too."
    assert tokenizer.name == gemma.name
    assert tokenizer.count("") == 0
    count = tokenizer.count(text)
    assert 8 < count < len(text)
    spans = tokenizer.offsets(text)
    assert len(spans) == count
    assert spans[0][0] == 0 and spans[-1][1] == len(text)
    assert all(a <= b for a, b in spans)
